package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/stacindex"
)

// plainCollections are the fixture collections whose IDs and keys are
// already safe names, so the mounted names must equal them exactly.
var plainCollections = []string{"sentinel-demo", "many-items"}

func TestTreeMatchesCatalog(t *testing.T) {
	st := sharedStack(t)
	m := mountT(t, st.env(t), "--stac-url", st.stac.URL())

	roots := readNames(t, m.path())
	if len(roots) != len(st.cat.Collections) {
		t.Fatalf("root has %d entries %v, catalog %d collections", len(roots), roots, len(st.cat.Collections))
	}
	for _, id := range plainCollections {
		coll := st.cat.Collection(id)
		if coll == nil {
			t.Fatalf("fixture collection %s missing", id)
		}
		names := readNames(t, m.path(id))
		if len(names) != len(coll.Items)+1 || !contains(names, "collection.json") {
			t.Fatalf("%s: %d entries, want %d items + collection.json", id, len(names), len(coll.Items))
		}
		for _, it := range coll.Items {
			got := readNames(t, m.path(id, it.ID))
			want := []string{"item.json"}
			for _, a := range it.Assets {
				if a.Servable {
					want = append(want, stacindex.AssetFileName(a.Key, a.Href, assetType(t, it, a.Key)))
				}
			}
			if !sameSet(got, want) {
				t.Fatalf("%s/%s: entries %v, want %v", id, it.ID, got, want)
			}
		}
	}
}

