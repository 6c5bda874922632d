package cogtile

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// The traces in testdata/traces were recorded with
//
//	strace -f -e trace=openat,pread64,read,lseek,close gdal_translate -q -srcwin ... cog.tif out.tif
//
// (GDAL 3.6.2) against a 12000×12000, 3-band, BLOCKSIZE=512, DEFLATE COG
// made by gdal_translate -of COG, whose tile layout is cog12000.json (and
// variants, below); each line is one read(2) of the file as "offset
// length".
//
// NAME.fuse.txt and NAME.direct.txt are the same commands run on the file
// through a go-fuse file system that logs each FUSE read (prescientfs's
// mount options: MaxReadAhead 1 MiB, bdi read_ahead_kb 1024), opened with
// FOPEN_KEEP_CACHE (page cache and kernel readahead, as the mount does
// today) and with FOPEN_DIRECT_IO (GDAL's reads as they are, in pieces of
// at most 128 KiB). Through the page cache the kernel asks for 1.3–4× the
// bytes GDAL reads: its readahead runs 2–3 tiles past each row's end. GDAL reads through a
// buffered stdio handle, so a tile arrives as a 4 KiB buffer fill, one big
// read and a 4 KiB read that runs into the next tile.
var traces = []struct {
	name, layout, what string
}{
	{"w1", "cog12000", "-srcwin 3000 3000 1024 1024 (3×3 tiles, unaligned)"},
	{"w2", "cog12000", "-srcwin 2048 2048 1024 1024 (2×2 tiles, aligned)"},
	{"w3", "cog12000", "-srcwin 100 7000 2000 600 (5×2 tiles)"},
	{"w4", "cog12000", "-srcwin 5000 9000 3000 3000 (7×6 tiles)"},
	{"b1", "cog12000", "-b 2 -srcwin 3000 3000 1024 1024 (one band)"},
	{"ov1", "cog12000", "-outsize 1000 1000 (overview 3, 3×3 tiles)"},
	{"ov2", "cog12000", "-srcwin 4000 4000 4000 4000 -outsize 1000 1000"},
	{"ov3", "cog12000", "-srcwin 0 0 6000 6000 -outsize 1500 1500"},
	// Panning, as QGIS does with GDAL's block cache: one process reads
	// 1024² windows moved by 512 px (a VRT of windows of the COG).
	{"panr", "cog12000", "pan right ×3 from 3000,3000 (new column each time)"},
	{"panl", "cog12000", "pan left ×2 from 3000,3000"},
	{"pand", "cog12000", "pan down ×3 from 3000,3000 (new row each time)"},
	{"pandiag", "cog12000", "pan down-right ×2 (a column, then a row)"},
	// The same COG with an internal mask (gdal_translate -mask 1): each
	// image tile is followed by its mask tile, read together.
	{"m1", "mask12000", "mask COG, -srcwin 3000 3000 1024 1024"},
	{"m3", "mask12000", "mask COG, -outsize 1000 1000"},
	// A tiled GTiff, INTERLEAVE=BAND, overviews by gdaladdo after the
	// data: GDAL reads the window band after band.
	{"pl1", "band12000", "band-interleaved, -srcwin 3000 3000 1024 1024"},
	{"pl2", "band12000", "band-interleaved, -outsize 1000 1000"},
}

// loadLayout reads a Layout dumped as JSON (offsets and counts per image).
func loadLayout(t testing.TB, path string) *Layout {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		Size, HeaderEnd, Leader, Trailer int64
		Images                           []struct {
			W, H, TW, TH, Planes int
			Mask                 bool
			Offsets, Counts      []int64
		}
	}
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	l := &Layout{Size: in.Size, Leader: in.Leader, Trailer: in.Trailer, COG: true, headerEnd: in.HeaderEnd}
	for _, im := range in.Images {
		l.Images = append(l.Images, Image{
			Width: im.W, Height: im.H, TileWidth: im.TW, TileHeight: im.TH,
			Across: (im.W + im.TW - 1) / im.TW, Down: (im.H + im.TH - 1) / im.TH,
			Planes: im.Planes, Mask: im.Mask, Offsets: im.Offsets, Counts: im.Counts,
		})
	}
	return l
}

