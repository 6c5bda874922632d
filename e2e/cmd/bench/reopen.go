package main

import (
	"context"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"time"
)

// reopenWorkload imitates GDAL/QGIS on one file: -reopen-opens times open,
// read a 16 KiB header, read a few scattered tiles, close; then the same
// pass again on the same mount. The second pass should need no S3
// requests at all (block cache, kept page cache). S3 requests are counted
// by the proxy the mount talks to.
func (b *bench) reopenWorkload(ctx context.Context, _ *baselines) error {
	reqName := "repeated opens (GDAL pattern): 2nd-pass S3 requests"
	timeName := "repeated opens (GDAL pattern): 2nd-pass time"
	obj := b.st.cog
	type read struct{ off, size int64 }
	var pattern [][]read
	rng := rand.New(rand.NewPCG(3, 0x72656f70656e))
	for range b.cfg.reopenOpens {
		reads := []read{{0, 16 << 10}}
		for range 4 {
			const tile = 256 << 10
			reads = append(reads, read{rng.Int64N((obj.Size-tile)/4096) * 4096, tile})
		}
		pattern = append(pattern, reads)
	}

	if err := b.coldStart(ctx, obj); err != nil {
		return err
	}
	m, err := b.mountPrescient(ctx, "reopen", true)
	if err != nil {
		b.rep.add(failed("prescientfs", reqName, err))
		return err
	}
	defer m.close()
	path := m.path(obj.Rel)
	buf := make([]byte, 256<<10)
	pass := func() (time.Duration, []uint32, proxyCounts, error) {
		before := b.st.proxy.counts()
		start := time.Now()
		var crcs []uint32
		for _, reads := range pattern {
			f, err := os.Open(path)
			if err != nil {
				return 0, nil, proxyCounts{}, err
			}
			for _, r := range reads {
				p := buf[:r.size]
				if _, err := f.ReadAt(p, r.off); err != nil {
					f.Close()
					return 0, nil, proxyCounts{}, fmt.Errorf("read %d@%d: %w", r.size, r.off, err)
				}
				crcs = append(crcs, crc32.ChecksumIEEE(p))
			}
			if err := f.Close(); err != nil {
				return 0, nil, proxyCounts{}, err
			}
		}
		return time.Since(start), crcs, b.st.proxy.counts().sub(before), nil
	}
	d1, crc1, c1, err := pass()
	if err != nil {
		b.rep.add(failed("prescientfs", reqName, fmt.Errorf("first pass: %w", err)))
		return err
	}
	d2, crc2, c2, err := pass()
	if err == nil && mismatches(crc2, crc1) > 0 {
		err = fmt.Errorf("the second pass returned different bytes from the first")
	}
	if err != nil {
		b.rep.add(failed("prescientfs", reqName, fmt.Errorf("second pass: %w", err)))
		return err
	}
	if err := m.close(); err != nil {
		b.log.Warn("unmount", "err", err)
	}
	r := measure("prescientfs", reqName, "requests", float64(c2.requests()), float64(c1.requests()), "1st pass", tgtRequests)
	r.Details = map[string]any{"opens_per_pass": len(pattern), "reads_per_open": len(pattern[0]),
		"first_pass": c1, "second_pass": c2, "source": "counting proxy between the mount and MinIO"}
	if c, ok := logCounters(m.logPath); ok {
		r.Details["mount_log_counters"] = c
	}
	t := measure("prescientfs", timeName, "ms", ms(d2), ms(d1), "1st pass (cold)", nil)
	b.rep.add(r, t)
	return nil
}
