package objread

import (
	"context"
	"errors"
	"io"
	"testing"
)

// unpinned is obj as the catalog gives it: the size, no ETag.
func unpinned(obj Object) Object { return Object{Loc: obj.Loc, Size: obj.Size} }

func TestFirstReadPinsVersionWithoutHead(t *testing.T) {
	f := newFakeStore()
	obj := f.put("scene.tif", 8*MiB, `"v1"`)
	pf := newTest(f, nil)
	r := pf.Open(unpinned(obj))
	defer r.Close()
	if v, ok := r.(Versioned).Version(); ok {
		t.Fatalf("version %+v known before any read", v)
	}
	if n := len(f.requests()) + len(f.stats()); n != 0 {
		t.Fatalf("open sent %d requests, want none", n)
	}
	readAt(t, f, r, obj, 0, 64*KiB)
	reqs := f.requests()
	if len(reqs) != 1 || len(f.stats()) != 0 {
		t.Fatalf("first 64 KiB read: GETs %+v and %d HEADs, want exactly one GET", reqs, len(f.stats()))
	}
	if reqs[0].etag != "" || reqs[0].off != 0 {
		t.Errorf("first GET %+v, want an unconditional GET from 0", reqs[0])
	}
	if v, ok := r.(Versioned).Version(); !ok || v.ETag != `"v1"` || v.Size != obj.Size {
		t.Fatalf("version after the first read %+v %v, want the object's ETag and size", v, ok)
	}
	// Later GETs of any kind (block loads, stream parts) carry If-Match.
	for off := int64(0); off < obj.Size; off += 128 * KiB {
		readAt(t, f, r, obj, off, 128*KiB)
	}
	readAt(t, f, r, obj, 5*MiB+3, 1000)
	for _, q := range f.requests()[1:] {
		if q.etag != `"v1"` {
			t.Errorf("GET %+v after the first: want If-Match \"v1\"", q)
		}
	}
	if len(f.stats()) != 0 {
		t.Errorf("%d HEADs, want none", len(f.stats()))
	}
}

// A first read is one GET, sized to what the read asks (rounded up to
// blocks) but never less than FirstRead at the start of the file, so a
// header read also brings the kernel's readahead after it, and a large
// first read does not split into two requests.
func TestFirstReadOneGetOfItsSize(t *testing.T) {
	first := DefaultConfig().FirstRead
	for _, tc := range []struct {
		off, n   int64
		from, to int64 // the one GET
	}{
		{0, 16 * KiB, 0, first},
		{0, 64 * KiB, 0, first},
		{0, MiB, 0, MiB},
		{100, 2*MiB + 5, 0, 2*MiB + 128*KiB},
		{3 * MiB, 64 * KiB, 3 * MiB, 3*MiB + 128*KiB}, // a tile: its own block
	} {
		f := newFakeStore()
		obj := f.put("o", 8*MiB, `"v1"`)
		r := newTest(f, nil).Open(unpinned(obj))
		readAt(t, f, r, obj, tc.off, tc.n)
		_ = r.Close()
		if reqs := f.requests(); len(reqs) != 1 || reqs[0].off != tc.from || reqs[0].off+reqs[0].n != tc.to {
			t.Errorf("first read of %d at %d: GETs %+v, want one of [%d, %d)", tc.n, tc.off, reqs, tc.from, tc.to)
		}
	}
}

func TestPinnedVersionChanged(t *testing.T) {
	f := newFakeStore()
	obj := f.put("changing", 32*MiB, `"v1"`)
	r := newTest(f, nil).Open(unpinned(obj))
	defer r.Close()
	readAt(t, f, r, obj, 0, 64*KiB)
	f.put("changing", 32*MiB, `"v2"`)
	_, err := r.ReadAt(context.Background(), make([]byte, 64*KiB), 20*MiB)
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("read after the object changed: %v, want ErrChanged", err)
	}
}

// The catalog's file:size may be wrong: the store's Content-Range wins.
func TestCatalogSizeWrong(t *testing.T) {
	for _, tc := range []struct {
		name          string
		real, catalog int64
	}{{"object larger", 3 * MiB, 2 * MiB}, {"object smaller", MiB + 5, 2 * MiB}, {"read past the real end", 100 * KiB, 4 * MiB}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeStore()
			f.clip = true
			obj := f.put("o", tc.real, `"e"`)
			r := newTest(f, nil).Open(Object{Loc: obj.Loc, Size: tc.catalog})
			defer r.Close()
			first := int64(0)
			if tc.name == "read past the real end" {
				first = 2 * MiB // the first read lands past the real end
				n, err := r.ReadAt(context.Background(), make([]byte, 64*KiB), first)
				if n != 0 || !errors.Is(err, io.EOF) {
					t.Fatalf("read at %d of a %d-byte object: %d, %v; want 0, EOF", first, tc.real, n, err)
				}
			}
			for off := int64(0); off < tc.real; off += 128 * KiB {
				readAt(t, f, r, obj, off, 128*KiB) // checks bytes and EOF at the real end
			}
			if v, ok := r.(Versioned).Version(); !ok || v.Size != tc.real {
				t.Errorf("version %+v, want size %d", v, tc.real)
			}
		})
	}
}

// Concurrent first reads of one handle send one pinning GET between them.
func TestConcurrentFirstReadsPinOnce(t *testing.T) {
	f := newFakeStore()
	obj := f.put("o", 4*MiB, `"e"`)
	r := newTest(f, nil).Open(unpinned(obj))
	defer r.Close()
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			p := make([]byte, 64*KiB)
			_, err := r.ReadAt(context.Background(), p, int64(i)*64*KiB)
			if err == nil && string(p) != string(f.want(obj, int64(i)*64*KiB, 64*KiB)) {
				err = errors.New("wrong bytes")
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	unconditional := 0
	for _, q := range f.requests() {
		if q.etag == "" {
			unconditional++
		}
	}
	if unconditional != 1 {
		t.Errorf("%d unconditional GETs %+v, want 1", unconditional, f.requests())
	}
}
