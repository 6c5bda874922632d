package main

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// firstReadWorkload: the first -random-size bytes of -first-files files
// never opened before (open, pread at 0, close, each timed), through a
// fresh mount per run, against one ranged GET of the same bytes through
// the same S3; and the requests (GET, HEAD) the mount sent per read,
// counted by the proxy. The item's directory is listed first, untimed:
// this measures the way to S3, not the catalog. The catalog gives every
// file's size (file:size).
func (b *bench) firstReadWorkload(ctx context.Context, _ *baselines) error {
	size := int64(b.cfg.randSize)
	name := fmt.Sprintf("first %s of a never-opened file, p50", formatSize(size))
	reqName := fmt.Sprintf("S3 requests per first %s read", formatSize(size))
	files := b.st.cold
	var mountMS, directMS []float64
	var reqs []proxyCounts
	for run := 1; run <= b.cfg.runs; run++ {
		if err := b.coldStart(ctx, files...); err != nil {
			return err
		}
		crcs, lat, err := b.directFirst(ctx, files, size)
		if err != nil {
			b.rep.add(failed("prescientfs", name, fmt.Errorf("direct: %w", err)))
			return err
		}
		directMS = append(directMS, lat...)

		b.coldSecond()
		m, err := b.mountPrescient(ctx, fmt.Sprintf("first-%d", run), true)
		if err != nil {
			b.rep.add(failed("prescientfs", name, err))
			return err
		}
		p := b.countProxy()
		lat, counts, err := b.mountFirst(m, files, size, crcs, p)
		if cerr := m.close(); err == nil {
			err = cerr
		}
		if err != nil {
			err = fmt.Errorf("%w (log %s)", err, m.logPath)
			b.rep.add(failed("prescientfs", name, err))
			return err
		}
		mountMS = append(mountMS, lat...)
		reqs = append(reqs, counts)
		b.log.Info("first reads", "run", run, "mount p50 ms", fmt.Sprintf("%.2f", median(lat)),
			"direct p50 ms", fmt.Sprintf("%.2f", median(directMS[len(directMS)-len(files):])),
			"GETs", counts.GETs, "HEADs", counts.HEADs, "other", counts.Other)
	}
	r := measure("prescientfs", name, "ms", median(mountMS), median(directMS), "one ranged GET", tgtFirst)
	r.Details = map[string]any{"reads": len(mountMS), "mount_p90_ms": percentile(mountMS, 90), "direct_p90_ms": percentile(directMS, 90),
		"mount_ms": mountMS, "direct_ms": directMS}
	var total proxyCounts
	for _, c := range reqs {
		total.GETs, total.HEADs, total.Other, total.Bytes = total.GETs+c.GETs, total.HEADs+c.HEADs, total.Other+c.Other, total.Bytes+c.Bytes
	}
	n := float64(len(mountMS))
	rq := measure("prescientfs", reqName, "requests", float64(total.requests())/n, 1, "one ranged GET", tgtFirstReq)
	rq.Unit = "req"
	rq.Details = map[string]any{"gets_per_read": float64(total.GETs) / n, "heads_per_read": float64(total.HEADs) / n,
		"other_per_read": float64(total.Other) / n, "bytes_per_read": float64(total.Bytes) / n, "runs": reqs,
		"source": "the proxy between the mount and MinIO"}
	rq.Note = fmt.Sprintf("per first read: %.2f GET, %.2f HEAD, %.2f other; %.0f KiB fetched", float64(total.GETs)/n,
		float64(total.HEADs)/n, float64(total.Other)/n, float64(total.Bytes)/n/1024)
	b.rep.add(r, rq)
	return nil
}

// directFirst does one ranged GET of the first size bytes of each file.
func (b *bench) directFirst(ctx context.Context, files []object, size int64) ([]uint32, []float64, error) {
	buf := make([]byte, size)
	var crcs []uint32
	var lat []float64
	for _, o := range files {
		start := time.Now()
		c := b.s3()
		if b.shapeProxy == nil { // loopback: through the unshaped proxy, as the mount
			c = b.st.proxyS3
		}
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.Key),
			Range: aws.String(fmt.Sprintf("bytes=0-%d", size-1))})
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
	return crcs, lat, nil
}

