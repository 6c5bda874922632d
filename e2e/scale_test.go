package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/stacserver"
)

// Bounds on wall time. The targets (in parentheses) are for an
// idle machine and a normal build, and make bench measures them; these
// tests run a -race binary (the index test a normal one) on a 2-core
// machine shared with other jobs (load average ~14 seen), so they only
// catch what a user would call broken: before issue 9 a lookup by ID did
// not answer in 60 s and ls of a 10M collection did not return.
const (
	lookupBound  = 10 * time.Second // (< 1 s) the first MiB of an asset by ID
	hugeLsBound  = 60 * time.Second // (< 5 s) ls of the 10M collection
	remountBound = 30 * time.Second // (< 1 s) ls of 100,000 items from the index; and faster than paging them, in the same run
)

// TestScaleLookupByIDNeverLists reads the first MiB of an asset of an item
// of a 10,000,000-item collection by its ID on a cold mount: no listing
// request, at most 2 catalog requests.
func TestScaleLookupByIDNeverLists(t *testing.T) {
	ss := newScaleStack(t)
	m := ss.mount(t)
	id := stacserver.GenItemID("big", 7_654_321)
	ss.stac.ResetRequests()

	start := time.Now()
	f, err := os.Open(m.path("big", id, "visual.tif"))
	if err != nil {
		t.Fatalf("open by ID: %v (requests: %+v)", err, ss.counts())
	}
	buf := make([]byte, 1<<20)
	n, err := io.ReadFull(f, buf)
	took := time.Since(start)
	f.Close()
	if err != nil || !bytes.Equal(buf[:n], ss.asset[:1<<20]) {
		t.Fatalf("first MiB: %d bytes, err %v, equal %v", n, err, bytes.Equal(buf[:n], ss.asset[:n]))
	}
	c := ss.counts()
	t.Logf("first MiB by ID in %v; %d requests (%d catalog, %d files)", took, c.all, c.catalog, c.files)
	if c.listings > 0 {
		t.Errorf("a lookup by ID sent %d listing requests: %v", c.listings, c.listingPaths)
	}
	if c.catalog > 2 {
		t.Errorf("a lookup by ID sent %d catalog requests, want ≤ 2: %v", c.catalog, requestLines(ss.stac.Requests()))
	}
	if took > lookupBound {
		t.Errorf("first MiB by ID took %v, want < 1 s (%v allowed here)", took, lookupBound)
	}

	// Known now: a second stat of the item and its files asks nothing.
	ss.stac.ResetRequests()
	if _, err := os.Stat(m.path("big", id, "item.json")); err != nil {
		t.Fatal(err)
	}
	if c := ss.counts(); c.catalog > 0 {
		t.Errorf("stat of a known item sent %d catalog requests", c.catalog)
	}
	// An ID that is not there is ENOENT, with no listing either.
	if _, err := os.Stat(m.path("big", stacserver.GenItemID("big", 10_000_000))); !os.IsNotExist(err) {
		t.Errorf("stat of a missing ID: %v, want ENOENT", err)
	}
	if c := ss.counts(); c.listings > 0 {
		t.Errorf("a missing ID sent %d listing requests: %v", c.listings, c.listingPaths)
	}
}

func requestLines(rs []stacserver.Recorded) []string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s %s?%s → %d", r.Method, r.Path, r.RawQuery, r.Status))
	}
	return out
}

