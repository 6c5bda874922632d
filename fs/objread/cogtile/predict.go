package cogtile

import (
	"sort"
	"sync"
)

// How GDAL reads a tiled GeoTIFF from a local file (traced with strace,
// GDAL 3.6, see predict_test.go): after the header (the first 4–8 KiB of a
// COG) it reads each tile of a window with one read, leader and trailer
// included, row after row, left to right, in one image (full resolution
// or the overview that fits the output size). Nothing else is read between
// the tiles of a window. The Predictor follows that order:
//
//   - the first tile of a window predicts the next tile of its row and
//     the tile below it;
//   - while the first row's extent is unknown, every tile further along the
//     row does the same;
//   - when a read jumps back to an earlier column of the next row, the
//     window's columns are known: the rest of that row and the whole next
//     row are predicted, and each later row start predicts the row after.
//
// So a window's rows are fetched one row ahead, all tiles of a row at once.

// touchAt is how much of a tile of n bytes reads must cover before the tile
// counts as read: half of it. What a buffered reader (4 KiB) or the
// kernel's readahead (up to MaxReadAhead) takes past the end of the tile
// GDAL wants must not look like GDAL moving on to the next tile. The kernel
// sends a tile's reads together, so waiting for half of them costs little.
func touchAt(n int64) int64 { return (n + 1) / 2 }

// mergeGap: predicted ranges closer than this are merged into one (the gap
// costs less than another request). GDAL's COG tiles are contiguous; this
// only bridges the padding other writers leave.
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
	})
	return l.spans
}

// Predictor follows one open handle's reads and predicts the next ones.
// It is not safe for concurrent use.
type Predictor struct {
	l *Layout
	// covered holds the parts of each tile that reads covered, keyed by
	// span index; touched marks tiles that counted as read, predicted the
	// tiles already returned by Observe.
	covered   map[int]*coverage
	touched   map[int]bool
	predicted map[int]bool

	// The window being read: image and plane, the last tile read, the
	// first column of the current row, and once known the window's columns.
	active           bool
	img, plane       int
	row, col         int
	rowStart         int
	known            bool
	firstCol, endCol int // window columns [firstCol, endCol] once known
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
// trailer), in file order, tiles less than 4 KiB apart merged into one
// range, at most maxBytes in total (nearest tiles first), never a tile
// returned before nor one a read already touched. Reads of the header or
// of anything but tiles predict nothing.
func (p *Predictor) Observe(off, end int64, maxBytes int64) []Range {
	spans := p.l.index()
	if end <= off || len(spans) == 0 {
		return nil
	}
	var want []tileRef
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
		if c.add(Range{max(off, s.off), min(end, s.end)}) < touchAt(s.end-s.off) {
			continue
		}
		delete(p.covered, i) // touched says it all from now on
		p.touched[i] = true
		want = append(want, p.touch(s)...)
	}
	return p.ranges(want, maxBytes)
}

// touch updates the window state for a tile read for the first time and
// returns the tiles it predicts, nearest first.
func (p *Predictor) touch(s span) []tileRef {
	im := &p.l.Images[s.img]
	per := im.Across * im.Down
	plane, row, col := s.idx/per, (s.idx%per)/im.Across, s.idx%im.Across
	if im.Mask {
		// GDAL reads a mask tile beside the image tile it goes with: the
		// image tiles predict nothing for masks, masks predict nothing.
		return nil
	}
	same := p.active && p.img == s.img && p.plane == plane
	switch {
	case same && row == p.row && col > p.col:
		// Further along the row.
		p.col = col
		if p.known && col <= p.endCol {
			return nil
		}
		if p.known {
			p.endCol = col // the window is wider than it looked
		}
		return p.near(s.img, plane, row, col)
	case same && row == p.row+1 && col <= p.col:
		// Back to the start of the next row: the window's columns are known.
		if !p.known {
			p.firstCol, p.endCol = min(col, p.rowStart), p.col
			p.known = true
		} else {
			p.firstCol = min(p.firstCol, col)
		}
		p.row, p.col, p.rowStart = row, col, col
		var out []tileRef
		for c := col + 1; c <= p.endCol; c++ {
			out = append(out, tileRef{s.img, plane, row, c})
		}
		for c := p.firstCol; c <= p.endCol; c++ {
			out = append(out, tileRef{s.img, plane, row + 1, c})
		}
		return out
	case same && row == p.row && col < p.col:
		return nil // out of order within the row: nothing new
	}
	// A new window.
	p.active, p.img, p.plane = true, s.img, plane
	p.row, p.col, p.rowStart = row, col, col
	p.known = false
	return p.near(s.img, plane, row, col)
}

// near is the next tile of the row and the tile below.
func (p *Predictor) near(img, plane, row, col int) []tileRef {
	return []tileRef{{img, plane, row, col + 1}, {img, plane, row + 1, col}}
}

// ranges turns predicted tiles into merged byte ranges within maxBytes,
// leaving out tiles that do not exist, were read or were returned before.
// For a planar image every plane's tile at the same place is predicted.
func (p *Predictor) ranges(want []tileRef, maxBytes int64) []Range {
	var out []Range
	var total int64
	for _, t := range want {
		im := &p.l.Images[t.img]
		if t.row < 0 || t.row >= im.Down || t.col < 0 || t.col >= im.Across {
			continue
		}
		for pl := 0; pl < im.Planes; pl++ {
			if im.Planes > 1 && pl != t.plane && t.plane != 0 {
				// Only the first plane's reads predict the other planes.
				continue
			}
			r, ok := p.l.TileRange(t.img, im.Tile(pl, t.row, t.col))
			if !ok {
				continue
			}
			k := p.spanOf(r.Off)
			if k < 0 || p.predicted[k] || p.touched[k] || p.covered[k] != nil {
				continue
			}
			if total+r.Len() > maxBytes {
				return merge(out)
			}
			total += r.Len()
			p.predicted[k] = true
			out = append(out, r)
		}
	}
	return merge(out)
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

// merge sorts ranges and joins those that touch or lie within mergeGap.
func merge(rs []Range) []Range {
	if len(rs) < 2 {
		return rs
	}
	sort.Slice(rs, func(a, b int) bool { return rs[a].Off < rs[b].Off })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Off <= last.End+mergeGap {
			last.End = max(last.End, r.End)
			continue
		}
		out = append(out, r)
	}
	return out
}

// layoutIndex is embedded in Layout: the sorted tile index built by the
// first NewPredictor.
type layoutIndex struct {
	indexOnce sync.Once
	spans     []span
}

// coverage is the union of the parts of one tile that reads covered, as a
// few sorted, disjoint ranges.
type coverage struct {
	parts []Range
	total int64
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
	c.total = 0
	for _, q := range out {
		c.total += q.Len()
	}
	return c.total
}
