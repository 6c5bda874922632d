package fs

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func status(state, sigPnd, shdPnd, blk, ign, cgt uint64) []byte {
	return fmt.Appendf(nil, "Name:\tcat\nState:\t%s\nTgid:\t42\nSigQ:\t0/127\nSigPnd:\t%016x\nShdPnd:\t%016x\nSigBlk:\t%016x\nSigIgn:\t%016x\nSigCgt:\t%016x\n",
		map[uint64]string{0: "S (sleeping)", 1: "Z (zombie)", 2: "D (disk sleep)"}[state], sigPnd, shdPnd, blk, ign, cgt)
}

// TestProcStatusDying: which pending signals end the caller, from the text
// of /proc/PID/status.
func TestProcStatusDying(t *testing.T) {
	b := sigBit
	for _, tc := range []struct {
		name   string
		status []byte
		want   bool
	}{
		{"nothing pending", status(2, 0, 0, 0, 0, 0), false},
		{"SIGKILL (thread)", status(2, b(syscall.SIGKILL), 0, 0, 0, 0), true},
		{"SIGKILL queued by the kernel for a fatal SIGINT, with SIGINT caught", status(2, b(syscall.SIGKILL), b(syscall.SIGINT), 0, 0, b(syscall.SIGINT)), true},
		{"SIGALRM with a handler (a progress timer)", status(2, 0, b(syscall.SIGALRM), 0, 0, b(syscall.SIGALRM)), false},
		{"SIGPROF with a handler", status(2, b(syscall.SIGPROF), 0, 0, 0, b(syscall.SIGPROF)), false},
		{"SIGURG, no handler (default: ignore)", status(2, b(syscall.SIGURG), 0, 0, 0, 0), false},
		{"SIGCHLD, no handler", status(2, 0, b(syscall.SIGCHLD), 0, 0, 0), false},
		{"SIGWINCH, no handler", status(2, 0, b(syscall.SIGWINCH), 0, 0, 0), false},
		{"SIGTSTP (stop, not death)", status(2, 0, b(syscall.SIGTSTP), 0, 0, 0), false},
		{"SIGQUIT, no handler (core dump)", status(2, 0, b(syscall.SIGQUIT), 0, 0, 0), true},
		{"SIGTERM ignored", status(2, 0, b(syscall.SIGTERM), 0, b(syscall.SIGTERM), 0), false},
		{"SIGTERM blocked", status(2, 0, b(syscall.SIGTERM), b(syscall.SIGTERM), 0, 0), false},
		{"SIGTERM, no handler", status(2, 0, b(syscall.SIGTERM), 0, 0, 0), true},
		{"real-time signal 40, no handler", status(2, 1<<39, 0, 0, 0, 0), true},
		{"zombie", status(1, 0, 0, 0, 0, 0), true},
		{"garbage", []byte("not a status file\x00\xff"), false},
	} {
		if got := procStatusDying(tc.status); got != tc.want {
			t.Errorf("%s: dying = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestFatalSignalPendingRealProcess reads a real /proc: a live process is
// not dying, one that has exited (and been reaped) is.
func TestFatalSignalPendingRealProcess(t *testing.T) {
	if fatalSignalPending(uint32(os.Getpid())) {
		t.Fatal("this test process reads as dying")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no `true` to run:", err)
	}
	if !fatalSignalPending(uint32(cmd.Process.Pid)) {
		t.Error("a process that has exited does not read as dying")
	}
}

// TestWatchIgnoresSurvivableInterrupts: the file system's cancel channel
// stays open after an INTERRUPT while the caller lives, closes once a
// fatal signal is pending (also one that arrives after the INTERRUPT),
// and the watcher goroutine ends with the request.
func TestWatchIgnoresSurvivableInterrupts(t *testing.T) {
	dying := make(chan bool, 1)
	var last bool
	f := &interruptFilter{counts: &interruptCounts{}, poll: 5 * time.Millisecond, dying: func(uint32) bool {
		select {
		case last = <-dying:
		default:
		}
		return last
	}}
	kernel := make(chan struct{})
	c, end := f.watch(kernel, 1234)
	close(kernel) // INTERRUPT: a SIGALRM the caller handles
	select {
	case <-c:
		t.Fatal("cancelled for a signal the caller survives")
	case <-time.After(50 * time.Millisecond):
	}
	dying <- true // a SIGKILL after the INTERRUPT
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatal("not cancelled for a dying caller")
	}
	end()
	if i, c := f.counts.interrupted.Load(), f.counts.cancelled.Load(); i != 1 || c != 1 {
		t.Errorf("counted %d interrupts, %d cancelled; want 1, 1", i, c)
	}

	// No interrupt at all: nothing is polled, and end stops the watcher.
	polled := make(chan struct{}, 1)
	f.dying = func(uint32) bool { polled <- struct{}{}; return true }
	c, end = f.watch(make(chan struct{}), 1)
	end()
	select {
	case <-c:
		t.Fatal("cancelled without an interrupt")
	case <-polled:
		t.Fatal("polled without an interrupt")
	case <-time.After(20 * time.Millisecond):
	}

	// pid 0 (a caller outside our pid namespace): never cancelled.
	kernel = make(chan struct{})
	c, end = f.watch(kernel, 0)
	close(kernel)
	select {
	case <-c:
		t.Fatal("cancelled for an unknown caller")
	case <-time.After(30 * time.Millisecond):
	}
	end()
}
