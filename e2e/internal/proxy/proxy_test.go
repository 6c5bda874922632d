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

// TestProxyLatencyPerRequest: the latency holds each HTTP request once,
// however many chunks its body takes, and every response waits for it.
func TestProxyLatencyPerRequest(t *testing.T) {
	var got []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, len(b))
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	p, err := New(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const lat = 40 * time.Millisecond
	p.SetLatency(lat)
	c := &http.Client{Timeout: 10 * time.Second} // keep-alive: one connection for all
	upload := bytes.Repeat([]byte("x"), 4<<20)
	start := time.Now()
	for i, body := range [][]byte{upload, nil, upload} {
		resp, err := c.Post(p.URL(), "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	took := time.Since(start)
	if n := p.Requests.Load(); n != 3 {
		t.Errorf("the proxy saw %d request starts, want 3 (each held once, bodies not again)", n)
	}
	if took < 3*lat {
		t.Errorf("3 requests with %v latency took %v", lat, took)
	}
	if p.Conns.Load() != 1 || len(got) != 3 || got[0] != len(upload) || got[1] != 0 || got[2] != len(upload) {
		t.Errorf("conns %d, bodies %v", p.Conns.Load(), got)
	}
}

// TestPacerSchedule: late wake-ups are made up (the schedule, not the
// sleeps, sets the rate), a new schedule starts at once, and a connection
// far behind does not burst more than paceMaxLag's worth.
func TestPacerSchedule(t *testing.T) {
	var p Pacer
	const rate = 1 << 20 // 1 MiB/s: 1 KiB per ~1 ms
	start := time.Now()
	// A new schedule starts when the first chunk goes, and books its time.
	p.Wait(100<<10, rate)
	after := time.Now()
	began := p.due.Add(-time.Duration(float64(100<<10) * float64(time.Second) / rate))
	if began.Before(start) || began.After(after) {
		t.Errorf("the schedule began %v after the first Wait was called, which returned after %v", began.Sub(start), after.Sub(start))
	}
	p.Wait(1, rate) // waits until ~98 ms after the start
	if d := time.Since(start); d < 97*time.Millisecond-paceAhead {
		t.Errorf("the second chunk went after %v, due after ~98 ms", d)
	}
	// Pretend the last wake-up was 5 ms late: the next chunk goes at once.
	p.due = time.Now().Add(-5 * time.Millisecond)
	before := p.due
	p.Wait(1<<10, rate)
	if step := p.due.Sub(before); step < 900*time.Microsecond || step > 1100*time.Microsecond {
		t.Errorf("1 KiB at 1 MiB/s booked %v, want ~977µs (the lag is kept, to be made up)", step)
	}
	// Far behind (a paused reader): the lag is cut to paceMaxLag.
	t0 := time.Now()
	p.due = t0.Add(-time.Second)
	p.Wait(1, rate)
	if p.due.Before(t0.Add(-paceMaxLag)) {
		t.Errorf("after a long pause the schedule is %v behind, want at most %v", t0.Sub(p.due), paceMaxLag)
	}
	p.Start()
	if !p.due.IsZero() {
		t.Error("Start did not reset the schedule")
	}
}
