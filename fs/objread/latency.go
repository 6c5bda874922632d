package objread

import (
	"sync/atomic"
	"time"
)

// firstByte tracks how long the store takes to answer a GET (request sent
// to response headers), as a moving average of the recent answers: the
// latency a stream's parallelism has to cover.
type firstByte struct {
	ewma atomic.Int64 // nanoseconds; 0 until the first answer
}

// firstByteWeight is the weight of a new answer in the average (1/8): a
// few slow answers on a busy near store do not make it look far.
const firstByteWeight = 8

// observe adds one answer's time.
func (f *firstByte) observe(d time.Duration) {
	d = max(d, 1)
	for {
		old := f.ewma.Load()
		next := int64(d)
		if old != 0 {
			next = old + (int64(d)-old)/firstByteWeight
		}
		if f.ewma.CompareAndSwap(old, next) {
			return
		}
	}
}

// get returns the average, 0 before any answer.
func (f *firstByte) get() time.Duration { return time.Duration(f.ewma.Load()) }
