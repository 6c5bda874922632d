package objread

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prescient/prescientfs/stacindex"
)

// Errors a Store returns, wrapped with context; the FUSE layer maps them to
// errno values with errors.Is.
var (
	// ErrNotFound: the object does not exist (404, NoSuchKey).
	ErrNotFound = errors.New("object not found")
	// ErrDenied: access denied, or credentials that cannot be renewed.
	ErrDenied = errors.New("access denied")
	// ErrChanged: the object no longer matches the ETag pinned at open
	// (412 Precondition Failed).
	ErrChanged = errors.New("object changed since it was opened")
	// errBeyondEnd: a range starting at or past the object's end (416);
	// only a handle's first GET, sized from the catalog, can ask for one.
	errBeyondEnd = errors.New("range beyond the object's end")
)

// ObjectInfo is what a Stat (HEAD) reports.
type ObjectInfo struct {
	Size         int64
	ETag         string // as returned by the store, quotes included
	LastModified time.Time
}

// Store reads remote objects.
type Store interface {
	// Stat returns the object's size, ETag and modification time.
	Stat(ctx context.Context, loc stacindex.Location) (ObjectInfo, error)
	// GetRange returns a body with bytes [off, off+n) of the object (fewer
	// when the object ends sooner), and the version that answered: its
	// ETag and total size. When etag is not empty the request is
	// conditional (If-Match) and fails with ErrChanged if the object
	// changed. The caller closes the body. A body shorter than asked
	// (before the object's end) is an error the caller must detect: never
	// pass a short body off as EOF.
	GetRange(ctx context.Context, loc stacindex.Location, off, n int64, etag string) (*Body, error)
}

// Body is the answer to a ranged GET: the bytes, and the version of the
// object they belong to, so that the first GET of a handle can pin the
// version without a HEAD before it.
type Body struct {
	io.ReadCloser
	// ETag of the object that answered, quotes included; empty if the
	// store sent none.
	ETag string
	// Size is the object's total size (from Content-Range), or -1 when
	// the store did not say.
	Size int64
}

// Object identifies one immutable version of a remote object.
//
// An Object with an empty ETag is not pinned yet: the Prefetcher's first
// GET for it learns the ETag (and the true size) from the response and
// sends If-Match from then on. Objects whose store sends no ETag are read
// unconditionally.
type Object struct {
	Loc  stacindex.Location
	Size int64  // from the catalog (file:size) or a HEAD; the first GET corrects it
	ETag string // empty when unknown
	// DirectIO: the kernel reads the file without its page cache and
	// readahead (FOPEN_DIRECT_IO), so reads arrive as the application
	// makes them, and none reaches past what it asked.
	DirectIO bool
}

// Versioned is implemented by Readers that learn their object's version
// from their first GET: Version returns it once known.
type Versioned interface {
	Version() (obj Object, ok bool)
}

// Reader reads one open handle's object. Implementations are safe for
// concurrent use: the kernel issues reads of one handle in parallel.
type Reader interface {
	// ReadAt fills p from offset off. It returns io.EOF only at or past
	// the object's end, with n < len(p).
	ReadAt(ctx context.Context, p []byte, off int64) (n int, err error)
	// Close releases buffers the handle holds.
	Close() error
}

// SliceReader is a Reader that can lend its own buffers instead of
// copying: the FUSE layer hands them to the kernel's write as they are.
type SliceReader interface {
	Reader
	// ReadSlices returns the object's bytes [off, off+len(scratch)) (less
	// at the object's end, with io.EOF as ReadAt) as slices of the
	// reader's buffers where it has them, and of scratch elsewhere. They
	// stay valid until release is called, which the caller must do once,
	// also after an error.
	ReadSlices(ctx context.Context, scratch []byte, off int64) (vecs [][]byte, release func(), err error)
}

// Opener makes a Reader per open file handle.
type Opener interface {
	Open(obj Object) Reader
}