func TestAssetBytesMatchStore(t *testing.T) {
	st := sharedStack(t)
	m := mountT(t, st.env(t), "--stac-url", st.stac.URL())
	checked := 0
	for _, id := range plainCollections {
		coll := st.cat.Collection(id)
		for _, it := range coll.Items {
			for _, a := range it.Assets {
				if !a.Servable {
					continue
				}
				p := m.path(id, it.ID, stacindex.AssetFileName(a.Key, a.Href, assetType(t, it, a.Key)))
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatalf("stat: %v", err)
				}
				if fi.Size() != a.Size || fi.Mode().Perm() != 0o444 {
					t.Fatalf("%s: size %d mode %v, want %d 0444", p, fi.Size(), fi.Mode(), a.Size)
				}
				if got := sha256File(t, p); got != a.SHA256 {
					t.Fatalf("%s: sha256 %s, want %s", p, got, a.SHA256)
				}
				checked++
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("checked only %d assets", checked)
	}
	t.Logf("sha256 of %d assets matched", checked)
}

func TestGDALReadsMountedCOG(t *testing.T) {
	st := sharedStack(t)
	m := mountT(t, st.env(t), "--stac-url", st.stac.URL())
	coll := st.cat.Collection("sentinel-demo")
	it := coll.Items[0]
	a := it.Asset("visual")
	if a == nil || a.Path == "" {
		t.Fatal("fixture has no local visual COG")
	}
	local := gdalChecksums(t, a.Path)
	mounted := gdalChecksums(t, m.path(coll.ID, it.ID, "visual.tif"))
	if local == "" || local != mounted {
		t.Fatalf("gdalinfo -checksum: mounted %q, local %q", mounted, local)
	}
}

func TestDocumentsAsServed(t *testing.T) {
	st := sharedStack(t)
	m := mountT(t, st.env(t), "--stac-url", st.stac.URL())
	coll := st.cat.Collection("sentinel-demo")
	got, err := os.ReadFile(m.path(coll.ID, "collection.json"))
	if err != nil || !bytes.Equal(got, coll.JSON) {
		t.Fatalf("collection.json differs (err %v)", err)
	}
	for _, it := range coll.Items {
		got, err := os.ReadFile(m.path(coll.ID, it.ID, "item.json"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, it.JSON) {
			t.Fatalf("item.json of %s differs from the served item", it.ID)
		}
		var v map[string]any
		if err := json.Unmarshal(got, &v); err != nil || v["id"] != it.ID {
			t.Fatalf("item.json does not parse as the item: %v", err)
		}
	}
}

func TestReadOnly(t *testing.T) {
	st := sharedStack(t)
	m := mountT(t, st.env(t), "--stac-url", st.stac.URL())
	coll := st.cat.Collection("sentinel-demo")
	item := m.path(coll.ID, coll.Items[0].ID)
	file := filepath.Join(item, "visual.tif")
	checks := map[string]error{
		"open for write": func() error { f, err := os.OpenFile(file, os.O_WRONLY, 0); f.Close(); return err }(),
		"create":         func() error { _, err := os.Create(filepath.Join(item, "new.txt")); return err }(),
		"mkdir":          os.Mkdir(filepath.Join(item, "d"), 0o755),
		"remove":         os.Remove(file),
		"rename":         os.Rename(file, filepath.Join(item, "x.tif")),
		"chmod":          os.Chmod(file, 0o644),
		"truncate":       os.Truncate(file, 0),
		"symlink":        os.Symlink("/etc/passwd", filepath.Join(item, "l")),
	}
	for op, err := range checks {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", op, err)
		}
	}
	if sha256File(t, file) != coll.Items[0].Asset("visual").SHA256 {
		t.Fatal("file changed after refused writes")
	}
}

func TestHostileCatalog(t *testing.T) {
	st := sharedStack(t)
	m := mountT(t, st.env(t), "--stac-url", st.stac.URL())
	coll := st.cat.Collection("hostile")
	names := readNames(t, m.path(coll.ID))
	seen := map[string]bool{}
	for _, n := range names {
		if n == "." || n == ".." || strings.HasPrefix(n, ".") || strings.ContainsAny(n, "/\x00\n") || len(n) > 255 || !utf8.ValidString(n) {
			t.Errorf("unsafe name %q", n)
		}
		if seen[n] {
			t.Errorf("duplicate name %q", n)
		}
		seen[n] = true
	}
	// Every item with an ID is there, once (collection.json besides).
	ids := map[string]bool{}
	for _, it := range coll.Items {
		ids[it.ID] = true
	}
	if len(names) != len(ids)+1 {
		t.Errorf("%d entries for %d distinct items", len(names)-1, len(ids))
	}
	// Servable assets read correctly; unservable ones are absent; nothing
	// outside the mount is reachable.
	var files []string
	filepath.WalkDir(m.path(coll.ID), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walk %s: %v", p, err)
			return nil
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	want := map[string]int{}
	for _, it := range coll.Items {
		for _, a := range it.Assets {
			if a.Servable {
				want[a.SHA256]++
			}
		}
	}
	got := map[string]int{}
	for _, f := range files {
		if filepath.Base(f) == "item.json" || filepath.Base(f) == "collection.json" {
			continue
		}
		data, err := os.ReadFile(f)
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.EACCES) {
			continue // an asset whose object is missing: a clear error, no data
		}
		if err != nil {
			t.Errorf("read %s: %v", f, err)
			continue
		}
		if bytes.Contains(data, []byte("root:x:0:0")) {
			t.Fatalf("%s serves /etc/passwd", f)
		}
		sum := sha256.Sum256(data)
		got[hex.EncodeToString(sum[:])]++
	}
	for sum, n := range want {
		if got[sum] != n {
			t.Errorf("servable asset %s seen %d times, want %d", sum[:12], got[sum], n)
		}
	}
	if log := readFile(m.log); !strings.Contains(log, "asset left out of the tree") {
		t.Errorf("no warning for unservable hrefs in the log")
	}
}

func TestMountRefusesBadInput(t *testing.T) {
	st := sharedStack(t)
	env := st.env(t)
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	full := filepath.Join(tmp, "full")
	os.MkdirAll(filepath.Join(full, "child"), 0o755)
	empty := filepath.Join(tmp, "empty")
	os.Mkdir(empty, 0o755)
	tests := []struct {
		name, stacURL, dir, want string
	}{
		{"missing mountpoint", st.stac.URL(), filepath.Join(tmp, "nope"), "does not exist"},
		{"not a directory", st.stac.URL(), file, "not a directory"},
		{"not empty", st.stac.URL(), full, "not empty"},
		{"unreachable catalog", "http://127.0.0.1:1/stac", empty, "connection refused"},
		{"not a STAC API", st.stac.BaseURL() + "/files/", empty, "STAC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binPath, "mount", "--stac-url", tt.stacURL, "--log-file", filepath.Join(tmp, tt.name+".log"), tt.dir)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err == nil {
				exec.Command(binPath, "unmount", tt.dir).Run()
				t.Fatalf("mount succeeded: %s", out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("output %q, want one line containing %q", out, tt.want)
			}
			if isMounted(tt.dir) {
				t.Fatal("left a mount behind")
			}
		})
	}
}

func readNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// gdalChecksums returns the band checksums gdalinfo computes.
func gdalChecksums(t *testing.T, p string) string {
	t.Helper()
	out, err := exec.Command("gdalinfo", "-checksum", p).CombinedOutput()
	if err != nil {
		t.Fatalf("gdalinfo %s: %v\n%s", p, err, out)
	}
	var sums []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "Checksum=") {
			sums = append(sums, strings.TrimSpace(l))
		}
	}
	return strings.Join(sums, ";")
}

// assetType is the asset's media type in the item document.
func assetType(t *testing.T, it fixtures.Item, key string) string {
	var doc struct {
		Assets map[string]struct {
			Type string `json:"type"`
		} `json:"assets"`
	}
	if err := json.Unmarshal(it.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Assets[key].Type
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}
