package objread

import "golang.org/x/sys/unix"

// hugePage is the size of a transparent huge page on amd64 and arm64.
const hugePage = 2 << 20

// adviseHuge asks the kernel to back the 2 MiB-aligned interior of a new
// buffer (not yet touched) with transparent huge pages where the machine
// allows them on request (THP "madvise" or "always"). A stream's first
// pass through fresh part buffers otherwise takes a page fault per 4 KiB
// inside the socket read that fills them; in a VM that trap, not the
// copy, is most of the cost (traced: a quarter of a 1 GiB stream's CPU).
// Failure changes nothing but speed.
func adviseHuge(b []byte) {
	if cap(b) < 2*hugePage {
		return
	}
	b = b[:cap(b)]
	start := uintptrOf(b)
	lo := (start + hugePage - 1) &^ (hugePage - 1)
	hi := (start + uintptr(len(b))) &^ (hugePage - 1)
	if hi <= lo {
		return
	}
	_ = unix.Madvise(b[lo-start:hi-start], unix.MADV_HUGEPAGE)
}
