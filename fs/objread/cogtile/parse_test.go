package cogtile

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// readerOf serves reads from b and counts them.
func readerOf(b []byte, calls *int) ReadFunc {
	return func(ctx context.Context, off, n int64) ([]byte, error) {
		if calls != nil {
			*calls++
		}
		if off < 0 || off > int64(len(b)) {
			return nil, fmt.Errorf("read at %d of a %d-byte file", off, len(b))
		}
		return b[off:min(off+n, int64(len(b)))], nil
	}
}

func parseBytes(t testing.TB, b []byte) (*Layout, error) {
	t.Helper()
	return Parse(context.Background(), readerOf(b, nil), int64(len(b)))
}

func parseFile(t *testing.T, path string) (*Layout, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := parseBytes(t, b)
	if err != nil {
		t.Fatalf("Parse(%s): %v", path, err)
	}
	return l, b
}

// checkTiles verifies every tile's range against the file: in bounds, and
// for a COG framed by GDAL's leader (the count as uint32) and trailer (the
// tile's last 4 bytes repeated), which only right offsets and counts give.
func checkTiles(t *testing.T, l *Layout, b []byte) {
	t.Helper()
	for i, im := range l.Images {
		if len(im.Offsets) != im.Across*im.Down*im.Planes || len(im.Counts) != len(im.Offsets) {
			t.Fatalf("image %d: %d offsets, %d counts for %d×%d×%d tiles", i, len(im.Offsets), len(im.Counts), im.Across, im.Down, im.Planes)
		}
		for j := range im.Offsets {
			r, ok := l.TileRange(i, j)
			if !ok {
				continue
			}
			if r.Off < l.HeaderEnd() || r.End > int64(len(b)) {
				t.Fatalf("image %d tile %d: %v outside [HeaderEnd %d, size %d)", i, j, r, l.HeaderEnd(), len(b))
			}
			if l.Leader == 4 {
				lead := binary.LittleEndian.Uint32(b[im.Offsets[j]-4:])
				if int64(lead) != im.Counts[j] {
					t.Fatalf("image %d tile %d: leader says %d bytes, TileByteCounts %d", i, j, lead, im.Counts[j])
				}
			}
			if l.Trailer == 4 {
				end := im.Offsets[j] + im.Counts[j]
				if !bytes.Equal(b[end-4:end], b[end:end+4]) {
					t.Fatalf("image %d tile %d: trailer does not repeat the last 4 bytes", i, j)
				}
			}
		}
	}
}

func TestParseFixtures(t *testing.T) {
	type img struct {
		w, h, tw, th, planes int
		mask                 bool
	}
	tests := []struct {
		file    string
		big     bool
		cog     bool
		images  []img
		wantHdr int64
	}{
		{"cog_100x80_b32.tif", false, true, []img{{100, 80, 32, 32, 1, false}, {50, 40, 128, 128, 1, false}, {25, 20, 128, 128, 1, false}}, 810},
		{"cog_mask_100x80_b32.tif", false, true, []img{
			{100, 80, 32, 32, 1, false}, {100, 80, 32, 32, 1, true},
			{50, 40, 128, 128, 1, false}, {25, 20, 128, 128, 1, false},
			{50, 40, 128, 128, 1, true}, {25, 20, 128, 128, 1, true}}, 1438},
		{"bigtiff_mm_planar_100x80_b16.tif", true, false, []img{{100, 80, 16, 16, 3, false}}, 1342},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			l, b := parseFile(t, filepath.Join("testdata", tt.file))
			if l.BigTIFF != tt.big || l.COG != tt.cog {
				t.Errorf("BigTIFF %v COG %v, want %v %v", l.BigTIFF, l.COG, tt.big, tt.cog)
			}
			if len(l.Images) != len(tt.images) {
				t.Fatalf("%d images, want %d", len(l.Images), len(tt.images))
			}
			for i, w := range tt.images {
				im := l.Images[i]
				got := img{im.Width, im.Height, im.TileWidth, im.TileHeight, im.Planes, im.Mask}
				if got != w {
					t.Errorf("image %d = %+v, want %+v", i, got, w)
				}
				if im.Across != (w.w+w.tw-1)/w.tw || im.Down != (w.h+w.th-1)/w.th {
					t.Errorf("image %d grid %d×%d", i, im.Across, im.Down)
				}
				if (im.Width < tt.images[0].w) != im.Reduced {
					t.Errorf("image %d: Reduced %v", i, im.Reduced)
				}
			}
			if l.HeaderEnd() != tt.wantHdr {
				t.Errorf("HeaderEnd %d, want %d", l.HeaderEnd(), tt.wantHdr)
			}
			checkTiles(t, l, b)
		})
	}
}

