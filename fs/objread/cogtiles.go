package objread

import (
	"context"

	"github.com/prescient/prescientfs/fs/objread/cogtile"
)

// CogTiles is the TileParser of package cogtile (the default of
// Config.Tiles): classic TIFF and BigTIFF, tiled images and their
// overviews and masks.
func CogTiles(ctx context.Context, read func(ctx context.Context, off, n int64) ([]byte, error), size int64) (TileLayout, error) {
	l, err := cogtile.Parse(ctx, read, size)
	if err != nil {
		return nil, err
	}
	return cogLayout{l}, nil
}

type cogLayout struct{ l *cogtile.Layout }

func (c cogLayout) NewPredictor() TilePredictor { return cogPredictor{c.l.NewPredictor()} }

type cogPredictor struct{ p *cogtile.Predictor }

func (c cogPredictor) Observe(off, end, maxBytes int64) []TileRange {
	rs := c.p.Observe(off, end, maxBytes)
	out := make([]TileRange, len(rs))
	for i, r := range rs {
		out[i] = TileRange{Off: r.Off, End: r.End}
	}
	return out
}
