package stacindex

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Names reserved in directories for the JSON documents.
const (
	CollectionJSON = "collection.json"
	ItemJSON       = "item.json"
)

// CollectionEntry is a collection directory.
type CollectionEntry struct {
	ID   string
	Name string // safe file name
	Raw  []byte // collection.json
}

// ItemEntry is an item directory.
type ItemEntry struct {
	ID     string
	Name   string
	Raw    []byte // item.json
	Time   time.Time
	Assets []AssetEntry
}

// AssetEntry is an asset file.
type AssetEntry struct {
	Key  string
	Name string
	Loc  Location
	Type string
	Size int64 // -1 when the catalog does not say (file:size)
}

// Tree is the cached model of the catalog. Listings load lazily and are
// kept for TTL; while a refresh fails, the last good listing is served.
type Tree struct {
	client   *Client
	resolver Resolver
	ttl      time.Duration
	log      *slog.Logger
	now      func() time.Time
	group    singleflight.Group

	mu     sync.Mutex
	colls  *cached[[]CollectionEntry]      // guarded by mu
	items  map[string]*cached[[]ItemEntry] // guarded by mu; by collection ID
	warned map[string]bool                 // guarded by mu; unsupported hrefs logged once
}

type cached[T any] struct {
	val     T
	byName  map[string]int // index into val
	fetched time.Time
	st      staleState
}

// staleState is what a cached listing knows of its refreshes. Guarded by
// the Tree's mu.
type staleState struct {
	fetched    time.Time // as cached.fetched; set once
	refreshing time.Time // when the current refresh started; zero if none
	failed     time.Time // when the last refresh failed; zero if it did not
}

func (c *cached[T]) stale() *staleState {
	if c == nil {
		return nil
	}
	return &c.st
}

// NewTree returns a tree over client's catalog.
func NewTree(client *Client, resolver Resolver, ttl time.Duration, log *slog.Logger) *Tree {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tree{client: client, resolver: resolver, ttl: ttl, log: log, now: time.Now,
		items: map[string]*cached[[]ItemEntry]{}, warned: map[string]bool{}}
}

// Collections lists the root directory.
func (t *Tree) Collections(ctx context.Context) ([]CollectionEntry, error) {
	c, err := t.collections(ctx)
	if err != nil {
		return nil, err
	}
	return c.val, nil
}

// Collection finds a collection directory by its file name.
func (t *Tree) Collection(ctx context.Context, name string) (*CollectionEntry, error) {
	c, err := t.collections(ctx)
	if err != nil {
		return nil, err
	}
	i, ok := c.byName[name]
	if !ok {
		return nil, ErrNotFound
	}
	return &c.val[i], nil
}

// Items lists a collection directory.
func (t *Tree) Items(ctx context.Context, collectionID string) ([]ItemEntry, error) {
	c, err := t.itemList(ctx, collectionID)
	if err != nil {
		return nil, err
	}
	return c.val, nil
}

// Item finds an item directory by its file name.
func (t *Tree) Item(ctx context.Context, collectionID, name string) (*ItemEntry, error) {
	c, err := t.itemList(ctx, collectionID)
	if err != nil {
		return nil, err
	}
	i, ok := c.byName[name]
	if !ok {
		return nil, ErrNotFound
	}
	return &c.val[i], nil
}

// loadTimeout bounds a listing load, which runs detached from the first
// caller's context so that one interrupted `ls` does not fail the others
// waiting on the same load.
const loadTimeout = 5 * time.Minute

func (t *Tree) collections(ctx context.Context) (*cached[[]CollectionEntry], error) {
	t.mu.Lock()
	c := t.colls
	serve, grace := t.checkLocked(c.stale())
	t.mu.Unlock()
	if serve {
		return c, nil
	}
	ch := t.group.DoChan("\x00collections", func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		cs, err := t.client.Collections(ctx)
		if err != nil {
			t.refreshFailed(c.stale(), "collections", err)
			return nil, err
		}
		named := make([]Named, len(cs))
		for i, c := range cs {
			named[i] = Named{Raw: c.ID, Name: SafeName(c.ID)}
		}
		Disambiguate(named)
		out := make([]CollectionEntry, len(cs))
		for i, c := range cs {
			out[i] = CollectionEntry{ID: c.ID, Name: named[i].Name, Raw: c.Raw}
		}
		byName := make(map[string]int, len(out))
		for i, e := range out {
			byName[e.Name] = i
		}
		t.mu.Lock()
		now := t.now()
		nc := &cached[[]CollectionEntry]{val: out, byName: byName, fetched: now, st: staleState{fetched: now}}
		t.colls = nc
		t.mu.Unlock()
		return nc, nil
	})
	return await(ctx, t, c, ch, "collections", grace)
}

