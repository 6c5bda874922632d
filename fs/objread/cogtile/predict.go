package cogtile

import (
	"cmp"
	"slices"
	"sort"
	"sync"
)

// How GDAL reads a tiled GeoTIFF from a local file (traced with strace,
// GDAL 3.6; the traces are in testdata/traces, see predict_test.go): after
// the header (the first 8 KiB of a COG) it reads each tile of a window with
// one read, leader and trailer included, row after row, left to right, in
// one image (full resolution or the overview that fits the output size).
// Nothing else is read between the tiles of a window. A band-interleaved
// (PLANARCONFIG=2) file is read window by window, band after band. A
// process that keeps GDAL's block cache (QGIS panning) reads only the new
// tiles: the new column top to bottom, or the new row left to right.
//
// The Predictor follows that order:
//
//   - the first tile of a window predicts the next ColsAhead (2) tiles of
//     its row and the RowsNear (2) rows below as wide: a 3×3 block whose
//     rows load in parallel, as GDAL's /vsis3/ loads a window's rows;
//   - every tile further along the first row, while the window's width is
//     unknown, predicts the ColsAhead-th tile after it and the RowsNear
//     tiles below it;
//   - when a read goes back to an earlier column of the next row, the
//     window's columns are known: the rest of that row and the whole next
//     row are predicted, and each later row start predicts the row after;
//   - a window that starts just beside the last one (a pan) predicts the
//     rest of its column (left/right) or row (up/down); one that starts
//     where the last one started, in another plane, predicts all of it.
//
// So a window's rows are fetched RowsAhead (1) row ahead, all tiles of a
// row at once: the price is the row after a window's last (never read),
// ColsAhead tiles past its first rows, and in a window less than 3 tiles
// tall the block's rows below it.
//
// A tile counts as read when reads covered half of it, or at once when a
// read that does not continue an earlier one (GDAL seeking) starts at it
// or a few pages before it (headSlack): the first is robust to the page a
// buffered reader, or the kernel's readahead, takes past the end of the
// tile GDAL wanted; the second predicts a round trip earlier, and then
// the rest of that tile comes in the GET of the tiles after it.

// touchAt is how much of a tile of n bytes reads must cover before the tile
// counts as read: half of it. What a buffered reader (4 KiB) or the
// kernel's readahead (up to MaxReadAhead) takes past the end of the tile
// GDAL wants must not look like GDAL moving on to the next tile. The kernel
// sends a tile's reads together, so waiting for half of them costs little.
func touchAt(n int64) int64 { return (n + 1) / 2 }

// pageSize: readers (stdio, the kernel) read whole pages.
const pageSize = 4096

// headSlack is how far before a tile a read GDAL seeks with may start and
// still be the read of that tile: the kernel starts it at a page boundary,
// and GDAL's look at the leader (and the trailer of the tile before)
// moves it a page or two earlier (seen: 7.3 KiB before a COG's tile).
const headSlack = 4 * pageSize

// mergeGap: predicted ranges closer than this, with no tile between them,
// are merged into one (the gap costs less than another request). GDAL's
// tiles are contiguous; this only bridges the padding other writers leave.
const mergeGap = 4 << 10

// tileRef locates one tile of a Layout.
type tileRef struct {
	img, plane, row, col int
}

// span is a tile's byte range, for the sorted index.
type span struct {
	off, end int64
	img, idx int
}

// index returns the Layout's tiles sorted by offset, built once.
func (l *Layout) index() []span {
	l.indexOnce.Do(func() {
		var s []span
		for i := range l.Images {
			for t := range l.Images[i].Offsets {
				if r, ok := l.TileRange(i, t); ok {
					s = append(s, span{r.Off, r.End, i, t})
				}
			}
		}
		sort.Slice(s, func(a, b int) bool { return s[a].off < s[b].off })
		l.spans = s
		// Each image's mask: the next mask image of the same grid.
		l.maskOf = make([]int, len(l.Images))
		for i := range l.Images {
			l.maskOf[i] = -1
			a := &l.Images[i]
			for j := i + 1; j < len(l.Images) && !a.Mask; j++ {
				b := &l.Images[j]
				if b.Mask && b.Width == a.Width && b.Height == a.Height && b.Across == a.Across && b.Down == a.Down && b.Planes == 1 {
					l.maskOf[i] = j
					break
				}
			}
		}
	})
	return l.spans
}

