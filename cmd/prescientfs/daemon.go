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
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
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
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.Stdin = nil
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mount process: %w", err)
	}
	pw.Close()
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
			cmd.Process.Release()
			return nil
		case strings.HasPrefix(s, "error "):
			cmd.Wait()
			return cli.Exit("prescientfs: "+strings.TrimPrefix(s, "error "), 1)
		}
		cmd.Wait()
		return cli.Exit(fmt.Sprintf("prescientfs: the mount process exited before the mount was ready; see %s", logPath), 1)
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
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
		syscall.Dup2(int(devnull.Fd()), 0)
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
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(logDir, "mount-"+filepath.Base(dir)+"-"+hex.EncodeToString(sum[:4])+".log"), nil
}
