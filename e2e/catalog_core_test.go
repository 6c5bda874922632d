package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prescient/prescientfs/stacindex"
)

// coreCatalog is a small STAC API with hostile item IDs, a search that
// rejects a bad bbox, and a request log.
type coreCatalog struct {
	srv *httptest.Server
	ids []string
	mu  sync.Mutex
	log []string // guarded by mu
}

func newCoreCatalog(t *testing.T) *coreCatalog {
	c := &coreCatalog{ids: []string{"plain-1", "tile/33UUP", "2024", "collection.json", "x~0123456789abcdef"}}
	item := func(id string) string {
		return fmt.Sprintf(`{"type":"Feature","stac_version":"1.0.0","id":%q,"collection":"c","properties":{"datetime":"2024-06-01T12:00:00Z"},"links":[],"assets":{}}`, id)
	}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.log = append(c.log, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		c.mu.Unlock()
		var feats []string
		switch {
		case r.URL.Path == "/stac":
			fmt.Fprint(w, `{"type":"Catalog","id":"core","conformsTo":["https://api.stacspec.org/v1.0.0/core"],"links":[]}`)
			return
		case r.URL.Path == "/stac/collections":
			fmt.Fprint(w, `{"collections":[{"type":"Collection","id":"c"},{"type":"Collection","id":"other"}],"links":[]}`)
			return
		case r.URL.Path == "/stac/collections/c/items", r.URL.Path == "/stac/search":
			if r.URL.Query().Get("bbox") == "bad" {
				http.Error(w, `{"code":"BadRequest","description":"Invalid bbox: bad"}`, http.StatusBadRequest)
				return
			}
			for _, id := range c.ids {
				feats = append(feats, item(id))
			}
		case strings.HasPrefix(r.URL.Path, "/stac/collections/c/items/"):
			id := strings.TrimPrefix(r.URL.Path, "/stac/collections/c/items/")
			for _, x := range c.ids {
				if x == id && !strings.Contains(id, "/") { // pgstac: 404 for IDs with "/"
					fmt.Fprint(w, item(id))
					return
				}
			}
			http.NotFound(w, r)
			return
		case r.URL.Path == "/stac/collections/other/items":
		default:
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"type":"FeatureCollection","features":[%s],"links":[]}`, strings.Join(feats, ","))
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *coreCatalog) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.log
	c.log = nil
	return out
}

// TestCatalogCoreNamesAndIndex: hostile IDs get names from the ID alone;
// a hashed name resolves through the listing, and on a remount through
// the index, with no catalog request.
func TestCatalogCoreNamesAndIndex(t *testing.T) {
	cat := newCoreCatalog(t)
	env := baseEnv(t)
	indexDir := t.TempDir()
	args := []string{"--stac-url", cat.srv.URL + "/stac", "--no-sign-request", "--index-dir", indexDir}
	m := mountT(t, env, args...)
	var want []string
	for _, id := range cat.ids {
		want = append(want, stacindex.ItemName(id))
	}
	if got := readNames(t, m.path("c")); !sameSet(got, append(want, "collection.json")) {
		t.Fatalf("ls c: %q, want %q", got, want)
	}
	for _, id := range cat.ids {
		n := stacindex.ItemName(id)
		if (id == "plain-1") != (n == id) {
			t.Errorf("ID %q named %q", id, n)
		}
		if b, err := os.ReadFile(m.path("c", n, "item.json")); err != nil || !strings.Contains(string(b), "2024-06-01") {
			t.Errorf("%s/item.json: %v", n, err)
		}
	}
	m.unmount(t)
	if files, _ := filepath.Glob(filepath.Join(indexDir, "*.db")); len(files) != 1 {
		t.Fatalf("index files %q", files)
	}

	cat.requests()
	m = mountT(t, env, args...)
	slash := stacindex.ItemName("tile/33UUP")
	if b, err := os.ReadFile(m.path("c", slash, "item.json")); err != nil || !strings.Contains(string(b), "tile/33UUP") {
		t.Fatalf("hashed name after a remount: %v", err)
	}
	if got := readNames(t, m.path("c")); len(got) != len(want)+1 {
		t.Fatalf("ls c after a remount: %q", got)
	}
	for _, r := range cat.requests() {
		if strings.Contains(r, "/collections/c/") {
			t.Errorf("remount within the TTL asked the catalog: %s", r)
		}
	}
	// A typed hashed name that no listing gave out is not found.
	if _, err := os.Stat(m.path("c", "nothing~0123456789abcdef")); !os.IsNotExist(err) {
		t.Errorf("unknown hashed name: %v", err)
	}
}

// TestCatalogCoreSearch: a search mount shows only the collections with
// results; a search the API rejects fails the mount with its message.
func TestCatalogCoreSearch(t *testing.T) {
	cat := newCoreCatalog(t)
	env := baseEnv(t)
	base := []string{"--stac-url", cat.srv.URL + "/stac", "--no-sign-request", "--no-index"}
	m := mountT(t, env, append(base, "--search", "collections=c&datetime=2024-06-01/2024-06-02", "--max-items", "3")...)
	if got := readNames(t, m.path()); !sameSet(got, []string{"c"}) {
		t.Fatalf("root of a search mount: %q", got)
	}
	if got := readNames(t, m.path("c")); len(got) != 4 { // collection.json and 3 results
		t.Fatalf("ls c: %q", got)
	}
	_, out, err := tryMountIn(t, "", env, append(base, "--search", "collections=c&bbox=bad")...)
	if err == nil || !strings.Contains(out, "Invalid bbox: bad") {
		t.Fatalf("rejected search: %v %q", err, out)
	}
}
