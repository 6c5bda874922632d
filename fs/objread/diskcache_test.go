package objread

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// newDiskPF returns a Prefetcher over f with a fresh in-memory cache and a
// disk cache in dir of capacity bytes (a new process, as far as the read
// path knows).
func newDiskPF(t *testing.T, f *fakeStore, dir string, capacity int64) (*Prefetcher, *DiskCache) {
	t.Helper()
	return newDiskPFQueue(t, f, dir, capacity, diskQueueLen)
}

// newDiskPFQueue is newDiskPF with a write queue of queueLen blocks.
func newDiskPFQueue(t *testing.T, f *fakeStore, dir string, capacity int64, queueLen int) (*Prefetcher, *DiskCache) {
	t.Helper()
	dc, err := openDiskCache(dir, capacity, nil, queueLen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Close() })
	dc.waitScanned()
	bc := NewBlockCache(0, 0)
	bc.SetDisk(dc)
	return NewPrefetcher(f, Config{}, nil, bc), dc
}

// gdalPattern reads obj the way GDAL reads a COG: a header at the start
// (FirstRead through the block cache), then tiles, one open each.
func gdalPattern(t *testing.T, f *fakeStore, pf *Prefetcher, obj Object) {
	t.Helper()
	r := pf.Open(obj)
	readAt(t, f, r, obj, 0, 16*KiB)
	readAt(t, f, r, obj, 16*KiB, 48*KiB)
	r.Close()
	for _, off := range []int64{3*MiB + 5000, 7 * MiB, 11*MiB + 300*KiB, obj.Size - 50*KiB} {
		r := pf.Open(obj)
		readAt(t, f, r, obj, off, 100*KiB)
		r.Close()
	}
}

// settle waits until pf's part fetches and block loads are done (a read
// does not wait for the readahead blocks loaded beside it, nor for its
// part's blocks to be queued for disk) and their blocks are on disk.
func settle(pf *Prefetcher, dc *DiskCache) {
	pf.fetches.Wait()
	for {
		pf.cache.mu.Lock()
		n := len(pf.cache.loading)
		pf.cache.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	dc.flush()
}

// blockFiles lists the cache's block files.
func blockFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "v1", "[0-9a-f][0-9a-f]", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// A second session on the same cache directory reads what the first
// fetched from disk, without a request to the store.
func TestDiskCacheServesNextSession(t *testing.T) {
	f := newFakeStore()
	obj := f.put("cog.tif", 12*MiB+777, `"e1"`)
	dir := t.TempDir()

	pf1, dc1 := newDiskPF(t, f, dir, 0)
	gdalPattern(t, f, pf1, obj)
	settle(pf1, dc1)
	s1 := pf1.Stats().Snapshot()
	if s1.DiskBytesWritten == 0 || s1.DiskHits != 0 {
		t.Fatalf("first session: %+v, want bytes written to disk and no disk hits", s1)
	}
	if n := len(blockFiles(t, dir)); n == 0 {
		t.Fatalf("%d block files after the first session", n)
	}
	dc1.Close()
	before := len(f.requests())

	pf2, dc2 := newDiskPF(t, f, dir, 0)
	gdalPattern(t, f, pf2, obj)
	settle(pf2, dc2)
	s2 := pf2.Stats().Snapshot()
	if n := len(f.requests()) - before; n != 0 {
		t.Errorf("second session sent %d requests, want 0 (stats %+v)", n, s2)
	}
	if s2.DiskHits == 0 || s2.DiskMisses != 0 || s2.Requests != 0 {
		t.Errorf("second session stats %+v, want disk hits only", s2)
	}
	if s2.DiskBytesWritten != 0 {
		t.Errorf("second session wrote %d bytes to disk, want 0", s2.DiskBytesWritten)
	}
}

// A corrupted, truncated, emptied, misnamed or deleted block file is a
// miss: the block is fetched again (and rewritten), the bytes are right.
func TestDiskCacheDamagedFilesRefetch(t *testing.T) {
	f := newFakeStore()
	obj := f.put("cog.tif", 12*MiB+777, `"e1"`)
	dir := t.TempDir()
	pf1, dc1 := newDiskPF(t, f, dir, 0)
	gdalPattern(t, f, pf1, obj)
	settle(pf1, dc1)
	dc1.Close()

	files := blockFiles(t, dir)
	if len(files) < 6 {
		t.Fatalf("%d block files, want at least 6", len(files))
	}
	damage := []func(p string) error{
		func(p string) error { // one bit flipped in the data
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 1
			return os.WriteFile(p, b, 0o600)
		},
		func(p string) error { return os.Truncate(p, 1000) },
		func(p string) error { return os.Truncate(p, 0) },
		func(p string) error { return os.Remove(p) },
		func(p string) error { // a valid block of another key under this name
			b, err := os.ReadFile(files[len(files)-1])
			if err != nil {
				return err
			}
			return os.WriteFile(p, b, 0o600)
		},
		func(p string) error { // one byte more
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, append(b, 0), 0o600)
		},
	}
	for i, d := range damage {
		if err := d(files[i]); err != nil {
			t.Fatal(err)
		}
	}

	before := len(f.requests())
	pf2, dc2 := newDiskPF(t, f, dir, 0)
	gdalPattern(t, f, pf2, obj) // readAt checks every byte
	settle(pf2, dc2)
	s2 := pf2.Stats().Snapshot()
	if s2.DiskMisses != int64(len(damage)) {
		t.Errorf("%d disk misses, want %d (one per damaged file); stats %+v", s2.DiskMisses, len(damage), s2)
	}
	if len(f.requests()) == before {
		t.Errorf("no request for the damaged blocks")
	}
	dc2.Close()

	// The damaged blocks were written again: a third session needs nothing.
	before = len(f.requests())
	pf3, _ := newDiskPF(t, f, dir, 0)
	gdalPattern(t, f, pf3, obj)
	if n := len(f.requests()) - before; n != 0 {
		t.Errorf("third session sent %d requests, want 0 (stats %+v)", n, pf3.Stats().Snapshot())
	}
}

