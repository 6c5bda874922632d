package fs

import "sync"

// dropBehind decides when the kernel may drop the page cache a handle's
// sequential reader has left behind: a file streamed front to back (a
// batch job reading scenes, a copy) is read once, and its pages would
// otherwise fill memory with bytes nobody reads again, as
// POSIX_FADV_DONTNEED does for a reader that asks.
//
// Filling new page-cache pages is most of what a stream costs the kernel:
// on a machine whose free memory goes back to its host (a VM with free
// page reporting), each new page is a fault in the host, and a mount
// streaming its third 1 GiB file used 2.8 core-s where the first used 1.1.
// Dropped pages are free again at once, and the next are taken from them.
//
// Only long runs of contiguous reads drop pages (GDAL's headers and tiles,
// and anything read at random, keep theirs), and only dropBehindKeep
// behind the run's end, in chunks of dropBehindChunk so that a stream
// costs the kernel one notification per chunk.
type dropBehind struct {
	mu   sync.Mutex
	end  int64 // the run's highest end
	from int64 // the first byte of the run whose pages are kept
	busy bool  // a notification is under way
}

const (
	// dropBehindKeep is how far behind a run's end pages are kept: the
	// kernel's readahead and a reader stepping back find them.
	dropBehindKeep = 32 << 20
	// dropBehindChunk is the least a notification drops.
	dropBehindChunk = 16 << 20
	// dropBehindGap is how far a read may fall from the run's end and
	// still belong to it: the kernel sends readahead READs for one stream
	// concurrently, so they arrive a little out of order.
	dropBehindGap = 8 << 20
)

// read records a read of [off, end) and returns the range whose pages may
// be dropped now (n == 0: none, or a notification is under way). The
// caller passes the range to the kernel, then calls next until it returns
// none.
func (d *dropBehind) read(off, end int64) (from, n int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off > d.end+dropBehindGap || end < d.end-dropBehindGap {
		d.end, d.from = end, off // a new run
		return 0, 0
	}
	d.end = max(d.end, end)
	if d.busy {
		return 0, 0
	}
	return d.due()
}

// next returns the range due after a notification: the reader may have
// gone on meanwhile (and stopped, at the end of the file).
func (d *dropBehind) next() (from, n int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.busy = false
	return d.due()
}

func (d *dropBehind) due() (from, n int64) {
	to := d.end - dropBehindKeep
	if to-d.from < dropBehindChunk {
		return 0, 0
	}
	from, d.from, d.busy = d.from, to, true
	return from, to - from
}
