package stacindex

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var bg = context.Background()

func TestItemNames(t *testing.T) {
	hashed := func(id string) bool { n := ItemName(id); return n != id && IsHashedName(n) }
	tests := []struct {
		id    string
		plain bool // its own name
	}{
		{"S2B_33UUP_20240601_0_L2A", true},
		{"item-000001", true},
		{"café", true},
		{"a/b", false},
		{"a_b", true},
		{".hidden", false},
		{"..", false},
		{"", false},
		{"with\x00nul", false},
		{"line\nbreak", false},
		{"bad\xffutf8", false},
		{"collection.json", false},
		{"item.json", true}, // reserved in item directories, not in collections
		{"2024", false},     // a year directory's name
		{"20245", true},
		{"x~0123456789abcdef", false}, // looks hashed
		{"x~0123456789ABCDEF", true},
		{strings.Repeat("é", 200), false}, // over 255 bytes
		{strings.Repeat("a", 255), true},
		{strings.Repeat("a", 256), false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.20q", tt.id), func(t *testing.T) {
			n := ItemName(tt.id)
			if tt.plain != (n == tt.id) {
				t.Fatalf("ItemName(%q) = %q", tt.id, n)
			}
			if !tt.plain && !hashed(tt.id) {
				t.Fatalf("ItemName(%q) = %q: not hashed", tt.id, n)
			}
			if n == "" || n == "." || n == ".." || strings.HasPrefix(n, ".") || strings.ContainsAny(n, "/\x00") || len(n) > MaxNameLen {
				t.Fatalf("unsafe name %q", n)
			}
			if n == CollectionJSON || IsYearName(n) {
				t.Fatalf("reserved name %q given out", n)
			}
			if ItemName(tt.id) != n {
				t.Fatal("not deterministic")
			}
		})
	}
	// Hostile IDs that sanitise alike stay apart.
	seen := map[string]string{}
	for _, id := range []string{"a/b", "a\\b", "a\x00b", "a\nb", "a_b", strings.Repeat("x", 300), strings.Repeat("x", 301)} {
		n := ItemName(id)
		if other, dup := seen[n]; dup {
			t.Errorf("%q and %q share the name %q", id, other, n)
		}
		seen[n] = id
	}
	if got := ItemName("a/b"); got != "a_b~"+ItemName("a/b")[4:] || len(got) != 3+hashedSuffixLen {
		t.Errorf("ItemName(a/b) = %q", got)
	}
}

func newTestTree(t *testing.T, f *fakeSTAC, o TreeOptions) *Tree {
	if o.TTL == 0 {
		o.TTL = time.Minute
	}
	return NewTreeOptions(f.client(t), o)
}

// A lookup by ID in a huge collection sends one request and no listing;
// once known, none.
func TestLookupByIDNeverLists(t *testing.T) {
	f := newFakeSTAC(t, &fakeColl{id: "big", n: 200_000, start: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)})
	tree := newTestTree(t, f, TreeOptions{})
	it, err := tree.ItemByName(bg, "big", "item-123456")
	if err != nil || it.ID != "item-123456" || len(it.Assets) != 1 {
		t.Fatalf("lookup: %+v %v", it, err)
	}
	if got := f.requests(""); len(got) != 1 || !strings.Contains(got[0], "/collections/big/items/item-123456") {
		t.Fatalf("requests %q, want one GET items/{id}", got)
	}
	f.resetLog()
	if _, err := tree.ItemByName(bg, "big", "item-123456"); err != nil {
		t.Fatal(err)
	}
	if _, err := tree.ItemByName(bg, "big", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing item: %v", err)
	}
	if got := f.requests("/items?"); len(got) != 0 {
		t.Fatalf("listing requests %q", got)
	}
	if got := f.requests(""); len(got) != 2 { // "nope": items/{id} and the search by ID
		t.Fatalf("requests %q", got)
	}
	// Names that are not an item's own name, and hashed names no listing
	// gave out, are not found, without a request.
	f.resetLog()
	for _, name := range []string{"2024", "a_b~0123456789abcdef", "collection.json"} {
		if _, err := tree.ItemByName(bg, "big", name); !errors.Is(err, ErrNotFound) {
			t.Errorf("%q: %v", name, err)
		}
	}
	if got := f.requests(""); len(got) != 0 {
		t.Fatalf("requests %q", got)
	}
}