// Predictor follows one open handle's reads and predicts the next ones.
// It is not safe for concurrent use.
type Predictor struct {
	// RowsAhead is how many rows past the one being read are predicted
	// once a window's columns are known (0: 1). More hides more latency
	// in tall windows and costs as many rows past a window's end.
	RowsAhead int
	// ColsAhead is how many tiles past the one being read are predicted
	// along a window's first row, while its width is unknown (0: 2). The
	// first row is where latency shows: with 1, every tile of it waits
	// for a round trip.
	ColsAhead int
	// RowsNear is how many rows below a window's first tile are predicted
	// while its height is unknown (0: 2), as many tiles wide as ColsAhead
	// makes the first row: a window of GDAL's (a 1024² -srcwin, a QGIS
	// view) is several tiles tall, and its rows wait in turn otherwise.
	RowsNear int

	l *Layout
	// covered holds the parts of each tile that reads covered, keyed by
	// span index; touched marks tiles that counted as read, predicted the
	// tiles already returned by Observe.
	covered   map[int]*coverage
	touched   map[int]bool
	predicted map[int]bool

	// ends are where the last observed reads ended (a ring, nends written).
	ends  [16]int64
	nends int
	// The window being read, if any.
	active bool
	cur    window
}

// NewPredictor returns a Predictor for one open handle of the file.
func (l *Layout) NewPredictor() *Predictor {
	l.index()
	return &Predictor{
		l:         l,
		covered:   map[int]*coverage{},
		touched:   map[int]bool{},
		predicted: map[int]bool{},
	}
}

// Observe records a read [off, end) of the file and returns the byte
// ranges GDAL is expected to read next: whole tiles (with GDAL's leader and
// trailer), in file order, adjacent tiles merged into one range (and
// tiles less than 4 KiB apart when no other tile lies between), at most maxBytes in total (nearest tiles first), never a tile
// returned before nor one a read already touched. Reads of the header or
// of anything but tiles predict nothing.
func (p *Predictor) Observe(off, end int64, maxBytes int64) []Range {
	spans := p.l.index()
	if end <= off || len(spans) == 0 {
		return nil
	}
	var want []tileRef
	var self []Range
	// A read that does not continue the last one is GDAL seeking to what
	// it wants next: the tile whose start it covers is being read now (a
	// read running on from the last one into a tile's start may be a
	// buffer's or readahead's spill, and must cover half the tile).
	// go-fuse serves the pieces of one read in parallel, so "the last one"
	// is any of the last few.
	seek := !slices.Contains(p.ends[:], off)
	p.ends[p.nends%len(p.ends)] = end
	p.nends++
	// The first span that ends after off.
	i := sort.Search(len(spans), func(i int) bool { return spans[i].end > off })
	for ; i < len(spans) && spans[i].off < end; i++ {
		s := spans[i]
		n := min(end, s.end) - max(off, s.off)
		if n <= 0 {
			continue
		}
		if p.touched[i] {
			continue
		}
		c := p.covered[i]
		if c == nil {
			c = &coverage{}
			p.covered[i] = c
		}
		// Starts a few pages before the tile, or at its start (a buffered
		// reader reads whole pages), and covers its first data byte.
		head := seek && s.off-headSlack <= off && off <= s.off+p.l.Leader && s.off+p.l.Leader < end
		if c.add(Range{max(off, s.off), min(end, s.end)}) < touchAt(s.end-s.off) && !head {
			continue
		}
		delete(p.covered, i) // touched says it all from now on
		p.touched[i] = true
		if head && end < s.end && !p.predicted[i] && end-s.end+maxBytes >= 0 {
			// GDAL reads all of a tile it seeks to: the rest of it comes
			// with the tiles after it, in the same GET.
			p.predicted[i] = true
			self = append(self, Range{end, s.end})
			maxBytes -= s.end - end
		}
		want = append(want, p.touch(s)...)
	}
	return p.ranges(want, maxBytes, self)
}