// loadTrace reads "offset length" lines.
func loadTrace(t testing.TB, path string) []Range {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Range
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var off, n int64
		if _, err := fmt.Sscan(sc.Text(), &off, &n); err != nil {
			t.Fatalf("%s: %q: %v", path, sc.Text(), err)
		}
		if n > 0 {
			out = append(out, Range{off, off + n})
		}
	}
	return out
}

// asFUSE splits reads the way the kernel hands them to a FUSE file system:
// whole pages, at most 128 KiB per request.
func asFUSE(reads []Range) []Range {
	const page, maxRead = 4096, 128 << 10
	var out []Range
	for _, r := range reads {
		off, end := r.Off&^(page-1), (r.End+page-1)&^(page-1)
		for o := off; o < end; o += maxRead {
			out = append(out, Range{o, min(o+maxRead, end)})
		}
	}
	return out
}

// shuffled is asFUSE with the 128 KiB pieces of each read in a random
// order: go-fuse serves a read's pieces in parallel, so the Predictor may
// see them in any order.
func shuffled(reads []Range) []Range {
	rng := rand.New(rand.NewPCG(1, 2))
	var out []Range
	for _, r := range reads {
		pieces := asFUSE([]Range{r})
		rng.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
		out = append(out, pieces...)
	}
	return out
}

// withReadahead adds, after every read that follows on from the previous
// one, the kernel's readahead: ra more bytes past its end.
func withReadahead(reads []Range, ra int64) []Range {
	var out []Range
	var last int64 = -1
	for _, r := range reads {
		out = append(out, r)
		if r.Off <= last && r.End > last {
			out = append(out, Range{r.End, r.End + ra})
		}
		last = r.End
	}
	return out
}

// score is how a Predictor did on one trace.
type score struct {
	tiles, predictedFirst  int   // tiles GDAL read; of them, predicted before their first read
	predBytes, wastedBytes int64 // bytes predicted; of them, in tiles GDAL never read
	extraBytes             int64 // of them, bytes the mount was never asked for (not even by readahead)
	maxOut                 int64 // largest total returned by one Observe
}

// replay feeds the reads seen (what the mount sees) to a Predictor and
// measures it against the tiles GDAL actually read: those its own reads,
// gdal, cover at least half of (the 4 KiB a buffered read takes from the
// next tile does not count), each counted as predicted when a range
// returned before GDAL's read of it covered it.
func replay(l *Layout, gdal, seen []Range, maxBytes int64, cfg func(*Predictor)) score {
	spans := l.index()
	cover := make([]int64, len(spans))
	for _, r := range gdal {
		for i, s := range spans {
			if n := min(r.End, s.end) - max(r.Off, s.off); n > 0 {
				cover[i] += n
			}
		}
	}
	read := func(i int) bool { return 2*cover[i] >= spans[i].end-spans[i].off }

	asked := merge(append([]Range(nil), seen...), nil)
	var sc score
	p := l.NewPredictor()
	if cfg != nil {
		cfg(p)
	}
	predicted := map[int]bool{}
	first := map[int]bool{}
	for _, r := range seen {
		for i, s := range spans {
			// GDAL's read of a tile is the first one that reaches into its
			// second half: the few KiB a buffered read takes from the
			// start of the next tile are not yet GDAL asking for it.
			mid := s.off + (s.end-s.off)/2
			if r.Off <= mid && mid < r.End && read(i) && !first[i] {
				first[i] = true
				sc.tiles++
				if predicted[i] {
					sc.predictedFirst++
				}
			}
		}
		var total int64
		for _, pr := range p.Observe(r.Off, r.End, maxBytes) {
			total += pr.Len()
			sc.extraBytes += pr.Len() - overlap(asked, pr)
			for i, s := range spans {
				n := min(s.end, pr.End) - max(s.off, pr.Off)
				if n <= 0 {
					continue
				}
				// A tile's rest after what readahead took counts.
				if mid := s.off + (s.end-s.off)/2; pr.Off <= mid && mid < pr.End {
					predicted[i] = true
				}
				sc.predBytes += n
				if !read(i) {
					sc.wastedBytes += n
				}
			}
		}
		sc.maxOut = max(sc.maxOut, total)
	}
	return sc
}