// A new ETag (or size) is a different key: the old blocks are not served.
func TestDiskCacheChangedETagMisses(t *testing.T) {
	f := newFakeStore()
	obj := f.put("cog.tif", 4*MiB, `"e1"`)
	dir := t.TempDir()
	pf1, dc1 := newDiskPF(t, f, dir, 0)
	gdalPattern(t, f, pf1, obj)
	settle(pf1, dc1)
	dc1.Close()

	old := f.want(obj, 0, 100)
	obj2 := f.put("cog.tif", 4*MiB, `"e2"`) // new content, same size
	if bytes.Equal(f.want(obj2, 0, 100), old) {
		t.Fatal("the fake store did not change the content")
	}
	pf2, _ := newDiskPF(t, f, dir, 0)
	gdalPattern(t, f, pf2, obj2)
	if s := pf2.Stats().Snapshot(); s.DiskHits != 0 || s.Requests == 0 {
		t.Errorf("after an ETag change: %+v, want no disk hits", s)
	}
}

// Objects without an ETag are never cached on disk: staleness could not
// be detected.
func TestDiskCacheSkipsObjectsWithoutETag(t *testing.T) {
	f := newFakeStore()
	obj := f.put("noetag.tif", 4*MiB, "")
	dir := t.TempDir()
	pf, dc := newDiskPF(t, f, dir, 0)
	gdalPattern(t, f, pf, obj)
	settle(pf, dc)
	if n := len(blockFiles(t, dir)); n != 0 {
		t.Errorf("%d block files for an object without ETag", n)
	}
	if s := pf.Stats().Snapshot(); s.DiskMisses != 0 || s.DiskBytesWritten != 0 {
		t.Errorf("stats %+v, want no disk activity", s)
	}
}

// The cache stays under its size bound while writing, and a smaller bound
// at the next start evicts the least recently used files.
func TestDiskCacheSizeBound(t *testing.T) {
	f := newFakeStore()
	obj := f.put("big", 16*MiB, `"e1"`)
	dir := t.TempDir()
	block := DefaultBlockSize + diskHeader
	bound := 20 * block
	pf, dc := newDiskPF(t, f, dir, bound)
	r := pf.Open(obj)
	buf := make([]byte, 4*KiB)
	for i := int64(0); i < 100; i++ { // 100 single-block random reads
		if _, err := r.ReadAt(context.Background(), buf, (i*37%128)*DefaultBlockSize+5); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			settle(pf, dc)
		}
	}
	r.Close()
	settle(pf, dc)
	files, size := dc.Usage()
	if size > bound {
		t.Errorf("index says %d bytes, bound %d", size, bound)
	}
	onDisk := dirSize(t, dir)
	if onDisk > bound || onDisk != size || len(blockFiles(t, dir)) != files {
		t.Errorf("%d bytes on disk in %d files (index: %d bytes, %d files), bound %d", onDisk, len(blockFiles(t, dir)), size, files, bound)
	}
	if onDisk < bound/2 {
		t.Errorf("only %d bytes on disk, bound %d: eviction went too far", onDisk, bound)
	}
	dc.Close()

	// Restart with half the bound: the scan evicts down to it.
	_, dc2 := newDiskPF(t, f, dir, bound/2)
	if _, size := dc2.Usage(); size > bound/2 {
		t.Errorf("after a restart with bound %d: %d bytes", bound/2, size)
	}
	if onDisk := dirSize(t, dir); onDisk > bound/2 {
		t.Errorf("after a restart with bound %d: %d bytes on disk", bound/2, onDisk)
	}
}

