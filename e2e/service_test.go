package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/proc"
)

// Running prescientfs as a service: fstab / mount -t fuse.prescientfs,
// systemd readiness, Prometheus metrics.

// TestFstabMountHelper mounts as an fstab line does, both ways mount(8)
// reaches prescientfs: through fuse3's mount.fuse3, which execs
// `prescientfs SOURCE MOUNTPOINT -o OPTS` from the shell's default PATH,
// and through a /sbin/mount.fuse.prescientfs symlink, which mount(8) runs
// itself. The options carry mount flags with underscores and the options
// of mount(8) and systemd, which are ignored. umount then ends the mount
// process.
func TestFstabMountHelper(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mount(8) with a FUSE type needs root")
	}
	t.Run("mount.fuse3", func(t *testing.T) {
		if _, err := exec.LookPath("mount.fuse3"); err != nil {
			t.Skip("mount.fuse3 (fuse3) is not installed")
		}
		installAt(t, systemBin)
		testFstabMount(t)
	})
	t.Run("helper symlink", func(t *testing.T) {
		installAt(t, "/sbin/mount.fuse.prescientfs")
		testFstabMount(t)
	})
}

func testFstabMount(t *testing.T) {
	st := sharedStack(t)
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "mount.log")
	opts := "rw,nodev,nosuid,_netdev,nofail,noauto,x-systemd.automount,x-systemd.mount-timeout=30," +
		"metadata_ttl=1m,layout=flat,io_timeout=20s,log_file=" + logPath
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

// installAt links the binary under test at path (a system directory) for
// the test's duration. A file already there (installed, or another run's)
// is left alone and the test skipped.
func installAt(t *testing.T, path string) {
	t.Helper()
	if err := os.Symlink(binPath, path); err != nil {
		t.Skipf("cannot place the binary where mount(8) looks (%v)", err)
	}
	t.Cleanup(func() {
		if target, err := os.Readlink(path); err == nil && target == binPath {
			os.Remove(path)
		}
	})
}

// TestServiceNotify runs a foreground mount as a Type=notify unit does,
// with a fake systemd listening on NOTIFY_SOCKET: READY=1 comes once the
// mount is live, STOPPING=1 when SIGTERM (systemctl stop) starts the
// unmount, and the process then exits 0 with nothing mounted.
func TestServiceNotify(t *testing.T) {
	st := sharedStack(t)
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cmd := exec.Command(binPath, "mount", "--foreground", "--stac-url", st.stac.URL(), dir)
	cmd.Env = append(st.env(t), "NOTIFY_SOCKET="+sock)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if isMounted(dir) {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		if t.Failed() {
			t.Logf("mount log:\n%s", tail(stderr.String(), 20000))
		}
	})
	next := func(want string) string {
		t.Helper()
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		msg := string(buf[:n])
		if !strings.HasPrefix(msg, want+"\n") {
			t.Fatalf("notification %q, want %s first", msg, want)
		}
		return msg
	}
	msg := next("READY=1")
	if !isMounted(dir) {
		t.Fatal("READY=1 before the mount is live")
	}
	if !strings.Contains(msg, "STATUS=serving "+dir) {
		t.Errorf("READY=1 without the status line: %q", msg)
	}
	if _, err := os.ReadDir(filepath.Join(dir, "sentinel-demo")); err != nil {
		t.Fatalf("mount not usable after READY=1: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	next("STOPPING=1")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the mount did not exit after SIGTERM")
	}
	if isMounted(dir) {
		t.Fatal("still mounted after the service stopped")
	}
}

var metricsURLRE = regexp.MustCompile(`msg="metrics served" url=(\S+)`)

// TestMetricsScrape: a mount with --metrics-addr serves Prometheus text;
// scrape, read a file, scrape again, and the counters a reader's work
// moves have moved by what was read. No URL, bucket or key is in it.
func TestMetricsScrape(t *testing.T) {
	st := sharedStack(t)
	m := mountT(t, st.env(t), "--stac-url", st.stac.URL(), "--metrics-addr", "127.0.0.1:0")
	sub := metricsURLRE.FindStringSubmatch(readFile(m.log))
	if sub == nil {
		t.Fatalf("the log does not say where metrics are served:\n%s", readFile(m.log))
	}
	url := sub[1]
	coll := st.cat.Collection("sentinel-demo")
	it := coll.Items[len(coll.Items)-1]
	a := it.Asset("visual")

	before := scrape(t, url)
	got, err := os.ReadFile(m.path(coll.ID, it.ID, "visual.tif"))
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(got)) != a.Size {
		t.Fatalf("read %d bytes of %d", len(got), a.Size)
	}
	after := scrape(t, url)

	moved := func(series string) float64 { return metricValue(t, after, series) - metricValue(t, before, series) }
	if d := moved("prescientfs_bytes_served_total"); d < float64(a.Size) {
		t.Errorf("bytes served moved by %v, read %d", d, a.Size)
	}
	if d := moved("prescientfs_bytes_fetched_total"); d < float64(a.Size) {
		t.Errorf("bytes fetched moved by %v, read %d (cold)", d, a.Size)
	}
	for _, series := range []string{
		`prescientfs_object_requests_total{kind="get",outcome="ok"}`,
		`prescientfs_object_first_byte_seconds_count{kind="get"}`,
		`prescientfs_object_request_duration_seconds_count{kind="get"}`,
		`prescientfs_fuse_operations_total{op="read",status="OK"}`,
		`prescientfs_fuse_operation_duration_seconds_count{op="read"}`,
		`prescientfs_fuse_operations_total{op="open",status="OK"}`,
	} {
		if d := moved(series); d <= 0 {
			t.Errorf("%s did not move (%v)", series, d)
		}
	}
	// The bytes came through the block cache or a prefetch stream,
	// whichever the kernel's read sizes made the read path choose.
	if d := moved(`prescientfs_cache_misses_total{cache="memory"}`) + moved("prescientfs_prefetch_parts_total"); d <= 0 {
		t.Errorf("neither block cache misses nor prefetch parts moved")
	}
	// The lookup of an item asks the catalog; the mount validated it first.
	if v := metricValue(t, after, `prescientfs_catalog_requests_total{kind="other",outcome="2xx"}`); v < 1 {
		t.Errorf("no landing page request counted")
	}
	// Nothing read, nothing fetched: a scrape moves no read counter.
	if d := metricValue(t, scrape(t, url), "prescientfs_bytes_fetched_total") - metricValue(t, after, "prescientfs_bytes_fetched_total"); d != 0 {
		t.Errorf("bytes fetched moved by %v with no read", d)
	}
	for _, secret := range []string{st.minio.Endpoint, st.stac.URL(), st.cat.Bucket, it.ID, st.minio.AccessKey} {
		if strings.Contains(after, secret) {
			t.Errorf("the metrics contain %q", secret)
		}
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %v %d", url, err, resp.StatusCode)
	}
	return string(b)
}

