package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWithin(t *testing.T) {
	for _, tc := range []struct {
		p, dir string
		want   bool
	}{
		{"/a/b", "/a/b", true},
		{"/a/b/c", "/a/b", true},
		{"/a/bc", "/a/b", false},
		{"/a", "/a/b", false},
		{"/x/..a", "/x", true},
		{"/", "/a", false},
	} {
		if got := within(tc.p, tc.dir); got != tc.want {
			t.Errorf("within(%q, %q) = %v, want %v", tc.p, tc.dir, got, tc.want)
		}
	}
}

func TestCheckNotNested(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, ".cache"))
	t.Setenv("PRESCIENT_CONFIG_DIR", "")
	other := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".cache"), 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Join(home, ".cache"), link); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(t.TempDir(), "blocks")
	diskLink := filepath.Join(t.TempDir(), "disklink")
	if err := os.MkdirAll(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(disk, diskLink); err != nil {
		t.Fatal(err)
	}
	wd := t.TempDir()
	t.Chdir(wd)
	for _, tc := range []struct {
		name, dir, log, disk, want string
	}{
		{"elsewhere", other, filepath.Join(t.TempDir(), "m.log"), filepath.Join(t.TempDir(), "blocks"), ""},
		{"in the cache directory", filepath.Join(home, ".cache", "prescientfs", "mnt"), "", "", "inside the cache directory"},
		{"in the cache directory, through a symlink", filepath.Join(link, "prescientfs", "x", "mnt"), "", "", "inside the cache directory"},
		{"containing the cache directory", filepath.Join(home, ".cache"), "", "", "contains the cache directory"},
		{"in the session store", filepath.Join(home, ".prescient", "mnt"), "", "", "inside the session store"},
		{"log file in the mountpoint", other, filepath.Join(other, "sub", "m.log"), "", "log file"},
		{"in the disk cache", filepath.Join(disk, "mnt"), "", disk, "inside the disk cache"},
		{"in the disk cache, through a symlink", filepath.Join(diskLink, "mnt"), "", disk, "inside the disk cache"},
		{"containing the disk cache", other, "", filepath.Join(other, "sub", "blocks"), "contains the disk cache"},
		{"disk cache relative, in the mountpoint", wd, "", "blocks", "contains the disk cache"},
	} {
		err := checkNotNested(tc.dir, tc.log, tc.disk)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
