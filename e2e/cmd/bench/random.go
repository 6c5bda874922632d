package main

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// randomOffsets returns n offsets, 4 KiB aligned, in [0, size-readSize],
// in random order and (while there is room) at least 2 MiB apart, so no read
// lands in data an earlier one prefetched.
func randomOffsets(seed uint64, n int, size, readSize int64) []int64 {
	const align, gap = 4 << 10, 2 << 20
	rng := rand.New(rand.NewPCG(seed, 0x62656e6368))
	slots := (size-readSize)/align + 1
	var offs []int64
	for tries := 0; len(offs) < n; tries++ {
		off := rng.Int64N(slots) * align
		ok := true
		for _, o := range offs {
			if tries < 100*n && off > o-gap && off < o+gap {
				ok = false
				break
			}
		}
		if ok {
			offs = append(offs, off)
		}
	}
	return offs
}

// randomWorkload: cold reads of -random-size at random offsets (open,
// pread, close each) through a fresh mount, against the same ranged GETs
// straight from S3; then a second, separate cold pass through the counting
// proxy for the bytes fetched from S3 per read.
func (b *bench) randomWorkload(ctx context.Context, base *baselines) error {
	p50Name, p90Name, bytesName := randomNames(int64(b.cfg.randSize))
	if err := b.ensureDirectRandom(ctx, base); err != nil {
		b.rep.add(failed("prescientfs", p50Name, fmt.Errorf("direct: %w", err)))
		return err
	}
	return b.randomRows(ctx, b.prescientfs(), base, p50Name, p90Name, bytesName, tgtLatency, tgtBytes)
}

func randomNames(size int64) (p50, p90, bytes string) {
	s := formatSize(size)
	return "cold " + s + " random read, p50", "cold " + s + " random read, p90", "S3 bytes per cold " + s + " random read"
}

// ensureDirectRandom measures the direct ranged GETs once per run.
func (b *bench) ensureDirectRandom(ctx context.Context, base *baselines) error {
	if base.randCRC != nil {
		return nil
	}
	obj := b.st.objs[0]
	offs := randomOffsets(1, b.cfg.randomReads, obj.Size, int64(b.cfg.randSize))
	if err := b.coldStart(ctx, obj); err != nil {
		return err
	}
	lat, crcs, err := b.directRandom(ctx, obj, offs)
	if err != nil {
		return err
	}
	base.randOffs, base.randCRC, base.randFresh = offs, crcs, true
	base.randP50, base.randP90 = percentile(lat, 50), percentile(lat, 90)
	b.log.Info("direct random", "p50 ms", fmt.Sprintf("%.2f", base.randP50), "p90 ms", fmt.Sprintf("%.2f", base.randP90))
	return nil
}

// randomRows measures mt on offs (checking the bytes against the direct
// reads' CRCs) and adds the p50, p90 and bytes-per-read rows.
func (b *bench) randomRows(ctx context.Context, mt mounter, base *baselines,
	p50Name, p90Name, bytesName string, tLat, tBytes *target) error {
	obj := b.st.objs[0]
	// Right after the direct pass this is the second side of a pair;
	// otherwise (rclone, later) it starts its own cold run.
	first := !base.randFresh
	base.randFresh = false
	lat, crcs, _, logc, err := b.mountRandom(ctx, mt, obj, base.randOffs, "random", false, first)
	if err == nil {
		if bad := mismatches(crcs, base.randCRC); bad > 0 {
			err = fmt.Errorf("%d of %d reads returned bytes that differ from S3's", bad, len(base.randOffs))
		}
	}
	if err != nil {
		b.rep.add(failed(mt.group, p50Name, err))
		return err
	}
	p50 := measure(mt.group, p50Name, "ms", percentile(lat, 50), base.randP50, "direct ranged GET", tLat)
	p50.Details = map[string]any{"reads": len(lat), "mean_ms": mean(lat), "max_ms": maxOf(lat)}
	if logc != nil {
		p50.Details["mount_log_counters"] = logc
	}
	p90 := measure(mt.group, p90Name, "ms", percentile(lat, 90), base.randP90, "direct ranged GET", nil)
	b.rep.add(p50, p90)
	b.log.Info("random", "via", mt.group, "p50 ms", fmt.Sprintf("%.2f", percentile(lat, 50)), "p90 ms", fmt.Sprintf("%.2f", percentile(lat, 90)))

	// Counting pass: other offsets, a fresh mount through the proxy.
	if b.cfg.countReads < 1 {
		return nil
	}
	coffs := randomOffsets(2, b.cfg.countReads, obj.Size, int64(b.cfg.randSize))
	_, _, counts, logc, err := b.mountRandom(ctx, mt, obj, coffs, "random-count", true, false)
	if err != nil {
		b.rep.add(failed(mt.group, bytesName, err))
		return err
	}
	n := float64(len(coffs))
	r := measure(mt.group, bytesName, "MiB", mib(counts.Bytes)/n, mib(int64(b.cfg.randSize)), "read size", tBytes)
	r.Details = map[string]any{"reads": len(coffs), "requests_per_read": float64(counts.requests()) / n,
		"proxy_counts": counts, "source": "counting proxy between the mount and MinIO"}
	if logc != nil {
		r.Details["mount_log_counters"] = logc
	}
	b.rep.add(r)
	return nil
}

