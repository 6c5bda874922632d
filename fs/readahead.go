package fs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// raiseReadahead sets the kernel's readahead for the mount to kb KiB.
//
// The kernel offers FUSE the block-device default of 128 KiB readahead at
// INIT, whatever the file system asks, so a sequential reader gets its
// data in 128 KiB FUSE requests: eight times the per-request overhead of
// 1 MiB ones. The mount's backing device info (/sys/class/bdi/0:N) can be
// raised after mounting; only root may write it, so for other users this
// is a no-op and reads stay at 128 KiB.
func raiseReadahead(dir string, kb int) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)))
	return os.WriteFile(p, []byte(fmt.Sprint(kb)), 0)
}
