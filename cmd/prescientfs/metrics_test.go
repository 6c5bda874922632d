package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/prescient/prescientfs/creds"
	"github.com/prescient/prescientfs/fs/objread"
	"github.com/prescient/prescientfs/stacindex"
)

// fakeStore answers every GetRange with n bytes, and fails keys named
// "missing" with ErrNotFound.
type fakeStore struct{}

func (fakeStore) Stat(ctx context.Context, loc stacindex.Location) (objread.ObjectInfo, error) {
	if loc.Key == "missing" {
		return objread.ObjectInfo{}, fmt.Errorf("HEAD s3://b/missing: %w", objread.ErrNotFound)
	}
	return objread.ObjectInfo{Size: 10}, nil
}

func (fakeStore) GetRange(ctx context.Context, loc stacindex.Location, off, n int64, etag string) (*objread.Body, error) {
	if loc.Key == "missing" {
		return nil, fmt.Errorf("GET s3://b/missing: %w", objread.ErrNotFound)
	}
	return &objread.Body{ReadCloser: io.NopCloser(strings.NewReader(strings.Repeat("x", int(n)))), Size: -1}, nil
}

func TestMeteredStore(t *testing.T) {
	m := newMountMetrics()
	s := m.objectStore(fakeStore{})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		body, err := s.GetRange(ctx, stacindex.Location{Kind: stacindex.KindS3, Key: "a"}, 0, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(body); len(b) != 100 {
			t.Fatalf("body %d bytes", len(b))
		}
		body.Close() // ends nothing twice
	}
	if _, err := s.GetRange(ctx, stacindex.Location{Kind: stacindex.KindS3, Key: "missing"}, 0, 1, ""); !errors.Is(err, objread.ErrNotFound) {
		t.Fatalf("error not passed through: %v", err)
	}
	s.Stat(ctx, stacindex.Location{Kind: stacindex.KindS3, Key: "a"})
	for _, c := range []struct {
		kind, outcome string
		want          float64
	}{{"get", "ok", 3}, {"get", "not_found", 1}, {"head", "ok", 1}} {
		if got := testutil.ToFloat64(m.objRequests.WithLabelValues(c.kind, c.outcome)); got != c.want {
			t.Errorf("requests{%s,%s} = %v, want %v", c.kind, c.outcome, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.objFirstByte); n != 1 {
		t.Errorf("first-byte histograms: %d", n)
	}
	if got := histogramCount(t, m, "prescientfs_object_first_byte_seconds"); got != 3 {
		t.Errorf("first-byte observations %v, want 3", got)
	}
	if got := histogramCount(t, m, "prescientfs_object_request_duration_seconds"); got != 5 {
		t.Errorf("duration observations %v, want 5 (4 GETs, 1 HEAD)", got)
	}
}

// histogramCount sums the sample counts of a histogram's series.
func histogramCount(t *testing.T, m *mountMetrics, name string) uint64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, s := range mf.GetMetric() {
				n += s.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}

func TestCatalogKind(t *testing.T) {
	for path, want := range map[string]string{
		"/stac/":                              "other",
		"/stac/collections":                   "collections",
		"/stac/collections/s2":                "collection",
		"/stac/collections/s2/items":          "items",
		"/stac/collections/s2/items/":         "items",
		"/stac/collections/s2/items/S2A_1234": "item",
		"/stac/search":                        "search",
	} {
		req := httptest.NewRequest("GET", "http://api.example.com"+path+"?token=secret", nil)
		if got := catalogKind(req); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
}

// The metrics endpoint serves the text format: the read path's counters,
// the credentials' renewals and expiry, catalog requests (no URL in any
// label), FUSE operations.
func TestMetricsEndpoint(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/items") {
			io.WriteString(w, `{"features":[]}`)
			return
		}
		http.NotFound(w, r)
	}))
	defer api.Close()
	m := newMountMetrics()
	st := &objread.Stats{}
	st.BytesServed.Add(4096)
	st.DiskHits.Add(2)
	budget := objread.NewBudget(1 << 20)
	budget.TryAcquire(1000)
	m.readPath(st, budget, objread.NewBlockCache(1<<20, 0))
	m.credentials(func() creds.Stats { return creds.Stats{TokenRenewals: 2, CredentialFailures: 1} },
		func() time.Time { return time.Now().Add(time.Hour) })
	hc := &http.Client{Transport: m.catalogTransport(nil)}
	for _, p := range []string{"/stac/collections/c/items?token=SECRET", "/stac/collections/c/items/x"} {
		resp, err := hc.Get(api.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	m.observeFUSE("lookup", fuse.ENOENT, time.Millisecond)
	m.observeFUSE("read", fuse.OK, 2*time.Millisecond)

	url, stop, err := m.serve("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for _, want := range []string{
		`prescientfs_bytes_served_total 4096`,
		`prescientfs_cache_hits_total{cache="disk"} 2`,
		`prescientfs_cache_hits_total{cache="memory"} 0`,
		`prescientfs_memory_budget_used_bytes 1000`,
		`prescientfs_memory_budget_limit_bytes 1.048576e+06`,
		`prescientfs_token_renewals_total 2`,
		`prescientfs_credential_renewal_failures_total 1`,
		`prescientfs_catalog_requests_total{kind="items",outcome="2xx"} 1`,
		`prescientfs_catalog_requests_total{kind="item",outcome="4xx"} 1`,
		`prescientfs_catalog_request_duration_seconds_count{kind="items"} 1`,
		`prescientfs_fuse_operations_total{op="lookup",status="ENOENT"} 1`,
		`prescientfs_fuse_operation_duration_seconds_count{op="read"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
	if exp := regexp.MustCompile(`(?m)^prescientfs_credentials_expiry_seconds (\S+)$`).FindStringSubmatch(text); exp == nil || !strings.HasPrefix(exp[1], "3") {
		t.Errorf("credentials expiry not about an hour: %v", exp)
	}
	if strings.Contains(text, "SECRET") || strings.Contains(text, "127.0.0.1") {
		t.Error("a URL or a query reached the metrics")
	}
}