// The LRU order survives a restart: a block read in the last session
// outlives older ones when the next start evicts.
func TestDiskCacheEvictsLeastRecentlyUsedAcrossRestarts(t *testing.T) {
	f := newFakeStore()
	obj := f.put("big", 8*MiB, `"e1"`)
	dir := t.TempDir()
	read := func(pf *Prefetcher, block int64) {
		r := pf.Open(obj)
		readAt(t, f, r, obj, block*DefaultBlockSize+1, 100)
		r.Close()
	}
	pf, dc := newDiskPF(t, f, dir, 0)
	for b := int64(10); b < 20; b++ {
		read(pf, b)
		settle(pf, dc)
	}
	dc.Close()
	// Next session: block 10 (the oldest) is read again from disk, which
	// refreshes its file's time.
	pf, dc = newDiskPF(t, f, dir, 0)
	read(pf, 10)
	dc.Close()
	// Restart with room for 3 blocks: 10 must be among the survivors.
	pf, _ = newDiskPF(t, f, dir, 3*(DefaultBlockSize+diskHeader))
	before := len(f.requests())
	read(pf, 10)
	if n := len(f.requests()) - before; n != 0 {
		t.Errorf("block 10, the most recently used, was evicted (%d requests)", n)
	}
}

// Deleting the cache directory while it is in use loses nothing but
// cached bytes: reads stay correct, later blocks are written again.
func TestDiskCacheDeletedWhileInUse(t *testing.T) {
	f := newFakeStore()
	obj := f.put("cog.tif", 12*MiB+777, `"e1"`)
	dir := t.TempDir()
	pf1, dc1 := newDiskPF(t, f, dir, 0)
	gdalPattern(t, f, pf1, obj)
	settle(pf1, dc1)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	// A second session on the same directory (its scan finds nothing) and
	// the first one still running: both read from the store and write again.
	pf2, dc2 := newDiskPF(t, f, dir, 0)
	gdalPattern(t, f, pf2, obj)
	other := f.put("other.tif", 4*MiB, `"o1"`)
	gdalPattern(t, f, pf1, other)
	settle(pf1, dc1)
	settle(pf2, dc2)
	if s := pf2.Stats().Snapshot(); s.DiskHits != 0 || s.DiskBytesWritten == 0 || s.DiskWriteErrors != 0 {
		t.Errorf("session after the deletion: %+v, want misses and blocks written again", s)
	}
	if s := pf1.Stats().Snapshot(); s.DiskWriteErrors != 0 || s.DiskBytesWritten == 0 {
		t.Errorf("session running through the deletion: %+v, want blocks written again without errors", s)
	}
	dc1.Close()
	dc2.Close()
	before := len(f.requests())
	pf3, _ := newDiskPF(t, f, dir, 0)
	gdalPattern(t, f, pf3, obj)
	gdalPattern(t, f, pf3, other)
	if n := len(f.requests()) - before; n != 0 {
		t.Errorf("after rewriting: %d requests, want 0", n)
	}
}

// Many readers, a tiny bound (constant eviction) and the directory
// deleted under them: every byte read is right (run with -race).
func TestDiskCacheConcurrentChurn(t *testing.T) {
	f := newFakeStore()
	objs := []Object{f.put("a", 3*MiB+1, `"a"`), f.put("b", 2*MiB, `"b"`), f.put("c", 5*MiB-7, `"c"`)}
	dir := t.TempDir()
	bound := 8 * (DefaultBlockSize + diskHeader)
	var wg sync.WaitGroup
	for s := range 3 { // three sessions sharing the directory
		pf, _ := newDiskPF(t, f, dir, bound)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := make([]byte, 20*KiB)
				for i := range 40 {
					obj := objs[(s+g+i)%len(objs)]
					off := int64((s*131+g*71+i*977)%int(obj.Size/KiB)) * KiB
					r := pf.Open(obj)
					n, err := r.ReadAt(context.Background(), p, off)
					r.Close()
					if want := f.want(obj, off, int64(len(p))); n != len(want) || !bytes.Equal(p[:n], want) || (err != nil && n == len(p)) {
						t.Errorf("read %s %d+%d: %d bytes, err %v, right bytes %v", obj.Loc.Key, off, len(p), n, err, bytes.Equal(p[:n], want))
						return
					}
				}
			}()
		}
	}
	stop := make(chan struct{})
	deleted := make(chan int)
	go func() {
		n := 0
		defer func() { deleted <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				os.RemoveAll(filepath.Join(dir, "v1"))
				n++
			}
		}
	}()
	wg.Wait()
	close(stop)
	t.Logf("directory deleted %d times", <-deleted)
}

