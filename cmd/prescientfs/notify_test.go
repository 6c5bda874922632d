package main

import (
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listenNotify is a fake systemd: a unixgram socket at NOTIFY_SOCKET.
func listenNotify(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

func readNotify(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotifier(t *testing.T) {
	conn := listenNotify(t)
	n := newNotifier(slog.New(slog.NewTextHandler(io.Discard, nil)))
	n.Ready("/mnt/p")
	n.Ready("/mnt/p") // once only
	n.Stopping()
	n.Stopping()
	if got := readNotify(t, conn); !strings.HasPrefix(got, "READY=1\n") || !strings.Contains(got, "STATUS=serving /mnt/p") {
		t.Fatalf("first notification %q, want READY=1 with a status", got)
	}
	if got := readNotify(t, conn); !strings.HasPrefix(got, "STOPPING=1\n") {
		t.Fatalf("second notification %q, want STOPPING=1", got)
	}
	conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a state was sent twice (%d more bytes)", n)
	}
}

// Outside systemd nothing is sent and nothing fails.
func TestNotifierWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := newNotifier(slog.New(slog.NewTextHandler(io.Discard, nil)))
	n.Ready("/mnt/p")
	n.Stopping()
}
