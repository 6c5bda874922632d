package cogtile

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// link is a model of an object store connection: every request waits
// latency for its first byte and then streams at rate bytes a second;
// requests run in parallel, each on its own connection.
type link struct {
	latency time.Duration
	rate    float64
}

func (k link) fetch(n int64) time.Duration {
	return k.latency + time.Duration(float64(n)/k.rate*float64(time.Second))
}

// partSize: the mount fetches predicted ranges in parts of this size, in
// parallel; block: its block cache's unit (objread.DefaultBlockSize), to
// which every fetch is rounded.
const (
	partSize = 1 << 20
	block    = 128 << 10
)

func blocks(r Range) Range {
	return Range{r.Off &^ (block - 1), (r.End + block - 1) &^ (block - 1)}
}

// simulate replays GDAL's reads of a window (as the mount sees them with
// FOPEN_DIRECT_IO) against the link: a read waits for the bytes a
// prediction already fetches, or fetches the blocks it misses; every
// tile read costs GDAL decode time. The header is taken as fetched at
// open (time 0). It returns the time GDAL spends from its first tile read.
func simulate(l *Layout, reads []Range, k link, decode time.Duration, predict bool, cfg func(*Predictor), wholeTile bool) time.Duration {
	type inflight struct {
		r  Range
		at time.Duration
	}
	fl := []inflight{{Range{0, 64 << 10}, 0}}
	p := l.NewPredictor()
	if cfg != nil {
		cfg(p)
	}
	var t time.Duration
	for _, r := range reads {
		// Ready when every byte is in flight; fetch the gaps.
		ready := t
		at := r.Off
		for at < r.End {
			var best *inflight
			for i := range fl {
				if fl[i].r.Off <= at && at < fl[i].r.End && (best == nil || fl[i].at < best.at) {
					best = &fl[i]
				}
			}
			if best != nil {
				ready = max(ready, best.at)
				at = best.r.End
				continue
			}
			// Missing from at to the next in-flight range or r.End.
			end := r.End
			for _, f := range fl {
				if f.r.Off > at && f.r.Off < end {
					end = f.r.Off
				}
			}
			miss := blocks(Range{at, end})
			if wholeTile {
				// Fetch the tiles the miss falls in whole.
				if tr, ok := l.TileAt(at); ok {
					miss.Off = min(miss.Off, blocks(tr).Off)
					miss.End = max(miss.End, blocks(tr).End)
				}
				if tr, ok := l.TileAt(end - 1); ok {
					miss.End = max(miss.End, blocks(tr).End)
				}
			}
			arr := t + k.fetch(miss.Len())
			fl = append(fl, inflight{miss, arr})
			ready = max(ready, arr)
			at = end
		}
		var predicted []Range
		if predict {
			predicted = p.Observe(r.Off, r.End, 256<<20)
		}
		for _, pr := range predicted {
			pr = blocks(pr)
			for o := pr.Off; o < pr.End; o += partSize {
				e := min(o+partSize, pr.End)
				fl = append(fl, inflight{Range{o, e}, t + k.fetch(e-o)})
			}
		}
		t = ready
		if r.Len() >= 64<<10 {
			t += decode
		}
	}
	return t
}

// vsis3 is GDAL's own /vsis3/ on the same window: after the header, every
// tile the window needs in one parallel batch of ranged GETs (adjacent
// tiles merged, as GDAL does), then decoding.
func vsis3(l *Layout, reads []Range, k link, decode time.Duration) time.Duration {
	spans := l.index()
	var need []Range
	tiles := 0
	for i, s := range spans {
		var n int64
		for _, r := range reads {
			n += max(0, min(r.End, s.end)-max(r.Off, s.off))
		}
		if 2*n >= s.end-s.off {
			need = append(need, Range{spans[i].off, spans[i].end})
			tiles++
		}
	}
	var slowest time.Duration
	for _, r := range merge(need, nil) {
		slowest = max(slowest, k.fetch(r.Len()))
	}
	return slowest + time.Duration(tiles)*decode
}

// TestPredictLatencyModel estimates, with a model of S3's latency and
// per-connection rate, how long GDAL waits for its windows through the
// mount against GDAL's own /vsis3/ (an ideal one: all tiles in one
// parallel batch), for a few Predictor settings, and the recall and waste
// of each on every trace. It logs the figures (go test -v) and checks only
// that the default predicts better than nothing.
func TestPredictLatencyModel(t *testing.T) {
	const decode = 3 * time.Millisecond // GDAL inflating a 512² DEFLATE tile
	links := []link{{20 * time.Millisecond, 50e6}, {50 * time.Millisecond, 25e6}}
	configs := []struct {
		name      string
		predict   bool
		cfg       func(*Predictor)
		wholeTile bool
	}{
		{"no prediction, misses by block", false, nil, false},
		{"ColsAhead 1", true, func(p *Predictor) { p.ColsAhead = 1 }, false},
		{"default (ColsAhead 2, RowsAhead 1)", true, nil, false},
		{"default, misses fetch whole tiles", true, nil, true},
		{"RowsAhead 2, misses fetch whole tiles", true, func(p *Predictor) { p.RowsAhead = 2 }, true},
		{"ColsAhead 3, misses fetch whole tiles", true, func(p *Predictor) { p.ColsAhead = 3 }, true},
	}
	var ratios [2][]float64 // per link, per config: mean ratio over the windows
	for ci, c := range configs {
		var sc score
		var ratio [2]float64
		windows := 0
		for _, tr := range traces {
			l := loadLayout(t, filepath.Join("testdata", "traces", tr.layout+".json"))
			reads := loadTrace(t, filepath.Join("testdata", "traces", tr.name+".txt"))
			if c.predict {
				s := replay(l, reads, reads, 64<<20, c.cfg)
				sc.tiles += s.tiles
				sc.predictedFirst += s.predictedFirst
				sc.predBytes += s.predBytes
				sc.wastedBytes += s.wastedBytes
			}
			if tr.layout != "cog12000" || strings.HasPrefix(tr.name, "pan") {
				continue // windows of the plain COG only
			}
			windows++
			for i, k := range links {
				ratio[i] += ms(simulate(l, reads, k, decode, c.predict, c.cfg, c.wholeTile)) / ms(vsis3(l, reads, k, decode))
			}
		}
		for i := range links {
			ratios[i] = append(ratios[i], ratio[i]/float64(windows))
		}
		t.Logf("%-40s recall %.2f, unread %.2f; mean time ÷ /vsis3/ over %d windows: %.2f× at 20 ms 50 MB/s, %.2f× at 50 ms 25 MB/s",
			c.name, sc.recall(), sc.waste(), windows, ratios[0][ci], ratios[1][ci])
	}
	for i := range links {
		if ratios[i][2] >= ratios[i][0] {
			t.Errorf("link %d: the default predictor (%.2f×) is no faster than none (%.2f×)", i, ratios[i][2], ratios[i][0])
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
