package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// mounter makes fresh mounts of one kind; path maps an object to its file.
type mounter struct {
	group string // "prescientfs" or "rclone"
	mount func(ctx context.Context, label string, viaProxy bool) (*mountProc, error)
	path  func(m *mountProc, o object) string
}

func (b *bench) prescientfs() mounter {
	return mounter{group: "prescientfs", mount: b.mountPrescient,
		path: func(m *mountProc, o object) string { return m.path(o.Rel) }}
}

func (b *bench) rcloneMounter() mounter {
	return mounter{group: "rclone", mount: b.mountRclone,
		path: func(m *mountProc, o object) string { return m.path(o.Key) }}
}

// How the direct side of a throughput workload reads.
type directKind int

const (
	directNone   directKind = iota
	directWhole             // one GetObject per object, all objects at once
	directRanged            // the first object in -part-size ranged GETs, at each -seq-conc concurrency
)

// seqWorkload: one stream of one object through the mount against the
// best of the parallel ranged GETs of the same object, interleaved.
func (b *bench) seqWorkload(ctx context.Context, base *baselines) error {
	objs := b.st.objs[:1]
	name := fmt.Sprintf("sequential %s, %s reads", formatSize(objs[0].Size), formatSize(int64(b.cfg.readSize)))
	res, err := b.throughput(ctx, b.prescientfs(), objs, "seq", directRanged, false)
	if err != nil {
		b.rep.add(failed("prescientfs", name, err))
		return err
	}
	var r row
	r, base.seqBest = res.rangedRow(b.cfg, "prescientfs", name)
	base.seqConc, _ = r.Details["best_concurrency"].(int)
	b.rep.add(r)
	if b.shape.loopback() {
		b.rep.add(res.cpuRow("prescientfs", "CPU per GiB, sequential"))
	}
	return nil
}

// rangedRow compares the mount's median with the best concurrency's
// median of the direct ranged GETs, and returns that baseline.
func (t throughputResult) rangedRow(c config, group, name string) (row, float64) {
	best, bestC := math.NaN(), 0
	medians := map[string]float64{}
	for _, n := range c.seqConcs {
		m := median(t.directBy[n])
		medians[strconv.Itoa(n)] = m
		if math.IsNaN(best) || m > best {
			best, bestC = m, n
		}
	}
	bl := fmt.Sprintf("best direct: %d × %s ranged GETs", bestC, formatSize(int64(c.partSize)))
	r := measure(group, name, "GiB/s", median(t.mount), best, bl, tgtSeq)
	r.Details = map[string]any{"runs": t.mount, "best": maxOf(t.mount), "direct_median_by_concurrency": medians,
		"best_concurrency": bestC, "part_size": int64(c.partSize)}
	by := map[string][]float64{}
	for n, xs := range t.directBy {
		by[strconv.Itoa(n)] = xs
	}
	r.Details["direct_runs_by_concurrency"] = by
	if t.counters != nil {
		r.Details["mount_log_counters"] = t.counters
	}
	if t.proxyReqs != nil {
		r.Details["mount_requests_per_run"] = t.proxyReqs
	}
	return r, best
}

// concWorkload: one stream per object, all at once (aggregate rate), and
// the mount's peak RSS meanwhile (loopback only).
func (b *bench) concWorkload(ctx context.Context, base *baselines) error {
	objs := b.st.objs
	name := fmt.Sprintf("%d × sequential %s, aggregate", len(objs), formatSize(objs[0].Size))
	rssName := fmt.Sprintf("peak RSS during %d × %s streams", len(objs), formatSize(objs[0].Size))
	res, err := b.throughput(ctx, b.prescientfs(), objs, "conc", directWhole, true)
	if err != nil {
		b.rep.add(failed("prescientfs", name, err), failed("prescientfs", rssName, err))
		return err
	}
	base.concBest = maxOf(res.direct)
	b.rep.add(res.row("prescientfs", name, base.concBest, tgtSeq), res.rssRow("prescientfs", rssName, tgtRSS),
		res.cpuRow("prescientfs", fmt.Sprintf("CPU per GiB, %d streams", len(objs))))
	return nil
}

// throughputResult holds the per-run rates (GiB/s) and peak RSS (MiB),
// and the CPU seconds per GiB each process spent: through the mount (the
// mount, the reader, MinIO) and direct (the SDK client, MinIO).
type throughputResult struct {
	mount, direct, rss  []float64
	cpuMount, cpuDirect [][]float64
	counters            map[string]int64 // from the last mount's log, if any
	// directRanged: the rates and CPU by concurrency (cpuDirect is the best one's).
	directBy    map[int][]float64
	cpuDirectBy map[int][][]float64
	proxyReqs   []proxyCounts // requests the mount sent per run, when shaped
}

