package fs

import (
	"context"
	"math"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// A seekdir to an offset past any listing (one that would be negative as
// an int) ends the stream; it does not crash the mount.
func TestSeekdirPastEnd(t *testing.T) {
	for _, off := range []uint64{2, math.MaxInt32, math.MaxInt64, math.MaxUint64} {
		s := &listStream{fixed: []fuse.DirEntry{{Name: "collection.json"}}}
		s.Seekdir(context.Background(), off)
		if s.HasNext() {
			t.Errorf("seekdir %d: HasNext, want the end of the stream", off)
		}
	}
	s := &listStream{fixed: []fuse.DirEntry{{Name: "collection.json"}}}
	s.Seekdir(context.Background(), 0)
	if !s.HasNext() {
		t.Fatal("seekdir 0: the stream is empty")
	}
	if e, errno := s.Next(); errno != 0 || e.Name != "collection.json" || e.Off != 1 {
		t.Errorf("seekdir 0: %+v %v", e, errno)
	}
}
