package e2e

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/proc"
)

func TestSIGTERMUnmountsCleanly(t *testing.T) {
	st := sharedStack(t)
	m := mountT(t, st.env(t), "--stac-url", st.stac.URL())
	if m.pid == 0 {
		t.Fatal("mount did not report its pid")
	}
	readNames(t, m.path("sentinel-demo"))
	if err := syscall.Kill(m.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !proc.WaitExit(m.pid, 15*time.Second) {
		t.Fatal("mount process still running 15 s after SIGTERM")
	}
	if isMounted(m.dir) {
		t.Fatal("still mounted after SIGTERM")
	}
	if !strings.Contains(readFile(m.log), "unmounted") {
		t.Fatalf("log does not record the unmount:\n%s", readFile(m.log))
	}
}

func TestUnmountLiveAndDeadMounts(t *testing.T) {
	st := sharedStack(t)
	env := st.env(t)
	m := mountT(t, env, "--stac-url", st.stac.URL())

	// Live: unmount, and the process exits.
	if out, err := exec.Command(binPath, "unmount", m.dir).CombinedOutput(); err != nil {
		t.Fatalf("unmount: %v: %s", err, out)
	}
	if isMounted(m.dir) || !proc.WaitExit(m.pid, 15*time.Second) {
		t.Fatal("live unmount left the mount or the process")
	}

	// Dead: SIGKILL leaves "transport endpoint is not connected".
	m2 := mountT(t, env, "--stac-url", st.stac.URL())
	syscall.Kill(m2.pid, syscall.SIGKILL)
	proc.WaitExit(m2.pid, 10*time.Second)
	// The kernel says ENOTCONN ("transport endpoint is not connected") or,
	// on newer kernels, ECONNABORTED; a request the death cut short gets
	// EIO (about one run in eight on this kernel).
	if _, err := os.Stat(m2.path("sentinel-demo")); !errors.Is(err, syscall.ENOTCONN) &&
		!errors.Is(err, syscall.ECONNABORTED) && !errors.Is(err, syscall.EIO) {
		t.Fatalf("stat on a dead mount: %v, want ENOTCONN, ECONNABORTED or EIO", err)
	}
	// Mounting over it is refused with the instruction.
	cmd := exec.Command(binPath, "mount", "--stac-url", st.stac.URL(), m2.dir)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "prescientfs unmount") {
		t.Fatalf("mount over a dead mount: %v %s", err, out)
	}
	if out, err := exec.Command(binPath, "unmount", m2.dir).CombinedOutput(); err != nil {
		t.Fatalf("unmount of a dead mount: %v: %s", err, out)
	}
	if isMounted(m2.dir) {
		t.Fatal("dead mount still there")
	}
	// And the same path mounts again.
	cmd = exec.Command(binPath, "mount", "--stac-url", st.stac.URL(), "--log-file", m2.log, m2.dir)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	} else if mm := pidRE.FindStringSubmatch(string(out)); mm != nil {
		m2.pid = atoi(mm[1])
	}
	if len(readNames(t, m2.path())) == 0 {
		t.Fatal("remounted tree is empty")
	}
}

func TestForegroundMount(t *testing.T) {
	st := sharedStack(t)
	dir := t.TempDir()
	cmd := exec.Command(binPath, "mount", "--foreground", "--stac-url", st.stac.URL(), dir)
	cmd.Env = st.env(t)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		syscall.Unmount(dir, syscall.MNT_DETACH)
	})
	deadline := time.Now().Add(20 * time.Second)
	for !isMounted(dir) {
		if time.Now().After(deadline) {
			t.Fatalf("not mounted after 20 s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGINT: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("foreground mount did not exit after SIGINT")
	}
	if isMounted(dir) {
		t.Fatal("still mounted")
	}
	if !strings.Contains(stderr.String(), "mounted") {
		t.Fatalf("foreground mount does not log to stderr: %q", stderr.String())
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
