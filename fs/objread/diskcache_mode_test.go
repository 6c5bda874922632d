package objread

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"
)

// The disk cache holds the bytes of objects the user may read and others
// may not: its directories are 0700 and its files 0600 whatever the
// umask (here 0, so the modes come from the code, not the umask).
func TestDiskCacheOwnerOnly(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	dir := filepath.Join(t.TempDir(), "cache") // created by the cache
	dc, err := openDiskCache(dir, 0, nil, diskQueueLen)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Close() })
	dc.waitScanned()
	dc.put([]byte("key"), []byte("block data"), &Stats{}, true, nil)
	dc.flush()
	if len(blockFiles(t, dir)) != 1 {
		t.Fatalf("block files: %v", blockFiles(t, dir))
	}
	checkOwnerOnly(t, dir)
}

// checkOwnerOnly fails t for every directory under root (root included)
// that is not 0700 and every file that is not 0600.
func checkOwnerOnly(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
