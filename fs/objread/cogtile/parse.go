// Package cogtile knows where the tiles of a tiled TIFF (GeoTIFF, COG) lie
// and predicts which of them GDAL will read next.
//
// Parse reads the TIFF header and every image file directory (IFD) through
// a caller-supplied read function and returns the Layout: per image (full
// resolution, overviews, masks, in file order) the tile grid and each
// tile's byte range. A Predictor, one per open handle, turns the reads it
// is told about into the byte ranges GDAL is expected to read next (see
// predict.go for the access patterns it knows).
//
// Parse treats its input as hostile: every count is capped by what the
// file's size allows, IFD chains are followed at most once per offset, and
// a malformed file gives an error, never a panic or an unbounded allocation.
// Files that are not TIFFs, or TIFFs with strips rather than tiles, give
// ErrNotTiled: the caller keeps its default read behaviour for them.
package cogtile

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// ErrNotTiled means the file is not a TIFF, or a TIFF whose images are
// striped rather than tiled: the caller keeps its default behaviour.
var ErrNotTiled = errors.New("not a tiled TIFF")

// ErrMalformed wraps every error about a TIFF that claims to be tiled but
// whose structure is broken (truncated, out of range, inconsistent).
var ErrMalformed = errors.New("malformed TIFF")

// Limits on what Parse accepts, beyond what the file's size allows.
const (
	maxIFDs      = 1024     // images in one file (full resolution, overviews, masks)
	maxTags      = 4096     // entries in one IFD
	maxAllTags   = 1 << 16  // entries in all IFDs together (hostile chains of overlapping IFDs)
	maxTiles     = 1 << 21  // tiles (times planes) of all images together: 32 MiB of offsets+counts
	chunkSize    = 64 << 10 // Parse's reads are at least this long: one read covers most COGs' metadata (28 KiB for 20000², 512² tiles, 6 overviews)
	maxChunks    = 16       // chunks Parse keeps while parsing (1 MiB)
	leaderBytes  = 4        // GDAL's BLOCK_LEADER=SIZE_AS_UINT4
	trailerBytes = 4        // GDAL's BLOCK_TRAILER=LAST_4_BYTES_REPEATED
)

// Range is the byte range [Off, End) of the file.
type Range struct{ Off, End int64 }

// Len is End-Off.
func (r Range) Len() int64 { return r.End - r.Off }

// Layout is what Parse learned about a tiled TIFF.
type Layout struct {
	// Images in file order: IFD 0 is the full-resolution image, then its
	// overviews (and masks, see Image.Mask). Striped IFDs after the first
	// (thumbnails) are left out.
	Images []Image
	// Size is the file's size as given to Parse.
	Size int64
	// BigTIFF is true for a BigTIFF (version 43) file.
	BigTIFF bool
	// Leader and Trailer are the bytes GDAL's COG writer puts before
	// (the tile's size as uint32) and after (the last 4 bytes repeated)
	// every tile, from the GDAL_STRUCTURAL_METADATA block; 0 otherwise.
	// Tile offsets and counts exclude them; TileRange includes them.
	Leader, Trailer int64
	// COG is true when the GDAL structural metadata says
	// LAYOUT=IFDS_BEFORE_DATA: every IFD and tag array precedes the tiles.
	COG bool

	headerEnd int64
	layoutIndex
}

// Image is one IFD of a tiled TIFF.
type Image struct {
	Width, Height         int
	TileWidth, TileHeight int
	Across, Down          int // tile columns and rows
	// Planes is 1 for chunky (PlanarConfiguration=1) images, where a tile
	// holds every band, and SamplesPerPixel for planar (=2) images, where
	// each band has its own Across×Down tiles, plane after plane.
	Planes int
	// Offsets and Counts of each tile: index (plane*Down+row)*Across+col.
	// A zero count is a sparse (absent) tile.
	Offsets, Counts []int64
	// Reduced is set for overviews (NewSubfileType bit 0), Mask for
	// transparency masks (bit 2).
	Reduced, Mask bool
	// SamplesPerPixel and Compression as tagged (informational).
	SamplesPerPixel, Compression int
}

// Tile returns the index of the tile at (plane, row, col) in Offsets.
func (im *Image) Tile(plane, row, col int) int {
	return (plane*im.Down+row)*im.Across + col
}

