package objread

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultDiskCacheSize bounds the on-disk cache when no size is given.
const DefaultDiskCacheSize = 10 << 30

// diskQueueLen bounds the blocks waiting to be written (8 MiB of 128 KiB
// blocks): a writer that falls behind drops writes, it never slows reads.
const diskQueueLen = 64

// DiskCache is the optional second tier of the BlockCache: blocks of
// objects that have an ETag, one file per block, kept across mounts.
//
// A block's file is named by the SHA-256 of its key (location ID, ETag,
// object size, block size, block index) in one of 256 fan-out
// directories under DIR/v1, and holds a header (magic, CRC-32C of the
// key and data, length) before the data. Files are written to DIR/v1/tmp
// and renamed into place, so a reader sees a whole file or none; a file
// that is missing, short, or fails its checksum is a miss (and is
// removed), never an error or wrong bytes. The directory can therefore be
// deleted at any time, even while mounted.
//
// Block cache misses and prefetch stream parts (which bypass the memory
// tier) both read from it and write to it. Writes are asynchronous
// through a bounded queue. The size bound is kept
// by an in-memory LRU index, filled at start by a background scan (oldest
// modification time first out) and by this process's reads and writes; a
// hit refreshes the file's modification time once per process, so the
// order survives restarts.
type DiskCache struct {
	root     string // DIR/v1
	capacity int64
	log      *slog.Logger

	queue chan diskWrite
	quit  chan struct{}
	done  chan struct{} // closed when the writer has exited
	ready chan struct{} // closed when the startup scan is over

	mu      sync.Mutex
	lru     *list.List               // guarded by mu; of *diskEntry, most recent first
	index   map[string]*list.Element // guarded by mu; by file name
	size    int64                    // guarded by mu; bytes of the files in index
	scanned bool                     // guarded by mu; eviction waits for the startup scan
	closed  bool                     // guarded by mu
}

type diskEntry struct {
	name    string
	size    int64
	touched bool // this process refreshed its mtime (or wrote it)
}

type diskWrite struct {
	name    string
	key     []byte
	data    []byte
	stats   *Stats
	release func()        // if set, called once data is written (or not)
	barrier chan struct{} // if set, only closed once the writes before it are done
}

// diskMagic starts every block file; the version is in the directory name.
const diskMagic = "PFB1"

// diskHeader is magic (4), CRC-32C of key and data (4), data length (8).
const diskHeader = 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// OpenDiskCache uses (and creates) dir as an on-disk block cache of at
// most capacity bytes (DefaultDiskCacheSize if not positive). It starts
// a background scan of what earlier mounts left and a writer; Close
// stops them.
func OpenDiskCache(dir string, capacity int64, log *slog.Logger) (*DiskCache, error) {
	return openDiskCache(dir, capacity, log, diskQueueLen)
}

func openDiskCache(dir string, capacity int64, log *slog.Logger, queueLen int) (*DiskCache, error) {
	if capacity <= 0 {
		capacity = DefaultDiskCacheSize
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DiskCache{
		root:     filepath.Join(dir, "v1"),
		capacity: capacity,
		log:      log,
		queue:    make(chan diskWrite, queueLen),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		ready:    make(chan struct{}),
		lru:      list.New(),
		index:    make(map[string]*list.Element),
	}
	if err := os.MkdirAll(filepath.Join(d.root, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	go d.writer()
	go d.scan()
	return d, nil
}

// Dir returns the directory the cache's files are in.
func (d *DiskCache) Dir() string { return filepath.Dir(d.root) }

// Usage returns the number of files and bytes the cache knows of.
func (d *DiskCache) Usage() (files int, bytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lru.Len(), d.size
}

// Close stops the writer after it has written what is queued (for at
// most a few seconds), so the next mount finds this one's blocks, and
// the startup scan if it still runs.
func (d *DiskCache) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	close(d.quit)
	timeout := time.After(5 * time.Second)
	for _, c := range []chan struct{}{d.done, d.ready} {
		select {
		case <-c:
		case <-timeout:
		}
	}
	return nil
}

// diskKey is the key of block index of obj, in blocks of blockSize: what
// the file name hashes and the checksum covers.
func diskKey(obj Object, blockSize, index int64) []byte {
	return fmt.Appendf(nil, "%d:%s\x00%d:%s\x00%d\x00%d\x00%d", len(obj.Loc.ID()), obj.Loc.ID(), len(obj.ETag), obj.ETag, obj.Size, blockSize, index)
}

func diskName(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:])
}

