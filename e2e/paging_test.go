package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// TestHostilePaging serves a catalog whose pages misbehave: a malformed
// feature, an item served on two pages, a next link that loops back, an
// asset on another host, and a 50 MB page. The listing terminates, holds
// each good item once, and the asset on the other host reads correctly.
func TestHostilePaging(t *testing.T) {
	asset := bytes.Repeat([]byte("other-host-bytes."), 4096)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" || r.Header.Get("api-key") != "" {
			t.Errorf("credentials sent to another host: %v", r.Header)
		}
		http.ServeContent(w, r, "b.bin", time.Unix(1700000000, 0), bytes.NewReader(asset))
	}))
	defer other.Close()

	var srv *httptest.Server
	item := func(id, href string) string {
		return fmt.Sprintf(`{"type":"Feature","stac_version":"1.0.0","id":%q,"collection":"odd-pages","properties":{"datetime":"2024-01-01T00:00:00Z"},"links":[],"assets":{"data":{"href":%q,"file:size":%d}}}`, id, href, len(asset))
	}
	big := `{"type":"Feature","id":"big","collection":"huge-page","properties":{"datetime":"2024-01-01T00:00:00Z","description":"` + strings.Repeat("x", 50<<20) + `"},"links":[],"assets":{}}`
	mux := http.NewServeMux()
	mux.HandleFunc("/stac", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"type":"Catalog","id":"hostile-paging","conformsTo":["https://api.stacspec.org/v1.0.0/core"],"links":[]}`)
	})
	mux.HandleFunc("/stac/collections", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"collections":[{"id":"odd-pages","type":"Collection"},{"id":"huge-page","type":"Collection"}],"links":[]}`)
	})
	mux.HandleFunc("/stac/collections/odd-pages/items", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("page") == "" {
			fmt.Fprintf(w, `{"type":"FeatureCollection","features":[%s,{"id":5},"junk",{"id":["x"]}],"links":[{"rel":"next","href":"%s/stac/collections/odd-pages/items?page=2"}]}`,
				item("a", other.URL+"/a.bin"), srv.URL)
			return
		}
		// Page 2 repeats item a, adds b on another host, and links to itself.
		fmt.Fprintf(w, `{"type":"FeatureCollection","features":[%s,%s],"links":[{"rel":"next","href":"%s/stac/collections/odd-pages/items?page=2"}]}`,
			item("a", other.URL+"/a.bin"), item("b", other.URL+"/b.bin"), srv.URL)
	})
	mux.HandleFunc("/stac/collections/huge-page/items", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"type":"FeatureCollection","features":[%s],"links":[]}`, big)
	})
	srv = httptest.NewUnstartedServer(mux)
	srv.Start() // after srv is set: the handlers read it
	defer srv.Close()

	m := mountT(t, baseEnv(t), "--stac-url", srv.URL+"/stac", "--no-sign-request")
	done := make(chan []string, 1)
	go func() { done <- readNames(t, m.path("odd-pages")) }()
	var names []string
	select {
	case names = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("listing a collection whose next link loops did not finish")
	}
	if !sameSet(names, []string{"collection.json", "a", "b"}) {
		t.Fatalf("odd-pages lists %v, want collection.json, a, b", names)
	}
	got, err := os.ReadFile(m.path("odd-pages", "b", "data.bin"))
	if err != nil || !bytes.Equal(got, asset) {
		t.Fatalf("asset on another host: %d bytes, err %v", len(got), err)
	}
	if names := readNames(t, m.path("huge-page")); !sameSet(names, []string{"collection.json", "big"}) {
		t.Fatalf("huge-page lists %v", names)
	}
	if fi, err := os.Stat(m.path("huge-page", "big", "item.json")); err != nil || fi.Size() != int64(len(big)) {
		t.Fatalf("item.json of a 50 MB item: %v %v", fi, err)
	}
	log := readFile(m.log)
	for _, want := range []string{"skipping a malformed item", "next link repeats"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}
