package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/proc"
	"github.com/prescient/prescientfs/e2e/internal/stacserver"
)

// The catalog workloads (issue 9) run against their own STAC test server
// with generated collections: "big" (10,000,000 items from 2020-01-01,
// 4,320 a day, no numberMatched, as pgstac) and "flat" (100,000 items).
// Every item's asset is one 3 MiB static file on that server, so no MinIO
// is needed. Each figure is the median of -runs cold runs; baselines are
// a plain Go client paging the same API with the same page size, in the
// same run.
const (
	catBig       = "big"
	catFlat      = "flat"
	catFlatItems = 100_000
	catAssetSize = 3 << 20
)

var (
	tgtLookupMs  = &target{text: "< 1000 ms", limit: 1000}
	tgtLookupReq = &target{text: "≤ 4", limit: 4}
	tgtLs10M     = &target{text: "< 5000 ms", limit: 5000}
	tgtLsFlat    = &target{text: "≤ 1.20×", onRatio: true, limit: 1.2}
	tgtLsDay     = &target{text: "≤ 1.30×", onRatio: true, limit: 1.3}
	tgtRemountMs = &target{text: "< 1000 ms", limit: 1000}
	tgtZero      = &target{text: "0", limit: 0}
	tgtRSSPer100 = &target{text: "≤ 100 MiB", limit: 100}
	tgtPeakRSS   = &target{text: "≤ 300 MiB", limit: 300}
)

// catalogStack is the generated catalog's server.
type catalogStack struct {
	stac *stacserver.Server
	big  stacserver.GenSpec
}

func startCatalogStack(b *bench) (*catalogStack, error) {
	quiet := b.log
	if !b.cfg.verbose {
		quiet = slog.New(slog.DiscardHandler)
	}
	s, err := stacserver.New(stacserver.Options{Logger: quiet})
	if err != nil {
		return nil, err
	}
	b.cl.add("stop the catalog STAC server", s.Close)
	asset := make([]byte, catAssetSize)
	for i := range asset {
		asset[i] = byte(i*7 + i>>11)
	}
	s.SetFile("cat/visual.tif", asset)
	href := s.FilesURL() + "/cat/visual.tif"
	cs := &catalogStack{stac: s}
	cs.big = stacserver.GenSpec{ID: catBig, Items: 10_000_000, Step: stacserver.DayStep,
		AssetHref: func(string) string { return href }, AssetSize: catAssetSize}
	s.AddGenerated(cs.big)
	s.AddGenerated(stacserver.GenSpec{ID: catFlat, Items: catFlatItems, Step: stacserver.DayStep,
		AssetHref: func(string) string { return href }, AssetSize: catAssetSize})
	return cs, nil
}

// catalogWorkloads runs every catalog workload; a failure of one is
// recorded in its row and the others still run.
func (b *bench) catalogWorkloads(ctx context.Context, _ *baselines) error {
	cs, err := startCatalogStack(b)
	if err != nil {
		b.rep.add(failed("catalog", "start the catalog server", err))
		return err
	}
	var errs []error
	for _, w := range []func(context.Context, *catalogStack) error{
		b.catLookupByID, b.catLsHuge, b.catLsFlat, b.catLsDay,
	} {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, w(ctx, cs))
	}
	return errors.Join(errs...)
}

