package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestProxyFaults(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	p, err := New(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	get := func() ([]byte, error) {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		resp, err := c.Get(p.URL())
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	if b, err := get(); err != nil || !bytes.Equal(b, body) {
		t.Fatalf("plain: %d bytes, %v", len(b), err)
	}
	p.CutAfter(300<<10, Truncate)
	if b, err := get(); !errors.Is(err, io.ErrUnexpectedEOF) || len(b) >= len(body) {
		t.Errorf("truncated: %d bytes, %v", len(b), err)
	}
	p.CutAfter(300<<10, Reset)
	if b, err := get(); !errors.Is(err, syscall.ECONNRESET) || len(b) >= len(body) {
		t.Errorf("reset: %d bytes, %v", len(b), err)
	}
	if p.Fired.Load() != 2 || p.Armed() != 0 {
		t.Errorf("fired %d, armed %d", p.Fired.Load(), p.Armed())
	}
	p.SetDown(true)
	if _, err := get(); err == nil {
		t.Error("request through a down proxy succeeded")
	}
	p.SetDown(false)
	p.Stall()
	done := make(chan error, 1)
	go func() { _, err := get(); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("request through a stalled proxy returned: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	p.Resume()
	if err := <-done; err != nil {
		t.Errorf("after resume: %v", err)
	}
	p.SetRate(4 << 20)
	start := time.Now()
	if _, err := get(); err != nil || time.Since(start) < 200*time.Millisecond {
		t.Errorf("rate-limited 1 MiB at 4 MiB/s took %v: %v", time.Since(start), err)
	}
}
