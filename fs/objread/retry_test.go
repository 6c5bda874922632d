package objread

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prescient/prescientfs/stacindex"
)

// fastRetry keeps the unit tests quick.
var fastRetry = Retry{Timeout: 400 * time.Millisecond, BaseDelay: 5 * time.Millisecond, MaxDelay: 40 * time.Millisecond}

func newRetryTest(f *fakeStore, rp Retry) *Prefetcher {
	return NewPrefetcher(f, Config{Retry: rp}, nil, NewBlockCache(0, 0))
}

// TestResetMidBodyResumes breaks every range's first body with a
// connection reset: reads are right and each retry resumes at the offset
// the broken body reached.
//
// The fake store pairs a retry with its broken body by both ends of the
// range: a request is served whole only if it is exactly the resume of a
// body broken before (from where that body stopped to its end); any other
// request is broken in turn. (Pairing by the end alone mistook another
// load ending at the same offset, common with 128 KiB reads in 1 MiB
// parts, for a retry.) So a retry that starts anywhere else never
// completes and the reads fail.
func TestResetMidBodyResumes(t *testing.T) {
	f := newFakeStore()
	type span struct{ off, end int64 }
	var mu sync.Mutex
	resumes := map[span]int{} // the resumes broken bodies are owed
	broken, resumed := 0, 0
	f.short = func(off, n int64) int64 {
		mu.Lock()
		defer mu.Unlock()
		if k := (span{off, off + n}); resumes[k] > 0 {
			resumes[k]--
			resumed++
			return n
		}
		if n < 1000 {
			return n
		}
		resumes[span{off + n/3, off + n}]++
		broken++
		return n / 3
	}
	f.bodyErr = syscall.ECONNRESET
	obj := f.put("reset", 24*MiB, `"r"`)
	pf := newRetryTest(f, fastRetry)
	r := pf.Open(obj)
	defer r.Close()
	for off := int64(0); off < obj.Size; off += 128 * KiB {
		readAt(t, f, r, obj, off, 128*KiB)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d bodies broken, %d resumed, %d requests", broken, resumed, len(f.requests()))
	if resumed == 0 {
		t.Errorf("no resumed requests in %v", f.requests())
	}
}

// TestDeadStoreTimesOut: a store that never answers makes a read fail
// within the timeout with ErrTimeout (EIO, not EINTR); once the store is
// back the same handle reads correctly.
func TestDeadStoreTimesOut(t *testing.T) {
	f := newFakeStore()
	var dead atomic.Bool
	f.gate = func(ctx context.Context, off, n int64) error {
		if !dead.Load() {
			return nil
		}
		<-ctx.Done() // hung server
		return ctx.Err()
	}
	obj := f.put("dead", 64*MiB, `"d"`)
	pf := newRetryTest(f, fastRetry)
	r := pf.Open(obj)
	defer r.Close()
	for off := int64(0); off < 4*MiB; off += 128 * KiB { // a stream is running
		readAt(t, f, r, obj, off, 128*KiB)
	}
	dead.Store(true)
	check := func(off int64) error {
		start := time.Now()
		_, err := r.ReadAt(context.Background(), make([]byte, 128*KiB), off)
		if took := time.Since(start); took > fastRetry.Timeout+300*time.Millisecond {
			t.Errorf("read at %d from a dead store took %v, timeout %v", off, took, fastRetry.Timeout)
		}
		if err != nil && (!errors.Is(err, ErrTimeout) || errors.Is(err, context.Canceled)) {
			t.Errorf("read at %d from a dead store: %v, want ErrTimeout", off, err)
		}
		return err
	}
	for _, off := range []int64{44 * MiB, 30 * MiB} { // random reads, beyond the stream's window
		if check(off) == nil {
			t.Errorf("read at %d from a dead store succeeded", off)
		}
		// The kernel's immediate retry of a failed read fails fast.
		start := time.Now()
		if _, err := r.ReadAt(context.Background(), make([]byte, 4*KiB), off+KiB); !errors.Is(err, ErrTimeout) || time.Since(start) > 50*time.Millisecond {
			t.Errorf("retry of a failed read: %v after %v, want the same error at once", err, time.Since(start))
		}
	}
	// The stream serves what it has, then fails.
	off := int64(4 * MiB)
	for ; off < obj.Size && check(off) == nil; off += 128 * KiB {
	}
	if off >= obj.Size {
		t.Error("the stream read the whole object from a dead store")
	}
	dead.Store(false)
	// A failed range keeps failing fast for a moment (the kernel retries a
	// failed read at once); after that it reads again.
	time.Sleep(fastRetry.Timeout / 4)
	for off := int64(4 * MiB); off < 12*MiB; off += 128 * KiB {
		readAt(t, f, r, obj, off, 128*KiB)
	}
	readAt(t, f, r, obj, 40*MiB, 128*KiB)
}

// TestOutageShorterThanTimeout: the store refuses connections for a while;
// a read waiting meanwhile completes with the right bytes.
func TestOutageShorterThanTimeout(t *testing.T) {
	f := newFakeStore()
	var until atomic.Int64
	f.gate = func(ctx context.Context, off, n int64) error {
		if time.Now().UnixNano() < until.Load() {
			return fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)
		}
		return nil
	}
	obj := f.put("outage", 16*MiB, `"o"`)
	rp := Retry{Timeout: 2 * time.Second, BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}
	r := newRetryTest(f, rp).Open(obj)
	defer r.Close()
	until.Store(time.Now().Add(500 * time.Millisecond).UnixNano())
	for off := int64(0); off < obj.Size; off += 128 * KiB {
		readAt(t, f, r, obj, off, 128*KiB)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	f := newFakeStore()
	var n atomic.Int32
	f.gate = func(ctx context.Context, off, _ int64) error {
		if n.Add(1) == 1 {
			return &StatusError{Op: "read", Code: 503, RetryAfter: time.Second}
		}
		return nil
	}
	obj := f.put("slow-down", MiB, `"s"`)
	r := newRetryTest(f, Retry{Timeout: 3 * time.Second, BaseDelay: time.Millisecond}).Open(obj)
	defer r.Close()
	start := time.Now()
	readAt(t, f, r, obj, 0, 64*KiB)
	if took := time.Since(start); took < time.Second {
		t.Errorf("retried after %v, the server asked for 1s", took)
	}
	// A Retry-After beyond the timeout is not waited for.
	n.Store(0)
	f.gate = func(ctx context.Context, off, _ int64) error {
		return &StatusError{Op: "read", Code: 429, RetryAfter: time.Hour}
	}
	obj2 := f.put("throttled", MiB, `"t"`)
	r2 := newRetryTest(f, Retry{Timeout: 500 * time.Millisecond, BaseDelay: time.Millisecond}).Open(obj2)
	defer r2.Close()
	start = time.Now()
	if _, err := r2.ReadAt(context.Background(), make([]byte, 10), 0); err == nil || time.Since(start) > time.Second {
		t.Errorf("read throttled for an hour: %v after %v", err, time.Since(start))
	}
}

func TestFinalErrorsNotRetried(t *testing.T) {
	for _, final := range []error{ErrNotFound, ErrDenied, ErrChanged, &StatusError{Code: 400}} {
		f := newFakeStore()
		var calls atomic.Int32
		f.gate = func(ctx context.Context, off, n int64) error {
			calls.Add(1)
			return fmt.Errorf("read x: %w", final)
		}
		obj := f.put("final", MiB, `"f"`)
		r := newRetryTest(f, fastRetry).Open(obj)
		_, err := r.ReadAt(context.Background(), make([]byte, 10), 0)
		r.Close()
		if !errors.Is(err, final) || calls.Load() != 1 {
			t.Errorf("%v: err %v after %d requests, want it after 1", final, err, calls.Load())
		}
	}
}

// TestInterruptedReadReturnsPromptly: a read stuck on a hung store
// returns context.Canceled (EINTR) as soon as its context is cancelled.
func TestInterruptedReadReturnsPromptly(t *testing.T) {
	f := newFakeStore()
	f.gate = func(ctx context.Context, off, n int64) error { <-ctx.Done(); return ctx.Err() }
	obj := f.put("hung", 32*MiB, `"h"`)
	r := newRetryTest(f, Retry{Timeout: time.Minute}).Open(obj)
	defer r.Close()
	for _, off := range []int64{0, 20 * MiB} {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		_, err := r.ReadAt(ctx, make([]byte, 128*KiB), off)
		if !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
			t.Errorf("interrupted read at %d: %v after %v", off, err, time.Since(start))
		}
	}
}

