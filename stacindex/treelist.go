package stacindex

import (
	"context"
	"fmt"
	"time"
)

// listTimeout bounds one listing's paging, which runs detached from the
// reader that started it (each request has its own, shorter, deadline).
const listTimeout = time.Hour

// listSpec says how to fill a listing.
type listSpec struct {
	key   string
	coll  string
	query ItemQuery
	limit int       // stop beyond this many items (auto's probe); 0: none
	day   time.Time // a day listing keeps only items of this UTC day
}

func flatSpec(coll string, limit int) listSpec {
	return listSpec{key: "flat/" + coll, coll: coll, query: ItemQuery{Collection: coll}, limit: limit}
}

func daySpec(coll string, day time.Time) listSpec {
	return listSpec{key: "day/" + coll + "/" + day.Format("2006-01-02"), coll: coll,
		query: ItemQuery{Collection: coll, Datetime: dayInterval(day)}, day: day}
}

// Layout is the layout of a collection directory: flat or date (auto
// decides: from numberMatched when the API serves it, else by paging at
// most MaxListing+1 items). A search mount is flat.
func (t *Tree) Layout(ctx context.Context, collectionID string) (Layout, error) {
	if t.opt.Search != nil {
		return LayoutFlat, nil
	}
	if t.opt.Layout != LayoutAuto {
		return t.opt.Layout, nil
	}
	t.mu.Lock()
	l, ok := t.modes[collectionID]
	t.mu.Unlock()
	if ok {
		return l, nil
	}
	if t.opt.Index != nil {
		if l, ok := t.opt.Index.Mode(collectionID, t.opt.MaxListing); ok {
			return t.setMode(collectionID, l, false), nil
		}
	}
	ls := t.listing(ctx, flatSpec(collectionID, t.opt.MaxListing))
	within, err := waitCtx(ctx, func() (bool, error) { return ls.decided(t.opt.MaxListing) })
	if err != nil {
		return 0, err
	}
	l = LayoutDate
	if within {
		l = LayoutFlat
	}
	return t.setMode(collectionID, l, true), nil
}

func (t *Tree) setMode(coll string, l Layout, persist bool) Layout {
	t.mu.Lock()
	if old, ok := t.modes[coll]; ok {
		t.mu.Unlock()
		return old // the first decision holds for the mount's life
	}
	t.modes[coll] = l
	t.mu.Unlock()
	if persist && t.opt.Index != nil {
		t.opt.Index.SetMode(coll, t.opt.MaxListing, l)
	}
	if l == LayoutDate {
		t.log.Info("collection too large to list; showing it by date", "collection", coll, "max_listing", t.opt.MaxListing)
	}
	return l
}

// waitCtx runs a blocking wait, giving up (not the wait) when ctx ends.
func waitCtx[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type res struct {
		v   T
		err error
	}
	ch := make(chan res, 1)
	go func() { v, err := f(); ch <- res{v, err} }()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// Items is the flat listing of a collection, streaming.
func (t *Tree) Items(ctx context.Context, collectionID string) (*Listing, error) {
	if t.opt.Search != nil {
		return t.searchListing(ctx, collectionID)
	}
	limit := 0
	if t.opt.Layout == LayoutAuto {
		limit = t.opt.MaxListing
	}
	return t.listing(ctx, flatSpec(collectionID, limit)), nil
}

// Day is the listing of one UTC day of a collection in the date layout.
func (t *Tree) Day(ctx context.Context, collectionID string, y, m, d int) *Listing {
	return t.listing(ctx, daySpec(collectionID, time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)))
}

// PrefetchDays starts filling the DayConcurrency-1 days after day (within
// the extent) once the listing of day itself has ended: a walk over a date
// range (find) then finds the next days ready, and fetches several at
// once, while an `ls` of one day does not share the catalog with them.
func (t *Tree) PrefetchDays(ctx context.Context, coll string, ext Extent, day time.Time, current *Listing) {
	ctx = context.WithoutCancel(ctx)
	go func() {
		if current.Wait() != nil {
			return
		}
		for i := 1; i < t.opt.DayConcurrency; i++ {
			d := day.AddDate(0, 0, i)
			if !ext.Contains(t.now(), d.Year(), int(d.Month()), d.Day()) {
				return
			}
			t.listing(ctx, daySpec(coll, d))
		}
	}()
}

