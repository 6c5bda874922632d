package minio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// readyTimeout bounds how long Start and Restart wait for /minio/health/live.
const readyTimeout = 15 * time.Second

// stopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
const stopTimeout = 10 * time.Second

// errExited marks a start that failed because the process exited.
var errExited = errors.New("minio: server exited before it was ready")

// Options configures Start. The zero value is usable.
type Options struct {
	// Dir is the data directory; a new temporary directory (removed by Stop)
	// when empty.
	Dir string
	// Env is extra environment for the server, e.g. MINIO_IDENTITY_OPENID_*.
	Env []string
	// CertsDir, when set, is passed as --certs-dir and the server speaks
	// HTTPS; it must hold public.crt and private.key.
	CertsDir string
	// Logger receives the server's stdout and stderr; discarded when nil.
	Logger io.Writer
	// STSRole, when set, is an OpenID role (MINIO_IDENTITY_OPENID_ROLE_POLICY)
	// Start and Restart also wait for: MinIO answers its liveness check
	// 1-2 s before its STS knows the role, and an AssumeRoleWithWebIdentity
	// meanwhile fails with "RoleARN ... is not defined".
	STSRole string
}

// Server is a running (or stopped) MinIO process. Its methods are safe for
// concurrent use.
type Server struct {
	// Endpoint is the S3 endpoint, "http://127.0.0.1:PORT" (https with CertsDir).
	Endpoint string
	// AccessKey and SecretKey are the root credentials.
	AccessKey string
	SecretKey string
	// Dir is the data directory.
	Dir string

	bin         string
	addr        string
	consoleAddr string
	opts        Options
	tempDir     bool
	tail        *tailBuffer

	mu   sync.Mutex
	cmd  *exec.Cmd     // guarded by mu; nil when not running
	done chan struct{} // guarded by mu; closed when cmd has exited
}

// Start runs a MinIO server and waits until it is ready. On error nothing is
// left running.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := FindBinary()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, opts: opts, Dir: opts.Dir, tail: newTailBuffer(32 << 10)}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "minio-data-"); err != nil {
			return nil, fmt.Errorf("minio: data dir: %w", err)
		}
		s.tempDir = true
	} else if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("minio: data dir: %w", err)
	}
	s.AccessKey = "minio-" + randomHex(6)
	s.SecretKey = randomHex(20)

	// A free port found by listening and closing can be taken by someone else
	// before MinIO binds it; when the server exits at once, try new ports.
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.pickPorts(); err != nil {
			break
		}
		if err = s.start(ctx); err == nil {
			return s, nil
		}
		if !errors.Is(err, errExited) {
			break
		}
	}
	s.cleanupDir()
	return nil, err
}

func (s *Server) pickPorts() error {
	p1, err := freePort()
	if err != nil {
		return err
	}
	p2, err := freePort()
	if err != nil {
		return err
	}
	s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p1))
	s.consoleAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p2))
	scheme := "http"
	if s.opts.CertsDir != "" {
		scheme = "https"
	}
	s.Endpoint = scheme + "://" + s.addr
	return nil
}

// start launches the process and waits for readiness; on failure the process
// is killed.
func (s *Server) start(ctx context.Context) error {
	args := []string{"server", "--address", s.addr, "--console-address", s.consoleAddr}
	if s.opts.CertsDir != "" {
		args = append(args, "--certs-dir", s.opts.CertsDir)
	}
	args = append(args, s.Dir)
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Env = append(cmd.Env, s.opts.Env...)
	var out io.Writer = s.tail
	if s.opts.Logger != nil {
		out = io.MultiWriter(s.tail, s.opts.Logger)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("minio: start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	if err := s.waitReady(ctx, done); err != nil {
		s.Kill()
		return err
	}
	if s.opts.STSRole != "" {
		if err := s.waitRole(ctx, done); err != nil {
			s.Kill()
			return err
		}
	}
	return nil
}

// waitRole polls STS with a token that is no token until the answer is no
// longer "RoleARN ... is not defined" (a refused token means the role is
// known), the process exits, ctx ends or readyTimeout passes.
func (s *Server) waitRole(ctx context.Context, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	hc := s.httpClient()
	hc.Timeout = time.Second
	form := url.Values{
		"Action": {"AssumeRoleWithWebIdentity"}, "Version": {"2011-06-15"},
		"RoleArn": {s.opts.STSRole}, "WebIdentityToken": {"not-a-token"},
	}.Encode()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint+"/", strings.NewReader(form))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, err := hc.Do(req); err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
			last = string(body)
			if !strings.Contains(last, "is not defined") {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%w; last output:\n%s", errExited, s.tail.String())
		case <-ctx.Done():
			return fmt.Errorf("minio: STS does not know role %s after %v: %w; last answer: %s", s.opts.STSRole, readyTimeout, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// waitReady polls the liveness endpoint until it answers 200, the process
// exits, ctx ends or readyTimeout passes.
func (s *Server) waitReady(ctx context.Context, done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	hc := s.httpClient()
	hc.Timeout = time.Second
	url := s.Endpoint + "/minio/health/live"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := httpGet(ctx, url)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%w; last output:\n%s", errExited, s.tail.String())
		case <-ctx.Done():
			return fmt.Errorf("minio: not ready at %s after %v: %w; last output:\n%s", url, readyTimeout, ctx.Err(), s.tail.String())
		case <-tick.C:
		}
	}
}

// Stop terminates the server (SIGTERM, then SIGKILL after a grace period)
// and removes a temporary data directory. Safe to call more than once.
func (s *Server) Stop() {
	s.stop()
	s.cleanupDir()
}

func (s *Server) stop() {
	cmd, done := s.running()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused server cannot handle SIGTERM
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-done
	}
	s.clear(cmd)
}

// Kill sends SIGKILL and waits for the process to exit. The data directory
// is kept, so Restart can bring the server back.
func (s *Server) Kill() {
	cmd, done := s.running()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
	s.clear(cmd)
}

// Restart stops the server if it is running and starts it again with the
// same data directory, port and credentials.
func (s *Server) Restart(ctx context.Context) error {
	s.stop()
	var err error
	// The port was just freed and is normally still ours; retry briefly in
	// case the old socket lingers.
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.start(ctx); err == nil || !errors.Is(err, errExited) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// Pause stops the process with SIGSTOP: connections stay open but nothing
// answers, like a hung server.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig os.Signal) error {
	cmd, _ := s.running()
	if cmd == nil {
		return errors.New("minio: server is not running")
	}
	return cmd.Process.Signal(sig)
}

// Pid returns the server process's ID, or 0 when it is not running.
func (s *Server) Pid() int {
	cmd, _ := s.running()
	if cmd == nil || cmd.Process == nil {
		return 0
	}
	return cmd.Process.Pid
}

// Output returns the last lines the server printed, for failure messages.
func (s *Server) Output() string { return s.tail.String() }

func (s *Server) running() (*exec.Cmd, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd, s.done
}

func (s *Server) clear(cmd *exec.Cmd) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == cmd {
		s.cmd, s.done = nil, nil
	}
}

func (s *Server) cleanupDir() {
	if s.tempDir {
		_ = os.RemoveAll(s.Dir)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("minio: find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
