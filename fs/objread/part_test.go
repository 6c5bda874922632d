package objread

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestPartWaitSlowProgress: a reader waiting for bytes that arrive slowly
// but steadily is not timed out (the stall clock restarts with every
// arrival, though the reader is only woken when its bytes are in), and
// one whose bytes stop coming is, after the stall time.
//
// It runs on synctest's clock: on the real one a loaded machine can delay
// the writer's sleep past the stall time, which is a stall.
func TestPartWaitSlowProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pt := &part{off: 0, n: 100, buf: make([]byte, 100)}
		const stall = 60 * time.Millisecond
		wrote := make(chan struct{})
		defer func() { <-wrote }() // let the writer end, even after a Fatal
		go func() {
			defer close(wrote)
			for range 10 {
				time.Sleep(stall / 3)
				pt.progress(5)
			}
		}()
		start := time.Now()
		if err := pt.wait(context.Background(), 50, stall); err != nil {
			t.Fatalf("wait for 50 bytes arriving 5 every %v: %v", stall/3, err)
		}
		if d := time.Since(start); d != 10*stall/3 {
			t.Errorf("wait returned after %v, want %v (when the bytes were in)", d, 10*stall/3)
		}
		start = time.Now()
		err := pt.wait(context.Background(), 100, stall)
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("wait for bytes that never come: %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d != stall {
			t.Errorf("timed out after %v, want %v", d, stall)
		}
	})
}
