package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

// readyFDEnv names the pipe a background mount reports readiness on.
const readyFDEnv = "PRESCIENTFS_READY_FD"

// daemonize re-executes this command in a new session, logging to a file,
// and returns once the child reports the mount is live (exit 0) or that it
// failed (exit 1 with its one-line reason).
func daemonize(c *cli.Context, dir string) error {
	logPath := c.String("log-file")
	if logPath == "" {
		var err error
		if logPath, err = defaultLogPath(dir); err != nil {
			return err
		}
	}
	logFile, err := openLogFile(logPath)
	if err != nil {
		return cli.Exit(fmt.Sprintf("prescientfs: log file %s: %v", logPath, err), 1)
	}
	defer logFile.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, os.Args[1:]...) // #nosec G204 G702 -- this binary again, with the user's own arguments; no shell
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.Stdin = nil
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mount process: %w", err)
	}
	_ = pw.Close() // the child holds its own copy
	status := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(pr).ReadString('\n')
		status <- strings.TrimSpace(line)
	}()
	select {
	case s := <-status:
		switch {
		case s == "ok":
			fmt.Fprintf(os.Stderr, "prescientfs: mounted at %s (pid %d, log %s)\n", dir, cmd.Process.Pid, logPath)
			_ = cmd.Process.Release() // the mount process lives on
			return nil
		case strings.HasPrefix(s, "error "):
			_ = cmd.Wait() // its exit status says less than its message
			return cli.Exit("prescientfs: "+strings.TrimPrefix(s, "error "), 1)
		}
		_ = cmd.Wait() // the log says why
		return cli.Exit(fmt.Sprintf("prescientfs: the mount process exited before the mount was ready; see %s", logPath), 1)
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill() // it may have exited meanwhile
		return cli.Exit(fmt.Sprintf("prescientfs: the mount was not ready after 2 minutes; see %s", logPath), 1)
	}
}

// signalReady tells a waiting parent the outcome, once.
func signalReady(err error) {
	fdStr := os.Getenv(readyFDEnv)
	if fdStr == "" {
		return
	}
	os.Unsetenv(readyFDEnv)
	fd, convErr := strconv.Atoi(fdStr)
	if convErr != nil {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	defer f.Close()
	if err != nil {
		fmt.Fprintf(f, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	fmt.Fprintln(f, "ok")
	// Detach from the terminal's stdin now that we are a daemon.
	if devnull, err := os.Open(os.DevNull); err == nil {
		_ = syscall.Dup2(int(devnull.Fd()), 0) // best effort: the terminal's stdin is only kept open
	}
}

func defaultLogPath(dir string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	logDir := filepath.Join(base, "prescientfs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return "", err
	}
	// A directory that exists already must be this user's own (in the
	// temporary directory, another user could have made it to read our
	// logs) and is made owner-only.
	st, err := os.Lstat(logDir)
	if err != nil {
		return "", err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !st.IsDir() || !ok || int(sys.Uid) != os.Getuid() {
		return "", fmt.Errorf("log directory %s is not a directory of this user: give --log-file", logDir)
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(logDir, 0o700); err != nil { // #nosec G302 -- a directory: 0700 is owner-only
			return "", err
		}
	}
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(logDir, "mount-"+filepath.Base(dir)+"-"+hex.EncodeToString(sum[:4])+".log"), nil
}

// openLogFile opens the mount process's log for appending, creating it
// owner-only (0600): logs name the catalog, its paths and its errors.
func openLogFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600) // #nosec G304 -- the log file the user named, or ours
}
