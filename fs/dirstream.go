package fs

import (
	"context"
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
	s.next.Off = uint64(s.pos + 1)
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
	s.pos, s.next, s.errno = int(off), nil, 0
	return 0
}

func (s *listStream) Close() {}
