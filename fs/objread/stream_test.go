package objread

import (
	"context"
	"sync"
	"testing"
)

// TestStreamStartsFullyParallel: the read that confirms a sequential
// reader sends Parallel part GETs at once (not one, then two, then four:
// at 50 ms per request, each doubling would cost a round trip).
func TestStreamStartsFullyParallel(t *testing.T) {
	f := newFakeStore()
	obj := f.put("seq", 512*MiB, `"s"`)
	var mu sync.Mutex
	release := make(chan struct{})
	waiting := 0
	f.gate = func(ctx context.Context, off, n int64) error {
		if off < DefaultConfig().FirstRead {
			return nil // the first read's block load
		}
		mu.Lock()
		waiting++
		mu.Unlock()
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	pf := newTest(f, nil)
	r := pf.Open(obj)
	defer r.Close()
	off := int64(0)
	for ; off < DefaultConfig().FirstRead; off += 128 * KiB {
		readAt(t, f, r, obj, off, 128*KiB)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		readAt(t, f, r, obj, off, 128*KiB) // starts the stream, waits for its first part
	}()
	want := DefaultConfig().Parallel
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return waiting >= want
	})
	mu.Lock()
	n := waiting // none has answered yet
	close(release)
	mu.Unlock()
	<-done
	if n != want {
		t.Errorf("%d part GETs sent before the first answered, want %d (Parallel)", n, want)
	}
}

// TestStreamKeepsPartsInFlight: once a stream has ramped up, every read
// finds the window ahead of it filled with Parallel full-size parts (less
// the budget's reserve), in flight or waiting for the reader; and the
// memory budget holds.
func TestStreamKeepsPartsInFlight(t *testing.T) {
	f := newFakeStore()
	obj := f.put("seq", 320*MiB, `"s"`)
	budget := NewBudget(0)
	pf := newTest(f, budget)
	r := pf.Open(obj)
	defer r.Close()
	h := r.(*handle)
	cfg := DefaultConfig()
	const rampEnd = 64 * MiB // parts reach PartSize by then (1, 2, 4, 8 MiB)
	minAhead := int64(1 << 62)
	for off := int64(0); off < obj.Size; off += MiB {
		readAt(t, f, r, obj, off, MiB)
		if off < rampEnd || off+MiB+cfg.MaxWindow > obj.Size {
			continue
		}
		h.mu.Lock()
		ahead := h.st.frontier - h.st.pos
		h.mu.Unlock()
		minAhead = min(minAhead, ahead)
	}
	// The window leaves KeepBehind plus one part of the budget's share
	// for what the stream keeps behind the reader.
	want := min(cfg.MaxWindow, budget.Limit()-cfg.KeepBehind-cfg.PartSize) - cfg.PartSize
	if minAhead < want {
		t.Errorf("after the ramp, as little as %d MiB ahead of the reader, want ≥ %d MiB (%d parts of %d MiB)",
			minAhead/MiB, want/MiB, want/cfg.PartSize, cfg.PartSize/MiB)
	}
	if budget.Peak() > budget.Limit() {
		t.Errorf("budget peak %d over its limit %d", budget.Peak(), budget.Limit())
	}
}