// overlap is how many bytes of r the sorted, disjoint ranges u cover.
func overlap(u []Range, r Range) int64 {
	var n int64
	i := sort.Search(len(u), func(i int) bool { return u[i].End > r.Off })
	for ; i < len(u) && u[i].Off < r.End; i++ {
		n += min(u[i].End, r.End) - max(u[i].Off, r.Off)
	}
	return n
}

func (s score) extra() float64  { return float64(s.extraBytes) / float64(max(s.predBytes, 1)) }
func (s score) recall() float64 { return float64(s.predictedFirst) / float64(max(s.tiles, 1)) }
func (s score) waste() float64  { return float64(s.wastedBytes) / float64(max(s.predBytes, 1)) }

// TestPredictGDALTraces replays GDAL's reads of windows and overviews and
// checks that most tiles were fetched before GDAL asked for them, and that
// little of what was fetched went unread. It logs the figures (go test -v).
func TestPredictGDALTraces(t *testing.T) {
	const budget = 64 << 20
	var all [6]score
	for mi, mode := range []string{"syscalls", "fuse128k", "readahead", "shuffled", "fuse", "direct"} {
		for _, tr := range traces {
			t.Run(mode+"/"+tr.name, func(t *testing.T) {
				l := loadLayout(t, filepath.Join("testdata", "traces", tr.layout+".json"))
				gdal := loadTrace(t, filepath.Join("testdata", "traces", tr.name+".txt"))
				seen := gdal
				switch mode {
				case "fuse128k":
					seen = asFUSE(gdal)
				case "readahead":
					seen = asFUSE(withReadahead(gdal, 256<<10))
				case "shuffled":
					seen = shuffled(gdal)
				case "fuse", "direct":
					path := filepath.Join("testdata", "traces", tr.name+"."+mode+".txt")
					seen = loadTrace(t, path)
				}
				sc := replay(l, gdal, seen, budget, nil)
				t.Logf("%-7s %-52s tiles %2d predicted-before-read %2d (recall %.2f) unread by GDAL %.2f, never asked %.2f of %5.1f MB",
					tr.name, tr.what, sc.tiles, sc.predictedFirst, sc.recall(), sc.waste(), sc.extra(), float64(sc.predBytes)/1e6)
				if sc.tiles < 4 {
					t.Fatalf("trace reads %d tiles: the trace or the layout is wrong", sc.tiles)
				}
				// A window's first tile cannot be predicted, and the row
				// after its last is; the first tile's block (RowsNear rows
				// below, ColsAhead tiles on) loads a window's first rows in
				// parallel, at the price of more bytes in windows less than
				// 3 tiles wide or tall (a 2×2 window reads 4 tiles of 10).
				if sc.recall() < 0.75 {
					t.Errorf("recall %.2f, want ≥ 0.75", sc.recall())
				}
				switch {
				case mode == "fuse":
					// The kernel's readahead (1 MiB) runs 2–3 tiles past
					// each row's end and looks like GDAL reading on: what
					// counts is what the mount would not fetch anyway.
					if sc.extra() > 0.55 {
						t.Errorf("%.0f%% of predicted bytes never asked for, want ≤ 55%%", 100*sc.extra())
					}
				case sc.waste() > 0.65:
					t.Errorf("%.0f%% of predicted bytes never read, want ≤ 65%%", 100*sc.waste())
				}
				if sc.maxOut > budget {
					t.Errorf("one Observe returned %d bytes, budget %d", sc.maxOut, budget)
				}
				all[mi].tiles += sc.tiles
				all[mi].predictedFirst += sc.predictedFirst
				all[mi].predBytes += sc.predBytes
				all[mi].wastedBytes += sc.wastedBytes
				all[mi].extraBytes += sc.extraBytes
			})
		}
		t.Logf("%s: all traces: %d tiles, recall %.2f, unread by GDAL %.2f, never asked %.2f of %.1f MB predicted",
			mode, all[mi].tiles, all[mi].recall(), all[mi].waste(), all[mi].extra(), float64(all[mi].predBytes)/1e6)
		if all[mi].tiles == 0 {
			continue // this mode's subtests were not run (-run)
		}
		waste := all[mi].waste()
		if mode == "fuse" {
			waste = all[mi].extra()
		}
		if all[mi].recall() < 0.85 || waste > 0.35 {
			t.Errorf("%s: recall %.2f (want ≥ 0.85), waste %.2f (want ≤ 0.35) over all traces", mode, all[mi].recall(), waste)
		}
	}
}

