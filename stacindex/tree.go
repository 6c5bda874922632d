package stacindex

import (
	"container/list"
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
	ID     string
	Name   string // CollectionName(ID)
	Raw    []byte // collection.json
	Extent Extent // temporal extent, for the date layout
}

// ItemEntry is an item directory.
type ItemEntry struct {
	ID   string
	Name string // ItemName(ID)
	Raw  []byte // item.json
	Time time.Time
	// Datetime is where the date layout lists the item (datetime, else
	// start_datetime, UTC); zero if neither.
	Datetime time.Time
	Assets   []AssetEntry
}

// AssetEntry is an asset file.
type AssetEntry struct {
	Key  string
	Name string
	Loc  Location
	Type string
	Size int64 // -1 when the catalog does not say (file:size)
}

// Tree is the cached model of the catalog: collections, listings (flat,
// by day, of a search) and item documents. Nothing in it lists a whole
// collection to answer a lookup: an item is found by its ID (names are
// decidable from IDs alone). Listings fill page by page on a context of
// their own while readers stream them; with an Index they are kept on
// disk, and memory holds a bounded number of listing entries and item
// documents. Listings are kept for the TTL; an expired one is served at
// once and refreshed in the background; while a refresh fails, the last
// good listing is served.
type Tree struct {
	client   *Client
	resolver Resolver
	ttl      time.Duration
	log      *slog.Logger
	now      func() time.Time
	group    singleflight.Group
	opt      TreeOptions

	mu        sync.Mutex
	colls     *cached[[]CollectionEntry] // guarded by mu
	warned    map[string]bool            // guarded by mu; unsupported hrefs logged once
	lists     map[string]*listSlot       // guarded by mu; by listing key
	listLRU   *list.List                 // guarded by mu; of keys, most recent first
	listTotal int                        // guarded by mu; entries of complete listings in lists
	items     map[string]*list.Element   // guarded by mu; coll\x00id -> itemLRU element
	itemLRU   *list.List                 // guarded by mu; of *cachedItem
	raws      map[string]*list.Element   // guarded by mu; coll\x00id -> rawLRU element
	rawLRU    *list.List                 // guarded by mu; of *rawDoc
	rawBytes  int                        // guarded by mu; bytes of the documents in rawLRU
	names     map[string]string          // guarded by mu; coll\x00hashed name -> ID
	modes     map[string]Layout          // guarded by mu; auto's decision per collection
	search    *searchState               // guarded by mu; nil until the search starts
}

// TreeOptions configure a Tree. Zero values mean the defaults.
type TreeOptions struct {
	Resolver Resolver
	// TTL of listings and item documents.
	TTL time.Duration
	Log *slog.Logger
	// Layout of collection directories (default auto).
	Layout Layout
	// MaxListing is auto's bound for a flat collection (default 10000).
	MaxListing int
	// Search, when set, makes the tree the results of this search only.
	Search *Search
	// MaxItems caps the search (0: no cap).
	MaxItems int
	// Index keeps listings and item documents on disk (nil: none).
	Index *Index
	// MaxListEntries bounds the listing entries kept in memory (default
	// 500,000, ~50 MiB); listings beyond it are dropped, least recently
	// used first, and read back from the index (or the catalog).
	MaxListEntries int
	// MaxItemDocs bounds the parsed item documents kept in memory
	// (default 2048).
	MaxItemDocs int
	// MaxRawBytes bounds the listed item documents kept unparsed in memory
	// (default 16 MiB): the item directories read after a listing.
	MaxRawBytes int
	// DayConcurrency bounds the days fetched at once when a month is
	// listed (default 4).
	DayConcurrency int
}

type cachedItem struct {
	key     string
	e       *ItemEntry
	fetched time.Time
	listed  bool // came with a listing, whose refresh refreshes it
}

type listSlot struct {
	l          *Listing
	refreshing bool      // a refresh runs
	failed     time.Time // when the last refresh failed
	elem       *list.Element
	n          int // entries of l counted in listTotal
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

// NewTree returns a tree over client's catalog with the default options.
func NewTree(client *Client, resolver Resolver, ttl time.Duration, log *slog.Logger) *Tree {
	return NewTreeOptions(client, TreeOptions{Resolver: resolver, TTL: ttl, Log: log})
}

// NewTreeOptions returns a tree over client's catalog.
func NewTreeOptions(client *Client, o TreeOptions) *Tree {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxListing <= 0 {
		o.MaxListing = 10000
	}
	if o.MaxListEntries <= 0 {
		o.MaxListEntries = 500_000
	}
	if o.MaxItemDocs <= 0 {
		o.MaxItemDocs = 2048
	}
	if o.MaxRawBytes <= 0 {
		o.MaxRawBytes = 16 << 20
	}
	if o.DayConcurrency <= 0 {
		o.DayConcurrency = 4
	}
	return &Tree{client: client, resolver: o.Resolver, ttl: o.TTL, log: o.Log, now: time.Now, opt: o,
		warned: map[string]bool{}, lists: map[string]*listSlot{}, listLRU: list.New(),
		items: map[string]*list.Element{}, itemLRU: list.New(), raws: map[string]*list.Element{}, rawLRU: list.New(), names: map[string]string{}, modes: map[string]Layout{}}
}

// Collections lists the root directory: every collection, or in a
// search mount those with results.
func (t *Tree) Collections(ctx context.Context) ([]CollectionEntry, error) {
	c, err := t.collections(ctx)
	if err != nil {
		return nil, err
	}
	if t.opt.Search == nil {
		return c.val, nil
	}
	with, err := t.searchCollections(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]CollectionEntry, 0, len(with))
	for _, e := range c.val {
		if with[e.ID] {
			out = append(out, e)
		}
	}
	return out, nil
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
	if t.opt.Search != nil {
		if _, err := t.searchListing(ctx, c.val[i].ID); err != nil {
			return nil, err
		}
	}
	return &c.val[i], nil
}

// loadTimeout bounds a listing load, which runs detached from the first
// caller's context so that one interrupted `ls` does not fail the others
// waiting on the same load.
const loadTimeout = 5 * time.Minute

func (t *Tree) collections(ctx context.Context) (*cached[[]CollectionEntry], error) {
	t.mu.Lock()
	if t.colls == nil && t.opt.Index != nil {
		if cs, fetched, ok := t.opt.Index.collections(); ok {
			t.colls = newCachedCollections(cs, fetched)
			// Served at once; an expired one refreshes in the background.
			t.colls.st.refreshing = t.now().Add(-staleGrace)
		}
	}
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
		out := make([]CollectionEntry, len(cs))
		for i, c := range cs {
			out[i] = CollectionEntry{ID: c.ID, Name: CollectionName(c.ID), Raw: c.Raw, Extent: temporalExtent(c.Raw)}
		}
		if t.opt.Index != nil {
			t.opt.Index.putCollections(cs, t.now())
		}
		t.mu.Lock()
		nc := newCachedCollections(out, t.now())
		t.colls = nc
		t.mu.Unlock()
		return nc, nil
	})
	return await(ctx, t, c, ch, "collections", grace)
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
	e := ItemEntry{ID: it.ID, Name: ItemName(it.ID), Raw: it.Raw, Time: it.Time, Datetime: it.Datetime}
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

func newCachedCollections(out []CollectionEntry, fetched time.Time) *cached[[]CollectionEntry] {
	byName := make(map[string]int, len(out))
	for i, e := range out {
		byName[e.Name] = i
	}
	return &cached[[]CollectionEntry]{val: out, byName: byName, fetched: fetched, st: staleState{fetched: fetched}}
}
