package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/e2e/internal/minio"
	"github.com/prescient/prescientfs/e2e/internal/proc"
	"github.com/prescient/prescientfs/e2e/internal/stacserver"
	"github.com/prescient/prescientfs/fs/mountinfo"
)

// binPath is the prescientfs binary built for this run.
var binPath string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "prescientfs-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binPath = filepath.Join(dir, "prescientfs")
		build := exec.Command("go", "build", "-race", "-o", binPath, "../cmd/prescientfs")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building prescientfs:", err)
			return 1
		}
		defer stopSharedStack()
		return m.Run()
	}()
	os.Exit(code)
}

// stack is a running MinIO + STAC server + fixture catalog.
type stack struct {
	minio *minio.Server
	stac  *stacserver.Server
	cat   *fixtures.Catalog
	dir   string
}

var (
	sharedOnce sync.Once
	shared     *stack
	sharedErr  error
)

// sharedStack starts, once per run, the stack most tests read from. Tests
// that inject faults start their own with newStack.
func sharedStack(t *testing.T) *stack {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = startStack(fixtures.Options{COG: true}) })
	if sharedErr != nil {
		t.Fatalf("starting the test stack: %v", sharedErr)
	}
	return shared
}

func stopSharedStack() {
	if shared != nil {
		shared.stop()
	}
}

// newStack starts a private stack for one test.
func newStack(t *testing.T, opts fixtures.Options) *stack {
	t.Helper()
	s, err := startStack(opts)
	if err != nil {
		t.Fatalf("starting the test stack: %v", err)
	}
	t.Cleanup(s.stop)
	return s
}

func startStack(opts fixtures.Options) (*stack, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "prescientfs-stack-")
	if err != nil {
		return nil, err
	}
	s := &stack{dir: dir}
	if s.minio, err = minio.Start(ctx, minio.Options{Dir: filepath.Join(dir, "minio")}); err != nil {
		s.stop()
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if s.stac, err = stacserver.New(stacserver.Options{Logger: quiet}); err != nil {
		s.stop()
		return nil, err
	}
	opts.S3 = s.minio.Client()
	opts.S3Endpoint = s.minio.Endpoint
	opts.STACURL = s.stac.URL()
	if opts.WorkDir == "" {
		opts.WorkDir = fixtureCacheDir()
	}
	opts.Logger = quiet
	if s.cat, err = fixtures.Build(ctx, opts); err != nil {
		s.stop()
		return nil, err
	}
	s.stac.SetCatalog(s.cat)
	return s, nil
}

// fixtureCacheDir keeps generated COGs between runs of the suite.
func fixtureCacheDir() string {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "prescientfs-e2e-fixtures")
}

func (s *stack) stop() {
	if s.stac != nil {
		s.stac.Close()
	}
	if s.minio != nil {
		s.minio.Stop()
	}
	os.RemoveAll(s.dir)
}

// env is the environment of a prescientfs process reading this stack with
// the AWS credential chain.
func (s *stack) env(t *testing.T) []string {
	return append(baseEnv(t),
		"AWS_ENDPOINT_URL_S3="+s.minio.Endpoint,
		"AWS_ACCESS_KEY_ID="+s.minio.AccessKey,
		"AWS_SECRET_ACCESS_KEY="+s.minio.SecretKey,
		"AWS_REGION=us-east-1",
	)
}

// baseEnv isolates a prescientfs process from the machine's own settings.
func baseEnv(t *testing.T) []string {
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PRESCIENT_") || strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "XDG_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"), "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
}

// mount is one prescientfs mount made by a test.
type mount struct {
	dir string
	pid int
	log string
	env []string
}

var pidRE = regexp.MustCompile(`pid (\d+)`)

// mountT runs `prescientfs mount` (background mode: it returns once the
// mount is live) from a temporary working directory, and unmounts in
// t.Cleanup, killing the process if needed. See tryMountIn.
func mountT(t *testing.T, env []string, args ...string) *mount {
	t.Helper()
	return mountIn(t, "", env, args...)
}

// cleanup unmounts whatever state the mount is in and stops its process.
func (m *mount) cleanup(t *testing.T) {
	if t.Failed() {
		t.Logf("mount log (%s):\n%s", m.log, tail(readFile(m.log), 20000))
	}
	if isMounted(m.dir) {
		if out, err := exec.Command(binPath, "unmount", m.dir).CombinedOutput(); err != nil {
			t.Logf("unmount: %v: %s", err, out)
			syscall.Unmount(m.dir, syscall.MNT_DETACH)
		}
	}
	if m.pid > 0 {
		proc.WaitExit(m.pid, 10*time.Second)
		syscall.Kill(m.pid, syscall.SIGKILL)
	}
}

func (m *mount) path(parts ...string) string {
	return filepath.Join(append([]string{m.dir}, parts...)...)
}

func isMounted(dir string) bool {
	_, ok := mountinfo.Find(dir)
	return ok
}

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
