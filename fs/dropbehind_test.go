package fs

import "testing"

// dropRec drives a dropBehind like assetHandle.served does, with every
// notification made at once, and records what it was told to drop.
type dropRec struct {
	d       dropBehind
	dropped [][2]int64
}

func (r *dropRec) read(off, n int64) {
	for from, size := r.d.read(off, off+n); size > 0; from, size = r.d.next() {
		r.dropped = append(r.dropped, [2]int64{from, from + size})
	}
}

func TestDropBehindSequential(t *testing.T) {
	const mib = 1 << 20
	var r dropRec
	for off := int64(0); off < 200*mib; off += mib {
		r.read(off, mib)
		for _, d := range r.dropped {
			if d[1] > off+mib-dropBehindKeep {
				t.Fatalf("at %d MiB: dropped [%d, %d) MiB, within %d MiB of the reader", (off+mib)/mib, d[0]/mib, d[1]/mib, dropBehindKeep/mib)
			}
		}
	}
	// The drops tile [0, x) without gaps or overlaps, in chunks, and x
	// is the reader's end less the kept pages (to a chunk).
	next := int64(0)
	for _, d := range r.dropped {
		if d[0] != next || d[1]-d[0] < dropBehindChunk {
			t.Fatalf("drops %v: want contiguous ranges of at least %d MiB from 0", r.dropped, dropBehindChunk/mib)
		}
		next = d[1]
	}
	if want := int64(200*mib - dropBehindKeep - dropBehindChunk); next < want {
		t.Errorf("after 200 MiB read, pages dropped up to %d MiB, want at least %d", next/mib, want/mib)
	}
}

func TestDropBehindKeepsRandomAndShortRuns(t *testing.T) {
	const mib = 1 << 20
	var r dropRec
	// GDAL: a header, then tile rows here and there, each a few MiB.
	r.read(0, 16<<10)
	for i, off := range []int64{900, 40, 1500, 300, 1200, 700} {
		for j := int64(0); j < 4; j++ {
			r.read(off*mib+j*(512<<10), 512<<10)
		}
		if len(r.dropped) > 0 {
			t.Fatalf("after %d scattered runs: dropped %v", i+1, r.dropped)
		}
	}
	// A run of 40 MiB is under the kept 32 MiB plus a chunk.
	for off := int64(2000 * mib); off < 2040*mib; off += mib {
		r.read(off, mib)
	}
	if len(r.dropped) > 0 {
		t.Fatalf("a 40 MiB run dropped %v", r.dropped)
	}
}

func TestDropBehindReadahead(t *testing.T) {
	const mib = 1 << 20
	var r dropRec
	// The kernel's readahead READs of one stream answer out of order:
	// still one run.
	for off := int64(0); off < 128*mib; off += 4 * mib {
		for _, k := range []int64{2, 0, 3, 1} {
			r.read(off+k*mib, mib)
		}
	}
	if len(r.dropped) == 0 || r.dropped[0][0] != 0 {
		t.Fatalf("a 128 MiB stream read a little out of order dropped %v, want from 0", r.dropped)
	}
	// A jump starts a new run: nothing before the jump is dropped again,
	// and the new run's pages go only once it is long enough.
	n := len(r.dropped)
	for off := int64(1000 * mib); off < 1100*mib; off += mib {
		r.read(off, mib)
	}
	if len(r.dropped) == n || r.dropped[n][0] != 1000*mib {
		t.Fatalf("after a jump to 1000 MiB: drops %v, want the next from 1000 MiB", r.dropped[n:])
	}
}

func TestDropBehindOneAtATime(t *testing.T) {
	const mib = 1 << 20
	var d dropBehind
	var got [][2]int64
	for off := int64(0); off < 100*mib; off += mib {
		if from, n := d.read(off, off+mib); n > 0 {
			got = append(got, [2]int64{from, from + n})
		}
	}
	if len(got) != 1 {
		t.Fatalf("with the first notification under way, got %v; want one", got)
	}
	// The reader stopped at 100 MiB: the notifier catches up alone.
	from, n := d.next()
	if from != got[0][1] || from+n != 100*mib-dropBehindKeep {
		t.Errorf("next: [%d, %d) MiB, want [%d, %d)", from/mib, (from+n)/mib, got[0][1]/mib, (100*mib-dropBehindKeep)/mib)
	}
	if _, n := d.next(); n != 0 {
		t.Errorf("next after catching up: %d bytes more, want none", n)
	}
	if _, n := d.read(100*mib, 101*mib); n != 0 {
		t.Errorf("1 MiB after catching up: %d bytes to drop, want none before a chunk", n)
	}
}
