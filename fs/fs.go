// Package fs serves the STAC tree as a read-only FUSE file system with
// go-fuse v2 (imported as fusefs).
//
// Nodes: the root lists collections; a collection directory holds
// collection.json and one directory per item; an item directory holds
// item.json and one file per asset. Directory contents come from a
// stacindex.Tree, which loads lazily and caches listings for the metadata
// TTL; the kernel is told to cache entries, attributes and negative
// lookups for that same TTL, so repeated `ls` and GDAL's sidecar probes
// (.aux.xml, .ovr, .msk) do not reach the catalog.
//
// Asset sizes come from file:size, else from a HEAD (issued concurrently
// for a listed item directory and cached for the TTL). Opening an asset
// pins the object's ETag; reads go through an objread.Opener (the read
// path, testable without a kernel) and the node only copies bytes. Objects
// are immutable per ETag, so the kernel page cache is kept across opens.
//
// Signals: a FUSE INTERRUPT does not cancel an operation unless the caller
// is dying (see interrupt.go): a process that survives a signal never gets
// EINTR, and a killed one is answered at once. Every remote call is bounded
// by its own deadlines and retries; work that many callers share (a
// listing, a HEAD, a prefetch, a credential renewal) runs detached from any
// one caller's context. All nodes are safe for concurrent use.
package fs

import (
	"context"
	"hash/fnv"
	"log"
	"log/slog"
	"os"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/prescient/prescientfs/fs/objread"
	"github.com/prescient/prescientfs/stacindex"
)

// Config is what the file system serves and how.
type Config struct {
	Tree   *stacindex.Tree
	Store  objread.Store  // HEADs for sizes and ETags
	Opener objread.Opener // the read path
	// TTL is the metadata TTL: listings, HEAD results and the kernel's
	// entry/attribute caches.
	TTL time.Duration
	Log *slog.Logger
	// UID and GID own every file (the mounting user).
	UID, GID uint32
	// StatConcurrency bounds concurrent HEADs for one directory (default 16).
	StatConcurrency int
	// Stats, when set, is served as MOUNT/.prescientfs-stats (not listed:
	// catalog names never start with a dot, so it cannot collide).
	Stats func() []byte
	// VersionAtOpen makes open learn the object's version (a HEAD, kept
	// for TTL) even when the catalog gives the size, instead of leaving it
	// to the first GET. Set with a disk cache: its blocks are keyed by
	// version, so a mount that knows the version before the first read
	// serves it from disk with no GET (one small HEAD per object per TTL
	// instead of 1 MiB of header again on every new mount).
	VersionAtOpen bool
	// TIFFPageCache lets the kernel cache TIFF files (GeoTIFFs, COGs) and
	// read ahead in them like any other file. By default they are opened
	// with FOPEN_DIRECT_IO: GDAL's reads reach the mount as GDAL makes
	// them (a window's row of tiles, a header), the tile prediction knows
	// exactly what each will ask, and no READ carries the kernel's
	// readahead (up to 1 MiB past a row's last tile, fetched for nothing).
	// The mount's block cache (--cache-size) and disk cache serve tiles
	// read again.
	TIFFPageCache bool
}

// StatsFile is the hidden file in the root with the read path's counters.
const StatsFile = ".prescientfs-stats"

// MountOptions are the kernel-facing options.
type MountOptions struct {
	AllowOther bool // let other users read (with default_permissions)
	Debug      bool // log every FUSE operation
	FsName     string
	// Observe, when set, is told of every operation (see opTimer).
	Observe OpObserver
}

// fsys is shared by all nodes.
type fsys struct {
	Config
	stats *statCache
	intr  interruptCounts
}

// NewRoot returns the root node, for Mount or for tests.
func NewRoot(cfg Config) fusefs.InodeEmbedder {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.StatConcurrency <= 0 {
		cfg.StatConcurrency = 16
	}
	f := &fsys{Config: cfg, stats: newStatCache(cfg.Store, cfg.TTL)}
	return &rootDir{fs: f}
}