// metricValue is the value of one series (name{labels} exactly as
// exposed), 0 when absent.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// TestMetricsCredentials: a service principal's mount with 5 s tokens (and
// STS credentials ending with them) reports its renewals and the time left
// on its bucket credentials; reading on, the renewal counters move. No
// token, client secret or bucket secret is in the metrics.
func TestMetricsCredentials(t *testing.T) {
	a := newAuthStack(t, authStackOptions{TokenLifetime: 5 * time.Second})
	many := a.assets(t, "many-items")
	env := a.env(t, t.TempDir(), append(a.settings(), "PRESCIENT_CLIENT_SECRET="+a.clientSecret)...)
	m := mountIn(t, "", env, "--metadata-ttl", "1s", "--metrics-addr", "127.0.0.1:0")
	sub := metricsURLRE.FindStringSubmatch(readFile(m.log))
	if sub == nil {
		t.Fatalf("the log does not say where metrics are served:\n%s", readFile(m.log))
	}
	url := sub[1]
	first := scrape(t, url)
	if v := metricValue(t, first, "prescientfs_token_renewals_total"); v < 1 {
		t.Errorf("token renewals %v after sign-in", v)
	}
	if v := metricValue(t, first, "prescientfs_credential_renewals_total"); v < 1 {
		t.Errorf("credential renewals %v after the mount checked its credentials", v)
	}
	if !strings.Contains(first, "\nprescientfs_credentials_expiry_seconds ") {
		t.Error("no credentials expiry")
	} else if v := metricValue(t, first, "prescientfs_credentials_expiry_seconds"); v > 6 {
		t.Errorf("credentials expire in %v s, tokens live 5 s", v)
	}
	// Read until the credentials have been renewed under the reads (a
	// minute at most: the tokens live 5 s).
	last := first
	for n, deadline := 0, time.Now().Add(time.Minute); ; n++ {
		if err := checkAsset(m, many[n%len(many)], 30*time.Second); err != nil {
			t.Fatalf("read %d: %v", n, err)
		}
		last = scrape(t, url)
		if metricValue(t, last, "prescientfs_credential_renewals_total") > metricValue(t, first, "prescientfs_credential_renewals_total") &&
			metricValue(t, last, "prescientfs_token_renewals_total") > metricValue(t, first, "prescientfs_token_renewals_total") {
			t.Logf("renewed after %d reads", n+1)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal counted after a minute of reads with 5 s tokens:\n%s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v := metricValue(t, last, `prescientfs_object_requests_total{kind="get",outcome="ok"}`); v < 1 {
		t.Error("no object GET counted")
	}
	for _, secret := range append(a.bucketSecrets(), a.clientSecret, a.minio.Endpoint, a.idp.URL) {
		if secret != "" && strings.Contains(last, secret) {
			t.Errorf("the metrics contain a secret or an address: %q", secret)
		}
	}
	for _, leak := range []string{"X-Amz", "Signature", "Bearer", "eyJ"} {
		if strings.Contains(last, leak) {
			t.Errorf("the metrics contain %q", leak)
		}
	}
}

// TestMetricsAddrInUse: a metrics port that cannot be had fails the mount
// at once, naming the flag, with nothing mounted.
func TestMetricsAddrInUse(t *testing.T) {
	st := sharedStack(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	m, out, err := tryMountIn(t, "", st.env(t), "--stac-url", st.stac.URL(), "--metrics-addr", ln.Addr().String())
	if err == nil {
		t.Fatalf("mounted with the metrics port in use:\n%s", out)
	}
	if !strings.Contains(out, "--metrics-addr "+ln.Addr().String()) {
		t.Errorf("the error does not name the flag: %q", out)
	}
	if isMounted(m.dir) {
		t.Error("mounted although the mount failed")
	}
}
