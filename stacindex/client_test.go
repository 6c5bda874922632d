package stacindex

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pagedServer serves n items in pages of 10: GET next links for the first
// half, POST next links with a body for the rest, as STAC API allows.
func pagedServer(t *testing.T, n int, fail *atomic.Int32) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	var srv *httptest.Server
	mux.HandleFunc("/stac/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"type":"Catalog","id":"t","conformsTo":["https://api.stacspec.org/v1.0.0/core"],"links":[]}`)
	})
	mux.HandleFunc("/stac/collections/c/items", func(w http.ResponseWriter, r *http.Request) {
		if fail != nil && fail.Add(-1) >= 0 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusTooManyRequests)
			return
		}
		start := 0
		if r.Method == http.MethodPost {
			var body struct{ Start int }
			json.NewDecoder(r.Body).Decode(&body)
			start = body.Start
		} else if s := r.URL.Query().Get("start"); s != "" {
			start, _ = strconv.Atoi(s)
		}
		var feats []string
		for i := start; i < min(start+10, n); i++ {
			feats = append(feats, fmt.Sprintf(`{"type":"Feature","id":"item-%04d","assets":{"a":{"href":"s3://b/%d.tif"}}}`, i, i))
		}
		var links []string
		if next := start + 10; next < n {
			if next < n/2 {
				links = append(links, fmt.Sprintf(`{"rel":"next","href":"%s/stac/collections/c/items?start=%d"}`, srv.URL, next))
			} else {
				links = append(links, fmt.Sprintf(`{"rel":"next","href":"%s/stac/collections/c/items","method":"POST","body":{"Start":%d}}`, srv.URL, next))
			}
		}
		fmt.Fprintf(w, `{"type":"FeatureCollection","features":[%s],"links":[%s]}`, strings.Join(feats, ","), strings.Join(links, ","))
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestItemsPaging(t *testing.T) {
	var fail atomic.Int32
	fail.Store(2)
	srv := pagedServer(t, 95, &fail)
	c, err := NewClient(srv.URL+"/stac", Options{PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Landing(context.Background()); err != nil {
		t.Fatalf("Landing: %v", err)
	}
	var ids []string
	err = c.Items(context.Background(), "c", func(it Item) error { ids = append(ids, it.ID); return nil })
	if err != nil {
		t.Fatalf("Items: %v", err)
	}
	if len(ids) != 95 || ids[0] != "item-0000" || ids[94] != "item-0094" {
		t.Fatalf("got %d items (%v ... )", len(ids), ids[:min(3, len(ids))])
	}
}

func TestPersistentFailureIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	c, _ := NewClient(srv.URL, Options{MaxAttempts: 2})
	start := time.Now()
	err := c.Items(context.Background(), "c", func(Item) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
}

func TestNotSTAC(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html>hello</html>")
	}))
	defer srv.Close()
	c, _ := NewClient(srv.URL, Options{})
	if _, err := c.Landing(context.Background()); err == nil || !strings.Contains(err.Error(), "not a STAC API") {
		t.Fatalf("err = %v", err)
	}
}

// The bearer goes to the catalog's origin only, and a 401 triggers one renewal.
func TestAuthHeaderScope(t *testing.T) {
	var other atomic.Value
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.Store(r.Header.Get("Authorization"))
		io.WriteString(w, `{"features":[{"id":"z"}],"links":[]}`)
	}))
	defer foreign.Close()
	var renewed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer fresh" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"features":[{"id":"a"}],"links":[{"rel":"next","href":"%s/page2"}]}`, foreign.URL)
	}))
	defer srv.Close()
	token := "stale"
	c, _ := NewClient(srv.URL, Options{
		Header: func(context.Context) (http.Header, error) {
			return http.Header{"Authorization": {"Bearer " + token}}, nil
		},
		OnUnauthorized: func() { renewed.Add(1); token = "fresh" },
	})
	var ids []string
	if err := c.Items(context.Background(), "c", func(it Item) error { ids = append(ids, it.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if renewed.Load() != 1 || len(ids) != 2 {
		t.Fatalf("renewed %d times, items %v", renewed.Load(), ids)
	}
	if v, _ := other.Load().(string); v != "" {
		t.Fatalf("bearer leaked to another origin: %q", v)
	}
}
