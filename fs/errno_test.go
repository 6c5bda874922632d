package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/prescient/prescientfs/creds"
	"github.com/prescient/prescientfs/fs/objread"
	"github.com/prescient/prescientfs/stacindex"
)

func TestToErrno(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	refused := &url.Error{Op: "Get", URL: "http://127.0.0.1:9/b/k", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	for _, tc := range []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"nil", nil, 0},
		{"object not found", objread.ErrNotFound, syscall.ENOENT},
		{"object not found, wrapped", fmt.Errorf("stat s3://b/k: %w: %w", objread.ErrNotFound, errors.New("NoSuchKey")), syscall.ENOENT},
		{"catalog not found, wrapped", fmt.Errorf("GET https://stac/collections/x: HTTP 404: %w", stacindex.ErrNotFound), syscall.ENOENT},
		{"denied", fmt.Errorf("read s3://b/k: %w (HTTP 403)", objread.ErrDenied), syscall.EACCES},
		{"catalog unauthorized", fmt.Errorf("GET x: HTTP 401: %w", stacindex.ErrUnauthorized), syscall.EACCES},
		{"login required", fmt.Errorf("failed to refresh cached credentials: %w", fmt.Errorf("profile %q: refresh token revoked: %w", "p", creds.ErrLoginRequired)), syscall.EACCES},
		{"credentials rejected", fmt.Errorf("api-key: %w", creds.ErrCredentialsRejected), syscall.EACCES},
		{"changed", fmt.Errorf("read s3://b/k at 0: %w", objread.ErrChanged), syscall.ESTALE},
		{"changed, through a part", fmt.Errorf("read x at 8388608: %w", fmt.Errorf("read x bytes 0-9: %w", objread.ErrChanged)), syscall.ESTALE},
		// Only a dying caller's request is cancelled (interrupt.go); it
		// never reads the answer. No errno in the table is EINTR.
		{"cancelled", context.Canceled, syscall.EIO},
		{"cancelled, wrapped with a network error", fmt.Errorf("read: %w", errors.Join(reset, context.Canceled)), syscall.EIO},
		{"deadline", context.DeadlineExceeded, syscall.EIO},
		{"deadline, wrapped", fmt.Errorf("GET x: %w", context.DeadlineExceeded), syscall.EIO},
		{"io timeout", fmt.Errorf("read x bytes 0-9: got 0 bytes: %w (nothing for 30s)", objread.ErrTimeout), syscall.EIO},
		{"short body", fmt.Errorf("read x: got 5 bytes: %w", io.ErrUnexpectedEOF), syscall.EIO},
		{"connection reset is EIO, not ECONNRESET", fmt.Errorf("read x: %w", reset), syscall.EIO},
		{"connection refused", refused, syscall.EIO},
		{"bare errno", syscall.ENOSPC, syscall.EIO},
		{"HTTP 503 after retries", &objread.StatusError{Op: "read", Loc: "https://h/x", Code: 503}, syscall.EIO},
		{"not a STAC API", fmt.Errorf("%w: no links", stacindex.ErrNotSTAC), syscall.EIO},
		{"other", errors.New("something broke"), syscall.EIO},
	} {
		if got := toErrno(tc.err); got != tc.want {
			t.Errorf("%s: toErrno(%v) = %v, want %v", tc.name, tc.err, errnoName(got), errnoName(tc.want))
		}
	}
}

// TestFailLogsOnce: the original error is logged once, with the operation
// and the path, without the secrets of a signed URL; not-found is logged
// at debug level only.
func TestFailLogsOnce(t *testing.T) {
	var buf bytes.Buffer
	f := &fsys{Config: Config{Log: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}}
	signed := "https://user:hunter2@bucket.example.com/k.tif?X-Amz-Credential=AKIASECRET&X-Amz-Signature=deadbeef"
	err := fmt.Errorf("read %s: %w", "https://bucket.example.com/k.tif", &url.Error{Op: "Get", URL: signed, Err: io.ErrUnexpectedEOF})
	if e := f.fail("read", "coll/item/visual.tif", err); e != syscall.EIO {
		t.Fatalf("errno %v", e)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want 1:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["level"] != "WARN" || rec["path"] != "/coll/item/visual.tif" || rec["errno"] != "EIO" || rec["msg"] != "read failed" {
		t.Errorf("log record %v", rec)
	}
	msg, _ := rec["err"].(string)
	for _, secret := range []string{"AKIASECRET", "deadbeef", "hunter2", "X-Amz-"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log leaks %q: %s", secret, buf.String())
		}
	}
	if !strings.Contains(msg, "https://bucket.example.com/k.tif?REDACTED") || !strings.Contains(msg, "unexpected EOF") {
		t.Errorf("logged error %q lost what happened", msg)
	}

	buf.Reset()
	if e := f.fail("lookup", "/coll/missing.aux.xml", fmt.Errorf("x: %w", stacindex.ErrNotFound)); e != syscall.ENOENT {
		t.Fatalf("errno %v", e)
	}
	if buf.Len() != 0 {
		t.Errorf("not-found logged above debug: %s", buf.String())
	}
}