func TestRetryingStat(t *testing.T) {
	f := newFakeStore()
	obj := f.put("stat", MiB, `"s"`)
	var calls atomic.Int32
	flaky := &gatedStat{Store: f, gate: func(ctx context.Context) error {
		if calls.Add(1) < 3 {
			return &StatusError{Op: "stat", Code: 502}
		}
		return nil
	}}
	s := Retrying{Store: flaky, Retry: fastRetry}
	if info, err := s.Stat(context.Background(), obj.Loc); err != nil || info.Size != MiB || calls.Load() != 3 {
		t.Errorf("stat through two 502s: %+v %v after %d calls", info, err, calls.Load())
	}
	flaky.gate = func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	start := time.Now()
	_, err := s.Stat(context.Background(), obj.Loc)
	if !errors.Is(err, ErrTimeout) || time.Since(start) > fastRetry.Timeout+300*time.Millisecond {
		t.Errorf("stat of a hung store: %v after %v", err, time.Since(start))
	}
	flaky.gate = func(ctx context.Context) error { return ErrNotFound }
	calls.Store(0)
	if _, err := s.Stat(context.Background(), obj.Loc); !errors.Is(err, ErrNotFound) {
		t.Errorf("stat of a missing object: %v", err)
	}
}

type gatedStat struct {
	Store
	gate func(ctx context.Context) error
}

func (g *gatedStat) Stat(ctx context.Context, loc stacindex.Location) (ObjectInfo, error) {
	if err := g.gate(ctx); err != nil {
		return ObjectInfo{}, err
	}
	return g.Store.Stat(ctx, loc)
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		`Get "https://host/b/k.tif?X-Amz-Signature=abc&X-Amz-Credential=def": EOF`: `Get "https://host/b/k.tif?REDACTED": EOF`,
		`read https://user:pw@host:9000/a?sig=1 failed`:                            `read https://host:9000/a?REDACTED failed`,
		`read s3://bucket/key: not found`:                                          `read s3://bucket/key: not found`,
		`no url here`:                                                              `no url here`,
		`two http://a/x?t=1 and http://b/y#frag`:                                   `two http://a/x?REDACTED and http://b/y?REDACTED`,
	} {
		if got := Redact(errors.New(in)); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	if Redact(nil) != "" {
		t.Error("Redact(nil)")
	}
	_ = io.EOF
}
