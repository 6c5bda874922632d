package fs

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/prescient/prescientfs/fs/objread"
	"github.com/prescient/prescientfs/stacindex"
)

// assetFile is one asset: a remote object read through the read path.
type assetFile struct {
	fusefs.Inode
	readOnly
	fs       *fsys
	asset    stacindex.AssetEntry
	itemTime time.Time

	mu   sync.Mutex
	etag string // guarded by mu; the version the kernel's page cache holds
}

var (
	_ fusefs.NodeGetattrer = (*assetFile)(nil)
	_ fusefs.NodeOpener    = (*assetFile)(nil)
)

// fillAttr sets size and times: the size from a version a read learned
// (the object's own, should the catalog be wrong), else file:size, else a
// HEAD; the time from the item, else the object's Last-Modified.
func (a *assetFile) fillAttr(ctx context.Context, out *fuse.Attr) syscall.Errno {
	out.Mode = fileMode
	a.fs.setOwner(out)
	size := a.asset.Size
	if info, ok := a.fs.stats.cached(a.asset.Loc); ok {
		size = info.Size
	}
	t := a.itemTime
	if size < 0 || t.IsZero() {
		info, err := a.fs.stats.stat(ctx, a.asset.Loc)
		if err != nil {
			return a.fs.fail("stat", a.Path(nil), err)
		}
		if size < 0 {
			size = info.Size
		}
		if t.IsZero() {
			t = info.LastModified
		}
	}
	out.Size = attrSize(size)
	out.Blocks = (out.Size + 511) / 512
	out.Blksize = 1 << 20
	setTime(out, t)
	return 0
}

func (a *assetFile) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := fh.(*assetHandle); ok {
		out.Mode = fileMode
		a.fs.setOwner(&out.Attr)
		out.Size = attrSize(h.object().Size)
		setTime(&out.Attr, a.itemTime)
		return 0
	}
	return a.fillAttr(ctx, &out.Attr)
}

// Open pins the object's version (ETag) for the handle's lifetime. Objects
// are immutable per ETag, so the kernel may keep its page cache.
//
// Open sends no request when it can help it: a version learned within the
// metadata TTL (by a HEAD, or by an earlier handle's first GET) is pinned
// at once; with the size from the catalog (file:size) the handle's first
// GET pins the version (see objread.Versioned). Only an object whose size
// is unknown costs a HEAD, and getattr has made it already (lookup needs
// the size before open), so open finds it cached; and with a disk cache
// (VersionAtOpen) open sends the HEAD, so its blocks can answer the first
// read.
func (a *assetFile) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	direct := a.directIO()
	info, ok := a.fs.stats.cached(a.asset.Loc)
	if !ok && a.asset.Size >= 0 && !a.fs.VersionAtOpen {
		obj := objread.Object{Loc: a.asset.Loc, Size: a.asset.Size, DirectIO: direct}
		return &assetHandle{node: a, obj: obj, r: a.fs.Opener.Open(obj)}, a.openFlags("", direct), 0
	}
	if !ok {
		var err error
		if info, err = a.fs.stats.stat(ctx, a.asset.Loc); err != nil {
			return nil, 0, a.fs.fail("open", a.Path(nil), err)
		}
	}
	obj := objread.Object{Loc: a.asset.Loc, Size: info.Size, ETag: info.ETag, DirectIO: direct}
	h := &assetHandle{node: a, obj: obj, r: a.fs.Opener.Open(obj)}
	h.learned.Store(true)
	return h, a.openFlags(info.ETag, direct), 0
}

// directIO reports whether the asset is opened FOPEN_DIRECT_IO: a TIFF
// (by its media type, or its name when the catalog gives none), unless
// Config.TIFFPageCache.
func (a *assetFile) directIO() bool {
	if a.fs.TIFFPageCache {
		return false
	}
	if t := strings.ToLower(a.asset.Type); t != "" {
		return strings.Contains(t, "tiff") // image/tiff; application=geotiff, image/vnd.stac.geotiff
	}
	n := strings.ToLower(a.asset.Name)
	return strings.HasSuffix(n, ".tif") || strings.HasSuffix(n, ".tiff")
}

// openFlags are an open's flags: FOPEN_DIRECT_IO, or the page cache's
// (see cacheFlags).
func (a *assetFile) openFlags(etag string, direct bool) uint32 {
	flags := a.cacheFlags(etag)
	if direct {
		flags = fuse.FOPEN_DIRECT_IO
	}
	return flags
}