// cpuRow compares the CPU all processes spend per GiB through the mount
// with the direct reads': on a machine whose cores the mount, MinIO and the
// reader share, it bounds the throughput ratio.
func (t throughputResult) cpuRow(group, name string) row {
	sums := func(xs [][]float64) []float64 {
		var out []float64
		for _, x := range xs {
			var s float64
			for _, v := range x {
				s += v
			}
			out = append(out, s)
		}
		return out
	}
	col := func(xs [][]float64, i int) float64 {
		var c []float64
		for _, x := range xs {
			c = append(c, x[i])
		}
		return median(c)
	}
	base := math.NaN()
	if len(t.cpuDirect) > 0 {
		base = median(sums(t.cpuDirect))
	}
	r := measure(group, name, "core-s", median(sums(t.cpuMount)), base, "direct: SDK client + MinIO", nil)
	r.Details = map[string]any{"what": "CPU seconds (user+system, /proc) per GiB read, medians of the runs",
		"mount_process": col(t.cpuMount, 0), "reader": col(t.cpuMount, 1), "minio_via_mount": col(t.cpuMount, 2)}
	if len(t.cpuDirect) > 0 {
		r.Details["direct_client"] = col(t.cpuDirect, 0)
		r.Details["minio_direct"] = col(t.cpuDirect, 1)
	}
	return r
}

func (t throughputResult) row(group, name string, baseline float64, tgt *target) row {
	r := measure(group, name, "GiB/s", median(t.mount), baseline, "direct SDK, best", tgt)
	r.Details = map[string]any{"runs": t.mount, "best": maxOf(t.mount)}
	if len(t.direct) > 0 {
		r.Details["direct_runs"] = t.direct
		r.Details["direct_median"] = median(t.direct)
	}
	if t.counters != nil {
		r.Details["mount_log_counters"] = t.counters
	}
	return r
}

func (t throughputResult) rssRow(group, name string, tgt *target) row {
	r := measure(group, name, "MiB", maxOf(t.rss), math.NaN(), "", tgt)
	r.Details = map[string]any{"runs": t.rss, "sampled": "max of VmHWM and 50 ms VmRSS samples of the mount process"}
	return r
}

