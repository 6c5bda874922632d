package objread

import "unsafe"

// uintptrOf is the address of b's first byte (b not empty). It only
// chooses which part of b to madvise; nothing is read through it.
func uintptrOf(b []byte) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b))) // #nosec G103 -- an address to align to, never dereferenced
}