// listing returns the listing of spec: cached in memory, else read back
// from the index, else filled from the catalog (in the background; the
// returned listing streams as pages arrive). An expired listing is
// returned as it is and refreshed in the background.
func (t *Tree) listing(ctx context.Context, spec listSpec) *Listing {
	now := t.now()
	t.mu.Lock()
	s := t.lists[spec.key]
	if s == nil {
		t.mu.Unlock()
		var fromIndex *Listing
		if t.opt.Index != nil {
			if ids, fetched, ok := t.opt.Index.Listing(spec.key); ok {
				fromIndex = completeListing(ids, fetched)
			}
		}
		t.mu.Lock()
		if s = t.lists[spec.key]; s == nil {
			s = &listSlot{}
			if fromIndex != nil {
				s.l, s.n = fromIndex, len(fromIndex.entries)
				t.listTotal += s.n
				t.rememberNames(spec.coll, fromIndex.entries)
			} else {
				s.l = newListing()
				s.refreshing = true
				go t.fill(ctx, spec, s.l, s)
			}
			s.elem = t.listLRU.PushFront(spec.key)
			t.lists[spec.key] = s
			t.evictLocked()
		}
	}
	t.listLRU.MoveToFront(s.elem)
	l := s.l
	done, fetched, _, err := l.state()
	switch {
	case s.refreshing:
	case done && err != nil && s.failed.IsZero():
		// A first fill that failed: the next reader tries again.
		s.l = newListing()
		s.refreshing = true
		l = s.l
		go t.fill(ctx, spec, l, s)
	case done && now.Sub(fetched) >= t.ttl && now.Sub(s.failed) >= min(failBackoff, t.ttl):
		s.refreshing = true
		go t.fill(ctx, spec, newListing(), s)
	}
	t.mu.Unlock()
	return l
}

// fill pages the catalog into l. When l is not yet s's listing (a
// refresh), it replaces it only once complete.
func (t *Tree) fill(ctx context.Context, spec listSpec, l *Listing, s *listSlot) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listTimeout)
	defer cancel()
	var w *listingWriter
	if t.opt.Index != nil {
		w = t.opt.Index.newListing(spec.key)
	}
	q := spec.query
	q.Heads = true
	err := t.client.ItemPages(ctx, q, func(items []Item, matched int64) error {
		kept := items[:0]
		for _, it := range items {
			if it.Collection != spec.coll {
				it.Collection = spec.coll
			}
			if !spec.day.IsZero() && !sameDay(it.Datetime, spec.day) {
				continue // listed on its own day (or nowhere, without a datetime)
			}
			kept = append(kept, it)
		}
		es := make([]ListEntry, len(kept))
		names := make([]string, len(kept))
		now := t.now()
		for i, it := range kept {
			es[i] = ListEntry{ID: it.ID, Name: ItemName(it.ID)}
			names[i] = es[i].Name
		}
		if w != nil {
			w.page(spec.coll, kept, names, now)
		}
		t.mu.Lock()
		t.rememberNames(spec.coll, es)
		t.mu.Unlock()
		t.keepRaw(spec.coll, kept, now)
		if l.add(es, matched, spec.limit) {
			return ErrStop
		}
		return nil
	})
	now := t.now()
	n := l.Len()
	overflow := func() bool { l.mu.Lock(); defer l.mu.Unlock(); return l.overflow }()
	// The index first: a reader that saw the listing end finds it there.
	if w != nil {
		if err == nil && !overflow {
			w.complete(now)
		} else {
			w.abandon()
		}
	}
	l.finish(err, now)
	t.mu.Lock()
	defer t.mu.Unlock()
	s.refreshing = false
	if err != nil {
		if s.l != l {
			s.failed = now
			t.log.Warn("catalog refresh failed; serving the cached listing", "listing", spec.key, "err", err)
		} else {
			t.log.Warn("catalog listing failed", "listing", spec.key, "err", err)
		}
		return
	}
	if s.l != l && overflow {
		return // auto's probe outgrew the bound: keep what the mount shows
	}
	s.l = l
	s.failed = time.Time{}
	if t.lists[spec.key] == s {
		t.listTotal += n - s.n
		s.n = n
		t.evictLocked()
	}
}

// rememberNames keeps the hashed names a listing gave out (rare: hostile
// IDs), so that lookups resolve them without the index.
func (t *Tree) rememberNames(coll string, es []ListEntry) {
	for _, e := range es {
		if e.Name != e.ID {
			t.names[coll+"\x00"+e.Name] = e.ID
		}
	}
}

// evictLocked drops the least recently used complete listings while more
// than MaxListEntries entries are held.
func (t *Tree) evictLocked() {
	for el := t.listLRU.Back(); el != nil && t.listTotal > t.opt.MaxListEntries; {
		prev := el.Prev()
		key := el.Value.(string)
		s := t.lists[key]
		if done, _, _, _ := s.l.state(); done && !s.refreshing && el != t.listLRU.Front() {
			t.listLRU.Remove(el)
			delete(t.lists, key)
			t.listTotal -= s.n
		}
		el = prev
	}
}

func sameDay(t, day time.Time) bool {
	if t.IsZero() {
		return false
	}
	y, m, d := t.UTC().Date()
	dy, dm, dd := day.Date()
	return y == dy && m == dm && d == dd
}

// Extent is a collection's temporal extent.
func (t *Tree) Extent(ctx context.Context, collectionID string) (Extent, error) {
	c, err := t.collectionByID(ctx, collectionID)
	if err != nil {
		return Extent{}, err
	}
	return c.Extent, nil
}

func (t *Tree) collectionByID(ctx context.Context, id string) (*CollectionEntry, error) {
	c, err := t.collections(ctx)
	if err != nil {
		return nil, err
	}
	for i := range c.val {
		if c.val[i].ID == id {
			return &c.val[i], nil
		}
	}
	return nil, fmt.Errorf("collection %q: %w", id, ErrNotFound)
}

// Now is the tree's clock (the date layout's open end).
func (t *Tree) Now() time.Time { return t.now() }