// window is a window of tiles GDAL reads row by row in one image plane.
type window struct {
	img, plane int
	row0, col0 int // its first tile
	row, col   int // the last tile read
	// Once a read went back to the start of the next row the columns
	// [firstCol, endCol] are known; lastRow is its last row when known
	// (it repeats a window read in another plane), else -1.
	known            bool
	firstCol, endCol int
	lastRow          int
}

// extent returns the window's rows and columns as read so far.
func (w *window) extent() (r0, r1, c0, c1 int) {
	if w.known {
		return w.row0, w.row, w.firstCol, w.endCol
	}
	return w.row0, w.row, w.col0, w.col
}

// touch updates the window state for a tile read for the first time and
// returns the tiles it predicts, nearest first.
func (p *Predictor) touch(s span) []tileRef {
	im := &p.l.Images[s.img]
	per := im.Across * im.Down
	plane, row, col := s.idx/per, (s.idx%per)/im.Across, s.idx%im.Across
	if im.Mask {
		// A COG's mask tiles lie right after their image tiles and are
		// predicted with them (see ranges); reading one says nothing new.
		return nil
	}
	w := &p.cur
	same := p.active && w.img == s.img && w.plane == plane
	switch {
	case same && row == w.row && col > w.col:
		// Further along the row.
		w.col = col
		if w.known && col <= w.endCol {
			return nil
		}
		if w.known {
			w.endCol = col // the window is wider than it looked
			return p.below(w, row, col)
		}
		return p.near(s.img, plane, row, col, false)
	case same && row == w.row+1 && col <= w.col:
		// Back to the start of the next row: the window's columns are known.
		if !w.known {
			w.firstCol, w.endCol = min(col, w.col0), w.col
			w.known = true
		} else {
			w.firstCol = min(w.firstCol, col)
		}
		w.row, w.col = row, col
		out := p.rowOf(w, row, col+1)
		for r := row + 1; r <= row+p.rowsAhead() && (w.lastRow < 0 || r <= w.lastRow); r++ {
			out = append(out, p.rowOf(w, r, w.firstCol)...)
		}
		return out
	case same && row == w.row && col < w.col:
		return nil // out of order within the row: nothing new
	}
	return p.start(s.img, plane, row, col)
}

// start begins a new window at a tile, and predicts from how it lies
// against the window before it.
func (p *Predictor) start(img, plane, row, col int) []tileRef {
	prev, had := p.cur, p.active
	p.active = true
	p.cur = window{img: img, plane: plane, row0: row, col0: col, row: row, col: col, lastRow: -1}
	w := &p.cur
	if !had || prev.img != img {
		return p.near(img, plane, row, col, true)
	}
	r0, r1, c0, c1 := prev.extent()
	switch {
	case plane != prev.plane && row == r0 && col == c0 && prev.known:
		// The same window again in another plane (a band-interleaved
		// file read band after band): all of it is known.
		w.known, w.firstCol, w.endCol, w.lastRow = true, c0, c1, r1
		out := p.rowOf(w, row, col+1)
		for r := row + 1; r <= r1; r++ {
			out = append(out, p.rowOf(w, r, c0)...)
		}
		return out
	case plane == prev.plane && col >= c0 && col < c1 && (row == r1+1 || row == r0-1):
		// A row just below or above the last window, within its columns:
		// panning up or down reads that row (more rows come as a jump).
		w.known, w.firstCol, w.endCol = true, c0, c1
		return p.rowOf(w, row, col+1)
	case plane == prev.plane && row >= r0 && row < r1 && (col == c1+1 || col == c0-1):
		// A column just right or left of the last window, within its rows:
		// panning sideways (or diagonally) reads that column, top to bottom.
		w.known, w.firstCol, w.endCol, w.lastRow = true, col, col, r1
		var out []tileRef
		for r := row + 1; r <= r1; r++ {
			out = append(out, tileRef{img, plane, r, col})
		}
		return out
	}
	return p.near(img, plane, row, col, true)
}

