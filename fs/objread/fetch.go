package objread

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// fetchRange fills bufs, laid end to end, with the object's bytes from
// off, in one ranged GET. Bytes are written as they arrive and progress is
// called with each count, so readers can use a part before it is complete.
// A body that ends early or breaks is resumed once from the offset
// reached; a second failure is an error wrapping io.ErrUnexpectedEOF (or
// the read error), never a silent EOF. Context errors are returned as is.
func fetchRange(ctx context.Context, store Store, obj Object, off int64, bufs [][]byte, progress func(int), stats *Stats) error {
	var total int64
	for _, b := range bufs {
		total += int64(len(b))
	}
	var got int64 // bytes written so far
	for attempt := 0; ; attempt++ {
		stats.Requests.Add(1)
		body, err := store.GetRange(ctx, obj.Loc, off+got, total-got, obj.ETag)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		n, rerr := readBody(body, bufs, got, progress)
		body.Close()
		got += n
		stats.BytesFetched.Add(n)
		if got == total {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if rerr == nil || rerr == io.EOF {
			rerr = io.ErrUnexpectedEOF
		}
		if attempt >= 1 {
			return fmt.Errorf("read %s bytes %d-%d: got %d bytes: %w", obj.Loc, off, off+total-1, got, rerr)
		}
		stats.Retries.Add(1)
	}
}

// readBody copies body into bufs starting skip bytes in, until bufs are
// full or the body ends. It returns the bytes copied and the error that
// stopped it (nil when bufs were filled).
func readBody(body io.Reader, bufs [][]byte, skip int64, progress func(int)) (int64, error) {
	var n int64
	for _, b := range bufs {
		if skip >= int64(len(b)) {
			skip -= int64(len(b))
			continue
		}
		b = b[skip:]
		skip = 0
		for len(b) > 0 {
			m, err := body.Read(b)
			if m > 0 {
				b = b[m:]
				n += int64(m)
				if progress != nil {
					progress(m)
				}
			}
			if err != nil {
				if len(b) == 0 && errors.Is(err, io.EOF) {
					break
				}
				return n, err
			}
		}
	}
	return n, nil
}