// HeaderEnd is the end of the header, IFD and tag-array area that Parse
// read, counted from byte 0: the end of the last piece of metadata that
// lies before the first tile. For a COG this is GDAL's "ghost area" plus
// all IFDs and tile offset/count arrays; reading [0, HeaderEnd) at open
// lets GDAL open the file without another request. For a TIFF whose IFDs
// follow the tiles it is the end of the 8- or 16-byte file header.
func (l *Layout) HeaderEnd() int64 { return l.headerEnd }

// TileRange returns the bytes of tile i of image im including GDAL's
// leader and trailer, and false for a sparse or out-of-range tile.
func (l *Layout) TileRange(im, i int) (Range, bool) {
	if im < 0 || im >= len(l.Images) {
		return Range{}, false
	}
	img := &l.Images[im]
	if i < 0 || i >= len(img.Offsets) || img.Counts[i] == 0 {
		return Range{}, false
	}
	off, end := img.Offsets[i]-l.Leader, img.Offsets[i]+img.Counts[i]+l.Trailer
	if off < 0 {
		off = 0
	}
	if end > l.Size {
		end = l.Size
	}
	return Range{off, end}, true
}

// ReadFunc reads n bytes at off. It may return fewer only at the end of
// the file.
type ReadFunc func(ctx context.Context, off, n int64) ([]byte, error)

// Parse reads the header and every IFD of a file of size bytes with read
// (called several times, with small ranges) and returns its tile layout.
// It returns ErrNotTiled for a file that is not a TIFF or whose images are
// not tiled, an error wrapping ErrMalformed for a broken TIFF, and read's
// error if a read fails.
func Parse(ctx context.Context, read ReadFunc, size int64) (*Layout, error) {
	p := &parser{ctx: ctx, read: read, size: size, tilesLeft: maxTiles, tagsLeft: maxAllTags}
	return p.parse()
}

type chunk struct {
	off  int64
	data []byte
}

type parser struct {
	ctx    context.Context
	read   ReadFunc
	size   int64
	bo     binary.ByteOrder
	big    bool
	chunks []chunk // recently read ranges, newest last
	meta   []Range // metadata pieces (header, IFDs, tag arrays)
	// tilesLeft caps the tiles of all images together, so that IFDs
	// sharing one huge offsets array cannot multiply the allocation.
	tilesLeft int64
	tagsLeft  int64 // likewise for IFD entries
}

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// bytes returns n bytes at off, reading through the chunk cache.
func (p *parser) bytes(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 || off > p.size || n > p.size-off {
		return nil, malformed("range [%d,+%d) outside the file's %d bytes", off, n, p.size)
	}
	for _, c := range p.chunks {
		if off >= c.off && off+n <= c.off+int64(len(c.data)) {
			return c.data[off-c.off : off-c.off+n], nil
		}
	}
	want := max(n, chunkSize)
	if want > p.size-off {
		want = p.size - off
	}
	if err := p.ctx.Err(); err != nil {
		return nil, err
	}
	b, err := p.read(p.ctx, off, want)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) < n {
		return nil, malformed("short read at %d: %d of %d bytes", off, len(b), n)
	}
	if int64(len(b)) > want {
		b = b[:want]
	}
	if n <= chunkSize {
		if len(p.chunks) == maxChunks {
			p.chunks = p.chunks[1:]
		}
		p.chunks = append(p.chunks, chunk{off, b})
	}
	return b[:n], nil
}