// TestPredictBudget: a small budget limits what one Observe returns; the
// tiles left out are predicted later, never twice.
func TestPredictBudget(t *testing.T) {
	l := loadLayout(t, filepath.Join("testdata", "traces", "cog12000.json"))
	reads := loadTrace(t, filepath.Join("testdata", "traces", "w4.txt"))
	p := l.NewPredictor()
	const budget = 1 << 20 // about one tile of 0.7 MB
	got := map[int64]bool{}
	for _, r := range reads {
		var total int64
		for _, pr := range p.Observe(r.Off, r.End, budget) {
			total += pr.Len()
			if pr.Len() <= 0 {
				t.Fatalf("empty range %v", pr)
			}
			for o := range got {
				if o >= pr.Off && o < pr.End {
					t.Fatalf("range %v returned again (offset %d)", pr, o)
				}
			}
			got[pr.Off] = true
		}
		if total > budget {
			t.Fatalf("Observe(%d, %d) returned %d bytes, budget %d", r.Off, r.End, total, budget)
		}
	}
	if len(got) == 0 {
		t.Fatal("nothing predicted with a 1 MiB budget")
	}
	if p.Observe(0, 4096, 1<<30) != nil {
		t.Error("a header read predicted tiles")
	}
}

func TestMerge(t *testing.T) {
	pad := func(gap Range) bool { return gap.Len() <= 100 }
	in := []Range{{100, 200}, {0, 50}, {200, 300}, {350, 400}, {1 << 20, 2 << 20}}
	tests := []struct {
		bridge func(Range) bool
		want   []Range
	}{
		{nil, []Range{{0, 50}, {100, 300}, {350, 400}, {1 << 20, 2 << 20}}},
		{pad, []Range{{0, 400}, {1 << 20, 2 << 20}}},
	}
	for _, tt := range tests {
		if got := merge(append([]Range(nil), in...), tt.bridge); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("merge = %v, want %v", got, tt.want)
		}
	}
}

// gridLayout is a COG-like layout: one across×down image of tileBytes
// tiles (GDAL's 4-byte leader and trailer around each), row-major from
// offset 1000.
func gridLayout(across, down int, tileBytes int64) *Layout {
	const first, frame = 1000, 4
	n := across * down
	im := Image{Width: across * 256, Height: down * 256, TileWidth: 256, TileHeight: 256,
		Across: across, Down: down, Planes: 1, Offsets: make([]int64, n), Counts: make([]int64, n)}
	stride := tileBytes + 2*frame
	for i := range n {
		im.Offsets[i] = first + int64(i)*stride + frame
		im.Counts[i] = tileBytes
	}
	return &Layout{Images: []Image{im}, Size: first + int64(n)*stride, Leader: frame, Trailer: frame, COG: true, headerEnd: first}
}

// readTile tells p that GDAL read tile (row, col) of image 0 whole.
func readTile(l *Layout, p *Predictor, row, col int, maxBytes int64) []Range {
	r, _ := l.TileRange(0, l.Images[0].Tile(0, row, col))
	return p.Observe(r.Off, r.End, maxBytes)
}

// tiles is the byte range from tile (row, c0) to tile (row, c1) inclusive.
func tiles(l *Layout, row, c0, c1 int) Range {
	a, _ := l.TileRange(0, l.Images[0].Tile(0, row, c0))
	b, _ := l.TileRange(0, l.Images[0].Tile(0, row, c1))
	return Range{a.Off, b.End}
}