// Prefetch streams bypass the in-memory cache but not the disk: a second
// session's sequential read, and one starting mid-file off a block
// boundary (the kernel's readahead after a tile read), come from disk.
func TestDiskCacheServesStreams(t *testing.T) {
	f := newFakeStore()
	obj := f.put("big", 14*MiB+999, `"e1"`)
	dir := t.TempDir()
	pattern := func(pf *Prefetcher) {
		r := pf.Open(obj)
		for off := int64(0); off < obj.Size; off += 256 * KiB {
			readAt(t, f, r, obj, off, 256*KiB)
		}
		r.Close()
		r = pf.Open(obj) // a tile, then the kernel reading on from it
		for off := 7*MiB + 5*KiB - 4096; off < 12*MiB; off += 128 * KiB {
			readAt(t, f, r, obj, off, 128*KiB)
		}
		r.Close()
	}
	pf1, dc1 := newDiskPFQueue(t, f, dir, 0, 1024) // room for every block: no drops
	pattern(pf1)
	settle(pf1, dc1)
	s1 := pf1.Stats().Snapshot()
	if s1.Parts == 0 || s1.DiskBytesWritten < obj.Size {
		t.Fatalf("first session: %+v, want streams and the whole object written to disk", s1)
	}
	dc1.Close()
	before := len(f.requests())
	pf2, _ := newDiskPF(t, f, dir, 0)
	pattern(pf2)
	s2 := pf2.Stats().Snapshot()
	if n := len(f.requests()) - before; n != 0 || s2.Parts == 0 || s2.DiskMisses != 0 {
		t.Errorf("second session: %d requests, stats %+v; want streams served from disk", n, s2)
	}
}

// A stream over a range the disk holds in pieces (blocks of earlier tile
// reads) takes those blocks from disk and fetches only the gaps.
func TestDiskCacheStreamFetchesOnlyGaps(t *testing.T) {
	f := newFakeStore()
	obj := f.put("big", 12*MiB+5, `"e1"`)
	dir := t.TempDir()
	held := []int64{20, 21, 40, 60, 61, 62, 63, obj.Size / DefaultBlockSize}
	pf1, dc1 := newDiskPF(t, f, dir, 0)
	for _, b := range held { // tile reads: one block each
		r := pf1.Open(obj)
		readAt(t, f, r, obj, b*DefaultBlockSize+1, 10)
		r.Close()
	}
	settle(pf1, dc1)
	dc1.Close()

	before := len(f.requests())
	pf2, dc2 := newDiskPF(t, f, dir, 0)
	r := pf2.Open(obj)
	for off := int64(0); off < obj.Size; off += 128 * KiB {
		readAt(t, f, r, obj, off, 128*KiB)
	}
	r.Close()
	settle(pf2, dc2)
	if s := pf2.Stats().Snapshot(); s.DiskHits < int64(len(held)) || s.Parts == 0 {
		t.Errorf("stats %+v, want a stream and the %d blocks on disk hit", s, len(held))
	}
	var fetched int64
	for _, q := range f.requests()[before:] {
		fetched += q.n
		for _, b := range held {
			if q.off < (b+1)*DefaultBlockSize && b*DefaultBlockSize < q.off+q.n {
				t.Errorf("request %d+%d fetched block %d, which the disk has", q.off, q.n, b)
			}
		}
	}
	if want := obj.Size - int64(len(held)-1)*DefaultBlockSize - 5; fetched != want {
		t.Errorf("fetched %d bytes, want %d (all but the blocks on disk)", fetched, want)
	}
}

// A writer that falls behind drops blocks; reads never wait for it.
func TestDiskCacheDropsWritesWhenBehind(t *testing.T) {
	f := newFakeStore()
	obj := f.put("big", 16*MiB, `"e1"`)
	dir := t.TempDir()
	pf, dc := newDiskPFQueue(t, f, dir, 0, 0) // no room: always behind
	r := pf.Open(obj)
	for off := int64(0); off < obj.Size; off += 256 * KiB {
		readAt(t, f, r, obj, off, 256*KiB)
	}
	r.Close()
	settle(pf, dc)
	if s := pf.Stats().Snapshot(); s.DiskWriteDrops == 0 || s.DiskBytesWritten != 0 {
		t.Errorf("stats %+v, want every write dropped", s)
	}
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	for _, p := range blockFiles(t, dir) {
		if st, err := os.Stat(p); err == nil {
			n += st.Size()
		}
	}
	return n
}
