package stacindex

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// ItemByName finds an item of a collection by its directory name, without
// a listing: a plain name is the item's ID; a hashed name resolves through
// the listings that gave it out (in memory, then the index); a hashed name
// no listing gave out is not found. In a search mount only results are
// found.
func (t *Tree) ItemByName(ctx context.Context, collectionID, name string) (*ItemEntry, error) {
	id, err := t.nameID(ctx, collectionID, name)
	if err != nil {
		return nil, err
	}
	return t.Item(ctx, collectionID, id)
}

func (t *Tree) nameID(ctx context.Context, coll, name string) (string, error) {
	if t.opt.Search != nil {
		l, err := t.searchListing(ctx, coll)
		if err != nil {
			return "", err
		}
		if id, ok := l.Lookup(name); ok {
			return id, nil
		}
		return "", fmt.Errorf("%q in %q: not a result of the search: %w", name, coll, ErrNotFound)
	}
	if !IsHashedName(name) {
		if ItemName(name) != name {
			return "", fmt.Errorf("%q in %q: %w", name, coll, ErrNotFound)
		}
		return name, nil
	}
	t.mu.Lock()
	id, ok := t.names[coll+"\x00"+name]
	t.mu.Unlock()
	if !ok && t.opt.Index != nil {
		id, ok = t.opt.Index.NameID(coll, name)
		ok = ok && ItemName(id) == name // a damaged value names another item
	}
	if !ok {
		return "", fmt.Errorf("%q in %q: a hashed name no listing gave out: %w", name, coll, ErrNotFound)
	}
	return id, nil
}

// Item returns an item by ID: from memory, else the index, else the
// catalog (GET .../items/{id}, then a search by ID: at most two requests).
// An expired document is served while it refreshes in the background.
func (t *Tree) Item(ctx context.Context, collectionID, id string) (*ItemEntry, error) {
	key := collectionID + "\x00" + id
	now := t.now()
	t.mu.Lock()
	var hit *cachedItem
	if el, ok := t.items[key]; ok {
		t.itemLRU.MoveToFront(el)
		hit = el.Value.(*cachedItem)
	}
	t.mu.Unlock()
	if hit == nil {
		hit = t.rawItem(collectionID, id)
	}
	if hit == nil && t.opt.Index != nil {
		if raw, fetched, listed, ok := t.opt.Index.Item(collectionID, id); ok {
			if it, err := ParseItem(raw, t.client.itemURL(collectionID, id)); err == nil && it.ID == id {
				it.Collection = collectionID
				hit = t.keepItem(it, fetched, listed)
			}
		}
	}
	if hit != nil {
		// A listed document is refreshed with its listing (a walk over a
		// remounted tree sends no request per item); one found by ID alone
		// is refreshed by ID.
		if !hit.listed && now.Sub(hit.fetched) >= t.ttl {
			go t.fetchItem(ctx, collectionID, id) // singleflight: once
		}
		return hit.e, nil
	}
	return t.fetchItem(ctx, collectionID, id)
}

func (t *Tree) fetchItem(ctx context.Context, collectionID, id string) (*ItemEntry, error) {
	ch := t.group.DoChan("\x00item\x00"+collectionID+"\x00"+id, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		it, err := t.client.ItemByID(ctx, collectionID, id)
		if err != nil {
			return nil, err
		}
		now := t.now()
		if t.opt.Index != nil {
			t.opt.Index.PutItem(collectionID, id, it.Raw, now)
		}
		return t.keepItem(it, now, false).e, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*ItemEntry), nil
	}
}

// keepItem puts an item in the bounded in-memory cache.
func (t *Tree) keepItem(it Item, fetched time.Time, listed bool) *cachedItem {
	c := &cachedItem{key: it.Collection + "\x00" + it.ID, e: ptr(t.itemEntry(it)), fetched: fetched, listed: listed}
	t.mu.Lock()
	defer t.mu.Unlock()
	if el, ok := t.items[c.key]; ok {
		el.Value = c
		t.itemLRU.MoveToFront(el)
		return c
	}
	t.items[c.key] = t.itemLRU.PushFront(c)
	for t.itemLRU.Len() > t.opt.MaxItemDocs {
		old := t.itemLRU.Back()
		t.itemLRU.Remove(old)
		delete(t.items, old.Value.(*cachedItem).key)
	}
	return c
}

func ptr[T any](v T) *T { return &v }

// rawDoc is an item document as a listing served it, not yet parsed.
type rawDoc struct {
	key     string
	raw     []byte
	fetched time.Time
}

// keepRaw keeps the documents of a listed page, unparsed, in a cache
// bounded by MaxRawBytes: the item directories a reader opens after a
// listing need neither a request nor the index.
func (t *Tree) keepRaw(coll string, items []Item, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, it := range items {
		// A copy: the page's body is not kept alive by its items.
		d := &rawDoc{key: coll + "\x00" + it.ID, raw: bytes.Clone(it.Raw), fetched: now}
		if el, ok := t.items[d.key]; ok { // parsed from an older listing
			t.itemLRU.Remove(el)
			delete(t.items, d.key)
		}
		if el, ok := t.raws[d.key]; ok {
			t.rawBytes -= len(el.Value.(*rawDoc).raw)
			el.Value = d
			t.rawLRU.MoveToFront(el)
		} else {
			t.raws[d.key] = t.rawLRU.PushFront(d)
		}
		t.rawBytes += len(d.raw)
	}
	for t.rawBytes > t.opt.MaxRawBytes && t.rawLRU.Len() > 0 {
		old := t.rawLRU.Back()
		d := old.Value.(*rawDoc)
		t.rawLRU.Remove(old)
		delete(t.raws, d.key)
		t.rawBytes -= len(d.raw)
	}
}

// rawItem parses a document keepRaw kept (and moves it to the parsed cache).
func (t *Tree) rawItem(coll, id string) *cachedItem {
	key := coll + "\x00" + id
	t.mu.Lock()
	el, ok := t.raws[key]
	if ok {
		d := el.Value.(*rawDoc)
		t.rawLRU.Remove(el)
		delete(t.raws, key)
		t.rawBytes -= len(d.raw)
		t.mu.Unlock()
		it, err := ParseItem(d.raw, t.client.itemURL(coll, id))
		if err != nil || it.ID != id {
			return nil
		}
		it.Collection = coll
		return t.keepItem(it, d.fetched, true)
	}
	t.mu.Unlock()
	return nil
}
