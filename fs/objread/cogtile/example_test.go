package cogtile_test

import (
	"context"
	"fmt"
	"os"

	"github.com/prescient/prescientfs/fs/objread/cogtile"
)

// Parse a COG through a read function (in the mount: its cached reader),
// then feed each read of an open handle to its Predictor and prefetch
// what it returns.
func Example() {
	b, err := os.ReadFile("testdata/cog_100x80_b32.tif")
	if err != nil {
		panic(err)
	}
	read := func(ctx context.Context, off, n int64) ([]byte, error) {
		return b[off:min(off+n, int64(len(b)))], nil
	}
	l, err := cogtile.Parse(context.Background(), read, int64(len(b)))
	if err != nil {
		panic(err) // errors.Is(err, cogtile.ErrNotTiled): keep the default read path
	}
	fmt.Println("header ends at", l.HeaderEnd())
	for _, im := range l.Images {
		fmt.Printf("%d×%d in %d×%d tiles of %d×%d\n", im.Width, im.Height, im.Across, im.Down, im.TileWidth, im.TileHeight)
	}

	p := l.NewPredictor()
	// GDAL reads tile (0, 0) of the full image: the next two tiles of the
	// row and the two rows below, as wide, are predicted (a range per row:
	// other tiles lie between them).
	first, _ := l.TileRange(0, 0)
	for _, r := range p.Observe(first.Off, first.End, 1<<20) {
		fmt.Printf("prefetch [%d, %d)\n", r.Off, r.End)
	}
	// Output:
	// header ends at 810
	// 100×80 in 4×3 tiles of 32×32
	// 50×40 in 1×1 tiles of 128×128
	// 25×20 in 1×1 tiles of 128×128
	// prefetch [1165, 1239)
	// prefetch [1292, 1403)
	// prefetch [1456, 1573)
}