// TestPredictWindow walks a 3×3 window of a 10×10 grid and checks each
// prediction exactly: what the prefetcher will fetch.
func TestPredictWindow(t *testing.T) {
	l := gridLayout(10, 10, 1000)
	p := l.NewPredictor()
	const all = 1 << 30
	steps := []struct {
		row, col int
		want     []Range
	}{
		// First tile: the next two in the row (ColsAhead) and the two rows
		// below (RowsNear) as wide, each row one range.
		{2, 3, []Range{tiles(l, 2, 4, 5), tiles(l, 3, 3, 5), tiles(l, 4, 3, 5)}},
		// Along the first row, width unknown: the next ColsAhead-th tile,
		// and the column below (here predicted already).
		{2, 4, []Range{tiles(l, 2, 6, 6)}},
		{2, 5, []Range{tiles(l, 2, 7, 7)}},
		// Back to column 3 of row 3: the window is columns 3–5; the rest of
		// row 3 and row 4 (RowsAhead) were predicted already.
		{3, 3, nil},
		{3, 4, nil},
		{3, 5, nil},
		// Each later row start predicts the row after, whole, in one range.
		{4, 3, []Range{tiles(l, 5, 3, 5)}},
		{4, 4, nil},
		// Read again: nothing new.
		{2, 3, nil},
	}
	for i, s := range steps {
		got := readTile(l, p, s.row, s.col, all)
		if fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("step %d, tile (%d,%d): predicted %v, want %v", i, s.row, s.col, got, s.want)
		}
	}
	if got := p.Observe(0, l.HeaderEnd(), all); got != nil {
		t.Errorf("a header read predicted %v", got)
	}
}

// TestPredictPan: a column beside the last window predicts the column.
func TestPredictPan(t *testing.T) {
	l := gridLayout(10, 10, 1000)
	p := l.NewPredictor()
	// A window of columns 3–6, rows 2–4 (its first tile's block reaches
	// column 5, its first row column 8).
	for r := 2; r <= 4; r++ {
		for c := 3; c <= 6; c++ {
			readTile(l, p, r, c, 1<<30)
		}
	}
	got := readTile(l, p, 2, 7, 1<<30) // pan right: column 7, rows 2–4
	want := []Range{tiles(l, 3, 7, 7), tiles(l, 4, 7, 7)}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pan right predicted %v, want %v", got, want)
	}
}

// TestPredictBudgetOrder: with room for one tile, the nearest comes first
// and the rest follow on later reads.
func TestPredictBudgetOrder(t *testing.T) {
	l := gridLayout(10, 10, 1000)
	p := l.NewPredictor()
	one := tiles(l, 0, 0, 0).Len()
	if got, want := readTile(l, p, 2, 3, one), []Range{tiles(l, 2, 4, 4)}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("budget of one tile: %v, want %v", got, want)
	}
	if got := readTile(l, p, 2, 3, one); got != nil {
		t.Errorf("tile read again: %v", got)
	}
}

// TestPredictMask: an image tile's mask tile comes with it, merged when
// they are adjacent (GDAL's COG puts each mask tile right after its tile).
func TestPredictMask(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "cog_mask_100x80_b32.tif"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := parseBytes(t, b)
	if err != nil {
		t.Fatal(err)
	}
	p := l.NewPredictor()
	r, _ := l.TileRange(0, 0)
	got := p.Observe(r.Off, r.End, 1<<30)
	next, _ := l.TileRange(0, 1)
	nextMask, _ := l.TileRange(1, 1)
	found := false
	for _, g := range got {
		if g.Off <= next.Off && next.End <= g.End && g.Off <= nextMask.Off && nextMask.End <= g.End {
			found = true
		}
	}
	if !found {
		t.Errorf("predicted %v, want tile 1 %v and its mask %v in one range", got, next, nextMask)
	}
}

// BenchmarkObserve: the cost of one Observe call on the read path, a
// 3000² window's reads as FUSE pieces.
func BenchmarkObserve(b *testing.B) {
	l := loadLayout(b, filepath.Join("testdata", "traces", "cog12000.json"))
	reads := asFUSE(loadTrace(b, filepath.Join("testdata", "traces", "w4.txt")))
	b.ResetTimer()
	for i := 0; i < b.N; {
		p := l.NewPredictor()
		for _, r := range reads {
			p.Observe(r.Off, r.End, 64<<20)
			i++
		}
	}
}

