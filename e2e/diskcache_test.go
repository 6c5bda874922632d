package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// --cache-dir keeps blocks across mounts: a second mount on the same
// directory reads a COG's header and tiles without a request to S3. The
// directory's contents can be deleted while mounted: reads stay right,
// and the blocks read afterwards are written again.
func TestDiskCacheAcrossMounts(t *testing.T) {
	st := sharedStack(t)
	env := st.env(t)
	cacheDir := filepath.Join(t.TempDir(), "blocks")
	args := []string{"--stac-url", st.stac.URL(), "--cache-dir", cacheDir, "--cache-dir-size", "64MiB"}
	coll := st.cat.Collection("sentinel-demo")
	type cog struct{ rel, sha string }
	var cogs []cog
	for _, it := range coll.Items[:2] {
		fa := it.Asset("visual")
		if fa == nil || !fa.Servable {
			t.Fatalf("item %s has no servable visual asset", it.ID)
		}
		cogs = append(cogs, cog{filepath.Join(coll.ID, it.ID, "visual.tif"), fa.SHA256})
	}
	read := func(m *mount, c cog) { gdalLikeRead(t, m.path(c.rel), c.sha) }

	// First mount: both COGs from S3, written to the cache directory.
	m1 := mountT(t, env, args...)
	for _, c := range cogs {
		read(m1, c)
	}
	s1 := readStats(t, m1)
	if s1["requests"] == 0 || s1["disk_misses"] == 0 {
		t.Fatalf("first mount: %v, want requests and disk misses", s1)
	}
	m1.unmount(t) // waits for the process: its queued blocks are on disk
	if n := countFiles(t, cacheDir); n == 0 {
		t.Fatal("no block files in the cache directory after the first mount")
	}

	// Second mount: the same reads of the first COG come from disk.
	m2 := mountT(t, env, args...)
	read(m2, cogs[0])
	s2 := readStats(t, m2)
	if s2["requests"] != 0 || s2["disk_hits"] == 0 || s2["disk_misses"] != 0 {
		t.Fatalf("second mount: %v, want disk hits and no S3 request", s2)
	}

	// Delete the cache's contents under the live mount: the second COG's
	// blocks are gone (the mount's index still lists them), so they are
	// read from S3 again, right, and written again.
	ents, err := os.ReadDir(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(cacheDir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	read(m2, cogs[1])
	s3 := readStats(t, m2)
	if s3["requests"] == s2["requests"] || s3["disk_misses"] == 0 || s3["disk_write_errors"] != 0 {
		t.Fatalf("after deleting the cache: %v, want S3 requests, disk misses, no write errors", s3)
	}
	m2.unmount(t)

	// Third mount: the second COG was cached again after the deletion.
	m3 := mountT(t, env, args...)
	read(m3, cogs[1])
	if s := readStats(t, m3); s["requests"] != 0 || s["disk_hits"] == 0 {
		t.Fatalf("third mount: %v, want the blocks written after the deletion", s)
	}
}

// gdalLikeRead reads p as GDAL reads a COG (a header, then tiles, through
// several opens), then whole, and checks every byte against its SHA-256.
func gdalLikeRead(t *testing.T, p, sha string) {
	t.Helper()
	whole, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	dropCache(f) // the reads below go to the mount, not the page cache
	reads := []struct{ off, n int64 }{{0, 16 << 10}, {16 << 10, 16 << 10}}
	size := int64(len(whole))
	for _, frac := range []int64{2, 5, 8} { // tiles
		reads = append(reads, struct{ off, n int64 }{size * frac / 10, 64 << 10})
	}
	for i, r := range reads {
		if i == 2 { // GDAL opens the file again for the tiles
			f.Close()
			if f, err = os.Open(p); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, min(r.n, size-r.off))
		if _, err := f.ReadAt(buf, r.off); err != nil && err != io.EOF {
			t.Fatalf("%s: read %d+%d: %v", p, r.off, r.n, err)
		}
		got = append(got, buf)
	}
	f.Close()
	sum := sha256.Sum256(whole)
	if hex.EncodeToString(sum[:]) != sha {
		t.Fatalf("%s: sha256 %x, want %s", p, sum[:6], sha)
	}
	for i, r := range reads {
		if !bytes.Equal(got[i], whole[r.off:r.off+int64(len(got[i]))]) {
			t.Fatalf("%s: read %d+%d returned wrong bytes", p, r.off, r.n)
		}
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
