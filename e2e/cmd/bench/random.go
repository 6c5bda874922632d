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
// reads' CRCs) and adds the p50, p90 and bytes-per-read rows. The timed
// pass interleaves each read through the mount with the same ranged GET
// straight from S3, and the ratios are against those GETs: a separate
// direct pass ran in another state of the machine (right after the
// warming read of the whole object its p50 was 2.1-4.0 ms in runs where
// this workload came first, 1.4-1.8 ms after others), and GETs sent back
// to back never let the vCPUs idle between them as the mount's reads do.
func (b *bench) randomRows(ctx context.Context, mt mounter, base *baselines,
	p50Name, p90Name, bytesName string, tLat, tBytes *target) error {
	obj := b.st.objs[0]
	// Right after the direct pass this is the second side of a pair;
	// otherwise (rclone, later) it starts its own cold run.
	first := !base.randFresh
	base.randFresh = false
	ps, err := b.mountRandom(ctx, mt, obj, base.randOffs, "random", false, first, true)
	if err == nil {
		if bad := mismatches(ps.crcs, base.randCRC); bad > 0 {
			err = fmt.Errorf("%d of %d reads returned bytes that differ from S3's", bad, len(base.randOffs))
		} else if bad := mismatches(ps.dcrcs, base.randCRC); bad > 0 {
			err = fmt.Errorf("%d of %d interleaved direct GETs returned other bytes than the direct pass", bad, len(base.randOffs))
		}
	}
	if err != nil {
		b.rep.add(failed(mt.group, p50Name, err))
		return err
	}
	lat, logc := ps.lat, ps.logc
	const baseName = "direct ranged GET, interleaved"
	p50 := measure(mt.group, p50Name, "ms", percentile(lat, 50), percentile(ps.dlat, 50), baseName, tLat)
	p50.Details = map[string]any{"reads": len(lat), "mean_ms": mean(lat), "max_ms": maxOf(lat),
		"direct_pass_p50_ms": base.randP50, "direct_pass_p90_ms": base.randP90}
	if logc != nil {
		p50.Details["mount_log_counters"] = logc
	}
	p90 := measure(mt.group, p90Name, "ms", percentile(lat, 90), percentile(ps.dlat, 90), baseName, nil)
	b.rep.add(p50, p90)
	b.log.Info("random", "via", mt.group, "p50 ms", fmt.Sprintf("%.2f", percentile(lat, 50)), "p90 ms", fmt.Sprintf("%.2f", percentile(lat, 90)),
		"interleaved direct p50 ms", fmt.Sprintf("%.2f", percentile(ps.dlat, 50)))

	// Counting pass: other offsets, a fresh mount through the proxy.
	if b.cfg.countReads < 1 {
		return nil
	}
	coffs := randomOffsets(2, b.cfg.countReads, obj.Size, int64(b.cfg.randSize))
	ps, err = b.mountRandom(ctx, mt, obj, coffs, "random-count", true, false, false)
	if err != nil {
		b.rep.add(failed(mt.group, bytesName, err))
		return err
	}
	counts, logc := ps.counts, ps.logc
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

// randomPass is what mountRandom measured.
type randomPass struct {
	lat   []float64 // ms, of each read through the mount
	crcs  []uint32
	dlat  []float64 // ms, of each interleaved direct GET
	dcrcs []uint32
	// The proxy's counts (viaProxy) and the mount's log counters.
	counts proxyCounts
	logc   map[string]int64
}

// mountRandom does the reads through a fresh mount after dropping caches,
// each (with direct) next to the same ranged GET straight from S3.
func (b *bench) mountRandom(ctx context.Context, mt mounter, obj object, offs []int64, label string, viaProxy, first, direct bool) (
	ps randomPass, err error) {
	if first {
		if err := b.coldStart(ctx, obj); err != nil {
			return ps, err
		}
	} else {
		b.coldSecond()
	}
	m, err := mt.mount(ctx, label, viaProxy)
	if err != nil {
		return ps, err
	}
	path := mt.path(m, obj)
	buf := make([]byte, b.cfg.randSize)
	before := b.st.proxy.counts()
	viaS3 := func(off int64) error {
		start := time.Now()
		if err := b.directGet(ctx, obj, buf, off); err != nil {
			return err
		}
		ps.dlat = append(ps.dlat, ms(time.Since(start)))
		ps.dcrcs = append(ps.dcrcs, crc32.ChecksumIEEE(buf))
		return nil
	}
	for i, off := range offs {
		if err = ctx.Err(); err != nil {
			break
		}
		// With direct, the GET goes first at even reads, second at odd ones.
		if direct && i%2 == 0 {
			if err = viaS3(off); err != nil {
				break
			}
		}
		start := time.Now()
		if err = preadOnce(path, buf, off); err != nil {
			err = fmt.Errorf("read %s at %d: %w", path, off, err)
			break
		}
		ps.lat = append(ps.lat, ms(time.Since(start)))
		ps.crcs = append(ps.crcs, crc32.ChecksumIEEE(buf))
		if direct && i%2 == 1 {
			if err = viaS3(off); err != nil {
				break
			}
		}
	}
	ps.counts = b.st.proxy.counts().sub(before)
	if cerr := m.close(); err == nil {
		err = cerr
	}
	if c, ok := logCounters(m.logPath); ok {
		ps.logc = c
	}
	if err != nil {
		err = fmt.Errorf("%w (log %s)", err, m.logPath)
	}
	return ps, err
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
		if err := b.directGet(ctx, obj, buf, off); err != nil {
			return nil, nil, err
		}
		lat = append(lat, ms(time.Since(start)))
		crcs = append(crcs, crc32.ChecksumIEEE(buf))
	}
	return lat, crcs, nil
}

// directGet fills buf with obj's bytes at off with one ranged GetObject.
func (b *bench) directGet(ctx context.Context, obj object, buf []byte, off int64) error {
	out, err := b.st.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(obj.Key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(buf))-1))})
	if err != nil {
		return fmt.Errorf("direct GET at %d: %w", off, err)
	}
	_, err = io.ReadFull(out.Body, buf)
	out.Body.Close()
	return err
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
