package fs

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/prescient/prescientfs/fs/objread"
	"github.com/prescient/prescientfs/stacindex"
)

// statCache remembers object versions for the metadata TTL: HEAD results
// (concurrent HEADs of one object merged) and versions handles learned
// from their first GET.
type statCache struct {
	store objread.Store
	ttl   time.Duration
	group singleflight.Group

	mu      sync.Mutex
	entries map[string]statEntry // guarded by mu; by Location.ID
}

type statEntry struct {
	info    objread.ObjectInfo
	fetched time.Time
}

func newStatCache(store objread.Store, ttl time.Duration) *statCache {
	return &statCache{store: store, ttl: ttl, entries: map[string]statEntry{}}
}

// cached returns a fresh cached result, if any.
func (c *statCache) cached(loc stacindex.Location) (objread.ObjectInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[loc.ID()]
	if !ok || time.Since(e.fetched) >= c.ttl {
		return objread.ObjectInfo{}, false
	}
	return e.info, true
}

// stat returns the object's info, from cache or by one HEAD.
func (c *statCache) stat(ctx context.Context, loc stacindex.Location) (objread.ObjectInfo, error) {
	if info, ok := c.cached(loc); ok {
		return info, nil
	}
	ch := c.group.DoChan(loc.ID(), func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		info, err := c.store.Stat(ctx, loc)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.entries[loc.ID()] = statEntry{info: info, fetched: time.Now()}
		c.mu.Unlock()
		return info, nil
	})
	select {
	case <-ctx.Done():
		return objread.ObjectInfo{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return objread.ObjectInfo{}, r.Err
		}
		return r.Val.(objread.ObjectInfo), nil
	}
}

// learn records a version learned otherwise than by a HEAD (a handle's
// first GET), as fresh as a HEAD's.
func (c *statCache) learn(loc stacindex.Location, info objread.ObjectInfo) {
	c.mu.Lock()
	if e, ok := c.entries[loc.ID()]; ok && e.info.ETag == info.ETag {
		info.LastModified = e.info.LastModified
	}
	c.entries[loc.ID()] = statEntry{info: info, fetched: time.Now()}
	c.mu.Unlock()
}

// forget drops a cached result (after the object changed).
func (c *statCache) forget(loc stacindex.Location) {
	c.mu.Lock()
	delete(c.entries, loc.ID())
	c.mu.Unlock()
}