func (p *parser) parse() (*Layout, error) {
	if p.size < 8 {
		return nil, ErrNotTiled
	}
	h, err := p.bytes(0, min(16, p.size))
	if err != nil {
		return nil, err
	}
	switch string(h[:2]) {
	case "II":
		p.bo = binary.LittleEndian
	case "MM":
		p.bo = binary.BigEndian
	default:
		return nil, ErrNotTiled
	}
	var first int64
	switch p.bo.Uint16(h[2:]) {
	case 42:
		first = int64(p.bo.Uint32(h[4:]))
		p.meta = append(p.meta, Range{0, 8})
	case 43:
		if len(h) < 16 || p.bo.Uint16(h[4:]) != 8 || p.bo.Uint16(h[6:]) != 0 {
			return nil, malformed("BigTIFF header")
		}
		p.big = true
		u := p.bo.Uint64(h[8:])
		if u > uint64(p.size) {
			return nil, malformed("first IFD at %d past the end (%d)", u, p.size)
		}
		first = int64(u) // #nosec G115 -- u <= p.size, checked above
		p.meta = append(p.meta, Range{0, 16})
	default:
		return nil, ErrNotTiled
	}
	l := &Layout{Size: p.size, BigTIFF: p.big}
	p.structural(l)

	seen := map[int64]bool{}
	for off := first; off != 0; {
		if seen[off] {
			return nil, malformed("IFD chain loops at %d", off)
		}
		if len(seen) == maxIFDs {
			return nil, malformed("more than %d IFDs", maxIFDs)
		}
		seen[off] = true
		img, next, err := p.ifd(off)
		switch {
		case errors.Is(err, ErrNotTiled) && len(l.Images) > 0:
			// A striped image after tiled ones (a thumbnail): not ours.
		case err != nil:
			return nil, err
		default:
			l.Images = append(l.Images, img)
		}
		off = next
	}
	if len(l.Images) == 0 {
		return nil, malformed("no IFD")
	}
	l.headerEnd = p.headerEnd(l)
	return l, nil
}

// structural reads GDAL's structural metadata, which a COG writer puts
// right after the 8-byte header: "GDAL_STRUCTURAL_METADATA_SIZE=%06d
// bytes\n" then KEY=VALUE lines. Absent or unreadable, it changes nothing.
func (p *parser) structural(l *Layout) {
	hl := int64(8)
	if p.big {
		hl = 16
	}
	const prefix = "GDAL_STRUCTURAL_METADATA_SIZE="
	const headLen = int64(len(prefix) + 6 + len(" bytes\n"))
	if p.size < hl+headLen {
		return
	}
	b, err := p.bytes(hl, headLen)
	if err != nil || !strings.HasPrefix(string(b), prefix) {
		return
	}
	var n int64
	for _, c := range b[len(prefix) : len(prefix)+6] {
		if c < '0' || c > '9' {
			return
		}
		n = n*10 + int64(c-'0')
	}
	if n > 4096 || hl+headLen+n > p.size {
		return
	}
	body, err := p.bytes(hl+headLen, n)
	if err != nil {
		return
	}
	p.meta = append(p.meta, Range{hl, hl + headLen + n})
	for _, line := range strings.Split(string(body), "\n") {
		switch strings.TrimSpace(line) {
		case "LAYOUT=IFDS_BEFORE_DATA":
			l.COG = true
		case "BLOCK_LEADER=SIZE_AS_UINT4":
			l.Leader = leaderBytes
		case "BLOCK_TRAILER=LAST_4_BYTES_REPEATED":
			l.Trailer = trailerBytes
		}
	}
}

// TIFF tags and field types Parse uses.
const (
	tagNewSubfileType  = 254
	tagImageWidth      = 256
	tagImageLength     = 257
	tagCompression     = 259
	tagStripOffsets    = 273
	tagSamplesPerPixel = 277
	tagStripByteCounts = 279
	tagPlanarConfig    = 284
	tagTileWidth       = 322
	tagTileLength      = 323
	tagTileOffsets     = 324
	tagTileByteCounts  = 325

	typeByte   = 1
	typeShort  = 3
	typeLong   = 4
	typeIFD    = 13
	typeLong8  = 16
	typeIFD8   = 18
	typeSLong8 = 17
)

// typeSize is the size in bytes of one value of each TIFF field type (0
// for unknown types).
func typeSize(t uint16) int64 {
	switch t {
	case 1, 2, 6, 7:
		return 1
	case 3, 8:
		return 2
	case 4, 9, 11, 13:
		return 4
	case 5, 10, 12, 16, 17, 18:
		return 8
	}
	return 0
}

// entry is one IFD entry whose value is either inline or at off.
type entry struct {
	tag, typ uint16
	count    int64
	inline   []byte // the value field, when the value fits in it
	off      int64  // where the value is, when it does not
}

