package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/stacindex"
)

// TestReadPathShaped reads through a proxy shaped like S3 across a region
// (20 ms before every request, 50 MB/s per connection), as a user of a
// real bucket would: the first 64 KiB of never-opened files (one request
// each: the catalog gives file:size, so open sends no HEAD), a big object
// front to back, cold 64 KiB reads, and GDAL windows of a COG. Every byte
// is checked against the object.
func TestReadPathShaped(t *testing.T) {
	if _, err := exec.LookPath("gdal_translate"); err != nil {
		t.Skip("needs GDAL")
	}
	fs := newFaultStack(t, fixtures.Options{BigObjectSize: 96 << 20, BigCOGSide: 4096, LargeItems: -1})
	it := fs.cat.Collection(fixtures.BenchCollection).Items[0]
	cog := *it.Asset("visual")
	cogRel := []string{fixtures.BenchCollection, it.ID, stacindex.AssetFileName("visual", cog.Href, fixtures.COGType)}
	fs.s3.SetLatency(20 * time.Millisecond)
	fs.s3.SetRate(50e6)
	m := fs.mount(t)

	t.Run("FirstReadOneRequest", func(t *testing.T) {
		for _, c := range []struct {
			rel []string
			key string
		}{{fs.bigRel, fs.big.ObjectKey}, {cogRel, cog.ObjectKey}} {
			before := fs.s3.Requests.Load()
			start := time.Now()
			f, err := os.Open(m.path(c.rel...))
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64<<10)
			n, err := f.ReadAt(buf, 0)
			took := time.Since(start)
			f.Close()
			if err != nil || n != len(buf) {
				t.Fatalf("%s: first read: %d bytes, %v", c.key, n, err)
			}
			if reqs := fs.s3.Requests.Load() - before; reqs != 1 {
				t.Errorf("%s: open, first 64 KiB read, close sent %d requests to S3, want 1 (a ranged GET, no HEAD)", c.key, reqs)
			}
			if !bytes.Equal(buf, fs.want(t, c.key, 0, int64(len(buf)))) {
				t.Errorf("%s: first 64 KiB: wrong bytes", c.key)
			}
			t.Logf("%s: first 64 KiB in %v", c.key, took.Round(time.Millisecond))
		}
	})

	t.Run("Sequential", func(t *testing.T) {
		start := time.Now()
		sum, err := readAsset(m.path(fs.bigRel...))
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if sum != fs.big.SHA256 {
			t.Fatalf("sequential read: sha256 %s, want %s", sum, fs.big.SHA256)
		}
		t.Logf("sequential %d MiB in %v: %.0f MiB/s; %v", fs.big.Size>>20, took.Round(time.Millisecond), float64(fs.big.Size)/(1<<20)/took.Seconds(), readStats(t, m))
	})

	// A file streamed front to back does not stay in the page cache: as
	// the reader goes on, the pages it left 32 MiB behind are dropped
	// (memory for the next files); the last ones are kept.
	t.Run("StreamDropsPagesBehind", func(t *testing.T) {
		f, err := os.Open(m.path(fs.bigRel...))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		defer dropCache(f)
		h := sha256.New()
		if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		if sum := hex.EncodeToString(h.Sum(nil)); sum != fs.big.SHA256 {
			t.Fatalf("sha256 %s, want %s", sum, fs.big.SHA256)
		}
		head, tail := int64(32<<20), fs.big.Size-16<<20
		deadline := time.Now().Add(10 * time.Second)
		for resident(t, f, 0, head) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("10 s after a %d MiB stream: %d of the first 32 MiB's pages still cached, want none", fs.big.Size>>20, resident(t, f, 0, head))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got, want := resident(t, f, tail, 16<<20), 16<<20/os.Getpagesize(); got < want/2 {
			t.Errorf("the last 16 MiB read: %d of %d pages cached, want the reader's last pages kept", got, want)
		}
	})

	// TIFFs are read with direct I/O: GDAL's reads reach the mount as
	// made, so none of them fills the page cache, and the file still
	// maps (mmap readers such as tifffile).
	t.Run("TIFFDirectIO", func(t *testing.T) {
		f, err := os.Open(m.path(cogRel...))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 1<<20)
		if n, err := f.ReadAt(buf, 0); err != nil || n != len(buf) || !bytes.Equal(buf, fs.want(t, cog.ObjectKey, 0, int64(n))) {
			t.Fatalf("read of the COG's first MiB: %d bytes, %v (or wrong bytes)", n, err)
		}
		if n := resident(t, f, 0, 1<<20); n != 0 {
			t.Errorf("%d pages of the COG cached after a read, want none (direct I/O)", n)
		}
		off := cog.Size / 2 / int64(os.Getpagesize()) * int64(os.Getpagesize())
		b, err := unix.Mmap(int(f.Fd()), off, 256<<10, unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			t.Fatalf("mmap of the COG: %v", err)
		}
		defer func() { _ = unix.Munmap(b) }()
		if !bytes.Equal(b, fs.want(t, cog.ObjectKey, off, int64(len(b)))) {
			t.Errorf("the mapped COG's bytes at %d differ from the object's", off)
		}
	})

	t.Run("ColdReads", func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(11, 12))
		for range 8 {
			off := rnd.Int64N(fs.big.Size - 64<<10)
			f, err := os.Open(m.path(fs.bigRel...))
			if err != nil {
				t.Fatal(err)
			}
			dropCache(f)
			buf := make([]byte, 64<<10)
			n, err := f.ReadAt(buf, off)
			f.Close()
			if err != nil || n != len(buf) {
				t.Fatalf("read %d+64 KiB: %d bytes, %v", off, n, err)
			}
			if !bytes.Equal(buf, fs.want(t, fs.big.ObjectKey, off, int64(len(buf)))) {
				t.Fatalf("read %d+64 KiB: wrong bytes", off)
			}
		}
	})

	t.Run("GDALWindows", func(t *testing.T) {
		dir := t.TempDir()
		for i, win := range [][2]int{{0, 0}, {1536, 1024}, {3000, 2900}} {
			x, y := strconv.Itoa(win[0]), strconv.Itoa(win[1])
			got, want := filepath.Join(dir, "got"+strconv.Itoa(i)+".tif"), filepath.Join(dir, "want"+strconv.Itoa(i)+".tif")
			start := time.Now()
			if out, err := exec.Command("gdal_translate", "-q", "-srcwin", x, y, "1024", "1024", m.path(cogRel...), got).CombinedOutput(); err != nil {
				t.Fatalf("gdal_translate of the mounted COG: %v: %s", err, out)
			}
			took := time.Since(start)
			if out, err := exec.Command("gdal_translate", "-q", "-srcwin", x, y, "1024", "1024", cog.Path, want).CombinedOutput(); err != nil {
				t.Fatalf("gdal_translate of the local COG: %v: %s", err, out)
			}
			g, err1 := os.ReadFile(got)
			w, err2 := os.ReadFile(want)
			if err1 != nil || err2 != nil || !bytes.Equal(g, w) {
				t.Fatalf("window %v: the mounted COG's output differs from the local file's (%v, %v)", win, err1, err2)
			}
			t.Logf("window %v in %v", win, took.Round(time.Millisecond))
		}
		s := readStats(t, m)
		if s["tiled_objects"] != 1 || s["tile_prefetches"] == 0 {
			t.Errorf("stats %v: want the COG's layout parsed once and tiles prefetched", s)
		}
	})

	// A store across an ocean: once its GETs answer in FarLatency (40 ms)
	// or more, a new stream sends more, smaller parts (32 of up to 4 MiB)
	// in the same window. The bytes are the same.
	t.Run("SequentialFarStore", func(t *testing.T) {
		fs.s3.SetLatency(60 * time.Millisecond)
		// Cold 4 KiB reads of blocks not read before, 8 at a time, until
		// the mount's store latency (the least of its last 64 answers)
		// is the new one.
		next := int64(0)
		for round := 0; readStats(t, m)["first_byte_us"] < 45_000; round++ {
			if round == 5 {
				t.Fatalf("the mount's store latency stayed at %d µs over %d cold reads 60 ms away", readStats(t, m)["first_byte_us"], 5*64)
			}
			var wg sync.WaitGroup
			for range 8 {
				offs := make([]int64, 8)
				for k := range offs {
					offs[k] = (next*797 + 13) % (fs.big.Size/(128<<10) - 1) * (128 << 10) // scattered blocks, each once
					next++
				}
				wg.Go(func() {
					for _, off := range offs {
						if err := readCold(m.path(fs.bigRel...), off, 4<<10, fs.want(t, fs.big.ObjectKey, off, 4<<10)); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if t.Failed() {
				return
			}
		}
		before := readStats(t, m)
		f, err := os.Open(m.path(fs.bigRel...))
		if err != nil {
			t.Fatal(err)
		}
		dropCache(f) // the earlier passes' pages
		f.Close()
		start := time.Now()
		sum, err := readAsset(m.path(fs.bigRel...))
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if sum != fs.big.SHA256 {
			t.Fatalf("sequential read 60 ms away: sha256 %s, want %s", sum, fs.big.SHA256)
		}
		after := readStats(t, m)
		if after["far_streams"] == before["far_streams"] {
			t.Errorf("stats %v: the sequential read 60 ms away did not stream in the far shape", after)
		}
		t.Logf("sequential %d MiB 60 ms away in %v: %.0f MiB/s; %v", fs.big.Size>>20, took.Round(time.Millisecond), float64(fs.big.Size)/(1<<20)/took.Seconds(), after)
	})
}

// readCold reads n bytes at off of the file at path, its page cache
// dropped first, and compares them with want.
func readCold(path string, off, n int64, want []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dropCache(f)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, off); err != nil {
		return fmt.Errorf("read %d+%d: %w", off, n, err)
	}
	if !bytes.Equal(buf, want) {
		return fmt.Errorf("read %d+%d: wrong bytes", off, n)
	}
	return nil
}

// resident is how many pages of [off, off+n) of f the kernel's page cache
// holds (mincore of a shared mapping; the mapping faults nothing in).
func resident(t *testing.T, f *os.File, off, n int64) int {
	t.Helper()
	b, err := unix.Mmap(int(f.Fd()), off, int(n), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	defer func() { _ = unix.Munmap(b) }()
	vec := make([]byte, (len(b)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatalf("mincore: %v", e)
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	return in
}
