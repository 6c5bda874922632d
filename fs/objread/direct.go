package objread

import (
	"context"
	"fmt"
	"io"
)

// Direct is the simplest Opener: every ReadAt becomes one ranged GET of
// exactly the bytes asked for (clipped at the object's end).
type Direct struct {
	Store Store
}

var _ Opener = Direct{}

// Open implements Opener.
func (d Direct) Open(obj Object) Reader { return &directReader{store: d.Store, obj: obj} }

type directReader struct {
	store Store
	obj   Object
}

func (r *directReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return ReadRange(ctx, r.store, r.obj, p, off)
}

func (r *directReader) Close() error { return nil }

// ReadRange reads p from off of obj with one ranged GET, clipping at the
// object's end. It returns io.EOF when the read reaches the end, and
// io.ErrUnexpectedEOF (wrapped) when the store sent fewer bytes than the
// range it promised.
func ReadRange(ctx context.Context, store Store, obj Object, p []byte, off int64) (int, error) {
	if off >= obj.Size {
		return 0, io.EOF
	}
	want := int64(len(p))
	if rest := obj.Size - off; want > rest {
		want = rest
	}
	if want == 0 {
		return 0, nil
	}
	body, err := store.GetRange(ctx, obj.Loc, off, want, obj.ETag)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	n, err := io.ReadFull(body, p[:want])
	if err != nil {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		return n, fmt.Errorf("read %s bytes %d-%d: got %d bytes: %w", obj.Loc, off, off+want-1, n, io.ErrUnexpectedEOF)
	}
	if int64(n) < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}
