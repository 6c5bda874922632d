package objread

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestPartWaitSlowProgress: a reader waiting for bytes that arrive slowly
// but steadily is not timed out (the stall clock restarts with every
// arrival, though the reader is only woken when its bytes are in), and
// one whose bytes stop coming is, after about the stall time.
func TestPartWaitSlowProgress(t *testing.T) {
	pt := &part{off: 0, n: 100, buf: make([]byte, 100)}
	const stall = 60 * time.Millisecond
	go func() {
		for range 10 {
			time.Sleep(stall / 3)
			pt.progress(5)
		}
	}()
	start := time.Now()
	if err := pt.wait(context.Background(), 50, stall); err != nil {
		t.Fatalf("wait for 50 bytes arriving 5 every %v: %v", stall/3, err)
	}
	if d := time.Since(start); d < 2*stall {
		t.Errorf("wait returned after %v, before the bytes were in", d)
	}
	start = time.Now()
	err := pt.wait(context.Background(), 100, stall)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("wait for bytes that never come: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 3*stall {
		t.Errorf("timed out after %v, want about %v", d, stall)
	}
}