// TestScaleHugeCollectionByDate lists the 10M collection (auto layout):
// collection.json and the years of its temporal extent, no item; then
// months, days, and a day's exact items; a lookup by ID still works there.
func TestScaleHugeCollectionByDate(t *testing.T) {
	ss := newScaleStack(t)
	m := ss.mount(t)
	ss.stac.ResetRequests()

	names, took := timedNames(t, m.path("big"))
	want := []string{"collection.json", "2020", "2021", "2022", "2023", "2024", "2025", "2026"}
	if d := diffNames(names, want); d != "" {
		t.Fatalf("ls big: %s", d)
	}
	t.Logf("ls of the 10M collection in %v, %d requests", took, ss.counts().all)
	if took > hugeLsBound {
		t.Errorf("ls of the 10M collection took %v, want < 5 s (%v allowed here)", took, hugeLsBound)
	}

	if d := diffNames(readNames(t, m.path("big", "2024")), monthNames(12)); d != "" {
		t.Errorf("ls big/2024: %s", d)
	}
	if d := diffNames(readNames(t, m.path("big", "2024", "02")), monthDays(29)); d != "" {
		t.Errorf("ls big/2024/02 (leap year): %s", d)
	}

	for _, day := range []time.Time{
		time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), // a full day: 4,320 items
		time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), // the first day
		ss.big.GenItemTime(ss.big.Items - 1),        // the last, partial day
	} {
		dir := m.path("big", day.Format("2006"), day.Format("01"), day.Format("02"))
		ss.stac.ResetRequests()
		names, took := timedNames(t, dir)
		want := ss.big.DayItems(day)
		if d := diffNames(names, want); d != "" {
			t.Fatalf("ls %s: %s", dir, d)
		}
		c := ss.counts()
		t.Logf("ls %s: %d items in %v, %d requests, first %v", day.Format("2006/01/02"), len(names), took, c.all, c.listingPaths[:min(2, len(c.listingPaths))])
	}

	// Item directories of a listed day need no request of their own.
	day := ss.big.DayItems(time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC))
	ss.stac.ResetRequests()
	got := readNames(t, m.path("big", "2024", "06", "01", day[100]))
	if !slices.Contains(got, "item.json") || !slices.Contains(got, "visual.tif") {
		t.Errorf("item directory of a day holds %v", got)
	}
	// Days after each listed day are filled in the background; one of
	// those may land now. Anything else is a request of this lookup's own.
	var own []stacserver.Recorded
	for _, r := range ss.stac.Requests() {
		otherDay := strings.HasSuffix(r.Path, "/items") && strings.Contains(r.RawQuery, "datetime=") && !strings.Contains(r.RawQuery, "datetime=2024-06-01")
		if !otherDay && !strings.HasPrefix(r.Path, "/files/") {
			own = append(own, r)
		}
	}
	if len(own) > 0 {
		t.Errorf("ls of a listed item sent %d catalog requests: %v", len(own), requestLines(own))
	}
	// The same item by ID at the collection's root, unlisted there.
	if _, err := os.Stat(m.path("big", day[100], "item.json")); err != nil {
		t.Errorf("lookup by ID in the date layout: %v", err)
	}
}

func monthNames(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("%02d", i))
	}
	return out
}

func monthDays(n int) []string { return monthNames(n) }

// TestScaleFindOverDays walks two days across a month's end of the 10M
// collection as find does: every item is met exactly once, and items need
// no request each.
func TestScaleFindOverDays(t *testing.T) {
	ss := newScaleStack(t)
	m := ss.mount(t, "--layout", "date")
	ss.stac.ResetRequests()
	days := map[string]bool{"06/30": true, "07/01": true}
	want := append(ss.big.DayItems(time.Date(2024, 6, 30, 0, 0, 0, 0, time.UTC)), ss.big.DayItems(time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC))...)
	var got []string
	start := time.Now()
	root := m.path("big", "2024")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		parts := strings.Split(rel, string(filepath.Separator))
		switch {
		case rel == ".":
		case len(parts) == 1 && parts[0] != "06" && parts[0] != "07":
			return filepath.SkipDir
		case len(parts) == 2 && !days[parts[0]+"/"+parts[1]]:
			return filepath.SkipDir
		case len(parts) == 4 && d.Name() == "item.json":
			got = append(got, parts[2])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c := ss.counts()
	t.Logf("find over 2 days: %d items in %v; %d requests (%d listings, %d items by ID)", len(got), time.Since(start), c.all, c.listings, c.itemByID)
	if d := diffNames(got, want); d != "" {
		t.Fatalf("find over 2 days met: %s", d)
	}
	if c.itemByID > 0 {
		t.Errorf("find fetched %d items one by one; a day's listing has them all", c.itemByID)
	}
}