// Mount mounts the tree at dir and returns once the kernel has the mount.
func Mount(dir string, cfg Config, mo MountOptions) (*fuse.Server, error) {
	ttl := cfg.TTL
	opts := &fusefs.Options{
		EntryTimeout:    &ttl,
		AttrTimeout:     &ttl,
		NegativeTimeout: &ttl,
		UID:             cfg.UID,
		GID:             cfg.GID,
		MountOptions: fuse.MountOptions{
			FsName:        mo.FsName,
			Name:          "prescientfs",
			Options:       []string{"ro", "nosuid", "nodev"},
			AllowOther:    mo.AllowOther,
			MaxReadAhead:  1 << 20,
			MaxWrite:      1 << 20,
			MaxBackground: 64,
			DisableXAttrs: true,
			// TIFF files are opened FOPEN_DIRECT_IO (see
			// Config.TIFFPageCache); the kernel still maps them (6.6+).
			ExtraCapabilities: fuse.CAP_DIRECT_IO_ALLOW_MMAP,
			// Replies never come from a file descriptor go-fuse could
			// splice from; trying costs two syscalls per read.
			DisableSplice: true,
			DirectMount:   true,
			Debug:         mo.Debug,
			// Microseconds: the debug trace is for timing reads.
			Logger: log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds),
		},
	}
	if mo.AllowOther {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "default_permissions")
	}
	if opts.FsName == "" {
		opts.FsName = "prescientfs"
	}
	root := NewRoot(cfg).(*rootDir)
	var raw fuse.RawFileSystem = newInterruptFilter(fusefs.NewNodeFS(root, opts), &root.fs.intr)
	if mo.Observe != nil {
		raw = &opTimer{RawFileSystem: raw, observe: mo.Observe}
	}
	srv, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		return nil, err
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		return nil, err
	}
	if err := raiseReadahead(dir, int(opts.MaxReadAhead>>10)); err != nil && cfg.Log != nil {
		cfg.Log.Debug("kernel readahead stays at 128 KiB", "err", err)
	}
	return srv, nil
}

// ino is a stable inode number from the raw IDs on a node's path, so that
// remounts give the same numbers.
func ino(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p)) // a hash's Write never fails
		_, _ = h.Write([]byte{0})
	}
	n := h.Sum64() &^ (1 << 63) // below go-fuse's automatic range
	if n <= 1 {
		n += 2
	}
	return n
}

const (
	dirMode  = syscall.S_IFDIR | 0o555
	fileMode = syscall.S_IFREG | 0o444
)

func (f *fsys) setOwner(a *fuse.Attr) {
	a.Uid, a.Gid = f.UID, f.GID
}

// readOnly gives a node EROFS for every operation that would change it.
type readOnly struct{}

// Flush answers ENOSYS: nothing is ever written, and the kernel, told so
// once, stops sending a FLUSH round trip with every close.
func (readOnly) Flush(context.Context, fusefs.FileHandle) syscall.Errno { return syscall.ENOSYS }

func (readOnly) Setattr(context.Context, fusefs.FileHandle, *fuse.SetAttrIn, *fuse.AttrOut) syscall.Errno {
	return syscall.EROFS
}
func (readOnly) Create(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EROFS
}
func (readOnly) Mkdir(context.Context, string, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Unlink(context.Context, string) syscall.Errno { return syscall.EROFS }
func (readOnly) Rmdir(context.Context, string) syscall.Errno  { return syscall.EROFS }
func (readOnly) Rename(context.Context, string, fusefs.InodeEmbedder, string, uint32) syscall.Errno {
	return syscall.EROFS
}
func (readOnly) Symlink(context.Context, string, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}
func (readOnly) Link(context.Context, fusefs.InodeEmbedder, string, *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.EROFS
}

var (
	_ fusefs.NodeSetattrer = readOnly{}
	_ fusefs.NodeCreater   = readOnly{}
	_ fusefs.NodeMkdirer   = readOnly{}
	_ fusefs.NodeMknoder   = readOnly{}
	_ fusefs.NodeUnlinker  = readOnly{}
	_ fusefs.NodeRmdirer   = readOnly{}
	_ fusefs.NodeRenamer   = readOnly{}
	_ fusefs.NodeSymlinker = readOnly{}
	_ fusefs.NodeLinker    = readOnly{}
)