func (p *Predictor) rowsAhead() int { return cmp.Or(p.RowsAhead, 1) }
func (p *Predictor) colsAhead() int { return cmp.Or(p.ColsAhead, 2) }
func (p *Predictor) rowsNear() int  { return cmp.Or(p.RowsNear, 2) }

// near is what a tile of a window whose extent is unknown predicts: the
// next ColsAhead tiles of its row and the RowsNear tiles below it; the
// window's first tile also the tiles below those, a block of
// (1+RowsNear)×(1+ColsAhead) tiles, nearest first. So the first rows of a
// window load in parallel, as /vsis3/ loads a window's rows, instead of
// one after another as GDAL reaches them.
func (p *Predictor) near(img, plane, row, col int, first bool) []tileRef {
	out := []tileRef{{img, plane, row, col + 1}, {img, plane, row + 1, col}}
	for c := col + 2; c <= col+p.colsAhead(); c++ {
		out = append(out, tileRef{img, plane, row, c})
	}
	for r := row + 1; r <= row+p.rowsNear(); r++ {
		out = append(out, tileRef{img, plane, r, col})
		for c := col + 1; first && c <= col+p.colsAhead(); c++ {
			out = append(out, tileRef{img, plane, r, c})
		}
	}
	return out
}

// below is the tile below (row, col) in w, unless w has no more rows.
func (p *Predictor) below(w *window, row, col int) []tileRef {
	if w.lastRow >= 0 && row+1 > w.lastRow {
		return nil
	}
	return []tileRef{{w.img, w.plane, row + 1, col}}
}

// rowOf is row of w from column from to the window's last column.
func (p *Predictor) rowOf(w *window, row, from int) []tileRef {
	var out []tileRef
	for c := from; c <= w.endCol; c++ {
		out = append(out, tileRef{w.img, w.plane, row, c})
	}
	return out
}

// ranges turns predicted tiles into merged byte ranges within maxBytes,
// leaving out tiles that do not exist, were read or were returned before.
// An image tile brings the tile of its mask at the same place, if any.
func (p *Predictor) ranges(want []tileRef, maxBytes int64, self []Range) []Range {
	out := self
	var total int64
	for _, t := range want {
		im := &p.l.Images[t.img]
		if t.row < 0 || t.row >= im.Down || t.col < 0 || t.col >= im.Across || t.plane >= im.Planes {
			continue
		}
		ids := [2][2]int{{t.img, im.Tile(t.plane, t.row, t.col)}, {-1, 0}}
		if m := p.l.maskOf[t.img]; m >= 0 && t.plane == 0 {
			ids[1] = [2]int{m, p.l.Images[m].Tile(0, t.row, t.col)}
		}
		for _, id := range ids {
			r, ok := p.l.TileRange(id[0], id[1])
			if !ok {
				continue
			}
			k := p.spanOf(r.Off)
			if k < 0 || p.predicted[k] || p.touched[k] {
				continue
			}
			// Leave out what reads took already (readahead into the tile).
			rest := p.covered[k].missing(r)
			var n int64
			for _, q := range rest {
				n += q.Len()
			}
			if total+n > maxBytes {
				return merge(out, p.padding)
			}
			total += n
			p.predicted[k] = true
			out = append(out, rest...)
		}
	}
	return merge(out, p.padding)
}

