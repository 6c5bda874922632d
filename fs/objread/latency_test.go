package objread

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prescient/prescientfs/stacindex"
)

// TestFirstByteLeastOfRecent: the store's latency is the least of its
// recent answers, so answers slowed by load do not raise it, and it
// follows a store that became slower once its fast answers are old.
func TestFirstByteLeastOfRecent(t *testing.T) {
	var f firstByte
	if f.get() != 0 {
		t.Fatalf("latency %v before any answer, want 0", f.get())
	}
	ms := time.Millisecond
	for i := range 200 {
		d := 100 * ms // loaded answers
		if i%50 == 0 {
			d = 20 * ms // an unloaded one now and then
		}
		f.observe(d)
		if i > 0 && f.get() != 20*ms {
			t.Fatalf("after %d answers: latency %v, want the least recent answer, 20ms", i+1, f.get())
		}
	}
	for range firstByteWindow {
		f.observe(60 * ms) // the store moved away
	}
	if f.get() != 60*ms {
		t.Errorf("after %d answers of 60ms: latency %v, want 60ms", firstByteWindow, f.get())
	}
	f.observe(5 * ms)
	if f.get() != 5*ms {
		t.Errorf("latency %v after a 5ms answer, want 5ms", f.get())
	}
}

// TestFirstByteFromTheWire: the store's latency is the time from a GET
// written to its answer, so a slow dial (a fresh mount's first
// connections) does not make a near store look far.
func TestFirstByteFromTheWire(t *testing.T) {
	data := bytes.Repeat([]byte("prescient"), 100_000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // the store's latency
		http.ServeContent(w, r, "obj", time.Time{}, bytes.NewReader(data))
	}))
	defer srv.Close()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		time.Sleep(150 * time.Millisecond) // a slow new connection
		return dial(ctx, network, addr)
	}
	defer tr.CloseIdleConnections()
	pf := NewPrefetcher(&HTTPStore{Client: &http.Client{Transport: tr}}, Config{}, NewBudget(8*MiB), NewBlockCache(0, 0))
	obj := Object{Loc: stacindex.Location{Kind: stacindex.KindHTTP, URL: srv.URL + "/obj"}, Size: int64(len(data))}
	r := pf.Open(obj)
	defer r.Close()
	buf := make([]byte, 4096)
	start := time.Now()
	if n, err := r.ReadAt(context.Background(), buf, 0); err != nil || n != len(buf) || !bytes.Equal(buf, data[:n]) {
		t.Fatalf("read: %d bytes, %v", n, err)
	}
	if took := time.Since(start); took < 170*time.Millisecond {
		t.Fatalf("the first read took %v: the dial was not slow", took)
	}
	if got := pf.Stats().FirstByte(); got < 20*time.Millisecond || got >= 150*time.Millisecond {
		t.Errorf("store latency %v after a 150 ms dial and a 20 ms answer, want the answer's time", got)
	}
}
