package objread

import (
	"context"
	"fmt"

	"github.com/prescient/prescientfs/stacindex"
)

// Router sends each location to the store for its kind.
type Router struct {
	S3   Store
	HTTP Store
}

var _ Store = Router{}

func (r Router) pick(loc stacindex.Location) (Store, error) {
	switch {
	case loc.Kind == stacindex.KindS3 && r.S3 != nil:
		return r.S3, nil
	case loc.Kind == stacindex.KindHTTP && r.HTTP != nil:
		return r.HTTP, nil
	}
	return nil, fmt.Errorf("no store for %s", loc)
}

// Stat implements Store.
func (r Router) Stat(ctx context.Context, loc stacindex.Location) (ObjectInfo, error) {
	s, err := r.pick(loc)
	if err != nil {
		return ObjectInfo{}, err
	}
	return s.Stat(ctx, loc)
}

// GetRange implements Store.
func (r Router) GetRange(ctx context.Context, loc stacindex.Location, off, n int64, etag string) (*Body, error) {
	s, err := r.pick(loc)
	if err != nil {
		return nil, err
	}
	return s.GetRange(ctx, loc, off, n, etag)
}
