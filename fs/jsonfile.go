package fs

import (
	"context"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// jsonFile serves a document kept in memory (collection.json, item.json)
// exactly as the catalog served it.
type jsonFile struct {
	fusefs.Inode
	readOnly
	fs   *fsys
	load func(ctx context.Context) ([]byte, error)
	// live: the content changes between reads (the stats file): reads
	// bypass the page cache and the size the kernel cached, which would
	// cut a document that grew.
	live bool
}

var (
	_ fusefs.NodeGetattrer = (*jsonFile)(nil)
	_ fusefs.NodeOpener    = (*jsonFile)(nil)
)

func (j *jsonFile) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := fh.(*bytesHandle); ok {
		out.Size = uint64(len(h.data))
	} else {
		data, err := j.load(ctx)
		if err != nil {
			return j.fs.fail("getattr", j.Path(nil), err)
		}
		out.Size = uint64(len(data))
	}
	out.Mode = fileMode
	j.fs.setOwner(&out.Attr)
	return 0
}

func (j *jsonFile) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	data, err := j.load(ctx)
	if err != nil {
		return nil, 0, j.fs.fail("open", j.Path(nil), err)
	}
	// The document can change when the listing refreshes: no KEEP_CACHE.
	if j.live {
		return &bytesHandle{data: data}, fuse.FOPEN_DIRECT_IO, 0
	}
	return &bytesHandle{data: data}, 0, 0
}

// bytesHandle is an open in-memory document: a snapshot taken at open.
type bytesHandle struct{ data []byte }

var _ fusefs.FileReader = (*bytesHandle)(nil)

func (h *bytesHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off >= int64(len(h.data)) {
		return fuse.ReadResultData(nil), 0
	}
	end := min(off+int64(len(dest)), int64(len(h.data)))
	return fuse.ReadResultData(h.data[off:end]), 0
}

func lookupJSON(ctx context.Context, parent *fusefs.Inode, f *fsys, node *jsonFile, out *fuse.EntryOut, n uint64) (*fusefs.Inode, syscall.Errno) {
	data, err := node.load(ctx)
	if err != nil {
		return nil, f.fail("lookup", parent.Path(nil), err)
	}
	out.Mode = fileMode
	out.Size = uint64(len(data))
	f.setOwner(&out.Attr)
	return parent.NewInode(ctx, node, fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: n}), 0
}

// attrSize is a size for an attribute: a negative one (from a catalog or
// a server) is 0, not 2^64-1.
func attrSize(n int64) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}

func setTime(a *fuse.Attr, t time.Time) {
	if t.IsZero() {
		return
	}
	a.SetTimes(&t, &t, &t)
}
