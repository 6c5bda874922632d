package objread

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// benchStore looks like S3 seen from EC2: 2 ms to the first byte, 200 MB/s
// per connection.
func benchStore() *fakeStore {
	f := newFakeStore()
	f.latency = 2 * time.Millisecond
	f.rate = 200e6
	f.chunk = 256 << 10
	return f
}

// readSeq reads obj sequentially in kernel-sized reads.
func readSeq(b *testing.B, op Opener, obj Object) {
	r := op.Open(obj)
	defer r.Close()
	p := make([]byte, 128*KiB)
	for off := int64(0); off < obj.Size; off += int64(len(p)) {
		if _, err := r.ReadAt(context.Background(), p, off); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSequential streams a 64 MiB object; "speedup" is against the
// Direct reader measured once in the same run.
func BenchmarkSequential(b *testing.B) {
	f := benchStore()
	obj := f.put("seq", 64*MiB, `"b"`)
	t0 := time.Now()
	readSeq(b, Direct{Store: f}, obj)
	direct := time.Since(t0)
	directReqs := len(f.requests())
	b.Run("prefetch", func(b *testing.B) {
		b.SetBytes(obj.Size)
		pf := NewPrefetcher(f, Config{}, nil, nil)
		t0 := time.Now()
		for b.Loop() {
			readSeq(b, pf, obj)
		}
		per := time.Since(t0) / time.Duration(b.N)
		b.ReportMetric(direct.Seconds()/per.Seconds(), "speedup")
		b.ReportMetric(float64(pf.Stats().Requests.Load())/float64(b.N), "reqs/op")
		b.ReportMetric(float64(directReqs), "direct-reqs/op")
	})
}

// BenchmarkRandom reads 64 KiB tiles at random from a 1 GiB object, from a
// hot set of 200 tiles (as a map view does), on fresh handles each round.
func BenchmarkRandom(b *testing.B) {
	f := benchStore()
	obj := f.put("cog", 1<<30, `"b"`)
	rnd := rand.New(rand.NewPCG(5, 6))
	offs := make([]int64, 200)
	for i := range offs {
		offs[i] = rnd.Int64N(obj.Size/(64*KiB)) * 64 * KiB
	}
	round := func(b *testing.B, op Opener) {
		r := op.Open(obj)
		defer r.Close()
		p := make([]byte, 64*KiB)
		for range 50 {
			if _, err := r.ReadAt(context.Background(), p, offs[rnd.IntN(len(offs))]); err != nil {
				b.Fatal(err)
			}
		}
	}
	t0 := time.Now()
	round(b, Direct{Store: f})
	direct := time.Since(t0)
	b.Run("prefetch", func(b *testing.B) {
		b.SetBytes(50 * 64 * KiB)
		pf := NewPrefetcher(f, Config{}, nil, nil)
		t0 := time.Now()
		for b.Loop() {
			round(b, pf)
		}
		per := time.Since(t0) / time.Duration(b.N)
		b.ReportMetric(direct.Seconds()/per.Seconds(), "speedup")
		s := pf.Stats().Snapshot()
		b.ReportMetric(float64(s.Requests)/float64(b.N), "reqs/op")
		b.ReportMetric(float64(s.BytesFetched)/float64(b.N)/float64(MiB), "MiB-fetched/op")
	})
}

// parallelDownload fetches obj with conc concurrent ranged GETs of part
// bytes (the best a client does), into one buffer per worker.
func parallelDownload(b *testing.B, f *fakeStore, obj Object, part int64, conc int) {
	next := make(chan int64)
	go func() {
		for off := int64(0); off < obj.Size; off += part {
			next <- off
		}
		close(next)
	}()
	errs := make(chan error, conc)
	for range conc {
		go func() {
			buf := make([]byte, part)
			for off := range next {
				if _, err := ReadRange(context.Background(), f, obj, buf, off); err != nil && off+part < obj.Size {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range conc {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkShapedSequential streams 256 MiB from a store shaped like S3
// across a region (latency before each answer, a rate per connection), in
// 1 MiB reads; "ratio" is against the best of 8 and 16 parallel 8 MiB
// ranged GETs of the same object in the same run (target ≥ 0.9).
func BenchmarkShapedSequential(b *testing.B) {
	for _, shape := range []struct {
		name    string
		latency time.Duration
		rate    int64
	}{{"20ms-50MBps", 20 * time.Millisecond, 50e6}, {"50ms-25MBps", 50 * time.Millisecond, 25e6}} {
		b.Run(shape.name, func(b *testing.B) {
			f := newFakeStore()
			f.latency, f.rate, f.chunk = shape.latency, shape.rate, 256<<10
			obj := f.put("seq", 256*MiB, `"b"`)
			best := time.Duration(1 << 62)
			for _, conc := range []int{8, 16} {
				t0 := time.Now()
				parallelDownload(b, f, obj, 8*MiB, conc)
				best = min(best, time.Since(t0))
			}
			b.SetBytes(obj.Size)
			pf := NewPrefetcher(f, Config{}, nil, nil)
			t0 := time.Now()
			for b.Loop() {
				r := pf.Open(obj)
				p := make([]byte, MiB)
				for off := int64(0); off < obj.Size; off += int64(len(p)) {
					if _, err := r.ReadAt(context.Background(), p, off); err != nil {
						b.Fatal(err)
					}
				}
				r.Close()
			}
			per := time.Since(t0) / time.Duration(b.N)
			b.ReportMetric(best.Seconds()/per.Seconds(), "ratio")
			f.mu.Lock()
			b.ReportMetric(float64(f.maxInflight), "max-inflight")
			f.mu.Unlock()
		})
	}
}
