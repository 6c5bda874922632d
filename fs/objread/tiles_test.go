package objread

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

// stubTiles is a TileParser whose predictors return, for a read at an
// offset, the ranges set for it (for predictor i: predict(i, off)),
// truncated to maxBytes as cogtile's are.
type stubTiles struct {
	predict func(i int, off int64) []TileRange

	mu     sync.Mutex
	parses int // guarded by mu
	preds  int // guarded by mu
}

func (s *stubTiles) parse(ctx context.Context, read func(ctx context.Context, off, n int64) ([]byte, error), size int64) (TileLayout, error) {
	b, err := read(ctx, 0, 8)
	if err != nil {
		return nil, err
	}
	if !isTIFF(b) {
		return nil, errors.New("not a TIFF")
	}
	s.mu.Lock()
	s.parses++
	s.mu.Unlock()
	return s, nil
}

func (s *stubTiles) NewPredictor() TilePredictor {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.preds++
	return &stubPredictor{s: s, i: s.preds - 1}
}

type stubPredictor struct {
	s *stubTiles
	i int
}

func (p *stubPredictor) Observe(off, end, maxBytes int64) []TileRange {
	var out []TileRange
	for _, r := range p.s.predict(p.i, off) {
		if n := r.End - r.Off; n > maxBytes {
			r.End = r.Off + maxBytes
		}
		maxBytes -= r.End - r.Off
		if r.End > r.Off {
			out = append(out, r)
		}
	}
	return out
}

// tiffObject puts a 16 MiB object that starts like a little-endian TIFF.
func tiffObject(f *fakeStore, name string) Object {
	data := make([]byte, 16*MiB)
	fakeBytes(data, 99, 0)
	copy(data, "II*\x00")
	return f.putData(name, data, `"t"`)
}

// TestTilePrefetchExactRanges: after the header, a read of a tile loads
// exactly the predicted ranges (in blocks, one GET per range), each with
// the kernel's readahead past it (as much again, up to Readahead) unless
// the file is read with direct I/O (no READ reaches past a tile), the
// layout is parsed once for all handles of the object, and GDAL's later
// read of a predicted tile costs no request.
func TestTilePrefetchExactRanges(t *testing.T) {
	bs := DefaultBlockSize
	for _, c := range []struct {
		name     string
		directIO bool
		want     [][2]int64 // after the read's own block
	}{
		{"PageCache", false, [][2]int64{
			{6 * MiB, 6*MiB + 5*bs}, // the first predicted range and 300 KiB more, in blocks
			{9 * MiB, 9*MiB + 4*bs}, // the second, and 256 KiB more
		}},
		{"DirectIO", true, [][2]int64{
			{6 * MiB, 6*MiB + 3*bs}, // the first predicted range, in blocks
			{9 * MiB, 9*MiB + 2*bs}, // the second
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeStore()
			obj := tiffObject(f, "scene.tif")
			obj.DirectIO = c.directIO
			const tileA = 4*MiB + 100
			predicted := []TileRange{{6*MiB + 10, 6*MiB + 300*KiB}, {9 * MiB, 9*MiB + 256*KiB}}
			stub := &stubTiles{predict: func(i int, off int64) []TileRange {
				if off == tileA {
					return predicted
				}
				return nil
			}}
			budget := NewBudget(0)
			pf := NewPrefetcher(f, Config{Tiles: stub.parse}, budget, nil)
			for range 3 { // GDAL opens a scene several times
				r := pf.Open(unpinned(obj))
				readAt(t, f, r, obj, 0, 16*KiB)
				r.Close()
			}
			waitFor(t, func() bool { return pf.Stats().TiledObjects.Load() == 1 })
			r := pf.Open(obj)
			defer r.Close()
			readAt(t, f, r, obj, 0, 16*KiB)
			before := len(f.requests())
			readAt(t, f, r, obj, tileA, 64*KiB)
			waitFor(t, func() bool { return budget.Used() == 0 && len(f.requests()) >= before+3 })
			var got [][2]int64
			for _, q := range f.requests()[before:] {
				got = append(got, [2]int64{q.off, q.off + q.n})
			}
			slices.SortFunc(got, func(a, b [2]int64) int { return int(a[0] - b[0]) })
			want := append([][2]int64{{tileA / bs * bs, tileA/bs*bs + bs}}, c.want...) // the read's own block first
			if !slices.Equal(got, want) {
				t.Errorf("requests after the tile read %v, want %v", got, want)
			}
			if stub.parses != 1 {
				t.Errorf("layout parsed %d times, want once per object version", stub.parses)
			}
			before = len(f.requests())
			readAt(t, f, r, obj, predicted[0].Off, predicted[0].End-predicted[0].Off)
			readAt(t, f, r, obj, predicted[1].Off, predicted[1].End-predicted[1].Off)
			if n := len(f.requests()) - before; n != 0 {
				t.Errorf("reading the predicted tiles sent %d requests, want 0", n)
			}
		})
	}
}

// TestTilePrefetchWithinBudget: tile prefetches in flight take their
// bytes from the memory budget; beyond it they are not sent (the reads
// themselves still are), and the budget is whole again once they land.
func TestTilePrefetchWithinBudget(t *testing.T) {
	f := newFakeStore()
	obj := tiffObject(f, "scene.tif")
	const handles, tile = 8, 256 * KiB
	const per = 2 * tile // a tile and the readahead past it
	rangeOf := func(i int) TileRange { return TileRange{8*MiB + int64(i)*4*tile, 8*MiB + int64(i)*4*tile + tile} }
	stub := &stubTiles{predict: func(i int, off int64) []TileRange {
		if off == 2*MiB+int64(i)*512*KiB {
			return []TileRange{rangeOf(i)}
		}
		return nil
	}}
	release := make(chan struct{})
	var mu sync.Mutex
	held := 0
	f.gate = func(ctx context.Context, off, n int64) error {
		if off < 8*MiB {
			return nil
		}
		mu.Lock()
		held++
		mu.Unlock()
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	budget := NewBudget(4 * per) // tileMaxBytes: a quarter of it, one tile and its readahead a read
	pf := NewPrefetcher(f, Config{Tiles: stub.parse}, budget, nil)
	first := pf.Open(obj)
	readAt(t, f, first, obj, 0, 16*KiB)
	waitFor(t, func() bool { return pf.Stats().TiledObjects.Load() == 1 })
	first.Close()
	var rs []Reader
	for i := range handles {
		r := pf.Open(obj)
		rs = append(rs, r)
		readAt(t, f, r, obj, 0, 16*KiB)                      // the predictor's first read: the header
		readAt(t, f, r, obj, 2*MiB+int64(i)*512*KiB, 64*KiB) // predicts tile i
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return held == 4 })
	if used, peak := budget.Used(), budget.Peak(); used != 4*per || peak > budget.Limit() {
		t.Errorf("budget used %d, peak %d, with 4 tiles of %d (and readahead) in flight; limit %d", used, peak, tile, budget.Limit())
	}
	if s := pf.Stats().Snapshot(); s.TilePrefetches != 4 || s.BudgetDenials != handles-4 {
		t.Errorf("%d tile prefetches, %d refused; want 4 and %d", s.TilePrefetches, s.BudgetDenials, handles-4)
	}
	close(release)
	waitFor(t, func() bool { return budget.Used() == 0 })
	for i, r := range rs {
		readAt(t, f, r, obj, rangeOf(i).Off, tile) // right bytes, prefetched or not
		r.Close()
	}
}