func (t *Tree) itemList(ctx context.Context, collectionID string) (*cached[[]ItemEntry], error) {
	t.mu.Lock()
	c := t.items[collectionID]
	serve, grace := t.checkLocked(c.stale())
	t.mu.Unlock()
	if serve {
		return c, nil
	}
	ch := t.group.DoChan(collectionID, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		var out []ItemEntry
		err := t.client.Items(ctx, collectionID, func(it Item) error {
			out = append(out, t.itemEntry(it))
			return nil
		})
		if err != nil {
			t.refreshFailed(c.stale(), "items of "+collectionID, err)
			return nil, err
		}
		named := make([]Named, len(out))
		for i, it := range out {
			named[i] = Named{Raw: it.ID, Name: it.Name}
		}
		Disambiguate(named, CollectionJSON)
		byName := make(map[string]int, len(out))
		for i := range out {
			out[i].Name = named[i].Name
			byName[out[i].Name] = i
		}
		t.mu.Lock()
		now := t.now()
		nc := &cached[[]ItemEntry]{val: out, byName: byName, fetched: now, st: staleState{fetched: now}}
		t.items[collectionID] = nc
		t.mu.Unlock()
		return nc, nil
	})
	return await(ctx, t, c, ch, "items of "+collectionID, grace)
}

// staleGrace is how long a reader waits for the refresh of an expired
// listing before it is served the expired one; the refresh goes on in the
// background and the next reader gets its result. After a failed refresh
// the expired listing is served without a new attempt for failBackoff
// (at most the TTL).
const (
	staleGrace  = time.Second
	failBackoff = 30 * time.Second
)

// checkLocked decides, for a listing (nil: none yet), whether to serve it
// as is, or else how long to wait for a refresh before serving it stale.
func (t *Tree) checkLocked(st *staleState) (serve bool, grace time.Duration) {
	if st == nil {
		return false, 0
	}
	now := t.now()
	if now.Sub(st.fetched) < t.ttl || (!st.failed.IsZero() && now.Sub(st.failed) < min(failBackoff, t.ttl)) {
		return true, 0
	}
	if st.refreshing.IsZero() {
		st.refreshing = now
	}
	return false, max(staleGrace-now.Sub(st.refreshing), 0)
}

// await waits for a load. When an older listing exists it is served if the
// load fails (stale while erroring) or takes longer than grace (stale
// while slow: a failing catalog retrying for --io-timeout does not make
// every `ls` wait that long).
func await[T any](ctx context.Context, t *Tree, old *cached[T], ch <-chan singleflight.Result, what string, grace time.Duration) (*cached[T], error) {
	var graceC <-chan time.Time
	if old != nil {
		timer := time.NewTimer(grace)
		defer timer.Stop()
		graceC = timer.C
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-graceC:
		t.log.Debug("catalog slow; serving the cached listing while it refreshes", "listing", what)
		return old, nil
	case r := <-ch:
		if r.Err == nil {
			return r.Val.(*cached[T]), nil
		}
		if old == nil {
			return nil, r.Err
		}
		return old, nil // the load logged the failure
	}
}

// refreshFailed records a failed refresh of a cached listing (nil: there
// is none) and logs, once per failed load, that it is served instead.
func (t *Tree) refreshFailed(st *staleState, what string, err error) {
	if st == nil {
		return
	}
	t.mu.Lock()
	now := t.now()
	st.refreshing, st.failed = time.Time{}, now
	age := now.Sub(st.fetched)
	t.mu.Unlock()
	t.log.Warn("catalog refresh failed; serving the cached listing", "listing", what, "err", err, "age", age.Round(time.Second))
}

func (t *Tree) itemEntry(it Item) ItemEntry {
	e := ItemEntry{ID: it.ID, Name: SafeName(it.ID), Raw: it.Raw, Time: it.Time}
	named := make([]Named, 0, len(it.Assets))
	for _, a := range it.Assets {
		loc, err := t.resolver.Resolve(a.Href, it.Self)
		if err != nil {
			t.warnOnce(it, a, err)
			continue
		}
		e.Assets = append(e.Assets, AssetEntry{Key: a.Key, Loc: loc, Type: a.Type, Size: a.Size,
			Name: AssetFileName(a.Key, a.Href, a.Type)})
		named = append(named, Named{Raw: a.Key, Name: e.Assets[len(e.Assets)-1].Name})
	}
	Disambiguate(named, ItemJSON)
	for i := range e.Assets {
		e.Assets[i].Name = named[i].Name
	}
	return e
}

func (t *Tree) warnOnce(it Item, a Asset, err error) {
	k := it.Collection + "\x00" + it.ID + "\x00" + a.Key
	t.mu.Lock()
	done := t.warned[k]
	t.warned[k] = true
	t.mu.Unlock()
	if !done {
		t.log.Warn("asset left out of the tree", "collection", it.Collection, "item", it.ID, "asset", a.Key, "reason", err)
	}
}