// mountCatalog mounts the generated catalog with a fresh index directory
// unless indexDir is given.
func (b *bench) mountCatalog(ctx context.Context, cs *catalogStack, label, indexDir string, args ...string) (*mountProc, string, error) {
	if indexDir == "" {
		var err error
		if indexDir, err = os.MkdirTemp(b.tmpDir(), "index-"); err != nil {
			return nil, "", err
		}
	}
	b.mountSeq++
	m := &mountProc{kind: "prescientfs", dir: b.mnt(),
		logPath: filepath.Join(b.logDir(), fmt.Sprintf("%02d-prescientfs-%s.log", b.mountSeq, label))}
	full := append([]string{"mount", "--stac-url", cs.stac.URL(), "--no-sign-request", "--log-file", m.logPath,
		"--index-dir", indexDir, "--page-size", strconv.Itoa(b.cfg.catPageSize)}, args...)
	full = append(append(full, strings.Fields(b.cfg.mountFlags)...), m.dir)
	cmd := exec.CommandContext(ctx, b.cfg.bin, full...)
	home := filepath.Join(b.tmpDir(), "home")
	cmd.Env = append(cleanEnv(), "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	m.took = time.Since(start)
	if mm := pidRE.FindSubmatch(out); mm != nil {
		m.pid, _ = strconv.Atoi(string(mm[1]))
	}
	m.release = b.cl.add("unmount "+m.dir, func() { m.stopErr = b.stopPrescient(m) })
	if err != nil {
		m.release()
		return nil, "", fmt.Errorf("prescientfs mount: %v: %s; log %s:\n%s", err, strings.TrimSpace(string(out)), m.logPath, tail(readFile(m.logPath), 2000))
	}
	return m, indexDir, nil
}

// catRequests counts logged requests: all, those that list items (items
// pages and searches without ids), and all item requests (also by ID).
func catRequests(rs []stacserver.Recorded) (all, listings, items int) {
	for _, r := range rs {
		all++
		if strings.HasSuffix(r.Path, "/items") || (strings.HasSuffix(r.Path, "/search") && !strings.Contains(r.RawQuery+string(r.Body), "ids")) {
			listings++
		}
		if strings.Contains(r.Path, "/items") || strings.HasSuffix(r.Path, "/search") {
			items++
		}
	}
	return all, listings, items
}

// lsCount lists dir (getdents only, as ls -f does) and counts entries.
func lsCount(dir string) (int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	for {
		names, err := f.Readdirnames(4096)
		n += len(names)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// rawPaging pages a URL to its end as a plain client does (decoding each
// page), and returns the number of items and the time.
func rawPaging(ctx context.Context, first string) (int, time.Duration, error) {
	start := time.Now()
	n, href := 0, first
	for pages := 0; href != ""; pages++ {
		if pages > 100_000 {
			return n, 0, errors.New("raw paging: too many pages")
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, href, nil)
		if err != nil {
			return n, 0, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return n, 0, err
		}
		var p struct {
			Features []json.RawMessage `json:"features"`
			Links    []struct{ Rel, Href string }
		}
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if err != nil {
			return n, 0, fmt.Errorf("raw paging %s: %v", href, err)
		}
		// A plain client decodes the items too.
		for _, f := range p.Features {
			var it map[string]any
			if err := json.Unmarshal(f, &it); err != nil {
				return n, 0, err
			}
		}
		n += len(p.Features)
		href = ""
		for _, l := range p.Links {
			if l.Rel == "next" {
				href = l.Href
			}
		}
	}
	return n, time.Since(start), nil
}

// catLookupByID: the first MiB of an asset by ID in the 10M collection,
// cold mount, a different item each run.
func (b *bench) catLookupByID(ctx context.Context, cs *catalogStack) error {
	const name = "first MiB by ID, 10M collection (cold)"
	var times, reqs []float64
	listed := 0
	for run := 0; run < b.cfg.runs; run++ {
		m, _, err := b.mountCatalog(ctx, cs, "cat-lookup", "")
		if err != nil {
			b.rep.add(failed("catalog", name, err))
			return err
		}
		cs.stac.ResetRequests()
		id := stacserver.GenItemID(catBig, 1_234_567+run*1_000_003)
		start := time.Now()
		err = readFirst(m.path(filepath.Join(catBig, id, "visual.tif")), 1<<20)
		took := time.Since(start)
		m.close() // count after the unmount: a prefetch may still be on its way
		all, listings, _ := catRequests(cs.stac.Requests())
		if err != nil {
			b.rep.add(failed("catalog", name, err))
			return err
		}
		times, reqs = append(times, ms(took)), append(reqs, float64(all))
		listed += listings
	}
	r := measure("catalog", name, "ms", median(times), math.NaN(), "", tgtLookupMs)
	r.Details = map[string]any{"runs_ms": times}
	b.rep.add(r)
	r = measure("catalog", "  requests for it (catalog + object)", "requests", median(reqs), math.NaN(), "", tgtLookupReq)
	r.Details = map[string]any{"runs": reqs, "listing_requests": listed}
	if listed > 0 {
		r.Note = fmt.Sprintf("%d listing requests in %d runs", listed, b.cfg.runs)
	}
	b.rep.add(r)
	return nil
}

func readFirst(p string, n int) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.ReadFull(f, make([]byte, n))
	return err
}

// catLsHuge: ls of the 10M collection (auto layout), cold.
func (b *bench) catLsHuge(ctx context.Context, cs *catalogStack) error {
	const name = "ls of a 10M collection (auto, cold)"
	var times []float64
	entries := 0
	for run := 0; run < b.cfg.runs; run++ {
		m, _, err := b.mountCatalog(ctx, cs, "cat-ls10m", "")
		if err != nil {
			b.rep.add(failed("catalog", name, err))
			return err
		}
		start := time.Now()
		entries, err = lsCount(m.path(catBig))
		took := time.Since(start)
		m.close()
		if err == nil && entries > 100 {
			err = fmt.Errorf("ls %s shows %d entries: items at the root of a 10M collection", catBig, entries)
		}
		if err != nil {
			b.rep.add(failed("catalog", name, err))
			return err
		}
		times = append(times, ms(took))
	}
	r := measure("catalog", name, "ms", median(times), math.NaN(), "", tgtLs10M)
	r.Details = map[string]any{"runs_ms": times, "entries": entries}
	b.rep.add(r)
	return nil
}

// catLsFlat: ls of the 100,000-item collection (flat) against raw paging
// of the same API, the mount's RSS growth, the index size, and the same
// ls after a remount from the index.
func (b *bench) catLsFlat(ctx context.Context, cs *catalogStack) error {
	const name = "ls of 100,000 items (flat, cold)"
	raw := cs.stac.URL() + "/collections/" + catFlat + "/items?limit=" + strconv.Itoa(b.cfg.catPageSize)
	var mountMs, rawMs, rssGrowth, remountMs, indexBytes []float64
	remountItemReqs := 0
	for run := 0; run < b.cfg.runs; run++ {
		n, took, err := rawPaging(ctx, raw)
		if err == nil && n != catFlatItems {
			err = fmt.Errorf("raw paging found %d items, want %d", n, catFlatItems)
		}
		if err != nil {
			b.rep.add(failed("catalog", name, err))
			return err
		}
		rawMs = append(rawMs, ms(took))

		m, idx, err := b.mountCatalog(ctx, cs, "cat-flat", "", "--layout", "flat")
		if err != nil {
			b.rep.add(failed("catalog", name, err))
			return err
		}
		if _, err := lsCount(m.dir); err != nil {
			m.close()
			return err
		}
		before, _ := proc.StatusBytes(m.pid, "VmRSS")
		start := time.Now()
		n, err = lsCount(m.path(catFlat))
		took = time.Since(start)
		after, _ := proc.StatusBytes(m.pid, "VmRSS")
		if err == nil && n != catFlatItems+1 {
			err = fmt.Errorf("ls %s shows %d entries, want %d", catFlat, n, catFlatItems+1)
		}
		closeErr := m.close()
		if err == nil {
			err = closeErr
		}
		if err != nil {
			b.rep.add(failed("catalog", name, err))
			return err
		}
		mountMs = append(mountMs, ms(took))
		rssGrowth = append(rssGrowth, mib(after-before)*float64(100_000)/float64(catFlatItems))
		indexBytes = append(indexBytes, float64(dirBytes(idx)))

		// Remount on the same index, within the TTL.
		m, _, err = b.mountCatalog(ctx, cs, "cat-remount", idx, "--layout", "flat")
		if err != nil {
			b.rep.add(failed("catalog", "ls of 100,000 items after a remount (index)", err))
			return err
		}
		cs.stac.ResetRequests()
		start = time.Now()
		n, err = lsCount(m.path(catFlat))
		took = time.Since(start)
		_, _, items := catRequests(cs.stac.Requests())
		remountItemReqs += items
		m.close()
		if err == nil && n != catFlatItems+1 {
			err = fmt.Errorf("ls %s after a remount shows %d entries, want %d", catFlat, n, catFlatItems+1)
		}
		if err != nil {
			b.rep.add(failed("catalog", "ls of 100,000 items after a remount (index)", err))
			return err
		}
		remountMs = append(remountMs, ms(took))
	}
	r := measure("catalog", name, "ms", median(mountMs), median(rawMs), "raw paging", tgtLsFlat)
	r.Details = map[string]any{"runs_ms": mountMs, "raw_runs_ms": rawMs, "page_size": b.cfg.catPageSize}
	b.rep.add(r)
	r = measure("catalog", "  RSS growth per 100,000 items listed", "MiB", median(rssGrowth), math.NaN(), "", tgtRSSPer100)
	r.Details = map[string]any{"runs_mib": rssGrowth}
	b.rep.add(r)
	r = measure("catalog", "  index size on disk per item", "bytes", median(indexBytes)/catFlatItems, math.NaN(), "", nil)
	r.Details = map[string]any{"index_bytes": indexBytes, "items": catFlatItems}
	b.rep.add(r)
	r = measure("catalog", "ls of 100,000 items after a remount (index)", "ms", median(remountMs), math.NaN(), "", tgtRemountMs)
	r.Details = map[string]any{"runs_ms": remountMs}
	b.rep.add(r)
	b.rep.add(measure("catalog", "  item requests for it", "requests", float64(remountItemReqs), math.NaN(), "", tgtZero))
	return nil
}

// catLsDay: ls of one day (4,320 items) of the 10M collection against raw
// paging of that day's datetime interval.
func (b *bench) catLsDay(ctx context.Context, cs *catalogStack) error {
	const name = "ls of one day, 4,320 items (date, cold)"
	var mountMs, rawMs, peaks []float64
	for run := 0; run < b.cfg.runs; run++ {
		day := time.Date(2024, 6, 1+run, 0, 0, 0, 0, time.UTC)
		want := len(cs.big.DayItems(day))
		q := url.Values{"datetime": {day.Format(time.RFC3339) + "/" + day.Add(24*time.Hour-time.Second).Format(time.RFC3339)},
			"limit": {strconv.Itoa(b.cfg.catPageSize)}}
		n, took, err := rawPaging(ctx, cs.stac.URL()+"/collections/"+catBig+"/items?"+q.Encode())
		if err == nil && n != want {
			err = fmt.Errorf("raw paging of %s found %d items, want %d", day.Format("2006-01-02"), n, want)
		}
		if err != nil {
			b.rep.add(failed("catalog", name, err))
			return err
		}
		rawMs = append(rawMs, ms(took))
		// --layout date: the day alone, not auto's one-off paging to decide
		// the layout (measured by "ls of a 10M collection").
		m, _, err := b.mountCatalog(ctx, cs, "cat-day", "", "--layout", "date")
		if err != nil {
			b.rep.add(failed("catalog", name, err))
			return err
		}
		rss := sampleRSS(m.pid)
		start := time.Now()
		n, err = lsCount(m.path(filepath.Join(catBig, day.Format("2006/01/02"))))
		took = time.Since(start)
		// Browse on: the week's other days, as a find would.
		for i := 1; err == nil && i < 7; i++ {
			_, err = lsCount(m.path(filepath.Join(catBig, day.AddDate(0, 0, i).Format("2006/01/02"))))
		}
		peak, _ := rss.peak()
		m.close()
		if err == nil && n != want {
			err = fmt.Errorf("ls of %s shows %d entries, want %d", day.Format("2006/01/02"), n, want)
		}
		if err != nil {
			b.rep.add(failed("catalog", name, err))
			return err
		}
		mountMs, peaks = append(mountMs, ms(took)), append(peaks, mib(peak))
	}
	r := measure("catalog", name, "ms", median(mountMs), median(rawMs), "raw paging", tgtLsDay)
	r.Details = map[string]any{"runs_ms": mountMs, "raw_runs_ms": rawMs, "page_size": b.cfg.catPageSize}
	b.rep.add(r)
	r = measure("catalog", "  peak RSS browsing that week by date", "MiB", median(peaks), math.NaN(), "", tgtPeakRSS)
	r.Details = map[string]any{"runs_mib": peaks}
	b.rep.add(r)
	return nil
}

// dirBytes is the size of the regular files below dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
