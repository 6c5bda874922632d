package fs

import (
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// OpObserver is told of each FUSE operation the file system answered: its
// kind ("lookup", "read", ...), the status returned and how long it took.
// It is called on the request's goroutine and must not block.
type OpObserver func(op string, status fuse.Status, took time.Duration)

// opTimer times the operations of the file system below it for an
// OpObserver (Prometheus metrics). It sits outside interruptFilter and
// changes no request or answer. go-fuse's own latency hook
// (Server.RecordLatencies) is a no-op since v2.
type opTimer struct {
	fuse.RawFileSystem
	observe OpObserver
}

func (t *opTimer) done(op string, start time.Time, st fuse.Status) {
	t.observe(op, st, time.Since(start))
}

// The operations a read-only mount serves. Writes answer EROFS at once
// and are not timed.

func (t *opTimer) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.Lookup(cancel, h, name, out)
	t.done("lookup", start, st)
	return st
}

func (t *opTimer) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.GetAttr(cancel, in, out)
	t.done("getattr", start, st)
	return st
}

func (t *opTimer) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.Statx(cancel, in, out)
	t.done("statx", start, st)
	return st
}

func (t *opTimer) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.Access(cancel, in)
	t.done("access", start, st)
	return st
}

func (t *opTimer) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.Open(cancel, in, out)
	t.done("open", start, st)
	return st
}

func (t *opTimer) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	start := time.Now()
	res, st := t.RawFileSystem.Read(cancel, in, buf)
	t.done("read", start, st)
	return res, st
}

func (t *opTimer) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.Lseek(cancel, in, out)
	t.done("lseek", start, st)
	return st
}

func (t *opTimer) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	start := time.Now()
	t.RawFileSystem.Release(cancel, in)
	t.done("release", start, fuse.OK)
}

func (t *opTimer) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	start := time.Now()
	out, st := t.RawFileSystem.Readlink(cancel, h)
	t.done("readlink", start, st)
	return out, st
}

func (t *opTimer) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.OpenDir(cancel, in, out)
	t.done("opendir", start, st)
	return st
}

func (t *opTimer) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.ReadDir(cancel, in, out)
	t.done("readdir", start, st)
	return st
}

func (t *opTimer) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.ReadDirPlus(cancel, in, out)
	t.done("readdirplus", start, st)
	return st
}

func (t *opTimer) ReleaseDir(in *fuse.ReleaseIn) {
	start := time.Now()
	t.RawFileSystem.ReleaseDir(in)
	t.done("releasedir", start, fuse.OK)
}

func (t *opTimer) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.StatFs(cancel, h, out)
	t.done("statfs", start, st)
	return st
}

func (t *opTimer) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	start := time.Now()
	st := t.RawFileSystem.Flush(cancel, in)
	t.done("flush", start, st)
	return st
}
