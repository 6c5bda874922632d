package proc

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestWaitExitAndCPU(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if WaitExit(pid, 10*time.Millisecond) {
		t.Fatal("WaitExit says a running process exited")
	}
	// Not reaped yet: a zombie counts as exited.
	if !WaitExit(pid, 30*time.Second) {
		t.Fatal("WaitExit missed the exit")
	}
	if s := CPUSeconds(pid); !(s > 0) {
		t.Errorf("CPU seconds of a busy zombie = %v, want > 0", s)
	}
	cmd.Wait()
	if s := CPUSeconds(0); !(s > 0) {
		t.Errorf("own CPU seconds = %v", s)
	}
	if n, err := StatusBytes(os.Getpid(), "VmRSS"); err != nil || n <= 0 {
		t.Errorf("own VmRSS = %d, %v", n, err)
	}
}
