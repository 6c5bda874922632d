package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prescient/prescientfs/e2e/internal/minio"
	"github.com/prescient/prescientfs/e2e/internal/proc"
	"github.com/prescient/prescientfs/fs/mountinfo"
)

// bench is one run: configuration, the stack, the report being filled.
type bench struct {
	cfg config
	log *slog.Logger
	cl  *cleaner
	st  *stack
	rep *report

	mountSeq   int
	dropFailed bool

	// The shape being measured, its proxy and direct client (nil on loopback).
	shape      shape
	shapeProxy *countingProxy
	shapeS3    *s3.Client
}

func (b *bench) mnt() string       { return filepath.Join(b.cfg.dir, "mnt") }
func (b *bench) rcloneMnt() string { return filepath.Join(b.cfg.dir, "mnt-rclone") }
func (b *bench) logDir() string    { return filepath.Join(b.cfg.dir, "logs") }
func (b *bench) tmpDir() string    { return filepath.Join(b.cfg.dir, "tmp") }

func (b *bench) prepareDirs() error {
	_ = os.RemoveAll(b.logDir())
	_ = os.RemoveAll(b.tmpDir())
	for _, d := range []string{b.mnt(), b.rcloneMnt(), b.logDir(), b.tmpDir(), filepath.Join(b.tmpDir(), "home")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// coldStart readies the first (or only) side of a cold run: it drops the
// page cache and, with -server-cache warm, then reads objs once straight
// from S3 (untimed) so that MinIO serves them from memory, as a remote S3
// would serve them at network speed, not at this machine's disk speed.
func (b *bench) coldStart(ctx context.Context, objs ...object) error {
	b.dropCaches()
	if b.cfg.serverCache != "warm" || len(objs) == 0 {
		return nil
	}
	start := time.Now()
	bufs := make([][]byte, len(objs))
	for i := range bufs {
		bufs[i] = make([]byte, 1<<20)
	}
	_, _, err := parallel(objs, bufs, func(_ int, o object, buf []byte) (int64, error) {
		return directRead(ctx, b.st.s3, o.Key, buf)
	})
	if err != nil {
		return fmt.Errorf("warming MinIO: %w", err)
	}
	b.log.Debug("server cache warmed", "objects", len(objs), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// coldSecond readies the second side of a pair (the mount after the
// direct baseline): with a cold server the page cache is dropped again;
// with a warm one nothing changes (the first side read only through S3,
// and every measured mount is a fresh one).
func (b *bench) coldSecond() {
	if b.cfg.serverCache == "cold" {
		b.dropCaches()
	}
}

// dropCaches drops the page cache (when enabled and allowed).
func (b *bench) dropCaches() {
	if !b.cfg.dropCaches || b.dropFailed {
		return
	}
	if err := dropCaches(); err != nil {
		b.dropFailed = true
		b.rep.CachesDropped = false
		b.log.Warn("cannot drop the page cache; cold runs are not cold", "err", err)
	}
}

// mountProc is a running prescientfs or rclone mount.
type mountProc struct {
	kind    string // "prescientfs" or "rclone"
	dir     string
	logPath string
	pid     int
	took    time.Duration // from exec to a live mount

	release func() // unmounts and stops the process, once
	stopErr error
	done    chan struct{} // rclone: closed when the process exits
}

// path is a file below the mountpoint.
func (m *mountProc) path(rel string) string { return filepath.Join(m.dir, rel) }

// close unmounts, stops the process and reports an unmount failure.
func (m *mountProc) close() error {
	m.release()
	return m.stopErr
}

var pidRE = regexp.MustCompile(`pid (\d+)`)

// mountPrescient mounts the catalog with the binary under test, with S3
// at MinIO or (viaProxy) at the counting proxy. It returns once the mount
// is live, as `prescientfs mount` does.
func (b *bench) mountPrescient(ctx context.Context, label string, viaProxy bool) (*mountProc, error) {
	b.mountSeq++
	m := &mountProc{kind: "prescientfs", dir: b.mnt(),
		logPath: filepath.Join(b.logDir(), fmt.Sprintf("%02d-prescientfs-%s.log", b.mountSeq, label))}
	endpoint := b.endpoint()
	if viaProxy {
		endpoint = b.countProxy().URL
	}
	args := []string{"mount", "--stac-url", b.st.stac.URL(), "--log-file", m.logPath}
	args = append(args, strings.Fields(b.cfg.mountFlags)...)
	args = append(args, m.dir)
	cmd := exec.CommandContext(ctx, b.cfg.bin, args...)
	cmd.Env = b.mountEnv(endpoint)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	m.took = time.Since(start)
	if mm := pidRE.FindSubmatch(out); mm != nil {
		m.pid, _ = strconv.Atoi(string(mm[1]))
	}
	m.release = b.cl.add("unmount "+m.dir, func() { m.stopErr = b.stopPrescient(m) })
	if err != nil {
		m.release()
		return nil, fmt.Errorf("prescientfs mount: %v: %s; log %s:\n%s", err, bytes.TrimSpace(out), m.logPath, tail(readFile(m.logPath), 2000))
	}
	b.log.Debug("mounted", "kind", m.kind, "label", label, "pid", m.pid, "took", m.took)
	return m, nil
}

// holdStack prints how to mount the running stack by hand and waits for
// the context to end (Ctrl-C): the stack for profiling one workload.
// With a single shaped -shape, S3 is its shaping proxy.
func (b *bench) holdStack(ctx context.Context) error {
	if len(b.cfg.shapes) == 1 {
		stop, err := b.useShape(b.cfg.shapes[0])
		if err != nil {
			return err
		}
		defer stop()
	}
	fmt.Printf("# the stack is up (S3: %s); in another shell:\n", b.shape.describe())
	for _, kv := range b.mountEnv(b.endpoint())[len(cleanEnv()):] {
		fmt.Printf("export %s\n", kv)
	}
	fmt.Printf("%s mount --stac-url %s %s\n", b.cfg.bin, b.st.stac.URL(), b.mnt())
	for _, o := range append(b.st.objs, b.st.cog) {
		fmt.Printf("# %s  s3://%s/%s\n", b.mnt()+"/"+o.Rel, bucket, o.Key)
	}
	<-ctx.Done()
	return nil
}

// mountEnv isolates the mount from the machine's own AWS and Prescient
// settings and points it at endpoint.
func (b *bench) mountEnv(endpoint string) []string {
	home := filepath.Join(b.tmpDir(), "home")
	env := cleanEnv()
	return append(env,
		"HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_S3="+endpoint,
		"AWS_ACCESS_KEY_ID="+b.st.minio.AccessKey,
		"AWS_SECRET_ACCESS_KEY="+b.st.minio.SecretKey,
		"AWS_REGION="+minio.Region,
	)
}

func cleanEnv() []string {
	drop := []string{"PRESCIENT_", "AWS_", "HOME=", "XDG_", "RCLONE_", "GDAL_", "CPL_"}
	var env []string
	for _, kv := range os.Environ() {
		if !slices.ContainsFunc(drop, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			env = append(env, kv)
		}
	}
	return env
}

// stopPrescient unmounts (retrying a busy mount, then lazily) and waits for
// the mount process to exit, killing it if it does not.
func (b *bench) stopPrescient(m *mountProc) error {
	var err error
	if isMounted(m.dir) {
		for i := 0; i < 10; i++ {
			out, e := exec.Command(b.cfg.bin, "unmount", m.dir).CombinedOutput()
			if e == nil || !isMounted(m.dir) {
				err = nil
				break
			}
			err = fmt.Errorf("prescientfs unmount: %v: %s", e, bytes.TrimSpace(out))
			time.Sleep(200 * time.Millisecond)
		}
		if isMounted(m.dir) {
			b.log.Warn("unmount failed; detaching lazily", "dir", m.dir, "err", err)
			_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
		}
	}
	if m.pid > 0 && !proc.WaitExit(m.pid, 15*time.Second) {
		b.log.Warn("mount process did not exit after unmount; killing it", "pid", m.pid)
		_ = syscall.Kill(m.pid, syscall.SIGKILL)
		proc.WaitExit(m.pid, 5*time.Second)
		if err == nil {
			err = fmt.Errorf("mount process %d did not exit after unmount", m.pid)
		}
	}
	return err
}

// mountRclone mounts the bucket with `rclone mount --vfs-cache-mode off`.
func (b *bench) mountRclone(ctx context.Context, label string, viaProxy bool) (*mountProc, error) {
	b.mountSeq++
	m := &mountProc{kind: "rclone", dir: b.rcloneMnt(), done: make(chan struct{}),
		logPath: filepath.Join(b.logDir(), fmt.Sprintf("%02d-rclone-%s.log", b.mountSeq, label))}
	endpoint := b.st.minio.Endpoint
	if viaProxy {
		endpoint = b.st.proxy.URL
	}
	conf := filepath.Join(b.tmpDir(), "rclone.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command("rclone", "mount", "bench:"+bucket, m.dir,
		"--read-only", "--vfs-cache-mode", "off", "--log-file", m.logPath, "--log-level", "NOTICE")
	cmd.Env = append(cleanEnv(), "HOME="+filepath.Join(b.tmpDir(), "home"),
		"RCLONE_CONFIG="+conf,
		"RCLONE_CONFIG_BENCH_TYPE=s3",
		"RCLONE_CONFIG_BENCH_PROVIDER=Minio",
		"RCLONE_CONFIG_BENCH_ENV_AUTH=false",
		"RCLONE_CONFIG_BENCH_ACCESS_KEY_ID="+b.st.minio.AccessKey,
		"RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY="+b.st.minio.SecretKey,
		"RCLONE_CONFIG_BENCH_REGION="+minio.Region,
		"RCLONE_CONFIG_BENCH_ENDPOINT="+endpoint,
	)
	// Its own process group (a terminal's Ctrl-C reaches only us; we
	// unmount it), killed if we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("rclone mount: %w", err)
	}
	m.pid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(m.done) }()
	m.release = b.cl.add("unmount "+m.dir, func() { m.stopErr = b.stopRclone(m, cmd) })

	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !isMounted(m.dir) {
		select {
		case <-m.done:
			m.release()
			return nil, fmt.Errorf("rclone mount exited: %s; log:\n%s", bytes.TrimSpace(out.Bytes()), tail(readFile(m.logPath), 2000))
		case <-deadline.C:
			m.release()
			return nil, fmt.Errorf("rclone mount not live after 30s; log:\n%s", tail(readFile(m.logPath), 2000))
		case <-ctx.Done():
			m.release()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	m.took = time.Since(start)
	return m, nil
}

func (b *bench) stopRclone(m *mountProc, cmd *exec.Cmd) error {
	var err error
	if isMounted(m.dir) {
		if e := syscall.Unmount(m.dir, 0); e != nil {
			err = fmt.Errorf("unmount %s: %w", m.dir, e)
			_ = syscall.Unmount(m.dir, syscall.MNT_DETACH)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-m.done
	}
	return err
}

// sweepStaleMounts detaches mounts left below dir by a run that was killed.
func sweepStaleMounts(dir string, log *slog.Logger) {
	for _, mp := range mountpoints() {
		if strings.HasPrefix(mp, dir+string(filepath.Separator)) {
			log.Warn("detaching a mount left by an earlier run", "dir", mp)
			if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
				log.Warn("detach failed", "dir", mp, "err", err)
			}
		}
	}
}

func mountpoints() []string {
	ms, _ := mountinfo.Read()
	var out []string
	for _, m := range ms {
		out = append(out, m.Dir)
	}
	return out
}

func isMounted(dir string) bool {
	_, ok := mountinfo.Find(dir)
	return ok
}

// rssSampler records the largest VmRSS of pid until stopped, and the
// kernel's own high-water mark (VmHWM) at the end.
type rssSampler struct {
	pid  int
	stop chan struct{}
	wg   sync.WaitGroup
	max  int64
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := proc.StatusBytes(pid, "VmRSS"); err == nil {
				s.max = max(s.max, v)
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// peak stops sampling and returns max(sampled VmRSS, VmHWM) in bytes.
func (s *rssSampler) peak() (int64, error) {
	close(s.stop)
	s.wg.Wait()
	hwm, err := proc.StatusBytes(s.pid, "VmHWM")
	if err != nil && s.max == 0 {
		return 0, err
	}
	return max(hwm, s.max), nil
}

// logCounters finds read-path counters the mount logged (at unmount), e.g.
// "requests=12 bytes_fetched=3456" in a slog text line; ok is false when
// the log has none.
func logCounters(path string) (map[string]int64, bool) {
	var last string
	for _, line := range strings.Split(readFile(path), "\n") {
		if strings.Contains(line, "bytes_fetched=") {
			last = line
		}
	}
	if last == "" {
		return nil, false
	}
	out := map[string]int64{}
	for _, m := range counterRE.FindAllStringSubmatch(last, -1) {
		if v, err := strconv.ParseInt(m[2], 10, 64); err == nil {
			out[m[1]] = v
		}
	}
	return out, len(out) > 0
}

var counterRE = regexp.MustCompile(`\b([a-z_]+)=(\d+)(?:\s|$)`)

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