// cacheFlags keeps the kernel's page cache across opens of one version;
// when the object changed since the last open (a new ETag, or none to
// compare: a version not learned yet), the cache is dropped so the new
// open never sees old pages.
func (a *assetFile) cacheFlags(etag string) uint32 {
	a.mu.Lock()
	defer a.mu.Unlock()
	same := a.etag == "" || (etag != "" && etag == a.etag)
	a.etag = etag
	if same && etag != "" {
		return fuse.FOPEN_KEEP_CACHE
	}
	return 0
}

// learnVersion records the version a handle's first GET pinned: the next
// opens within the metadata TTL pin it without a request, and keep the
// kernel's page cache if it is the version it holds.
func (a *assetFile) learnVersion(obj objread.Object) {
	a.fs.stats.learn(obj.Loc, objread.ObjectInfo{Size: obj.Size, ETag: obj.ETag})
	a.mu.Lock()
	a.etag = obj.ETag
	a.mu.Unlock()
}

// assetHandle is one open of an asset.
type assetHandle struct {
	node    *assetFile
	obj     objread.Object // as opened; see object
	r       objread.Reader
	learned atomic.Bool // the version is known to the node
	drop    dropBehind
}

// object is the version the handle reads: as opened, or as its first GET
// pinned it (size corrected).
func (h *assetHandle) object() objread.Object {
	if v, ok := h.r.(objread.Versioned); ok {
		if obj, ok := v.Version(); ok {
			return obj
		}
	}
	return h.obj
}

// noteVersion passes the version the reader pinned to the node, once.
func (h *assetHandle) noteVersion() {
	if h.learned.Load() {
		return
	}
	if v, ok := h.r.(objread.Versioned); ok {
		if obj, ok := v.Version(); ok && h.learned.CompareAndSwap(false, true) {
			h.node.learnVersion(obj)
		}
	}
}

var (
	_ fusefs.FileReader   = (*assetHandle)(nil)
	_ fusefs.FileReleaser = (*assetHandle)(nil)
)

// Read answers with the reader's own buffers when it can lend them (one
// copy less on the streaming path), else with dest filled.
func (h *assetHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if sr, ok := h.r.(objread.SliceReader); ok {
		vecs, release, err := sr.ReadSlices(ctx, dest, off)
		if errno := h.readErr(err); errno != 0 {
			release()
			return nil, errno
		}
		res := &lentResult{vecs: vecs, release: release}
		h.served(off, res.Size())
		return res, 0
	}
	n, err := h.r.ReadAt(ctx, dest, off)
	if errno := h.readErr(err); errno != 0 {
		return nil, errno
	}
	h.served(off, n)
	return fuse.ReadResultData(dest[:n]), 0
}

// served notes a read of n bytes at off: the version it pinned, and the
// pages a stream has left behind, which the kernel is told to drop (from
// a goroutine of its own: the kernel waits for pages under read, and a
// READ handler must not wait for the kernel).
func (h *assetHandle) served(off int64, n int) {
	h.noteVersion()
	if h.obj.DirectIO {
		return // no pages
	}
	from, size := h.drop.read(off, off+int64(n))
	if size == 0 {
		return
	}
	go func() {
		for ; size > 0; from, size = h.drop.next() {
			if errno := h.node.NotifyContent(from, size); errno != 0 {
				h.node.fs.Log.Debug("dropping a stream's pages failed", "path", h.node.Path(nil), "errno", errno)
			}
		}
	}()
}

func (h *assetHandle) readErr(err error) syscall.Errno {
	if err == nil || errors.Is(err, io.EOF) {
		return 0
	}
	if errors.Is(err, objread.ErrChanged) {
		h.node.fs.stats.forget(h.obj.Loc)
	}
	return h.node.fs.fail("read", h.node.Path(nil), err)
}

// lentResult is a read's reply made of buffers lent by the reader: go-fuse
// writes them to the kernel with one writev (Slices) and then calls Done,
// which gives them back.
type lentResult struct {
	vecs    [][]byte
	release func()
	once    sync.Once
}

func (r *lentResult) Size() int {
	n := 0
	for _, v := range r.vecs {
		n += len(v)
	}
	return n
}

func (r *lentResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	buf = buf[:0]
	for _, v := range r.vecs {
		buf = append(buf, v...)
	}
	return buf, fuse.OK
}

func (r *lentResult) Slices() ([][]byte, fuse.Status) { return r.vecs, fuse.OK }

func (r *lentResult) Done() { r.once.Do(r.release) }

func (h *assetHandle) Release(ctx context.Context) syscall.Errno {
	_ = h.r.Close() // nobody waits for the answer to a release
	return 0
}
