package stacindex

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzSafeName(f *testing.F) {
	for _, s := range []string{"", ".", "..", "a/b", "with\x00nul", "line\nbreak", strings.Repeat("é", 300), "café", "cafe\u0301", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		name := SafeName(raw)
		if name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".") {
			t.Fatalf("SafeName(%q) = %q", raw, name)
		}
		if len(name) > MaxNameLen || strings.ContainsAny(name, "/\x00") || !utf8.ValidString(name) {
			t.Fatalf("SafeName(%q) = %q: unsafe", raw, name)
		}
		if SafeName(raw) != name {
			t.Fatal("not deterministic")
		}
		a := AssetFileName(raw, raw, raw)
		if len(a) > MaxNameLen || strings.ContainsAny(a, "/\x00") || strings.HasPrefix(a, ".") || !utf8.ValidString(a) {
			t.Fatalf("AssetFileName(%q) = %q: unsafe", raw, a)
		}
	})
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"s3://b/k", "https://b.s3.amazonaws.com/k", "http://127.0.0.1:9000/b/k%20x", "../../secret", "file:///etc/passwd", "ftp://x/y", "s3://", "https://s3.amazonaws.com/", "//host/path"} {
		f.Add(s, "https://stac.example.com/stac/collections/c/items/i")
	}
	ep, _ := url.Parse("http://127.0.0.1:9000")
	r := Resolver{S3Endpoint: ep}
	f.Fuzz(func(t *testing.T, href, base string) {
		loc, err := r.Resolve(href, base)
		if err != nil {
			return
		}
		switch loc.Kind {
		case KindS3:
			if loc.Bucket == "" || loc.Key == "" {
				t.Fatalf("Resolve(%q) = %+v: empty bucket or key", href, loc)
			}
		case KindHTTP:
			u, err := url.Parse(loc.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				t.Fatalf("Resolve(%q) = %q: not an absolute http(s) URL", href, loc.URL)
			}
		default:
			t.Fatalf("Resolve(%q): kind %d", href, loc.Kind)
		}
	})
}

func FuzzParseItem(f *testing.F) {
	f.Add([]byte(`{"type":"Feature","id":"a","properties":{"datetime":"2024-01-01T00:00:00Z"},"assets":{"v":{"href":"s3://b/k.tif","file:size":10}},"links":[{"rel":"self","href":"./a.json"}]}`))
	f.Add([]byte(`{"id":5}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`{"id":"x","assets":{"a":{"href":""},"b":{"href":"x","file:size":-1}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		it, err := ParseItem(raw, "https://stac.example.com/stac/collections/c/items")
		if err != nil {
			return
		}
		if it.ID == "" {
			t.Fatal("item without id accepted")
		}
		for _, a := range it.Assets {
			if a.Href == "" || a.Size < -1 {
				t.Fatalf("bad asset %+v", a)
			}
		}
	})
}

// FuzzPages serves fuzzed pages (with next links that may loop or point
// anywhere on the same server) and checks that paging always ends.
func FuzzPages(f *testing.F) {
	f.Add([]byte(`{"features":[{"id":"a"}],"links":[{"rel":"next","href":"?page=1"}]}`))
	f.Add([]byte(`{"features":[],"links":[{"rel":"next","href":"items","method":"POST","body":{"token":1}}]}`))
	f.Add([]byte(`{"features":[{"id":"a"},{"id":"a"}],"links":[{"rel":"next","href":"file:///etc/passwd"}]}`))
	f.Fuzz(func(t *testing.T, page []byte) {
		n := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n++
			w.Write(page)
		}))
		defer srv.Close()
		c, err := NewClient(srv.URL, Options{MaxPages: 50, MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Items(context.Background(), "c", func(it Item) error { return nil })
		var se *json.SyntaxError
		_ = errors.As(err, &se)
		if n > 50 {
			t.Fatalf("fetched %d pages, limit 50", n)
		}
	})
}