func TestParseNotTiled(t *testing.T) {
	for _, f := range []string{"striped.tif", "img.png"} {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", f))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := parseBytes(t, b); !errors.Is(err, ErrNotTiled) {
				t.Errorf("Parse = %v, want ErrNotTiled", err)
			}
		})
	}
	for _, b := range [][]byte{nil, []byte("II*"), []byte("hello, world, this is text"), []byte("MM\x00\x2cxxxxxxxxxxxx")} {
		if _, err := parseBytes(t, b); !errors.Is(err, ErrNotTiled) {
			t.Errorf("Parse(%q) = %v, want ErrNotTiled", b, err)
		}
	}
}

// TestParseTruncated: every prefix of a tiled TIFF that cuts its metadata
// is an error (never a panic, never a layout pointing past the end).
func TestParseTruncated(t *testing.T) {
	for _, f := range []string{"cog_100x80_b32.tif", "cog_mask_100x80_b32.tif", "bigtiff_mm_planar_100x80_b16.tif"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		full, err := parseBytes(t, b)
		if err != nil {
			t.Fatal(err)
		}
		for n := 0; n < len(b); n++ {
			l, err := parseBytes(t, b[:n])
			if err == nil && n < int(full.HeaderEnd()) {
				t.Fatalf("%s cut at %d (metadata ends at %d): no error", f, n, full.HeaderEnd())
			}
			if err == nil {
				// Cut within the tiles: the tiles that remain must fit.
				for i := range l.Images {
					for j := range l.Images[i].Offsets {
						if r, ok := l.TileRange(i, j); ok && r.End > int64(n) {
							t.Fatalf("%s cut at %d: tile %v past the end", f, n, r)
						}
					}
				}
			}
		}
	}
}

// TestParseReadError: a failing read is returned as is.
func TestParseReadError(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "cog_100x80_b32.tif"))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	read := func(ctx context.Context, off, n int64) ([]byte, error) {
		if off > 0 {
			return nil, boom
		}
		return b[:min(n, 100)], nil
	}
	if _, err := Parse(context.Background(), read, int64(len(b))); !errors.Is(err, boom) {
		t.Errorf("Parse = %v, want the read's error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Parse(ctx, readerOf(b, nil), int64(len(b))); !errors.Is(err, context.Canceled) {
		t.Errorf("Parse with a cancelled context = %v", err)
	}
}

// TestParseFewReads: a COG's metadata comes in one read when it fits in
// Parse's first chunk.
func TestParseFewReads(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "cog_mask_100x80_b32.tif"))
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	if _, err := Parse(context.Background(), readerOf(b, &calls), int64(len(b))); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("%d reads, want 1", calls)
	}
}

// hostile builds a classic little-endian TIFF with one IFD of the given
// entries (tag, type, count, value) and next-IFD offset.
func hostile(entries [][4]uint32, next uint32, pad int) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("II")
	binary.Write(&b, le, uint16(42))
	binary.Write(&b, le, uint32(8))
	binary.Write(&b, le, uint16(len(entries)))
	for _, e := range entries {
		binary.Write(&b, le, uint16(e[0]))
		binary.Write(&b, le, uint16(e[1]))
		binary.Write(&b, le, e[2])
		binary.Write(&b, le, e[3])
	}
	binary.Write(&b, le, next)
	b.Write(make([]byte, pad))
	return b.Bytes()
}

