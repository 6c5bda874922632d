package objread

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestRandomReadsExactRanges(t *testing.T) {
	f := newFakeStore()
	obj := f.put("random", 512*MiB, `"r"`)
	pf := newTest(f, nil)
	r := pf.Open(obj)
	defer r.Close()
	rnd := rand.New(rand.NewPCG(3, 4))
	const reads = 300
	for range reads {
		off := rnd.Int64N(obj.Size/(4*KiB)) * 4 * KiB
		readAt(t, f, r, obj, off, 64*KiB)
	}
	reqs := f.requests()
	var fetched int64
	for i, q := range reqs {
		fetched += q.n
		if i > 0 && q.n > 2*DefaultBlockSize {
			t.Errorf("request %d: %d bytes for a 64 KiB random read", i, q.n)
		}
	}
	if per := fetched / reads; per > 2*MiB {
		t.Errorf("%d bytes fetched per 64 KiB random read, want ≤ 2 MiB", per)
	}
	if s := pf.Stats().Snapshot(); s.Parts != 0 {
		t.Errorf("random reads started %d prefetch parts", s.Parts)
	}
	t.Logf("%d requests, %d KiB per read", len(reqs), fetched/reads/KiB)
}

// gdalRows reads like GDAL taking a window out of a tiled GeoTIFF through
// the kernel: a header, then rows of tiles far apart, each an 8 KiB read
// and then 1 MiB reads to rowLen. It returns the requests each row made.
func gdalRows(t *testing.T, f *fakeStore, r Reader, obj Object, first, stride, rowLen int64, rows int) [][]request {
	t.Helper()
	readAt(t, f, r, obj, 0, 32*KiB)
	var per [][]request
	for row := range rows {
		before := len(f.requests())
		off := first + int64(row)*stride
		readAt(t, f, r, obj, off, 8*KiB)
		for o := off + 8*KiB; o < off+rowLen; o += MiB {
			readAt(t, f, r, obj, o, min(MiB, off+rowLen-o))
		}
		per = append(per, f.requests()[before:])
	}
	return per
}

// TestJumpPredictsNextRow: after two rows, the third row's bytes were
// requested before the reader got there (predicted from the stride), so
// reading it waits on no request of its own; and random first reads of
// fresh handles predict nothing.
func TestJumpPredictsNextRow(t *testing.T) {
	f := newFakeStore()
	f.latency = 3 * time.Millisecond
	obj := f.put("cog", 256*MiB, `"c"`)
	pf := newTest(f, nil)
	r := pf.Open(obj)
	defer r.Close()
	const first, stride, rowLen = 100 * MiB, 30 * MiB, 3*MiB + 512*KiB
	per := gdalRows(t, f, r, obj, first, stride, rowLen, 4)
	covers := func(reqs []request, off, end int64) bool {
		for _, q := range reqs {
			if q.off <= off && q.off+q.n >= end {
				return true
			}
		}
		return false
	}
	row3 := first + 2*stride
	if !covers(per[1], row3, row3+MiB) {
		t.Errorf("row 2's requests %+v do not load row 3 ahead", per[1])
	}
	if len(per[2]) > 1 { // its own prediction of row 4
		t.Errorf("row 3 made requests %+v, want only the prediction of row 4", per[2])
	}
	if got := pf.Stats().Snapshot().Predicted; got < 2 {
		t.Errorf("predicted runs %d, want ≥ 2", got)
	}

	g := newFakeStore()
	obj2 := g.put("rand", 256*MiB, `"r"`)
	pf2 := newTest(g, nil)
	for i := range 20 {
		h := pf2.Open(obj2)
		readAt(t, g, h, obj2, int64(i+1)*7*MiB+12345, 64*KiB)
		h.Close()
	}
	if got := pf2.Stats().Snapshot().Predicted; got != 0 {
		t.Errorf("random reads of fresh handles predicted %d runs, want 0", got)
	}
	for _, q := range g.requests() {
		if q.n > 256*KiB {
			t.Errorf("random 64 KiB read fetched %d bytes", q.n)
		}
	}
}
