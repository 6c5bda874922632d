package objread

import (
	"testing"
	"time"
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