// pgstac answers 404 on items/{id} for IDs with "/": the search by ID
// finds them; a hashed name resolves through the listing that gave it
// out, and through the index on a later mount.
func TestSlashIDs(t *testing.T) {
	f := newFakeSTAC(t, &fakeColl{id: "c", n: 20, start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		ids: func(i int) string { return fmt.Sprintf("tile/%02d", i) }})
	f.pgstac = true
	c := f.client(t)
	it, err := c.ItemByID(bg, "c", "tile/07")
	if err != nil || it.ID != "tile/07" {
		t.Fatalf("ItemByID: %v %v", it.ID, err)
	}
	if n := len(f.requests("")); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	ix, err := OpenIndex(filepath.Join(t.TempDir(), "ix.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tree := newTestTree(t, f, TreeOptions{Layout: LayoutFlat, Index: ix})
	l, _ := tree.Items(bg, "c")
	if err := l.Wait(); err != nil || l.Len() != 20 {
		t.Fatalf("listing: %d %v", l.Len(), err)
	}
	name := ItemName("tile/07")
	if it, err := tree.ItemByName(bg, "c", name); err != nil || it.ID != "tile/07" {
		t.Fatalf("hashed name %q: %v", name, err)
	}
	cold := newTestTree(t, f, TreeOptions{Layout: LayoutFlat})
	if _, err := cold.ItemByName(bg, "c", name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cold lookup of a hashed name without an index: %v", err)
	}
	f.resetLog()
	warm := newTestTree(t, f, TreeOptions{Layout: LayoutFlat, Index: ix})
	if it, err := warm.ItemByName(bg, "c", name); err != nil || it.ID != "tile/07" {
		t.Fatalf("hashed name through the index: %v", err)
	}
	if got := f.requests(""); len(got) != 0 {
		t.Fatalf("requests %q, want none (the index has the document)", got)
	}
}

func listAll(t *testing.T, l *Listing) []string {
	t.Helper()
	if err := l.Wait(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; ; i++ {
		e, ok, _ := l.Entry(i)
		if !ok {
			return ids
		}
		ids = append(ids, e.ID)
	}
}

// An API that fails large pages gets smaller ones, and the size that
// worked is kept; duplicates across pages and silently capped limits are
// handled.
func TestAdaptivePagesAndDuplicates(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusRequestEntityTooLarge} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := newFakeSTAC(t, &fakeColl{id: "c", n: 130, start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
			f.failAbove, f.failStatus = 30, status
			tree := newTestTree(t, f, TreeOptions{Layout: LayoutFlat})
			start := time.Now()
			l, _ := tree.Items(bg, "c")
			if ids := listAll(t, l); len(ids) != 130 {
				t.Fatalf("%d items", len(ids))
			}
			if time.Since(start) > 2*time.Second {
				t.Errorf("took %v: shrinking should not wait for retries", time.Since(start))
			}
			if got := f.requests("limit=100"); len(got) != 1 {
				t.Errorf("limit=100 asked %d times", len(got))
			}
			if got := f.requests("limit=50"); len(got) != 1 {
				t.Errorf("limit=50 asked %d times", len(got))
			}
			if got := f.requests("limit=25"); len(got) != 6 { // 130/25
				t.Errorf("limit=25 asked %d times: %q", len(got), f.requests(""))
			}
			f.resetLog()
			tree.Day(bg, "c", 2024, 1, 2).Wait()
			if got := f.requests("limit="); len(got) != 1 || !strings.Contains(got[0], "limit=25") {
				t.Errorf("later listing: %q, want limit=25 at once", got)
			}
		})
	}
	f := newFakeSTAC(t, &fakeColl{id: "c", n: 95, start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
	f.overlap, f.capLimit = true, 7
	tree := newTestTree(t, f, TreeOptions{Layout: LayoutFlat})
	l, _ := tree.Items(bg, "c")
	ids := listAll(t, l)
	if len(ids) != 95 || ids[0] != "item-000000" || ids[94] != "item-000094" {
		t.Fatalf("%d items (%v…)", len(ids), ids[:min(3, len(ids))])
	}
}

// A listing streams: its first entries are there while later pages are
// still on their way.
func TestListingStreams(t *testing.T) {
	release := make(chan struct{})
	f := newFakeSTAC(t, &fakeColl{id: "c", n: 300, start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
	inner := f.srv.Config.Handler
	f.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("token") != "" {
			<-release
		}
		inner.ServeHTTP(w, r)
	})
	tree := newTestTree(t, f, TreeOptions{Layout: LayoutFlat})
	l, _ := tree.Items(bg, "c")
	done := make(chan ListEntry)
	go func() { e, _, _ := l.Entry(99); done <- e }()
	select {
	case e := <-done:
		if e.ID != "item-000099" {
			t.Fatalf("entry 99: %q", e.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first page's entries wait for the whole listing")
	}
	close(release)
	if n := len(listAll(t, l)); n != 300 {
		t.Fatalf("%d items", n)
	}
}

// A day is filled by datetime-filtered item requests and holds exactly
// that day's items.
func TestDayFill(t *testing.T) {
	start := time.Date(2024, 5, 31, 23, 50, 0, 0, time.UTC)
	f := newFakeSTAC(t, &fakeColl{id: "c", n: 10_000, start: start, step: 20 * time.Minute})
	tree := newTestTree(t, f, TreeOptions{Layout: LayoutDate})
	ids := listAll(t, tree.Day(bg, "c", 2024, 6, 2))
	if len(ids) != 72 {
		t.Fatalf("%d items on 2024-06-02, want 72", len(ids))
	}
	// Item i is at start + i·20min: 2024-06-02T00:10 is item 73.
	if ids[0] != "item-000073" || ids[71] != "item-000144" {
		t.Fatalf("day holds %s … %s", ids[0], ids[71])
	}
	got := f.requests("/items?")
	if len(got) != 1 || !strings.Contains(got[0], "datetime=2024-06-02T00%3A00%3A00Z%2F2024-06-02T23%3A59%3A59.999999Z") {
		t.Fatalf("requests %q", got)
	}
}

// auto is flat up to MaxListing items, date above: from numberMatched
// when served (one request), else by paging at most MaxListing+1 items.
func TestAutoLayout(t *testing.T) {
	day := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, nm := range []bool{false, true} {
		t.Run(fmt.Sprintf("numberMatched=%v", nm), func(t *testing.T) {
			f := newFakeSTAC(t, &fakeColl{id: "small", n: 250, start: day}, &fakeColl{id: "big", n: 100_000, start: day})
			f.numberMatched = nm
			tree := newTestTree(t, f, TreeOptions{MaxListing: 300})
			if l, err := tree.Layout(bg, "small"); err != nil || l != LayoutFlat {
				t.Fatalf("small: %v %v", l, err)
			}
			if l, err := tree.Layout(bg, "big"); err != nil || l != LayoutDate {
				t.Fatalf("big: %v %v", l, err)
			}
			want := 4 // 300+1 items in pages of 100 (and maybe the page read ahead)
			if nm {
				want = 1
			}
			if got := f.requests("/collections/big/items?"); len(got) < want || len(got) > want+1 {
				t.Fatalf("%d listing requests for big, want %d (+1 read ahead)", len(got), want)
			}
			l, _ := tree.Items(bg, "small")
			if n := len(listAll(t, l)); n != 250 {
				t.Fatalf("small lists %d", n)
			}
			if got := f.requests("/collections/small/items?"); len(got) != 3 {
				t.Fatalf("small: %d requests, want 3 (the probe is the listing)", len(got))
			}
		})
	}
}

func TestYearsFromExtent(t *testing.T) {
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	e := temporalExtent([]byte(`{"extent":{"temporal":{"interval":[["2015-06-23T00:00:00Z",null]]}}}`))
	if a, b := e.YearRange(now); a != 2015 || b != 2026 {
		t.Fatalf("years %d-%d", a, b)
	}
	if e.Contains(now, 2015, 5, 0) || !e.Contains(now, 2015, 6, 23) || e.Contains(now, 2015, 6, 22) || e.Contains(now, 2026, 12, 5) {
		t.Fatal("months/days outside the extent")
	}
	if DaysIn(2024, 2) != 29 || DaysIn(2023, 2) != 28 {
		t.Fatal("calendar")
	}
}

// The index serves a remount: within the TTL with no request, after it
// at once with a refresh in the background; a damaged file is rebuilt.
func TestIndexReuseTTLAndDamage(t *testing.T) {
	f := newFakeSTAC(t, &fakeColl{id: "c", n: 450, start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
	path := IndexPath(t.TempDir(), f.url(), nil)
	open := func() *Index {
		ix, err := OpenIndex(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ix
	}
	ix := open()
	tree := newTestTree(t, f, TreeOptions{Index: ix, MaxListing: 1000})
	if _, err := tree.Collections(bg); err != nil {
		t.Fatal(err)
	}
	l, _ := tree.Items(bg, "c")
	first := listAll(t, l)
	if lay, _ := tree.Layout(bg, "c"); lay != LayoutFlat {
		t.Fatal(lay)
	}
	ix.Close()

	// Remount within the TTL: nothing asked of the catalog.
	f.resetLog()
	ix = open()
	tree = newTestTree(t, f, TreeOptions{Index: ix, MaxListing: 1000})
	cs, err := tree.Collections(bg)
	if err != nil || len(cs) != 1 {
		t.Fatal(cs, err)
	}
	if lay, _ := tree.Layout(bg, "c"); lay != LayoutFlat {
		t.Fatal(lay)
	}
	l, _ = tree.Items(bg, "c")
	if again := listAll(t, l); strings.Join(again, ",") != strings.Join(first, ",") {
		t.Fatal("listing from the index differs")
	}
	if it, err := tree.ItemByName(bg, "c", "item-000321"); err != nil || !strings.Contains(string(it.Raw), "item-000321") {
		t.Fatalf("item.json from the index: %v", err)
	}
	if got := f.requests(""); len(got) != 0 {
		t.Fatalf("requests within the TTL: %q", got)
	}
	ix.Close()

	// After the TTL: served at once, refreshed in the background.
	f.colls["c"].n = 460
	ix = open()
	tree = newTestTree(t, f, TreeOptions{Index: ix, MaxListing: 1000, TTL: time.Nanosecond})
	l, _ = tree.Items(bg, "c")
	if n := len(listAll(t, l)); n != 450 {
		t.Fatalf("expired listing: %d entries, want the indexed 450 at once", n)
	}
	// Listed documents are served from the index and refresh with their
	// listing, not one request each.
	for _, id := range []string{"item-000001", "item-000200", "item-000449"} {
		if _, err := tree.ItemByName(bg, "c", id); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if got := f.requests("/items/"); len(got) != 0 {
		t.Fatalf("expired listed items fetched one by one: %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, _ = tree.Items(bg, "c")
		if done, _, n, _ := l.state(); done && n == 460 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refresh never showed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ix.Close()

	// Damage: a file of garbage is replaced by an empty index.
	os.WriteFile(path, []byte(strings.Repeat("not a bolt file ", 1000)), 0o600)
	ix = open()
	defer ix.Close()
	if _, _, ok := ix.Listing("flat/c"); ok {
		t.Fatal("damaged index served a listing")
	}
	// Another mount of the same catalog cannot take the lock: it runs
	// without the index.
	start := time.Now()
	if _, err := OpenIndex(path, nil); !errors.Is(err, ErrIndexLocked) || time.Since(start) > IndexLockTimeout+time.Second {
		t.Fatalf("second open: %v after %v", err, time.Since(start))
	}
}

func TestSearchMount(t *testing.T) {
	day := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	f := newFakeSTAC(t, &fakeColl{id: "a", n: 150, start: day}, &fakeColl{id: "b", n: 20, start: day}, &fakeColl{id: "z", n: 5, start: day})
	for _, arg := range []string{"collections=a,b&datetime=2024-06-02T00:00:00Z/2024-06-30T00:00:00Z", "@body.json"} {
		t.Run(arg, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "body.json"), []byte(`{"collections":["a","b"],"datetime":"2024-06-02T00:00:00Z/2024-06-30T00:00:00Z"}`), 0o600)
			s, err := ParseSearch(arg, func(n string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, n)) })
			if err != nil {
				t.Fatal(err)
			}
			tree := newTestTree(t, f, TreeOptions{Search: s})
			if err := tree.StartSearch(bg); err != nil {
				t.Fatal(err)
			}
			cs, err := tree.Collections(bg)
			if err != nil || len(cs) != 1 || cs[0].ID != "a" {
				t.Fatalf("root: %v %v (b's items are all on 2024-06-01 and 02)", cs, err)
			}
			l, _ := tree.Items(bg, "a")
			if n := len(listAll(t, l)); n != 150-24 {
				t.Fatalf("a: %d results", n)
			}
			if _, err := tree.ItemByName(bg, "a", "item-000030"); err != nil {
				t.Fatal(err)
			}
			if _, err := tree.ItemByName(bg, "a", "item-000001"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("an item that is no result: %v", err)
			}
			if _, err := tree.Collection(bg, "z"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a collection without results: %v", err)
			}
		})
	}
	// A search the API rejects fails StartSearch every time: never seen
	// as one still paging (a mount then went on; 1 e2e run in 5).
	s, _ := ParseSearch("collections=a&bbox=bad", nil)
	for range 50 {
		tree := newTestTree(t, f, TreeOptions{Search: s})
		err := tree.StartSearch(bg)
		var rej *RejectedError
		if !errors.As(err, &rej) || !strings.Contains(err.Error(), "Invalid bbox: bad") {
			t.Fatalf("rejected search: %v", err)
		}
	}
	s, _ = ParseSearch("collections=a", nil)
	tree := newTestTree(t, f, TreeOptions{Search: s, MaxItems: 42})
	l, err := tree.Items(bg, "a")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(listAll(t, l)); n != 42 {
		t.Fatalf("--max-items 42: %d", n)
	}
}

// A page damaged in the middle of the file (which opening does not see)
// retires the index: no panic, no wrong listing, and the file is gone so
// that the next mount builds a new one.
func TestIndexDamagedInTheMiddle(t *testing.T) {
	f := newFakeSTAC(t, &fakeColl{id: "c", n: 3000, start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
	path := IndexPath(t.TempDir(), f.url(), nil)
	ix, err := OpenIndex(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tree := newTestTree(t, f, TreeOptions{Index: ix, Layout: LayoutFlat})
	l, _ := tree.Items(bg, "c")
	listAll(t, l)
	ix.Close()
	fh, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := fh.Stat()
	// Pages after bbolt's meta pages (which it checks itself).
	junk := []byte(strings.Repeat("\xff\x00garbage", 256<<10/9))
	if st.Size() < 16<<10+int64(len(junk)) {
		t.Fatalf("index of %d bytes", st.Size())
	}
	fh.WriteAt(junk, 16<<10)
	fh.Close()
	ix, err = OpenIndex(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	tree = newTestTree(t, f, TreeOptions{Index: ix, Layout: LayoutFlat})
	l, _ = tree.Items(bg, "c")
	if ids := listAll(t, l); len(ids) != 3000 || ids[1234] != "item-001234" {
		t.Fatalf("%d items from a damaged index", len(ids))
	}
	for i := 0; i < 3000; i += 7 {
		id := fmt.Sprintf("item-%06d", i)
		if it, err := tree.ItemByName(bg, "c", id); err != nil || it.ID != id || !strings.Contains(string(it.Raw), id) {
			t.Fatalf("%s from a damaged index: %v", id, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for !ix.broken.Load() {
		if time.Now().After(deadline) {
			t.Fatal("damage not noticed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("damaged file kept: %v", err)
	}
}
