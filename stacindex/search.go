package stacindex

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// searchState is one run of a search mount's search: a listing per
// collection with results, filled as the pages arrive.
type searchState struct {
	done chan struct{} // closed when the search has ended
	// first is closed once the first page (or the end) has arrived.
	first chan struct{}

	mu         sync.Mutex
	colls      map[string]*Listing // guarded by mu
	order      []string            // guarded by mu; collections in order of first result
	err        error               // set before done is closed
	fetched    time.Time           // set before done is closed
	refreshing bool                // guarded by Tree.mu
	failed     time.Time           // guarded by Tree.mu
}

const searchKey = "search"

// StartSearch starts the search of a search mount (or reads it back from
// the index) and waits for its first page: a search the API rejects fails
// here, with the API's message.
func (t *Tree) StartSearch(ctx context.Context) error {
	st := t.searchRun(ctx)
	select {
	case <-st.first:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-st.done:
		return st.err
	default:
		return nil
	}
}

func (t *Tree) searchRun(ctx context.Context) *searchState {
	t.mu.Lock()
	st := t.search
	t.mu.Unlock()
	if st == nil {
		fromIndex := t.searchFromIndex()
		t.mu.Lock()
		if st = t.search; st == nil {
			st = fromIndex
			if st == nil {
				st = newSearchState()
				st.refreshing = true
				go t.fillSearch(ctx, st)
			}
			t.search = st
		}
		t.mu.Unlock()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-st.done:
		now := t.now()
		switch {
		case st.refreshing:
		case st.err != nil && st.failed.IsZero():
			st = newSearchState()
			st.refreshing = true
			t.search = st
			go t.fillSearch(ctx, st)
		case now.Sub(st.fetched) >= t.ttl && now.Sub(st.failed) >= min(failBackoff, t.ttl):
			st.refreshing = true
			go t.fillSearch(ctx, newSearchState())
		}
	default:
	}
	return st
}

func newSearchState() *searchState {
	return &searchState{done: make(chan struct{}), first: make(chan struct{}), colls: map[string]*Listing{}}
}

func (t *Tree) searchFromIndex() *searchState {
	ix := t.opt.Index
	if ix == nil {
		return nil
	}
	colls, fetched, ok := ix.Listing(searchKey)
	if !ok {
		return nil
	}
	st := newSearchState()
	for _, c := range colls {
		ids, _, ok := ix.Listing(searchKey + "/" + c)
		if !ok {
			return nil
		}
		st.colls[c] = completeListing(ids, fetched)
		st.order = append(st.order, c)
	}
	st.fetched = fetched
	close(st.first)
	close(st.done)
	return st
}

// fillSearch pages the search into st, up to MaxItems items. A refresh
// (st not yet the tree's) replaces the tree's search when complete.
func (t *Tree) fillSearch(ctx context.Context, st *searchState) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listTimeout)
	defer cancel()
	writers := map[string]*listingWriter{}
	total := 0
	var firstOnce sync.Once
	err := t.client.ItemPages(ctx, ItemQuery{Search: t.opt.Search, Heads: true}, func(items []Item, _ int64) error {
		defer firstOnce.Do(func() { close(st.first) })
		now := t.now()
		if t.opt.MaxItems > 0 && total+len(items) > t.opt.MaxItems {
			items = items[:t.opt.MaxItems-total]
		}
		total += len(items)
		byColl := map[string][]Item{}
		var order []string
		for _, it := range items {
			if it.Collection == "" {
				continue // a result we cannot place
			}
			if byColl[it.Collection] == nil {
				order = append(order, it.Collection)
			}
			byColl[it.Collection] = append(byColl[it.Collection], it)
		}
		for _, c := range order {
			its := byColl[c]
			es := make([]ListEntry, len(its))
			names := make([]string, len(its))
			for i, it := range its {
				es[i] = ListEntry{ID: it.ID, Name: ItemName(it.ID)}
				names[i] = es[i].Name
			}
			if t.opt.Index != nil {
				w := writers[c]
				if w == nil {
					w = t.opt.Index.newListing(searchKey + "/" + c)
					writers[c] = w
				}
				w.page(c, its, names, now)
			}
			t.keepRaw(c, its, now)
			st.mu.Lock()
			l := st.colls[c]
			if l == nil {
				l = newListing()
				st.colls[c] = l
				st.order = append(st.order, c)
			}
			st.mu.Unlock()
			l.add(es, -1, 0)
		}
		if t.opt.MaxItems > 0 && total >= t.opt.MaxItems {
			return ErrStop
		}
		return nil
	})
	now := t.now()
	st.mu.Lock()
	order := append([]string(nil), st.order...)
	st.mu.Unlock()
	if t.opt.Index != nil {
		if err == nil {
			for _, w := range writers {
				w.complete(now)
			}
			w := t.opt.Index.newListing(searchKey)
			its := make([]Item, len(order))
			for i, c := range order {
				its[i] = Item{ID: c}
			}
			w.pageIDs(its)
			w.complete(now)
		} else {
			for _, w := range writers {
				w.abandon()
			}
		}
	}
	st.mu.Lock()
	for _, l := range st.colls {
		l.finish(err, now)
	}
	st.mu.Unlock()
	st.err, st.fetched = err, now
	// done before first: StartSearch, woken by first, then looks at done
	// to tell a search that failed from one still paging. The other way
	// round, a search rejected at its first page could be seen between
	// the two closes as one under way, and the mount would go on.
	close(st.done)
	firstOnce.Do(func() { close(st.first) })
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.search
	old.refreshing = false
	switch {
	case err != nil && old != st:
		old.failed = now
		t.log.Warn("search refresh failed; serving the cached results", "err", err)
	case err != nil:
		t.log.Warn("search failed", "err", err)
	default:
		t.search = st
	}
}

// searchListing is a collection's results; ErrNotFound when the search
// has none in it.
func (t *Tree) searchListing(ctx context.Context, coll string) (*Listing, error) {
	st := t.searchRun(ctx)
	get := func() *Listing {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.colls[coll]
	}
	if l := get(); l != nil {
		return l, nil
	}
	select {
	case <-st.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if l := get(); l != nil {
		return l, nil
	}
	if st.err != nil {
		return nil, st.err
	}
	return nil, fmt.Errorf("collection %q: no results of the search in it: %w", coll, ErrNotFound)
}

// searchCollections is the IDs of the collections with results, once the
// search has ended.
func (t *Tree) searchCollections(ctx context.Context) (map[string]bool, error) {
	st := t.searchRun(ctx)
	select {
	case <-st.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if st.err != nil {
		return nil, st.err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make(map[string]bool, len(st.colls))
	for c := range st.colls {
		out[c] = true
	}
	return out, nil
}
