package objread

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
)

// hugeAdvised reports whether [lo, hi) lies in mappings the kernel marks
// "hg" (madvise(MADV_HUGEPAGE)) in /proc/self/smaps.
func hugeAdvised(t *testing.T, lo, hi uintptr) bool {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	var start, end uintptr
	covered := lo
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if a, b, ok := strings.Cut(fields[0], "-"); ok && !strings.HasSuffix(fields[0], ":") { // a mapping's first line
			s, err1 := strconv.ParseUint(a, 16, 64)
			e, err2 := strconv.ParseUint(b, 16, 64)
			if err1 == nil && err2 == nil {
				start, end = uintptr(s), uintptr(e)
			}
			continue
		}
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok && start <= covered && covered < end {
			if !strings.Contains(" "+flags+" ", " hg ") {
				return false
			}
			covered = end
			if covered >= hi {
				return true
			}
		}
	}
	return false
}

// TestPartBuffersHugePages: a new stream part buffer's 2 MiB-aligned
// interior is advised for transparent huge pages, so filling it takes a
// page fault per 2 MiB, not per 4 KiB, where the kernel gives them.
func TestPartBuffersHugePages(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || bytes.Contains(mode, []byte("[never]")) {
		t.Skipf("transparent huge pages off here (%q, %v)", mode, err)
	}
	pf := NewPrefetcher(newFakeStore(), DefaultConfig(), NewBudget(0), nil)
	for _, n := range []int64{4 * MiB, 8 * MiB} {
		b := pf.getBuf(n)
		start := uintptrOf(b)
		lo := (start + hugePage - 1) &^ (hugePage - 1)
		hi := (start + uintptr(cap(b))) &^ (hugePage - 1)
		if hi-lo < uintptr(n)-hugePage {
			t.Fatalf("a %d-byte buffer has %d bytes of aligned interior", n, hi-lo)
		}
		if !hugeAdvised(t, lo, hi) {
			t.Errorf("the aligned interior [%#x, %#x) of a new %d-byte part buffer is not advised for huge pages", lo, hi, n)
		}
		pf.putBuf(b)
	}
}
