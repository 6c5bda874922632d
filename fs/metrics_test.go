package fs

import (
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// opTimer reports each operation with the status the file system below
// returned, and passes requests and answers through unchanged.
func TestOpTimer(t *testing.T) {
	type obs struct {
		op string
		st fuse.Status
	}
	var got []obs
	tm := &opTimer{RawFileSystem: fuse.NewDefaultRawFileSystem(), observe: func(op string, st fuse.Status, took time.Duration) {
		if took < 0 {
			t.Errorf("%s took %v", op, took)
		}
		got = append(got, obs{op, st})
	}}
	var entry fuse.EntryOut
	if st := tm.Lookup(nil, &fuse.InHeader{}, "x", &entry); st != fuse.ENOSYS {
		t.Fatalf("lookup: %v", st)
	}
	if _, st := tm.Read(nil, &fuse.ReadIn{}, nil); st != fuse.ENOSYS {
		t.Fatalf("read: %v", st)
	}
	tm.Release(nil, &fuse.ReleaseIn{})
	want := []obs{{"lookup", fuse.ENOSYS}, {"read", fuse.ENOSYS}, {"release", fuse.OK}}
	if len(got) != len(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("observation %d: %v, want %v", i, got[i], want[i])
		}
	}
}
