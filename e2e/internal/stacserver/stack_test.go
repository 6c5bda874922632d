package stacserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/e2e/internal/minio"
	"github.com/prescient/prescientfs/e2e/internal/stacserver"
)

// TestServesBuiltFixtures runs the whole stack: MinIO, fixtures, server,
// and walks the catalog the way a client does.
func TestServesBuiltFixtures(t *testing.T) {
	m := minio.StartT(t, minio.Options{})
	s := stacserver.NewT(t, stacserver.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	cat, err := fixtures.Build(ctx, fixtures.Options{
		S3: m.Client(), S3Endpoint: m.Endpoint, STACURL: s.URL(),
		WorkDir: t.TempDir(), LargeItems: 120,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.SetCatalog(cat)

	_, body := get(t, s.URL())
	var landing struct {
		Type       string          `json:"type"`
		ConformsTo []string        `json:"conformsTo"`
		Links      []fixtures.Link `json:"links"`
	}
	if err := json.Unmarshal(body, &landing); err != nil || landing.Type != "Catalog" ||
		!slices.Contains(landing.ConformsTo, "https://api.stacspec.org/v1.0.0/item-search") {
		t.Fatalf("landing page: %v %s", err, body)
	}

	for _, coll := range cat.Collections {
		url := fixtures.CollectionURL(s.URL(), coll.ID) + "/items?limit=100"
		var got []json.RawMessage
		for url != "" {
			resp, body := get(t, url)
			var p page
			if err := json.Unmarshal(body, &p); err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
			}
			got = append(got, p.Features...)
			url = ""
			if l := next(p); l != nil {
				url = l.Href
			}
		}
		if len(got) != len(coll.Items) {
			t.Fatalf("%s: %d items served, want %d", coll.ID, len(got), len(coll.Items))
		}
		for i, it := range coll.Items {
			if !bytes.Equal(got[i], it.JSON) {
				t.Fatalf("%s/%q: served bytes differ from the fixture", coll.ID, it.ID)
			}
		}
	}

	item := cat.Collection(fixtures.HostileCollection).Item("static-files")
	rel := item.Asset("rel")
	base, _ := url.Parse(fixtures.ItemURL(s.URL(), fixtures.HostileCollection, item.ID))
	ref, _ := url.Parse(rel.Href)
	resp, data := get(t, base.ResolveReference(ref).String())
	sum := sha256.Sum256(data)
	if resp.StatusCode != 200 || hex.EncodeToString(sum[:]) != rel.SHA256 {
		t.Fatalf("relative static asset: %d, %d bytes", resp.StatusCode, len(data))
	}
}
