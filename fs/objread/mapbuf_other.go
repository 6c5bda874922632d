//go:build !unix

package objread

import "errors"

// mapBuf: part buffers come from the Go heap here.
func mapBuf(int64) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapBuf([]byte) {}
