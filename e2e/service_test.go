package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/proc"
)

// Running prescientfs as a service: fstab / mount -t fuse.prescientfs,
// systemd readiness, Prometheus metrics.

// TestFstabMountHelper mounts as an fstab line does: mount(8) finds no
// mount.fuse.prescientfs helper, runs mount.fuse3, which execs
// `prescientfs SOURCE MOUNTPOINT -o OPTS` from PATH. The options carry
// mount flags with underscores and the options of mount(8) and systemd,
// which are ignored. umount then ends the mount process.
func TestFstabMountHelper(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mount(8) with a FUSE type needs root")
	}
	if _, err := exec.LookPath("mount.fuse3"); err != nil {
		t.Skip("mount.fuse3 (fuse3) is not installed")
	}
	st := sharedStack(t)
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "mount.log")
	opts := "rw,nodev,nosuid,_netdev,nofail,noauto,x-systemd.automount,x-systemd.mount-timeout=30," +
		"metadata_ttl=1m,layout=flat,io_timeout=20s,log_file=" + logPath
	installOnSystemPath(t)
	cmd := exec.Command("mount", "-t", "fuse.prescientfs", st.stac.URL(), dir, "-o", opts)
	cmd.Env = st.env(t)
	out, err := cmd.CombinedOutput()
	pid := 0
	if m := pidRE.FindSubmatch(out); m != nil {
		pid, _ = strconv.Atoi(string(m[1]))
	}
	t.Cleanup(func() {
		if isMounted(dir) {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		if pid > 0 {
			proc.WaitExit(pid, 10*time.Second)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("mount log:\n%s", tail(readFile(logPath), 20000))
		}
	})
	if err != nil {
		t.Fatalf("mount -t fuse.prescientfs: %v\n%s", err, out)
	}
	if !isMounted(dir) || pid == 0 {
		t.Fatalf("mount returned without a mount (pid %d):\n%s", pid, out)
	}
	coll := st.cat.Collection("sentinel-demo")
	it := coll.Items[0]
	a := it.Asset("visual")
	got, err := os.ReadFile(filepath.Join(dir, coll.ID, it.ID, "visual.tif"))
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(got); hex.EncodeToString(sum[:]) != a.SHA256 {
		t.Fatalf("visual.tif: %d bytes, not the object's %d", len(got), a.Size)
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err != nil || !bytes.Contains(mi, []byte(" fuse.prescientfs ")) {
		t.Errorf("no fuse.prescientfs mount in mountinfo (%v)", err)
	}
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	if !proc.WaitExit(pid, 15*time.Second) {
		t.Fatalf("mount process %d still running after umount", pid)
	}
	if isMounted(dir) {
		t.Fatal("still mounted after umount")
	}
	if !bytes.Contains([]byte(readFile(logPath)), []byte("unmounted")) {
		t.Errorf("the log does not say the mount ended:\n%s", readFile(logPath))
	}
}

// systemBin is where mount.fuse3 finds `prescientfs`: mount(8) removes
// PATH from its helpers' environment, so the shell mount.fuse3 runs
// searches its default PATH only.
const systemBin = "/usr/local/bin/prescientfs"

// installOnSystemPath links the binary under test at systemBin for the
// test's duration. A prescientfs already there (installed, or another
// run's) is left alone and the test skipped.
func installOnSystemPath(t *testing.T) {
	t.Helper()
	if err := os.Symlink(binPath, systemBin); err != nil {
		t.Skipf("cannot place the binary where mount.fuse3 looks (%v)", err)
	}
	t.Cleanup(func() {
		if target, err := os.Readlink(systemBin); err == nil && target == binPath {
			os.Remove(systemBin)
		}
	})
}