func TestParseHostile(t *testing.T) {
	tiled := func(w, tw, offs, cnt uint32) [][4]uint32 {
		return [][4]uint32{{256, 4, 1, w}, {257, 4, 1, w}, {322, 4, 1, tw}, {323, 4, 1, tw}, {324, 4, offs, 100}, {325, 4, cnt, 10}}
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"IFD loops to itself", hostile(tiled(16, 16, 1, 1), 8, 300)},
		{"a billion tiles", hostile(tiled(1<<31-1, 1, 1, 1), 0, 300)},
		{"offsets count past the end", hostile(tiled(16, 16, 1<<30, 1<<30), 0, 300)},
		{"fewer offsets than tiles", hostile(tiled(64, 16, 2, 2), 0, 300)},
		{"zero tile width", hostile(tiled(16, 0, 1, 1), 0, 300)},
		{"tile past the end", hostile([][4]uint32{{256, 4, 1, 16}, {257, 4, 1, 16}, {322, 4, 1, 16}, {323, 4, 1, 16}, {324, 4, 1, 1 << 30}, {325, 4, 1, 10}}, 0, 300)},
		{"next IFD past the end", hostile(tiled(16, 16, 1, 1), 1<<30, 300)},
		{"no tags at all", hostile(nil, 0, 10)},
		{"IFD entries past the end", hostile(tiled(16, 16, 1, 1), 0, 0)[:40]},
		{"neither tiles nor strips", hostile([][4]uint32{{256, 4, 1, 16}}, 0, 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := parseBytes(t, tt.b)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", l.Images)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse = %v, want ErrMalformed", err)
			}
			t.Log(err)
		})
	}
}

// gdal runs a GDAL tool, skipping the test when GDAL is not installed.
func gdal(t *testing.T, name string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not on PATH", name)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// TestParseGDAL parses files GDAL makes now: COGs, BigTIFF, big-endian,
// band-interleaved tiled GTiffs with external-less overviews, and a
// striped GTiff.
func TestParseGDAL(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.tif")
	gdal(t, "gdal_create", "-q", "-of", "GTiff", "-outsize", "1500", "1100", "-bands", "3", "-burn", "1", "-burn", "2", "-burn", "3", src)
	tests := []struct {
		name   string
		args   []string
		across int // tiles across the full-resolution image
		images int
		big    bool
		planes int
	}{
		{"cog-deflate-256", []string{"-of", "COG", "-co", "BLOCKSIZE=256", "-co", "COMPRESS=DEFLATE"}, 6, 4, false, 1},
		{"cog-bigtiff-512", []string{"-of", "COG", "-co", "BLOCKSIZE=512", "-co", "BIGTIFF=YES"}, 3, 3, true, 1},
		{"gtiff-tiled-mm-band", []string{"-of", "GTiff", "-co", "TILED=YES", "-co", "ENDIANNESS=BIG", "-co", "INTERLEAVE=BAND", "-co", "COMPRESS=LZW"}, 6, 1, false, 3},
		{"gtiff-bigtiff-tiled", []string{"-of", "GTiff", "-co", "TILED=YES", "-co", "BLOCKXSIZE=128", "-co", "BLOCKYSIZE=64", "-co", "BIGTIFF=YES"}, 12, 1, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, tt.name+".tif")
			gdal(t, "gdal_translate", append(append([]string{"-q"}, tt.args...), src, out)...)
			l, b := parseFile(t, out)
			if len(l.Images) != tt.images || l.BigTIFF != tt.big {
				t.Fatalf("%d images (BigTIFF %v), want %d (%v)", len(l.Images), l.BigTIFF, tt.images, tt.big)
			}
			im := l.Images[0]
			if im.Width != 1500 || im.Height != 1100 || im.Across != tt.across || im.Planes != tt.planes {
				t.Errorf("image 0: %d×%d, %d across, %d planes", im.Width, im.Height, im.Across, im.Planes)
			}
			checkTiles(t, l, b)
		})
	}
	t.Run("striped", func(t *testing.T) {
		out := filepath.Join(dir, "striped.tif")
		gdal(t, "gdal_translate", "-q", "-of", "GTiff", src, out)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parseBytes(t, b); !errors.Is(err, ErrNotTiled) {
			t.Errorf("Parse = %v, want ErrNotTiled", err)
		}
	})
}