func (d *DiskCache) path(name string) string { return filepath.Join(d.root, name[:2], name) }

// get returns the block of key (n bytes long) from disk, or nil. A file
// that is not exactly a valid block of key is removed. Once the startup
// scan is done, a block missing from the index is a miss without a look
// at the disk (a block another process wrote since is not seen).
func (d *DiskCache) get(key []byte, n int64) []byte {
	name := diskName(key)
	d.mu.Lock()
	unknown := d.scanned && d.index[name] == nil
	d.mu.Unlock()
	if unknown {
		return nil
	}
	p := d.path(name)
	data, ok := readBlockFile(p, key, n)
	if !ok {
		if data != nil { // present but invalid
			_ = os.Remove(p) // best effort: a file left behind fails its check again
		}
		d.forget(name)
		return nil
	}
	d.mu.Lock()
	e := d.index[name]
	touch := false
	if e == nil {
		e = d.lru.PushFront(&diskEntry{name: name, size: diskHeader + n})
		d.index[name] = e
		d.size += diskHeader + n
	}
	d.lru.MoveToFront(e)
	if de := e.Value.(*diskEntry); !de.touched {
		de.touched, touch = true, true
	}
	d.mu.Unlock()
	if touch { // remembered by the next mount's scan
		now := time.Now()
		_ = os.Chtimes(p, now, now) // best effort: only the next scan's order depends on it
	}
	return data
}

// readBlockFile reads a block file. It returns the data and true if the
// file is a valid block of key of n bytes; a non-nil slice and false if
// it exists but is not; nil and false if it cannot be read.
func readBlockFile(p string, key []byte, n int64) ([]byte, bool) {
	if n < 0 {
		return nil, false
	}
	f, err := os.Open(p) // #nosec G304 -- p is d.path: the cache root and a hex SHA-256 name, no outside input
	if err != nil {
		return nil, false
	}
	defer f.Close()
	buf := make([]byte, diskHeader+n+1) // one more: a longer file is invalid
	m, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return []byte{}, false
	}
	if int64(m) != diskHeader+n || string(buf[:4]) != diskMagic || binary.LittleEndian.Uint64(buf[8:16]) != uint64(n) {
		return []byte{}, false
	}
	data := buf[diskHeader : diskHeader+n : diskHeader+n]
	if binary.LittleEndian.Uint32(buf[4:8]) != blockCRC(key, data) {
		return []byte{}, false
	}
	return data, true
}

func blockCRC(key, data []byte) uint32 {
	return crc32.Update(crc32.Checksum(key, castagnoli), castagnoli, data)
}

// forget drops name from the index (its file is gone).
func (d *DiskCache) forget(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.index[name]; e != nil {
		d.removeLocked(e)
	}
}

func (d *DiskCache) removeLocked(e *list.Element) {
	de := e.Value.(*diskEntry)
	d.lru.Remove(e)
	delete(d.index, de.name)
	d.size -= de.size
}

// put queues the block of key for writing, unless the cache has it; it
// drops it when the writer is behind. With clone, data is copied (only
// when queued); without, data must not change until release (if not
// nil) is called, once the block is written or dropped.
func (d *DiskCache) put(key, data []byte, stats *Stats, clone bool, release func()) {
	if release == nil {
		release = func() {}
	}
	name := diskName(key)
	d.mu.Lock()
	_, known := d.index[name]
	closed := d.closed
	d.mu.Unlock()
	if known || closed {
		release()
		return
	}
	if len(d.queue) == cap(d.queue) {
		stats.DiskWriteDrops.Add(1)
		release()
		return
	}
	if clone {
		data = bytes.Clone(data)
	}
	select {
	case d.queue <- diskWrite{name: name, key: key, data: data, stats: stats, release: release}:
	default:
		stats.DiskWriteDrops.Add(1)
		release()
	}
}

// writer writes queued blocks until Close, then what is left in the queue.
func (d *DiskCache) writer() {
	defer close(d.done)
	for {
		select {
		case w := <-d.queue:
			d.write(w)
		case <-d.quit:
			for {
				select {
				case w := <-d.queue:
					d.write(w)
				default:
					return
				}
			}
		}
	}
}

