package fs

import (
	"context"
	"math"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/prescient/prescientfs/stacindex"
)

// listStream streams a directory whose items come from a
// stacindex.Listing: fixed entries first (collection.json), then the
// listing's, each as soon as its page has arrived. go-fuse asks for
// entries only while the kernel's buffer has room, so a reader that stops
// early stops the stream; nothing is copied out of the listing.
type listStream struct {
	fixed   []fuse.DirEntry
	listing *stacindex.Listing
	ino     func(id string) uint64
	pos     int // next entry: fixed ones first, then the listing's
	next    *fuse.DirEntry
	errno   syscall.Errno
	onError func(error) syscall.Errno
}

var (
	_ fusefs.DirStream     = (*listStream)(nil)
	_ fusefs.FileSeekdirer = (*listStream)(nil)
)

func (s *listStream) HasNext() bool {
	if s.next != nil || s.errno != 0 {
		return true
	}
	if s.pos < len(s.fixed) {
		e := s.fixed[s.pos]
		s.next = &e
	} else if s.listing != nil {
		le, ok, err := s.listing.Entry(s.pos - len(s.fixed))
		switch {
		case err != nil:
			s.errno = s.onError(err)
			return true
		case !ok:
			return false
		}
		s.next = &fuse.DirEntry{Name: le.Name, Mode: syscall.S_IFDIR, Ino: s.ino(le.ID)}
	} else {
		return false
	}
	s.next.Off = uint64(s.pos + 1) // #nosec G115 -- pos is in [0, maxDirPos]: Seekdir bounds it, HasNext counts up from there
	return true
}

func (s *listStream) Next() (fuse.DirEntry, syscall.Errno) {
	if s.errno != 0 {
		return fuse.DirEntry{}, s.errno
	}
	e := *s.next
	s.next = nil
	s.pos++
	return e, 0
}

// Seekdir positions the stream: offsets are entry positions (the Off of
// each entry is its position plus one).
func (s *listStream) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	// off comes from a program's seekdir: one past any listing ends the
	// stream rather than wrap to a negative position.
	pos := maxDirPos
	if off < maxDirPos {
		pos = int(off)
	}
	s.pos, s.next, s.errno = pos, nil, 0
	return 0
}

// maxDirPos is a position beyond any directory's entries.
const maxDirPos = math.MaxInt32

func (s *listStream) Close() {}

// listHandle is the open handle of a large directory (a collection, a
// day). It streams like go-fuse's own DirStream handle, and answers the
// lookups of READDIRPLUS with "no entry attributes": the kernel then
// keeps the names as a plain readdir would, and looks a name up only when
// it is used. Without this, listing a 100,000-item collection would make
// (and keep) 100,000 inodes, and cost a lookup of every item.
type listHandle struct {
	open func(ctx context.Context) (fusefs.DirStream, syscall.Errno)
	ds   fusefs.DirStream
}

var (
	_ fusefs.FileReaddirenter = (*listHandle)(nil)
	_ fusefs.FileSeekdirer    = (*listHandle)(nil)
	_ fusefs.FileReleasedirer = (*listHandle)(nil)
	_ fusefs.FileLookuper     = (*listHandle)(nil)
)

func (h *listHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if h.ds == nil {
		ds, errno := h.open(ctx)
		if errno != 0 {
			return nil, errno
		}
		h.ds = ds
	}
	if !h.ds.HasNext() {
		return nil, 0
	}
	e, errno := h.ds.Next()
	return &e, errno
}

func (h *listHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if h.ds == nil {
		ds, errno := h.open(ctx)
		if errno != 0 {
			return errno
		}
		h.ds = ds
	}
	if sd, ok := h.ds.(fusefs.FileSeekdirer); ok {
		return sd.Seekdir(ctx, off)
	}
	if off == 0 {
		h.ds.Close()
		h.ds = nil
		return 0
	}
	return syscall.ENOTSUP
}

func (h *listHandle) Releasedir(ctx context.Context, flags uint32) {
	if h.ds != nil {
		h.ds.Close()
	}
}

// Lookup of READDIRPLUS: an error leaves the entry's node ID zero, which
// the kernel takes as "no attributes given", not as a missing name.
func (h *listHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}