// FuzzParse: no input makes Parse panic, loop or allocate without bound,
// and every layout it returns stays inside the file.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"cog_100x80_b32.tif", "cog_mask_100x80_b32.tif", "bigtiff_mm_planar_100x80_b16.tif", "striped.tif", "img.png"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(hostile([][4]uint32{{256, 4, 1, 16}, {257, 4, 1, 16}, {322, 4, 1, 16}, {323, 4, 1, 16}, {324, 4, 1, 100}, {325, 4, 1, 10}}, 8, 120))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := parseBytes(t, b)
		if err != nil {
			return
		}
		if l.HeaderEnd() > int64(len(b)) {
			t.Fatalf("HeaderEnd %d past the end %d", l.HeaderEnd(), len(b))
		}
		for i, im := range l.Images {
			if len(im.Offsets) != im.Across*im.Down*im.Planes {
				t.Fatalf("image %d: %d offsets for %d×%d×%d", i, len(im.Offsets), im.Across, im.Down, im.Planes)
			}
			for j := range im.Offsets {
				if r, ok := l.TileRange(i, j); ok && (r.Off < 0 || r.End > int64(len(b)) || r.End < r.Off) {
					t.Fatalf("tile %d/%d: %v outside %d bytes", i, j, r, len(b))
				}
			}
		}
		// Any read sequence over a parsed layout stays in bounds.
		p := l.NewPredictor()
		for off := int64(0); off < int64(len(b)); off += 97 {
			if r, ok := l.TileAt(off); ok && (off < r.Off || off >= r.End) {
				t.Fatalf("TileAt(%d) = %v", off, r)
			}
			for _, r := range p.Observe(off, off+300, 1<<20) {
				if r.Off < 0 || r.End > int64(len(b)) || r.End <= r.Off {
					t.Fatalf("predicted %v of a %d-byte file", r, len(b))
				}
			}
		}
	})
}

// TestParseStripedThumbnail: a striped IFD after a tiled one is left out;
// a striped first IFD makes the file not tiled.
func TestParseStripedThumbnail(t *testing.T) {
	tiledIFD := [][4]uint32{{256, 4, 1, 16}, {257, 4, 1, 16}, {322, 4, 1, 16}, {323, 4, 1, 16}, {324, 4, 1, 200}, {325, 4, 1, 10}}
	stripedIFD := [][4]uint32{{256, 4, 1, 16}, {257, 4, 1, 16}, {273, 4, 1, 200}, {279, 4, 1, 10}}
	// IFD 0 at 8 (2 + 6·12 + 4 = 78 bytes), IFD 1 at 86.
	b := hostile(tiledIFD, 86, 0)
	b = append(b, hostile(stripedIFD, 0, 300)[8:]...)
	l, err := parseBytes(t, b)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(l.Images) != 1 || l.Images[0].Offsets[0] != 200 {
		t.Errorf("images %+v, want the tiled one alone", l.Images)
	}
	// The other way round.
	b = hostile(stripedIFD, 0, 300)
	if _, err := parseBytes(t, b); !errors.Is(err, ErrNotTiled) {
		t.Errorf("striped first IFD: %v, want ErrNotTiled", err)
	}
}
