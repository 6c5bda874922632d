//go:build unix

package objread

import "golang.org/x/sys/unix"

// mapBuf maps size bytes of anonymous memory, advised for transparent
// huge pages (adviseHuge).
func mapBuf(size int64) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, err
	}
	adviseHuge(b)
	return b, nil
}

// unmapBuf unmaps a buffer of mapBuf. Nothing may use it afterwards.
func unmapBuf(b []byte) {
	_ = unix.Munmap(b) // fails only for a slice that is not a mapping of mapBuf
}