// throughput runs cfg.runs cold runs reading objs concurrently through a
// fresh mount each, interleaved (when withDirect) with the same reads
// straight from S3 with the SDK.
func (b *bench) throughput(ctx context.Context, mt mounter, objs []object, label string, direct directKind, withRSS bool) (throughputResult, error) {
	res := throughputResult{directBy: map[int][]float64{}, cpuDirectBy: map[int][][]float64{}}
	var want int64
	for _, o := range objs {
		want += o.Size
	}
	bufs := make([][]byte, len(objs))
	for i := range bufs {
		bufs[i] = make([]byte, b.cfg.readSize)
	}
	for run := 1; run <= b.cfg.runs; run++ {
		if err := b.coldStart(ctx, objs...); err != nil {
			return res, err
		}
		minioPid := b.st.minio.Pid()
		if direct == directRanged {
			for i, conc := range b.cfg.seqConcs {
				if i > 0 {
					b.coldSecond() // MinIO's cache as the first pass left it
				}
				cpu := startCPU(0, minioPid)
				start := time.Now()
				n, err := rangedRead(ctx, b.s3(), objs[0], int64(b.cfg.partSize), conc)
				d := time.Since(start)
				if err == nil && n != objs[0].Size {
					err = fmt.Errorf("ranged reads returned %d bytes, want %d", n, objs[0].Size)
				}
				if err != nil {
					return res, fmt.Errorf("direct ranged run %d (%d parallel): %w", run, conc, err)
				}
				res.directBy[conc] = append(res.directBy[conc], gibps(n, d))
				res.cpuDirectBy[conc] = append(res.cpuDirectBy[conc], cpu.perGiB(n))
				b.log.Info("direct ranged", "workload", label, "run", run, "parallel", conc, "GiB/s", fmt.Sprintf("%.3f", gibps(n, d)))
			}
			b.coldSecond()
		}
		if direct == directWhole {
			cpu := startCPU(0, minioPid)
			n, d, err := parallel(objs, bufs, func(i int, o object, buf []byte) (int64, error) {
				return directRead(ctx, b.s3(), o.Key, buf)
			})
			if err == nil && n != want {
				err = fmt.Errorf("direct read returned %d bytes, want %d", n, want)
			}
			if err != nil {
				return res, fmt.Errorf("direct run %d: %w", run, err)
			}
			res.direct = append(res.direct, gibps(n, d))
			res.cpuDirect = append(res.cpuDirect, cpu.perGiB(n))
			b.coldSecond()
		}

		m, err := mt.mount(ctx, fmt.Sprintf("%s-%d", label, run), false)
		if err != nil {
			return res, err
		}
		var rss *rssSampler
		if withRSS {
			rss = sampleRSS(m.pid)
		}
		cpu := startCPU(m.pid, 0, minioPid)
		before := b.countProxy().counts()
		n, d, err := parallel(objs, bufs, func(i int, o object, buf []byte) (int64, error) {
			return streamFile(ctx, mt.path(m, o), buf)
		})
		cpuPerGiB := cpu.perGiB(n)
		if rss != nil {
			if peak, perr := rss.peak(); perr == nil {
				res.rss = append(res.rss, mib(peak))
			} else if err == nil {
				err = fmt.Errorf("peak RSS: %w", perr)
			}
		}
		closeErr := m.close()
		if err == nil && n != want {
			err = fmt.Errorf("read %d bytes through the mount, want %d", n, want)
		}
		if err == nil {
			err = closeErr
		}
		if err != nil {
			return res, fmt.Errorf("%s run %d: %w (log %s)", mt.group, run, err, m.logPath)
		}
		if b.shapeProxy != nil {
			res.proxyReqs = append(res.proxyReqs, b.shapeProxy.counts().sub(before))
		}
		res.mount = append(res.mount, gibps(n, d))
		res.cpuMount = append(res.cpuMount, cpuPerGiB)
		if c, ok := logCounters(m.logPath); ok {
			res.counters = c
		}
		lastDirect := lastOr(res.direct, math.NaN())
		for _, xs := range res.directBy {
			if v := lastOr(xs, math.NaN()); math.IsNaN(lastDirect) || v > lastDirect {
				lastDirect = v
			}
		}
		b.log.Info("run", "workload", label, "via", mt.group, "run", run, "GiB/s", fmt.Sprintf("%.3f", gibps(n, d)),
			"direct GiB/s", fmt.Sprintf("%.3f", lastDirect))
	}
	if direct == directRanged {
		best, bestC := math.NaN(), 0
		for _, n := range b.cfg.seqConcs {
			if m := median(res.directBy[n]); math.IsNaN(best) || m > best {
				best, bestC = m, n
			}
		}
		res.direct, res.cpuDirect = res.directBy[bestC], res.cpuDirectBy[bestC]
	}
	return res, nil
}

// rangedRead reads the whole of o in ranged GETs of partSize, conc at a
// time, and returns the bytes read: the fastest a plain SDK client gets an
// object.
func rangedRead(ctx context.Context, c *s3.Client, o object, partSize int64, conc int) (int64, error) {
	parts := (o.Size + partSize - 1) / partSize
	var next, total atomic.Int64
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for {
				i := next.Add(1) - 1
				if i >= parts || ctx.Err() != nil {
					return
				}
				off := i * partSize
				end := min(off+partSize, o.Size) - 1
				out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.Key),
					Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, end))})
				if err != nil {
					cancel(err)
					return
				}
				n, err := drain(ctx, out.Body, buf)
				out.Body.Close()
				total.Add(n)
				if err == nil && n != end-off+1 {
					err = fmt.Errorf("part at %d: %d bytes, want %d", off, n, end-off+1)
				}
				if err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return total.Load(), err
	}
	return total.Load(), ctx.Err()
}

func lastOr(xs []float64, def float64) float64 {
	if len(xs) == 0 {
		return def
	}
	return xs[len(xs)-1]
}

// parallel runs fn for every object at once; it returns the bytes read in
// total and the wall time from the start to the last finish.
func parallel(objs []object, bufs [][]byte, fn func(i int, o object, buf []byte) (int64, error)) (int64, time.Duration, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		errs  []error
	)
	start := time.Now()
	for i, o := range objs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := fn(i, o, bufs[i])
			mu.Lock()
			total += n
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", o.Key, err))
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return total, time.Since(start), errors.Join(errs...)
}

// streamFile reads path from start to end with read(2) calls of len(buf).
func streamFile(ctx context.Context, path string, buf []byte) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return drain(ctx, f, buf)
}

// directRead streams a whole object with one GetObject.
func directRead(ctx context.Context, c *s3.Client, key string, buf []byte) (int64, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	return drain(ctx, out.Body, buf)
}

// drain reads r to EOF into buf, checking ctx between reads.
func drain(ctx context.Context, r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}
