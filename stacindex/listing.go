package stacindex

import (
	"sync"
	"time"
)

// ListEntry is one item of a listing: its ID and its name (ItemName).
type ListEntry struct {
	ID   string
	Name string
}

// Listing is the items of one directory (a flat collection, a day, a
// search's collection) in the order the catalog served them. It fills
// page by page while readers stream it: Entry blocks until the entry has
// arrived or the listing has ended, so the first entries reach the kernel
// once the first page is in. It holds IDs and names only (the item
// documents go to the index and a bounded cache): ~100 bytes an item.
type Listing struct {
	mu       sync.Mutex
	cond     *sync.Cond
	entries  []ListEntry       // guarded by mu
	matched  int64             // guarded by mu; numberMatched of the first page, -1 unknown
	pages    int               // guarded by mu; pages received
	done     bool              // guarded by mu; no more entries will come
	overflow bool              // guarded by mu; stopped at the cap (auto layout: too many to list)
	err      error             // guarded by mu; why it ended early
	fetched  time.Time         // guarded by mu; when it completed
	byName   map[string]string // guarded by mu; name -> ID, built by Lookup
}

func newListing() *Listing {
	l := &Listing{matched: -1}
	l.cond = sync.NewCond(&l.mu)
	return l
}

// completeListing is a listing read back from the index.
func completeListing(ids []string, fetched time.Time) *Listing {
	l := newListing()
	l.entries = make([]ListEntry, len(ids))
	for i, id := range ids {
		l.entries[i] = ListEntry{ID: id, Name: ItemName(id)}
	}
	l.done, l.fetched, l.pages = true, fetched, 1
	return l
}

// Entry returns entry i, waiting for it; ok false once the listing has
// ended before i (err says why, if it failed).
func (l *Listing) Entry(i int) (e ListEntry, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i >= len(l.entries) && !l.done {
		l.cond.Wait()
	}
	if i < len(l.entries) {
		return l.entries[i], true, nil
	}
	return ListEntry{}, false, l.err
}

// Wait waits for the listing to end.
func (l *Listing) Wait() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.done {
		l.cond.Wait()
	}
	return l.err
}

// Lookup finds an entry by name in a complete listing.
func (l *Listing) Lookup(name string) (string, bool) {
	if l.Wait() != nil {
		return "", false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byName == nil {
		l.byName = make(map[string]string, len(l.entries))
		for _, e := range l.entries {
			l.byName[e.Name] = e.ID
		}
	}
	id, ok := l.byName[name]
	return id, ok
}

// Len is the number of entries so far.
func (l *Listing) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

func (l *Listing) add(es []ListEntry, matched int64, limit int) (stop bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pages == 0 {
		l.matched = matched
	}
	l.pages++
	l.entries = append(l.entries, es...)
	l.cond.Broadcast()
	if limit > 0 && (len(l.entries) > limit || (l.pages == 1 && l.matched > int64(limit))) {
		l.overflow = true
		return true
	}
	return false
}

func (l *Listing) finish(err error, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done, l.err, l.fetched = true, err, now
	l.cond.Broadcast()
}

// state is a snapshot for the tree's decisions.
func (l *Listing) state() (done bool, fetched time.Time, n int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done, l.fetched, len(l.entries), l.err
}

// decided waits until a capped listing tells whether it stays within
// limit: from numberMatched on its first page, else by ending (within)
// or overflowing (above).
func (l *Listing) decided(limit int) (within bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for !l.done && !(l.pages > 0 && l.matched >= 0) {
		l.cond.Wait()
	}
	if l.overflow {
		return false, nil
	}
	if l.done && l.err != nil {
		return false, l.err
	}
	if l.pages > 0 && l.matched >= 0 {
		return l.matched <= int64(limit), nil
	}
	return len(l.entries) <= limit, nil
}