// TestPredictNeverTwice: over a long run of random reads (windows, jumps,
// readahead-like runs) no byte is returned twice, every range lies within
// the file's tiles, and no Observe exceeds its budget.
func TestPredictNeverTwice(t *testing.T) {
	for _, name := range []string{"cog12000", "mask12000", "band12000"} {
		l := loadLayout(t, filepath.Join("testdata", "traces", name+".json"))
		p := l.NewPredictor()
		rng := rand.New(rand.NewPCG(3, 4))
		var got []Range
		for i := 0; i < 20000; i++ {
			off := rng.Int64N(l.Size)
			n := 1 + rng.Int64N(1<<20)
			budget := rng.Int64N(8 << 20)
			var total int64
			for _, r := range p.Observe(off, min(off+n, l.Size), budget) {
				if r.Off < l.HeaderEnd() || r.End > l.Size || r.End <= r.Off {
					t.Fatalf("%s: range %v outside the tiles [%d, %d)", name, r, l.HeaderEnd(), l.Size)
				}
				total += r.Len()
				got = append(got, r)
			}
			if total > budget {
				t.Fatalf("%s: %d bytes returned, budget %d", name, total, budget)
			}
		}
		sort.Slice(got, func(a, b int) bool { return got[a].Off < got[b].Off })
		for i := 1; i < len(got); i++ {
			if got[i].Off < got[i-1].End {
				t.Fatalf("%s: %v and %v overlap: bytes returned twice", name, got[i-1], got[i])
			}
		}
		if len(got) == 0 {
			t.Fatalf("%s: nothing predicted", name)
		}
	}
}

func TestTileAt(t *testing.T) {
	l := gridLayout(4, 3, 1000)
	for _, tc := range []struct {
		off  int64
		want Range
		ok   bool
	}{
		{0, Range{}, false},             // the header
		{999, Range{}, false},           // just before the first tile's leader
		{1000, tiles(l, 0, 0, 0), true}, // its leader
		{tiles(l, 1, 2, 2).Off + 500, tiles(l, 1, 2, 2), true},
		{tiles(l, 2, 3, 3).End - 1, tiles(l, 2, 3, 3), true},
		{l.Size, Range{}, false},
	} {
		got, ok := l.TileAt(tc.off)
		if got != tc.want || ok != tc.ok {
			t.Errorf("TileAt(%d) = %v, %v; want %v, %v", tc.off, got, ok, tc.want, tc.ok)
		}
	}
}

// TestPredictSeekBringsRestOfTile: a read GDAL seeks with that starts a
// few pages before a tile (the kernel's page boundary, GDAL's look at the
// leader) and covers only its head counts as the tile's read: the rest of
// the tile is predicted with the tiles after it, in one range.
func TestPredictSeekBringsRestOfTile(t *testing.T) {
	l := gridLayout(10, 10, 100000) // tiles of ~100 KB, as in a COG
	tile, _ := l.TileRange(0, l.Images[0].Tile(0, 2, 3))
	for _, tc := range []struct {
		name      string
		before    int64 // how far before the tile the read starts
		wantStart bool
	}{
		{"at the tile", 0, true},
		{"two pages before", 2*pageSize + 100, true},
		{"far before", headSlack + pageSize, false},
	} {
		p := l.NewPredictor()
		off := tile.Off - tc.before
		end := tile.Off + 8192
		got := p.Observe(off, end, 1<<30)
		if !tc.wantStart {
			if len(got) != 0 {
				t.Errorf("%s: predicted %v from a read that starts before the tile's page slack", tc.name, got)
			}
			continue
		}
		want := []Range{{end, tiles(l, 2, 5, 5).End}, tiles(l, 3, 3, 5), tiles(l, 4, 3, 5)}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: predicted %v, want %v (the rest of the tile and the block after it)", tc.name, got, want)
		}
	}
}
