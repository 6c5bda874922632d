package objread

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prescient/prescientfs/stacindex"
)

// patternPeriod is the period of fake objects' content: a prime-ish length
// so that a read from the wrong offset shows.
const patternPeriod = 1<<20 + 13

var fakePattern = func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, patternPeriod)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

// fakeBytes fills p with the content of a fake object seeded seed at off.
func fakeBytes(p []byte, seed, off int64) {
	for len(p) > 0 {
		i := (off + seed) % patternPeriod
		n := copy(p, fakePattern[i:])
		p, off = p[n:], off+int64(n)
	}
}

// request is one GetRange (or, with head set, Stat) the fake store served.
type request struct {
	key    string
	off, n int64
	etag   string
	head   bool
}

// fakeStore is an in-memory Store that records every request and can
// inject latency, errors and short bodies.
type fakeStore struct {
	mu          sync.Mutex
	objs        map[string]fakeObj // guarded by mu; by location ID
	reqs        []request          // guarded by mu
	heads       []request          // guarded by mu; Stats
	inflight    int                // guarded by mu; bodies not yet closed
	maxInflight int                // guarded by mu

	// Set before use, read-only after.
	latency time.Duration // before a body is returned
	rate    int64         // body bytes per second per request (0: unlimited)
	chunk   int           // body Read size (0: 32 KiB)
	// short, if set, says how many bytes to send for a request (less than
	// n makes a short body).
	short func(off, n int64) int64
	// fail, if set, can fail a request.
	fail func(off, n int64) error
	// gate, if set, runs first in every GetRange and may block (a hung
	// server) or fail it.
	gate func(ctx context.Context, off, n int64) error
	// bodyErr, if set, ends a short body (see short) with this error
	// instead of io.EOF: a connection reset mid-body.
	bodyErr error
	// clip, if set, answers ranges past the object's end with its bytes
	// up to the end, as S3 does; else they are an error (the read path
	// must never ask for them once it knows the size).
	clip bool
}

type fakeObj struct {
	size, seed int64
	etag       string
	data       []byte // the content, when not nil (else the pattern)
}

// fill fills p with o's bytes at off.
func (o fakeObj) fill(p []byte, off int64) {
	if o.data != nil {
		copy(p, o.data[off:])
		return
	}
	fakeBytes(p, o.seed, off)
}

// putData adds or replaces an object with the given content.
func (f *fakeStore) putData(name string, data []byte, etag string) Object {
	obj := f.put(name, int64(len(data)), etag)
	f.mu.Lock()
	o := f.objs[obj.Loc.ID()]
	o.data = data
	f.objs[obj.Loc.ID()] = o
	f.mu.Unlock()
	return obj
}

func newFakeStore() *fakeStore { return &fakeStore{objs: make(map[string]fakeObj)} }

// put adds or replaces an object and returns it as an Object.
func (f *fakeStore) put(name string, size int64, etag string) Object {
	loc := stacindex.Location{Kind: stacindex.KindS3, Bucket: "b", Key: name}
	f.mu.Lock()
	f.objs[loc.ID()] = fakeObj{size: size, seed: int64(len(f.objs)) * 7919, etag: etag}
	f.mu.Unlock()
	return Object{Loc: loc, Size: size, ETag: etag}
}

// want returns the expected bytes of obj [off, off+n), clipped at its end.
func (f *fakeStore) want(obj Object, off, n int64) []byte {
	f.mu.Lock()
	o := f.objs[obj.Loc.ID()]
	f.mu.Unlock()
	n = max(0, min(n, o.size-off))
	b := make([]byte, n)
	o.fill(b, off)
	return b
}

// stats returns the Stat calls (HEADs) served.
func (f *fakeStore) stats() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.heads...)
}

func (f *fakeStore) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// bodiesOpen returns the number of bodies served and not yet closed.
func (f *fakeStore) bodiesOpen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inflight
}

func (f *fakeStore) Stat(ctx context.Context, loc stacindex.Location) (ObjectInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heads = append(f.heads, request{key: loc.Key, head: true})
	o, ok := f.objs[loc.ID()]
	if !ok {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", loc, ErrNotFound)
	}
	return ObjectInfo{Size: o.size, ETag: o.etag}, nil
}

func (f *fakeStore) GetRange(ctx context.Context, loc stacindex.Location, off, n int64, etag string) (*Body, error) {
	f.mu.Lock()
	o, ok := f.objs[loc.ID()]
	f.reqs = append(f.reqs, request{key: loc.Key, off: off, n: n, etag: etag})
	f.mu.Unlock()
	if f.gate != nil {
		if err := f.gate(ctx, off, n); err != nil {
			return nil, err
		}
	}
	switch {
	case !ok:
		return nil, fmt.Errorf("read %s: %w", loc, ErrNotFound)
	case etag != "" && etag != o.etag:
		return nil, fmt.Errorf("read %s: %w", loc, ErrChanged)
	case off >= o.size && off >= 0:
		return nil, fmt.Errorf("read %s: %w", loc, errBeyondEnd)
	case n <= 0 || off < 0:
		return nil, fmt.Errorf("read %s: bad range %d+%d of %d", loc, off, n, o.size)
	case off+n > o.size:
		if !f.clip {
			return nil, fmt.Errorf("read %s: bad range %d+%d of %d", loc, off, n, o.size)
		}
		n = o.size - off // as S3 does
	}
	if f.fail != nil {
		if err := f.fail(off, n); err != nil {
			return nil, err
		}
	}
	if f.latency > 0 {
		t := time.NewTimer(f.latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	send := n
	if f.short != nil {
		send = min(n, f.short(off, n))
	}
	f.mu.Lock()
	f.inflight++
	f.maxInflight = max(f.maxInflight, f.inflight)
	f.mu.Unlock()
	chunk := f.chunk
	if chunk <= 0 {
		chunk = 32 << 10
	}
	body := &fakeBody{f: f, ctx: ctx, obj: o, off: off, left: send, chunk: chunk}
	if send < n {
		body.endErr = f.bodyErr
	}
	return &Body{ReadCloser: body, ETag: o.etag, Size: o.size}, nil
}

type fakeBody struct {
	f      *fakeStore
	ctx    context.Context
	obj    fakeObj
	off    int64
	left   int64
	chunk  int
	closed bool
	endErr error // instead of io.EOF
}

func (b *fakeBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	if b.left == 0 {
		if b.endErr != nil {
			return 0, b.endErr
		}
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.left, int64(b.chunk))
	if b.f.rate > 0 {
		time.Sleep(time.Duration(n * int64(time.Second) / b.f.rate))
	}
	b.obj.fill(p[:n], b.off)
	b.off += n
	b.left -= n
	return int(n), nil
}

func (b *fakeBody) Close() error {
	if !b.closed {
		b.closed = true
		b.f.mu.Lock()
		b.f.inflight--
		b.f.mu.Unlock()
	}
	return nil
}