// TestScaleFlatListingBoundedMemory lists a 100,000-item collection in
// the flat layout: exactly its items, and the mount's RSS grows by at most
// 100 MiB (≤ 1 KiB an item). The binary is built without -race here.
func TestScaleFlatListingBoundedMemory(t *testing.T) {
	withPlainBinary(t)
	ss := newScaleStack(t)
	m := ss.mount(t, "--layout", "flat")
	readNames(t, m.path()) // the mount is warm but has listed no collection
	before := rssOf(t, m.pid)
	ss.stac.ResetRequests()
	names, took := timedNames(t, m.path("hundredk"))
	after := rssOf(t, m.pid)
	c := ss.counts()
	t.Logf("ls of 100,000 items (flat) in %v, %d requests; RSS %d → %d MiB", took, c.all, before>>20, after>>20)
	if d := diffNames(names, append(genIDs(ss.hundredK, 0, ss.hundredK.Items-1), "collection.json")); d != "" {
		t.Fatalf("ls hundredk: %s", d)
	}
	if grown := after - before; grown > 100<<20 {
		t.Errorf("RSS grew by %d MiB listing 100,000 items, want ≤ 100 MiB", grown>>20)
	}
}

// TestScaleAdaptivePaging lists collections whose API fails limits above
// 267 with a 500, as Earth Search does, or caps them silently: every item
// is listed once, and the failing size is not asked again and again.
func TestScaleAdaptivePaging(t *testing.T) {
	ss := newScaleStack(t,
		stacserver.GenSpec{ID: "earth", Items: 3000, FailLimitAbove: 267, MaxLimit: 10000},
		stacserver.GenSpec{ID: "capped", Items: 1500, MaxLimit: 100})
	m := ss.mount(t, "--layout", "flat", "--page-size", "1000")
	ss.stac.ResetRequests()
	names := readNames(t, m.path("earth"))
	if d := diffNames(without(names, "collection.json"), genIDs(stacserver.GenSpec{ID: "earth"}, 0, 2999)); d != "" {
		t.Fatalf("ls earth: %s", d)
	}
	failed := 0
	for _, r := range ss.stac.Requests() {
		if r.Status == 500 {
			failed++
		}
	}
	t.Logf("3,000 items with limits above 267 failing: %d requests, %d failed", len(ss.stac.Requests()), failed)
	if failed > 4 {
		t.Errorf("%d requests failed with 500: the size that works is not remembered", failed)
	}
	names = readNames(t, m.path("capped"))
	if d := diffNames(without(names, "collection.json"), genIDs(stacserver.GenSpec{ID: "capped"}, 0, 1499)); d != "" {
		t.Fatalf("ls of a collection whose API caps limit at 100 silently: %s", d)
	}
}

// TestScaleAutoLayoutAndMaxItems: in the auto layout a collection within
// --max-listing lists its items (numberMatched served or not), a larger
// one its years; --max-items caps a search mount.
func TestScaleAutoLayoutAndMaxItems(t *testing.T) {
	ss := newScaleStack(t, stacserver.GenSpec{ID: "nomatch", Items: 300, Start: time.Date(2022, 5, 1, 0, 0, 0, 0, time.UTC), Step: time.Hour})
	m := ss.mount(t, "--max-listing", "1000")
	if d := diffNames(readNames(t, m.path("small")), append(genIDs(ss.small, 0, 499), "collection.json")); d != "" {
		t.Errorf("ls small (500 items, numberMatched, auto): %s", d)
	}
	if d := diffNames(readNames(t, m.path("nomatch")), append(genIDs(stacserver.GenSpec{ID: "nomatch"}, 0, 299), "collection.json")); d != "" {
		t.Errorf("ls nomatch (300 items, no numberMatched, auto): %s", d)
	}
	if d := diffNames(readNames(t, m.path("hundredk")), []string{"collection.json", "2023"}); d != "" {
		t.Errorf("ls hundredk (100,000 items, auto, --max-listing 1000): %s", d)
	}

	m = ss.mount(t, "--search", "collections=big&datetime=2024-06-01T00:00:00Z/2024-06-30T23:59:59Z", "--max-items", "250")
	names := without(readNames(t, m.path("big")), "collection.json")
	if len(names) != 250 {
		t.Errorf("a search mount with --max-items 250 shows %d items", len(names))
	}
	june := ss.big.DayItems(time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC))
	for _, n := range names {
		if !slices.Contains(june, n) {
			t.Errorf("--max-items 250 of June shows %s, not among the first day's items", n)
			break
		}
	}
}

