package fs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Signals and FUSE INTERRUPT.
//
// When a process waiting on a FUSE request gets a signal, the kernel sends
// an INTERRUPT for that request, and go-fuse closes the request's cancel
// channel (the Done channel of the context every node method gets). Most
// such signals are ones the process survives: a profiler's SIGPROF, a
// progress timer's SIGALRM, Go's preemption SIGURG, SIGCHLD. A local disk
// never fails stat, open or read of a regular file with EINTR, so programs
// do not retry it; cancelling there turns a harmless signal into a failed
// job (gcsfuse#562, #1016; gcsfuse ignores interrupts by default now).
//
// So interruptFilter hands the file system a cancel channel that closes
// only when the calling process is going away: a fatal signal pending
// (SIGKILL, or a signal whose default action ends the process and which it
// neither catches, ignores nor blocks), or the process already gone. The
// kernel waits without interruption for a request it has already sent, so
// answering a dying caller at once is what lets it exit instead of sitting
// in D state until the read ends. Everything else runs to its normal end,
// bounded by its own deadlines and retries.
//
// The kernel sends one INTERRUPT per request, at the first signal; a fatal
// signal that comes later brings none. So once interrupted, the caller's
// /proc status is polled (every interruptPoll) until the request ends.
// The pid in a FUSE request is the calling thread's, in this process's pid
// namespace (0 when the caller is outside it: then nothing can be told,
// and the request runs to its end).
type interruptFilter struct {
	fuse.RawFileSystem
	poll   time.Duration
	dying  func(pid uint32) bool // fatalSignalPending, or a fake in tests
	counts *interruptCounts
}

// interruptCounts are served in the stats file.
type interruptCounts struct {
	interrupted atomic.Int64 // INTERRUPTs received for requests in flight
	cancelled   atomic.Int64 // of those, requests cancelled for a dying caller
}

// interruptPoll is how often an interrupted request's caller is checked for
// a fatal signal that arrived after the INTERRUPT.
const interruptPoll = 100 * time.Millisecond

func newInterruptFilter(raw fuse.RawFileSystem, counts *interruptCounts) *interruptFilter {
	return &interruptFilter{RawFileSystem: raw, poll: interruptPoll, dying: fatalSignalPending, counts: counts}
}

// watch returns the cancel channel the file system sees for a request with
// the kernel's cancel channel, and a func to call when the request ends.
func (f *interruptFilter) watch(cancel <-chan struct{}, pid uint32) (<-chan struct{}, func()) {
	if cancel == nil {
		return nil, func() {}
	}
	dying := make(chan struct{})
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-cancel:
		}
		f.counts.interrupted.Add(1)
		t := time.NewTicker(f.poll)
		defer t.Stop()
		for {
			if pid != 0 && f.dying(pid) {
				f.counts.cancelled.Add(1)
				close(dying)
				return
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return dying, func() { close(done) }
}

// The operations that may wait on the network. The others answer at once
// (EROFS, the kernel's own bookkeeping) and keep the kernel's channel.

func (f *interruptFilter) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	c, end := f.watch(cancel, h.Caller.Pid)
	defer end()
	return f.RawFileSystem.Lookup(c, h, name, out)
}

func (f *interruptFilter) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	c, end := f.watch(cancel, in.Caller.Pid)
	defer end()
	return f.RawFileSystem.GetAttr(c, in, out)
}

func (f *interruptFilter) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	c, end := f.watch(cancel, in.Caller.Pid)
	defer end()
	return f.RawFileSystem.Statx(c, in, out)
}

func (f *interruptFilter) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	c, end := f.watch(cancel, in.Caller.Pid)
	defer end()
	return f.RawFileSystem.Access(c, in)
}

func (f *interruptFilter) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	c, end := f.watch(cancel, in.Caller.Pid)
	defer end()
	return f.RawFileSystem.Open(c, in, out)
}

func (f *interruptFilter) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	c, end := f.watch(cancel, in.Caller.Pid)
	defer end()
	return f.RawFileSystem.Read(c, in, buf)
}

func (f *interruptFilter) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	c, end := f.watch(cancel, in.Caller.Pid)
	defer end()
	return f.RawFileSystem.Lseek(c, in, out)
}

func (f *interruptFilter) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	c, end := f.watch(cancel, h.Caller.Pid)
	defer end()
	return f.RawFileSystem.Readlink(c, h)
}

func (f *interruptFilter) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	c, end := f.watch(cancel, in.Caller.Pid)
	defer end()
	return f.RawFileSystem.OpenDir(c, in, out)
}

func (f *interruptFilter) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	c, end := f.watch(cancel, in.Caller.Pid)
	defer end()
	return f.RawFileSystem.ReadDir(c, in, out)
}

func (f *interruptFilter) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	c, end := f.watch(cancel, in.Caller.Pid)
	defer end()
	return f.RawFileSystem.ReadDirPlus(c, in, out)
}

func (f *interruptFilter) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	c, end := f.watch(cancel, h.Caller.Pid)
	defer end()
	return f.RawFileSystem.StatFs(c, h, out)
}

// statsJSON is the stats file: the read path's counters (Config.Stats, a
// JSON object) with the interrupt counters added.
func (f *fsys) statsJSON() []byte {
	m := map[string]any{}
	_ = json.Unmarshal(f.Stats(), &m)
	m["fuse_interrupts"] = f.intr.interrupted.Load()
	m["fuse_interrupts_dying_caller"] = f.intr.cancelled.Load()
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// fatalSignalPending reports whether thread pid is going away: it is gone
// (or a zombie), or it has a signal pending that will end it.
func fatalSignalPending(pid uint32) bool {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/status")
	if err != nil {
		return os.IsNotExist(err) || err == syscall.ESRCH
	}
	return procStatusDying(b)
}

// procStatusDying decides from the text of /proc/PID/status.
func procStatusDying(status []byte) bool {
	var pend, blk, ign, cgt uint64
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		mask := func() uint64 { n, _ := strconv.ParseUint(string(v), 16, 64); return n }
		switch string(k) {
		case "State":
			if len(v) > 0 && (v[0] == 'Z' || v[0] == 'X') {
				return true
			}
		case "SigPnd", "ShdPnd":
			pend |= mask()
		case "SigBlk":
			blk = mask()
		case "SigIgn":
			ign = mask()
		case "SigCgt":
			cgt = mask()
		}
	}
	// The kernel marks a process that a signal is ending by queueing
	// SIGKILL to each of its threads; SIGKILL cannot be blocked or caught.
	if pend&sigBit(syscall.SIGKILL) != 0 {
		return true
	}
	// A signal whose default action ends the process, not yet delivered
	// (core-dumping signals are not turned into SIGKILL first).
	return pend&^blk&^ign&^cgt&^harmlessByDefault != 0
}

func sigBit(s syscall.Signal) uint64 { return 1 << (uint(s) - 1) }

// harmlessByDefault are the signals whose default action is to ignore,
// stop or continue: pending and unhandled, they do not end a process.
var harmlessByDefault = sigBit(syscall.SIGCHLD) | sigBit(syscall.SIGURG) | sigBit(syscall.SIGWINCH) |
	sigBit(syscall.SIGCONT) | sigBit(syscall.SIGSTOP) | sigBit(syscall.SIGTSTP) |
	sigBit(syscall.SIGTTIN) | sigBit(syscall.SIGTTOU)
