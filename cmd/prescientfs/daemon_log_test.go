package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The mount process's log (it names the catalog, paths and errors) is
// owner-only whatever the umask (here 0, so the modes come from the
// code): its directory 0700, made so if it was wider, the file 0600.
func TestLogFileOwnerOnly(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	cache := filepath.Join(t.TempDir(), "cache")
	t.Setenv("XDG_CACHE_HOME", cache)
	for _, pre := range []os.FileMode{0, 0o755} { // created by us; there already, too open
		if pre != 0 {
			if err := os.Chmod(filepath.Join(cache, "prescientfs"), pre); err != nil {
				t.Fatal(err)
			}
		}
		p, err := defaultLogPath("/mnt/x")
		if err != nil {
			t.Fatal(err)
		}
		f, err := openLogFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		for path, want := range map[string]os.FileMode{filepath.Dir(p): 0o700, p: 0o600} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("directory there before with mode %v: %s: mode %v, want %v", pre, path, got, want)
			}
		}
	}
	// --log-file names the file: it is created 0600 too.
	p := filepath.Join(t.TempDir(), "mount.log")
	f, err := openLogFile(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("--log-file: %v %v", fi.Mode(), err)
	}
}