// TestScaleSearchMount mounts searches: the GET query form and the POST
// body form (@FILE) show exactly the results, and the root only the
// collections that have some; a search the API rejects fails the mount
// with the API's message.
func TestScaleSearchMount(t *testing.T) {
	ss := newScaleStack(t)
	day := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

	m := ss.mount(t, "--search", "collections=big,hundredk&datetime=2024-06-01T00:00:00Z/2024-06-01T23:59:59Z")
	if d := diffNames(readNames(t, m.path()), []string{"big"}); d != "" {
		t.Errorf("root of a search mount: %s", d)
	}
	if d := diffNames(without(readNames(t, m.path("big")), "collection.json"), ss.big.DayItems(day)); d != "" {
		t.Errorf("big in a search mount of one day: %s", d)
	}

	ids := []string{stacserver.GenItemID("big", 123), stacserver.GenItemID("small", 7), stacserver.GenItemID("small", 499)}
	m = ss.mount(t, "--search", "ids="+strings.Join(ids, ","))
	if d := diffNames(readNames(t, m.path()), []string{"big", "small"}); d != "" {
		t.Errorf("root of a search by IDs: %s", d)
	}
	if d := diffNames(without(readNames(t, m.path("small")), "collection.json"), ids[1:]); d != "" {
		t.Errorf("small in a search by IDs: %s", d)
	}
	if got, err := os.ReadFile(m.path("big", ids[0], "visual.tif")); err != nil || !bytes.Equal(got, ss.asset) {
		t.Errorf("asset of a search result: %d bytes, %v", len(got), err)
	}

	body := filepath.Join(t.TempDir(), "search.json")
	if err := os.WriteFile(body, []byte(`{"collections":["small","hundredk"],"datetime":"2023-01-01T00:00:00Z/2023-01-01T00:59:59Z","limit":50}`), 0o644); err != nil {
		t.Fatal(err)
	}
	m = ss.mount(t, "--search", "@"+body)
	if d := diffNames(readNames(t, m.path()), []string{"hundredk"}); d != "" {
		t.Errorf("root of a POST search mount: %s", d)
	}
	if d := diffNames(without(readNames(t, m.path("hundredk")), "collection.json"), genIDs(ss.hundredK, 0, 179)); d != "" {
		t.Errorf("hundredk in a POST search mount: %s", d)
	}
	posts := 0
	for _, r := range ss.stac.Requests() {
		if r.Method == "POST" && strings.HasSuffix(r.Path, "/search") {
			posts++
		}
	}
	if posts == 0 {
		t.Errorf("a --search @FILE mount sent no POST /search")
	}

	_, out, err := tryMountIn(t, "", baseEnv(t), "--stac-url", ss.stac.URL(), "--no-sign-request", "--search", "collections=big&datetime=last-tuesday")
	if err == nil || !strings.Contains(out, `invalid datetime \"last-tuesday\"`) && !strings.Contains(out, `invalid datetime "last-tuesday"`) {
		t.Errorf("a rejected search: err %v, output %q; want a failed mount with the API's message", err, out)
	}
}