// write stores one block: a temporary file renamed into place. Missing
// directories (the cache was deleted) are made again.
func (d *DiskCache) write(w diskWrite) {
	if w.barrier != nil {
		close(w.barrier)
		return
	}
	err := d.writeFile(w)
	w.release()
	if err != nil {
		d.log.Debug("disk cache write failed", "err", err)
		w.stats.DiskWriteErrors.Add(1)
		return
	}
	size := int64(diskHeader + len(w.data))
	w.stats.DiskBytesWritten.Add(int64(len(w.data)))
	d.mu.Lock()
	if e := d.index[w.name]; e != nil {
		d.removeLocked(e)
	}
	d.index[w.name] = d.lru.PushFront(&diskEntry{name: w.name, size: size, touched: true})
	d.size += size
	victims := d.evictLocked()
	d.mu.Unlock()
	d.remove(victims)
}

func (d *DiskCache) writeFile(w diskWrite) error {
	var hdr [diskHeader]byte
	copy(hdr[:4], diskMagic)
	binary.LittleEndian.PutUint32(hdr[4:8], blockCRC(w.key, w.data))
	binary.LittleEndian.PutUint64(hdr[8:16], uint64(len(w.data)))
	tmpDir := filepath.Join(d.root, "tmp")
	f, err := os.CreateTemp(tmpDir, "b-")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(tmpDir, 0o700); err == nil {
			f, err = os.CreateTemp(tmpDir, "b-")
		}
	}
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(hdr[:])
	if err == nil {
		_, err = f.Write(w.data)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		dst := d.path(w.name)
		err = os.Rename(tmp, dst)
		if errors.Is(err, fs.ErrNotExist) {
			if err = os.MkdirAll(filepath.Dir(dst), 0o700); err == nil {
				err = os.Rename(tmp, dst)
			}
		}
	}
	if err != nil {
		_ = os.Remove(tmp) // best effort: the startup scan removes old temporary files
	}
	return err
}

// evictLocked takes least recently used entries out of the index until
// the cache is under its bound, and returns their names to remove. Until
// the startup scan is done the index lacks the oldest files: nothing is
// evicted.
func (d *DiskCache) evictLocked() []string {
	if !d.scanned || d.size <= d.capacity {
		return nil
	}
	// Go a little under the bound, so that eviction runs in batches.
	target := d.capacity - d.capacity/64
	var victims []string
	for d.size > target && d.lru.Len() > 0 {
		e := d.lru.Back()
		victims = append(victims, e.Value.(*diskEntry).name)
		d.removeLocked(e)
	}
	return victims
}

func (d *DiskCache) remove(names []string) {
	for _, n := range names {
		if err := os.Remove(d.path(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Debug("disk cache eviction failed", "err", err)
		}
	}
}

// scan adds the files earlier mounts left to the index, least recently
// used last, removes stale temporary files, then enforces the bound.
func (d *DiskCache) scan() {
	defer close(d.ready)
	start := time.Now()
	type found struct {
		name  string
		size  int64
		mtime time.Time
	}
	var files []found
	for i := range 256 {
		sub := filepath.Join(d.root, fmt.Sprintf("%02x", i))
		ents, err := os.ReadDir(sub)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if len(e.Name()) != 64 || !e.Type().IsRegular() {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue
			}
			files = append(files, found{e.Name(), info.Size(), info.ModTime()})
		}
		select {
		case <-d.quit:
			return
		default:
		}
	}
	// A temporary file an hour old belongs to a process that died.
	if ents, err := os.ReadDir(filepath.Join(d.root, "tmp")); err == nil {
		for _, e := range ents {
			if info, err := e.Info(); err == nil && strings.HasPrefix(e.Name(), "b-") && time.Since(info.ModTime()) > time.Hour {
				_ = os.Remove(filepath.Join(d.root, "tmp", e.Name())) // best effort: tried again next mount
			}
		}
	}
	slices.SortFunc(files, func(a, b found) int { return b.mtime.Compare(a.mtime) }) // newest first
	d.mu.Lock()
	for _, f := range files {
		if d.index[f.name] != nil {
			continue // this process used it already: more recent
		}
		d.index[f.name] = d.lru.PushBack(&diskEntry{name: f.name, size: f.size})
		d.size += f.size
	}
	d.scanned = true
	victims := d.evictLocked()
	count, size := d.lru.Len(), d.size
	d.mu.Unlock()
	d.remove(victims)
	d.log.Info("disk cache ready", "dir", d.Dir(), "files", count, "bytes", size, "evicted", len(victims), "took", time.Since(start).Round(time.Millisecond))
}

// waitScanned blocks until the startup scan is over (tests).
func (d *DiskCache) waitScanned() { <-d.ready }

// flush waits until the writes queued before it are done (tests).
func (d *DiskCache) flush() {
	done := make(chan struct{})
	d.queue <- diskWrite{barrier: done}
	<-done
}