func (p *parser) ifd(off int64) (Image, int64, error) {
	var img Image
	countLen, entLen, nextLen := int64(2), int64(12), int64(4)
	if p.big {
		countLen, entLen, nextLen = 8, 20, 8
	}
	b, err := p.bytes(off, countLen)
	if err != nil {
		return img, 0, err
	}
	var n int64
	if p.big {
		u := p.bo.Uint64(b)
		if u > maxTags {
			return img, 0, malformed("IFD at %d has %d entries", off, u)
		}
		n = int64(u)
	} else {
		n = int64(p.bo.Uint16(b))
	}
	if n == 0 || n > maxTags {
		return img, 0, malformed("IFD at %d has %d entries", off, n)
	}
	if p.tagsLeft -= n; p.tagsLeft < 0 {
		return img, 0, malformed("more than %d IFD entries in all", maxAllTags)
	}
	body, err := p.bytes(off+countLen, n*entLen+nextLen)
	if err != nil {
		return img, 0, err
	}
	p.meta = append(p.meta, Range{off, off + countLen + n*entLen + nextLen})
	entries := map[uint16]entry{}
	for i := int64(0); i < n; i++ {
		e := body[i*entLen : (i+1)*entLen]
		var en entry
		en.tag, en.typ = p.bo.Uint16(e), p.bo.Uint16(e[2:])
		var cnt uint64
		var val []byte
		if p.big {
			cnt, val = p.bo.Uint64(e[4:]), e[12:20]
		} else {
			cnt, val = uint64(p.bo.Uint32(e[4:])), e[8:12]
		}
		ts := typeSize(en.typ)
		if ts == 0 {
			continue // unknown type: a reader must skip it
		}
		if cnt > uint64(p.size) { // #nosec G115 -- p.size >= 8: parse refuses smaller files
			return img, 0, malformed("tag %d at IFD %d: %d values in a %d-byte file", en.tag, off, cnt, p.size)
		}
		en.count = int64(cnt) // #nosec G115 -- cnt <= p.size, checked above
		if en.count*ts <= int64(len(val)) {
			en.inline = val
		} else {
			var o uint64
			if p.big {
				o = p.bo.Uint64(val)
			} else {
				o = uint64(p.bo.Uint32(val))
			}
			if o > uint64(p.size) || en.count*ts > p.size-int64(o) { // #nosec G115 -- p.size >= 8; o <= p.size before int64(o)
				return img, 0, malformed("tag %d at IFD %d: values [%d,+%d) past the end (%d)", en.tag, off, o, en.count*ts, p.size)
			}
			en.off = int64(o) // #nosec G115 -- o <= p.size, checked above
			p.meta = append(p.meta, Range{en.off, en.off + en.count*ts})
		}
		entries[en.tag] = en
	}
	nb := body[n*entLen:]
	var next int64
	if p.big {
		u := p.bo.Uint64(nb)
		if u > uint64(p.size) { // #nosec G115 -- p.size >= 8: parse refuses smaller files
			return img, 0, malformed("next IFD at %d past the end (%d)", u, p.size)
		}
		next = int64(u) // #nosec G115 -- u <= p.size, checked above
	} else {
		next = int64(p.bo.Uint32(nb))
		if next > p.size {
			return img, 0, malformed("next IFD at %d past the end (%d)", next, p.size)
		}
	}
	err = p.image(&img, entries, off)
	return img, next, err
}