// TestScaleIndexAcrossMounts: a remount within the metadata TTL lists from
// the persistent index at once, with no item request; a corrupted or
// deleted index is rebuilt and the tree stays right.
func TestScaleIndexAcrossMounts(t *testing.T) {
	withPlainBinary(t)
	ss := newScaleStack(t)
	idx := t.TempDir()
	want := append(genIDs(ss.hundredK, 0, ss.hundredK.Items-1), "collection.json")
	args := []string{"--layout", "flat", "--index-dir", idx, "--metadata-ttl", "1h"}
	m := ss.mount(t, args...)
	first, tookPaging := timedNames(t, m.path("hundredk"))
	if d := diffNames(first, want); d != "" {
		t.Fatalf("first listing: %s", d)
	}
	if d := diffNames(readNames(t, m.path("small")), append(genIDs(ss.small, 0, 499), "collection.json")); d != "" {
		t.Fatalf("small: %s", d)
	}
	m.unmount(t)
	if len(filesIn(t, idx)) == 0 {
		t.Fatalf("--index-dir %s holds no file after a mount listed 100,000 items", idx)
	}

	m = ss.mount(t, args...)
	ss.stac.ResetRequests()
	names, took := timedNames(t, m.path("hundredk"))
	c := ss.counts()
	t.Logf("ls of 100,000 items from the index in %v, %d requests (paging them from the API: %v)", took, c.all, tookPaging)
	if d := diffNames(names, want); d != "" {
		t.Fatalf("listing from the index: %s", d)
	}
	if c.listings+c.itemByID > 0 {
		t.Errorf("a listing within the TTL sent %d item requests: %v", c.listings+c.itemByID, c.listingPaths)
	}
	// Against the paging of the same run, not a fixed time alone: a
	// 5 s bound failed at load 20 (5.19 s), where paging took far longer.
	if took > remountBound || took >= tookPaging {
		t.Errorf("a listing from the index took %v, paging the API %v: want < 1 s and faster than paging (%v allowed here)", took, tookPaging, remountBound)
	}
	m.unmount(t)

	for _, damage := range []string{"corrupt", "truncate", "delete"} {
		for _, f := range filesIn(t, idx) {
			var err error
			switch damage {
			case "corrupt":
				err = os.WriteFile(f, bytes.Repeat([]byte("not an index "), 4096), 0o600)
			case "truncate":
				err = os.Truncate(f, 100)
			case "delete":
				err = os.Remove(f)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		m = ss.mount(t, args...)
		if d := diffNames(readNames(t, m.path("small")), append(genIDs(ss.small, 0, 499), "collection.json")); d != "" {
			t.Fatalf("small after the index was damaged (%s): %s", damage, d)
		}
		m.unmount(t)
	}
}

// TestScaleIndexRefreshAndSharing: a listing older than the TTL is served
// from the index at once and refreshed in the background (a change shows
// once the refresh is done); two live mounts share one index directory
// and both list right; deleting the index under a live mount breaks
// nothing.
func TestScaleIndexRefreshAndSharing(t *testing.T) {
	ss := newScaleStack(t)
	idx := t.TempDir()
	args := []string{"--index-dir", idx, "--metadata-ttl", "2s"}
	m := ss.mount(t, args...)
	if d := diffNames(readNames(t, m.path("small")), append(genIDs(ss.small, 0, 499), "collection.json")); d != "" {
		t.Fatalf("ls small: %s", d)
	}
	m.unmount(t)

	grown := ss.small
	grown.Items = 510
	ss.stac.AddGenerated(grown)
	time.Sleep(2500 * time.Millisecond) // the listing in the index is now older than the TTL
	m = ss.mount(t, args...)
	if d := diffNames(readNames(t, m.path("small")), append(genIDs(ss.small, 0, 499), "collection.json")); d != "" {
		t.Errorf("a stale listing is not served from the index at once: %s", d)
	}
	waitUntil(t, 60*time.Second, "the background refresh shows the 10 new items", func() bool {
		return len(readNames(t, m.path("small"))) == 511
	})
	if d := diffNames(readNames(t, m.path("small")), append(genIDs(grown, 0, 509), "collection.json")); d != "" {
		t.Errorf("after the refresh: %s", d)
	}

	// A second mount of the same catalog on the same index, both live.
	m2 := ss.mount(t, args...)
	day := time.Date(2024, 6, 2, 0, 0, 0, 0, time.UTC)
	want := ss.big.DayItems(day)
	errs := make(chan string, 2)
	for _, mm := range []*mount{m, m2} {
		go func() {
			names, err := os.ReadDir(mm.path("big", "2024", "06", "02"))
			if err != nil {
				errs <- err.Error()
				return
			}
			var got []string
			for _, n := range names {
				got = append(got, n.Name())
			}
			errs <- diffNames(got, want)
		}()
	}
	for range 2 {
		if d := <-errs; d != "" {
			t.Errorf("two mounts on one index listing one day: %s", d)
		}
	}

	// The index deleted under the live mounts.
	for _, f := range filesIn(t, idx) {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, mm := range []*mount{m, m2} {
		if d := diffNames(readNames(t, mm.path("big", "2024", "06", "03")), ss.big.DayItems(day.AddDate(0, 0, 1))); d != "" {
			t.Errorf("a day listed after the index was deleted under the mount: %s", d)
		}
	}
	m2.unmount(t)
	m.unmount(t)
	m = ss.mount(t, args...)
	if d := diffNames(readNames(t, m.path("big", "2024", "06", "02")), want); d != "" {
		t.Errorf("a day after two mounts shared the index: %s", d)
	}
}

// TestScaleDaysThrottledAndConcurrent: a day listing answered with 429 and
// Retry-After waits as told and still lists exactly the day; walking
// several days fetches more than one day at a time, within a bound.
func TestScaleDaysThrottledAndConcurrent(t *testing.T) {
	ss := newScaleStack(t)
	m := ss.mount(t, "--layout", "date")
	const items = "/stac/collections/big/items"
	ss.stac.ResetRequests()
	ss.stac.FailNext(items, 2, 429, "1")
	day := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	if d := diffNames(readNames(t, m.path("big", "2024", "06", "01")), ss.big.DayItems(day)); d != "" {
		t.Fatalf("ls of a day answered with 429 twice: %s", d)
	}
	reqs := ss.stac.Requests()
	throttled := 0
	for i, r := range reqs {
		if r.Status != 429 {
			continue
		}
		throttled++
		for _, later := range reqs[i+1:] {
			if later.Path == r.Path && later.RawQuery == r.RawQuery {
				if gap := later.Time.Sub(r.Time); gap < 900*time.Millisecond {
					t.Errorf("a request answered 429 with Retry-After: 1 was sent again after %v", gap)
				}
				break
			}
		}
	}

	if throttled != 2 {
		t.Fatalf("%d requests were answered 429, want 2: %v", throttled, requestLines(reqs))
	}

	// Each items request takes 300 ms: requests that start within 300 ms
	// of each other overlap.
	const delay = 300 * time.Millisecond
	ss.stac.ClearFaults()
	ss.stac.SetDelay(items, delay)
	ss.stac.ResetRequests()
	for d := 10; d <= 13; d++ {
		day := time.Date(2024, 6, d, 0, 0, 0, 0, time.UTC)
		if diff := diffNames(readNames(t, m.path("big", "2024", "06", day.Format("02"))), ss.big.DayItems(day)); diff != "" {
			t.Fatalf("ls 2024/06/%02d: %s", d, diff)
		}
	}
	var starts []time.Time
	for _, r := range ss.stac.Requests() {
		if r.Path == items {
			starts = append(starts, r.Time)
		}
	}
	most := 0
	for i := range starts {
		n := 0
		for _, s := range starts {
			if !s.Before(starts[i]) && s.Sub(starts[i]) < delay {
				n++
			}
		}
		most = max(most, n)
	}
	t.Logf("4 days: %d items requests, at most %d at once", len(starts), most)
	if most < 2 {
		t.Errorf("walking 4 days never had two items requests in flight: days are fetched one at a time")
	}
	if most > 16 {
		t.Errorf("walking 4 days had %d items requests in flight at once; want a small bound", most)
	}
}