// mountFirst lists the files' directory (untimed), then reads the first
// size bytes of each file (open, pread, close), checking them against
// want; it returns the latencies and the requests the proxy saw meanwhile.
func (b *bench) mountFirst(m *mountProc, files []object, size int64, want []uint32, p *countingProxy) ([]float64, proxyCounts, error) {
	dir := m.path(filepath.Dir(files[0].Rel))
	if _, err := os.ReadDir(dir); err != nil {
		return nil, proxyCounts{}, err
	}
	for _, o := range files {
		if fi, err := os.Stat(m.path(o.Rel)); err != nil || fi.Size() != o.Size {
			return nil, proxyCounts{}, fmt.Errorf("stat %s: %v (size %v, want %d)", o.Rel, err, fi, o.Size)
		}
	}
	buf := make([]byte, size)
	var lat []float64
	before := p.counts()
	for i, o := range files {
		start := time.Now()
		if err := preadOnce(m.path(o.Rel), buf, 0); err != nil {
			return nil, proxyCounts{}, fmt.Errorf("read %s: %w", o.Rel, err)
		}
		lat = append(lat, ms(time.Since(start)))
		if crc32.ChecksumIEEE(buf) != want[i] {
			return nil, proxyCounts{}, fmt.Errorf("%s: the first %d bytes differ from S3's", o.Rel, size)
		}
	}
	return lat, p.counts().sub(before), nil
}

// gdalinfoWorkload: gdalinfo of -scenes scenes (small COGs) never opened,
// one after another, through a fresh mount per run, against gdalinfo of
// the same scenes through GDAL's own /vsis3/; the outputs must agree (but
// for the file names). The scenes' directories are listed first, untimed.
func (b *bench) gdalinfoWorkload(ctx context.Context, _ *baselines) error {
	scenes := b.st.scenes
	name := fmt.Sprintf("gdalinfo of %d new scenes, total", len(scenes))
	if _, err := exec.LookPath("gdalinfo"); err != nil {
		b.rep.add(failed("prescientfs", name, err))
		return err
	}
	var mountMS, s3MS []float64
	var reqs []proxyCounts
	for run := 1; run <= b.cfg.runs; run++ {
		if err := b.coldStart(ctx, scenes...); err != nil {
			return err
		}
		warmGDAL(ctx)
		var want []string
		start := time.Now()
		for _, o := range scenes {
			src := "/vsis3/" + bucket + "/" + o.Key
			out, err := gdalinfo(ctx, b.s3Env(), src)
			if err != nil {
				b.rep.add(failed("prescientfs", name, fmt.Errorf("/vsis3/: %w", err)))
				return err
			}
			want = append(want, strings.ReplaceAll(out, src, "SRC"))
		}
		s3MS = append(s3MS, ms(time.Since(start)))

		b.coldSecond()
		m, err := b.mountPrescient(ctx, fmt.Sprintf("gdalinfo-%d", run), false)
		if err != nil {
			b.rep.add(failed("prescientfs", name, err))
			return err
		}
		for _, o := range scenes {
			if _, err = os.Stat(m.path(o.Rel)); err != nil {
				break
			}
		}
		warmGDAL(ctx)
		p := b.countProxy()
		before := p.counts()
		start = time.Now()
		for i, o := range scenes {
			if err != nil {
				break
			}
			var out string
			src := m.path(o.Rel)
			if out, err = gdalinfo(ctx, b.localEnv(), src); err == nil && strings.ReplaceAll(out, src, "SRC") != want[i] {
				err = fmt.Errorf("gdalinfo of %s differs from /vsis3/'s:\n%s\nvs\n%s", o.Rel, out, want[i])
			}
		}
		d := time.Since(start)
		if b.shapeProxy != nil {
			reqs = append(reqs, p.counts().sub(before))
		}
		if cerr := m.close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.rep.add(failed("prescientfs", name, fmt.Errorf("%w (log %s)", err, m.logPath)))
			return err
		}
		mountMS = append(mountMS, ms(d))
		b.log.Info("gdalinfo", "run", run, "mount ms", fmt.Sprintf("%.1f", ms(d)), "vsis3 ms", fmt.Sprintf("%.1f", lastOr(s3MS, 0)))
	}
	r := measure("prescientfs", name, "ms", median(mountMS), median(s3MS), "GDAL /vsis3/", tgtGDAL)
	r.Details = map[string]any{"mount_runs_ms": mountMS, "vsis3_runs_ms": s3MS, "scenes": len(scenes)}
	if reqs != nil {
		r.Details["mount_requests_per_run"] = reqs
	}
	b.rep.add(r)
	return nil
}

// gdalinfo runs gdalinfo on src and returns its output.
func gdalinfo(ctx context.Context, env []string, src string) (string, error) {
	cmd := exec.CommandContext(ctx, "gdalinfo", src)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("gdalinfo %s: %v: %s", src, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}
