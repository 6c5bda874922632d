package stacindex

import (
	"io/fs"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The index holds item documents of a catalog the user may read and
// others may not: the directories it creates are 0700 and its file 0600
// whatever the umask (here 0, so the modes come from the code).
func TestIndexOwnerOnly(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	root := filepath.Join(t.TempDir(), "prescientfs")
	path := IndexPath(filepath.Join(root, "index"), "https://stac.example/", nil)
	ix, err := OpenIndex(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ix.PutItem("c", "i", []byte(`{"id":"i"}`), time.Now())
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
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
		} else {
			n++
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
		return nil
	})
	if err != nil || n != 1 {
		t.Fatalf("walk: %v, %d files", err, n)
	}
}

// A --search @FILE whose content is JSON null is refused like any other
// body that is not an object (it used to crash the mount's first search).
func TestParseSearchNullBody(t *testing.T) {
	_, err := ParseSearch("@body.json", func(string) ([]byte, error) { return []byte(" null\n"), nil })
	if err == nil {
		t.Fatal("a null body was accepted")
	}
	c, err := NewClient("https://stac.example/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Search{Body: []byte("null")}
	if r := s.request(c); string(r.body) != "null" {
		t.Errorf("body sent: %q", r.body)
	}
}