// scalar returns the first value of an integer tag, or def when absent.
func (p *parser) scalar(entries map[uint16]entry, tag uint16, def int64) (int64, error) {
	e, ok := entries[tag]
	if !ok || e.count == 0 {
		return def, nil
	}
	v, err := p.values(e, 1)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// values reads the first n integer values of e.
func (p *parser) values(e entry, n int64) ([]int64, error) {
	ts := typeSize(e.typ)
	switch e.typ {
	case typeByte, typeShort, typeLong, typeIFD, typeLong8, typeIFD8, typeSLong8:
	default:
		return nil, malformed("tag %d has non-integer type %d", e.tag, e.typ)
	}
	if n > e.count {
		return nil, malformed("tag %d has %d values, want %d", e.tag, e.count, n)
	}
	raw := e.inline
	if raw == nil {
		var err error
		if raw, err = p.bytes(e.off, n*ts); err != nil {
			return nil, err
		}
	}
	out := make([]int64, n)
	for i := range out {
		b := raw[int64(i)*ts:]
		var u uint64
		switch ts {
		case 1:
			u = uint64(b[0])
		case 2:
			u = uint64(p.bo.Uint16(b))
		case 4:
			u = uint64(p.bo.Uint32(b))
		case 8:
			u = p.bo.Uint64(b)
		}
		if u > 1<<62 {
			return nil, malformed("tag %d value %d out of range", e.tag, u)
		}
		out[i] = int64(u)
	}
	return out, nil
}

func (p *parser) image(img *Image, entries map[uint16]entry, at int64) error {
	if _, ok := entries[tagTileOffsets]; !ok {
		if _, striped := entries[tagStripOffsets]; striped {
			return ErrNotTiled
		}
		if _, striped := entries[tagStripByteCounts]; striped {
			return ErrNotTiled
		}
		return malformed("IFD at %d has neither tiles nor strips", at)
	}
	var err error
	get := func(tag uint16, def int64) int64 {
		v, e := p.scalar(entries, tag, def)
		if e != nil {
			if err == nil {
				err = e
			}
		}
		return v
	}
	w, h := get(tagImageWidth, 0), get(tagImageLength, 0)
	tw, th := get(tagTileWidth, 0), get(tagTileLength, 0)
	spp, planar := get(tagSamplesPerPixel, 1), get(tagPlanarConfig, 1)
	sub, comp := get(tagNewSubfileType, 0), get(tagCompression, 1)
	if err != nil {
		return err
	}
	const maxDim = 1 << 31
	if w <= 0 || h <= 0 || tw <= 0 || th <= 0 || w >= maxDim || h >= maxDim || tw >= maxDim || th >= maxDim {
		return malformed("IFD at %d: image %d×%d, tiles %d×%d", at, w, h, tw, th)
	}
	if spp <= 0 || spp > 65535 {
		return malformed("IFD at %d: %d samples per pixel", at, spp)
	}
	planes := int64(1)
	if planar == 2 {
		planes = spp
	}
	across, down := (w+tw-1)/tw, (h+th-1)/th
	// across·down ≤ 2^62; the product with planes is only taken below the cap.
	if across*down > maxTiles || across*down*planes > p.tilesLeft {
		return malformed("IFD at %d: too many tiles (%d×%d×%d)", at, across, down, planes)
	}
	tiles := across * down * planes
	p.tilesLeft -= tiles
	offE, cntE := entries[tagTileOffsets], entries[tagTileByteCounts]
	if _, ok := entries[tagTileByteCounts]; !ok {
		return malformed("IFD at %d: TileOffsets without TileByteCounts", at)
	}
	if offE.count < tiles || cntE.count < tiles {
		return malformed("IFD at %d: %d tiles but %d offsets and %d counts", at, tiles, offE.count, cntE.count)
	}
	offs, err := p.values(offE, tiles)
	if err != nil {
		return err
	}
	cnts, err := p.values(cntE, tiles)
	if err != nil {
		return err
	}
	for i := range offs {
		if cnts[i] != 0 && (offs[i] > p.size || cnts[i] > p.size-offs[i]) {
			return malformed("IFD at %d: tile %d [%d,+%d) past the end (%d)", at, i, offs[i], cnts[i], p.size)
		}
	}
	*img = Image{
		Width: int(w), Height: int(h), TileWidth: int(tw), TileHeight: int(th),
		Across: int(across), Down: int(down), Planes: int(planes),
		Offsets: offs, Counts: cnts,
		Reduced: sub&1 != 0, Mask: sub&4 != 0,
		SamplesPerPixel: int(spp), Compression: int(comp),
	}
	return nil
}

// headerEnd is the end of the metadata that lies before the first tile,
// extended while pieces touch or overlap (small gaps of padding are
// bridged: GDAL aligns some arrays).
func (p *parser) headerEnd(l *Layout) int64 {
	first := p.size
	for i := range l.Images {
		im := &l.Images[i]
		for j, o := range im.Offsets {
			if im.Counts[j] != 0 && o-l.Leader < first {
				first = o - l.Leader
			}
		}
	}
	var end int64
	for _, m := range p.meta {
		if m.Off < first && m.End > end {
			end = min(m.End, first)
		}
	}
	return end
}