// mountRandom does the reads through a fresh mount after dropping caches;
// it returns latencies (ms), CRCs, and the proxy's counts (viaProxy).
func (b *bench) mountRandom(ctx context.Context, mt mounter, obj object, offs []int64, label string, viaProxy, first bool) (
	lat []float64, crcs []uint32, counts proxyCounts, logc map[string]int64, err error) {
	if first {
		if err := b.coldStart(ctx, obj); err != nil {
			return nil, nil, counts, nil, err
		}
	} else {
		b.coldSecond()
	}
	m, err := mt.mount(ctx, label, viaProxy)
	if err != nil {
		return nil, nil, counts, nil, err
	}
	path := mt.path(m, obj)
	buf := make([]byte, b.cfg.randSize)
	before := b.st.proxy.counts()
	for _, off := range offs {
		if err = ctx.Err(); err != nil {
			break
		}
		start := time.Now()
		if err = preadOnce(path, buf, off); err != nil {
			err = fmt.Errorf("read %s at %d: %w", path, off, err)
			break
		}
		lat = append(lat, ms(time.Since(start)))
		crcs = append(crcs, crc32.ChecksumIEEE(buf))
	}
	counts = b.st.proxy.counts().sub(before)
	if cerr := m.close(); err == nil {
		err = cerr
	}
	if c, ok := logCounters(m.logPath); ok {
		logc = c
	}
	if err != nil {
		err = fmt.Errorf("%w (log %s)", err, m.logPath)
	}
	return lat, crcs, counts, logc, err
}

// preadOnce opens path, reads len(buf) bytes at off with one pread, closes.
func preadOnce(path string, buf []byte, off int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	n, err := f.ReadAt(buf, off)
	cerr := f.Close()
	if err != nil && !(err == io.EOF && n == len(buf)) {
		return err
	}
	return cerr
}

// directRandom does the same reads as ranged GetObjects.
func (b *bench) directRandom(ctx context.Context, obj object, offs []int64) ([]float64, []uint32, error) {
	buf := make([]byte, b.cfg.randSize)
	var lat []float64
	var crcs []uint32
	for _, off := range offs {
		start := time.Now()
		out, err := b.st.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(obj.Key),
			Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(buf))-1))})
		if err != nil {
			return nil, nil, err
		}
		_, err = io.ReadFull(out.Body, buf)
		out.Body.Close()
		if err != nil {
			return nil, nil, err
		}
		lat = append(lat, ms(time.Since(start)))
		crcs = append(crcs, crc32.ChecksumIEEE(buf))
	}
	return lat, crcs, nil
}

func mismatches(got, want []uint32) int {
	bad := 0
	for i := range got {
		if i >= len(want) || got[i] != want[i] {
			bad++
		}
	}
	return bad + max(0, len(want)-len(got))
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