// TileAt returns the bytes (leader and trailer included) of the tile that
// holds byte off, and false when off is in no tile (the header, gaps).
// On a read that misses the cache inside a tile, fetching the whole tile
// at once saves the round trips of GDAL's next reads of it.
func (l *Layout) TileAt(off int64) (Range, bool) {
	spans := l.index()
	i := sort.Search(len(spans), func(i int) bool { return spans[i].off > off })
	if i == 0 || spans[i-1].end <= off {
		return Range{}, false
	}
	return Range{spans[i-1].off, spans[i-1].end}, true
}

// spanOf returns the index in the sorted tiles of the tile starting at off.
func (p *Predictor) spanOf(off int64) int {
	spans := p.l.spans
	i := sort.Search(len(spans), func(i int) bool { return spans[i].off >= off })
	if i < len(spans) && spans[i].off == off {
		return i
	}
	return -1
}

// merge sorts ranges and joins those that touch, and those whose gap
// bridge allows (nil: none).
func merge(rs []Range, bridge func(gap Range) bool) []Range {
	if len(rs) < 2 {
		return rs
	}
	sort.Slice(rs, func(a, b int) bool { return rs[a].Off < rs[b].Off })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Off <= last.End || bridge != nil && bridge(Range{last.End, r.Off}) {
			last.End = max(last.End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// padding reports whether a gap between two predicted ranges is short and
// holds no tile's bytes (padding some writers leave), so that fetching it
// with them costs little and returns nothing twice.
func (p *Predictor) padding(gap Range) bool {
	if gap.Len() > mergeGap {
		return false
	}
	spans := p.l.spans
	i := sort.Search(len(spans), func(i int) bool { return spans[i].off >= gap.End })
	// Spans are sorted by start: the one before i is the last that starts
	// before the gap ends; in a sane file it is the only one that can
	// reach into it.
	return i == 0 || spans[i-1].end <= gap.Off
}

// layoutIndex is embedded in Layout: the sorted tile index built by the
// first NewPredictor.
type layoutIndex struct {
	indexOnce sync.Once
	spans     []span
	maskOf    []int // index of each image's mask image, or -1
}

// coverage is the union of the parts of one tile that reads covered, as a
// few sorted, disjoint ranges.
type coverage struct {
	parts []Range
	sum   int64
}

// missing returns the parts of r not covered.
func (c *coverage) missing(r Range) []Range {
	if c == nil {
		return []Range{r}
	}
	var out []Range
	at := r.Off
	for _, q := range c.parts {
		if q.Off > at {
			out = append(out, Range{at, min(q.Off, r.End)})
		}
		at = max(at, q.End)
	}
	if at < r.End {
		out = append(out, Range{at, r.End})
	}
	return out
}

// maxParts bounds a tile's coverage list: reads that scatter more are
// merged with their neighbours (counting the gap as covered).
const maxParts = 16

// add records r and returns the bytes covered in all.
func (c *coverage) add(r Range) int64 {
	parts := append(c.parts, r)
	sort.Slice(parts, func(a, b int) bool { return parts[a].Off < parts[b].Off })
	out := parts[:1]
	for _, q := range parts[1:] {
		last := &out[len(out)-1]
		if q.Off <= last.End {
			last.End = max(last.End, q.End)
			continue
		}
		out = append(out, q)
	}
	for len(out) > maxParts {
		// Merge the pair with the smallest gap.
		best := 0
		for j := 1; j+1 < len(out); j++ {
			if out[j+1].Off-out[j].End < out[best+1].Off-out[best].End {
				best = j
			}
		}
		out[best].End = out[best+1].End
		out = append(out[:best+1], out[best+2:]...)
	}
	c.parts = out
	c.sum = 0
	for _, q := range out {
		c.sum += q.Len()
	}
	return c.sum
}
