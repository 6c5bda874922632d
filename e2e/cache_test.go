package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Two mounts of one catalog give every path the same inode number, so
// remounts agree with what programs and the kernel remember.
func TestStableInodes(t *testing.T) {
	st := sharedStack(t)
	env := st.env(t)
	a := mountT(t, env, "--stac-url", st.stac.URL())
	b := mountT(t, env, "--stac-url", st.stac.URL())
	coll := st.cat.Collection("sentinel-demo")
	it := coll.Items[0]
	for _, rel := range []string{coll.ID, filepath.Join(coll.ID, "collection.json"), filepath.Join(coll.ID, it.ID), filepath.Join(coll.ID, it.ID, "item.json"), filepath.Join(coll.ID, it.ID, "visual.tif")} {
		ia, ib := inode(t, a.path(rel)), inode(t, b.path(rel))
		if ia != ib || ia == 0 {
			t.Errorf("%s: inode %d on one mount, %d on the other", rel, ia, ib)
		}
	}
}

// GDAL opens a file many times (header, tiles, sidecar probes). The second
// pass of that pattern is served without new requests to S3, and `stats`
// shows it.
func TestRepeatedOpensReuseBytes(t *testing.T) {
	st := sharedStack(t)
	m := mountT(t, st.env(t), "--stac-url", st.stac.URL())
	coll := st.cat.Collection("sentinel-demo")
	it := coll.Items[0]
	p := m.path(coll.ID, it.ID, "visual.tif")
	pattern := func() {
		for i := 0; i < 3; i++ {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64<<10)
			for _, off := range []int64{0, 16 << 10, 200 << 10, 400 << 10} {
				if _, err := f.ReadAt(buf[:16<<10], off); err != nil {
					t.Fatalf("read at %d: %v", off, err)
				}
			}
			f.Close()
			os.Stat(p + ".aux.xml") // sidecar probes: ENOENT
			os.Stat(p + ".ovr")
		}
	}
	pattern()
	before := readStats(t, m)
	pattern()
	after := readStats(t, m)
	if before["bytes_served"] == 0 {
		t.Fatalf("stats show no bytes served: %v", before)
	}
	if after["requests"] != before["requests"] {
		t.Fatalf("second pass made %d new S3 requests", after["requests"]-before["requests"])
	}
}

func readStats(t *testing.T, m *mount) map[string]int64 {
	t.Helper()
	out, err := exec.Command(binPath, "stats", m.dir).Output()
	if err != nil {
		t.Fatalf("prescientfs stats: %v", err)
	}
	var s map[string]int64
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("stats output %q: %v", out, err)
	}
	return s
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// Closing a file costs no round trip: the mount answers the kernel's first
// FLUSH with ENOSYS and the kernel sends no more (GDAL opens and closes a
// file many times).
func TestCloseSendsOneFlush(t *testing.T) {
	st := sharedStack(t)
	m := mountT(t, st.env(t), "--stac-url", st.stac.URL(), "--debug")
	coll := st.cat.Collection("sentinel-demo")
	it := coll.Items[0]
	for _, name := range []string{"visual.tif", "item.json", "visual.tif", "item.json"} {
		b, err := os.ReadFile(m.path(coll.ID, it.ID, name))
		if err != nil || len(b) == 0 {
			t.Fatalf("read %s: %d bytes, %v", name, len(b), err)
		}
	}
	// (go-fuse's own probe file at mount time gets one FLUSH too.)
	n := 0
	for _, line := range strings.Split(readFile(m.log), "\n") {
		if strings.Contains(line, ": FLUSH ") && !strings.Contains(line, "FLUSH n18446744073709551615 ") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d FLUSH requests for 4 closes, want 1 (the first, answered ENOSYS)", n)
	}
}
