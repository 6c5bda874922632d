package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// shape is how S3 looks from the clients: a first-byte latency added to
// every request and a rate every response is paced to (per connection).
// The zero shape is loopback: MinIO as it is.
type shape struct {
	name    string
	latency time.Duration
	rate    int64 // bytes per second per connection; 0 unlimited
}

func (s shape) loopback() bool { return s.latency == 0 && s.rate == 0 }

// parseShapes reads -shape: a comma-separated list of "loopback" or
// LATENCY/RATE, LATENCY a Go duration ("20ms"), RATE bytes per second
// per connection with a unit: MB (10^6), MiB (2^20), GB, GiB, KB, KiB
// ("50MB"). Either part may be 0 ("20ms/0": latency only).
func parseShapes(v string) ([]shape, error) {
	var out []shape
	seen := map[string]bool{}
	for _, f := range splitList(v) {
		var sh shape
		if f != "loopback" {
			lat, rate, ok := strings.Cut(f, "/")
			if !ok {
				return nil, fmt.Errorf("-shape %q: want loopback or LATENCY/RATE (e.g. 20ms/50MB)", f)
			}
			d, err := time.ParseDuration(lat)
			if lat == "0" {
				d, err = 0, nil
			}
			if err != nil || d < 0 {
				return nil, fmt.Errorf("-shape %q: bad latency %q", f, lat)
			}
			r, err := parseRate(rate)
			if err != nil {
				return nil, fmt.Errorf("-shape %q: %w", f, err)
			}
			sh = shape{latency: d, rate: r}
		}
		sh.name = f
		if sh.loopback() {
			sh.name = "loopback"
		}
		if seen[sh.name] {
			return nil, fmt.Errorf("-shape: %q given twice", sh.name)
		}
		seen[sh.name] = true
		out = append(out, sh)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-shape: no shapes")
	}
	return out, nil
}

func parseRate(v string) (int64, error) {
	if v == "0" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(v, u.suffix); ok {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f <= 0 {
				break
			}
			return int64(f * u.mult), nil
		}
	}
	return 0, fmt.Errorf("bad rate %q (want e.g. 50MB, 25MiB or 0)", v)
}

// describe is the table heading of a shape.
func (s shape) describe() string {
	if s.loopback() {
		return "loopback (MinIO as it is, no proxy but where requests are counted)"
	}
	rate := "unlimited"
	if s.rate > 0 {
		rate = fmt.Sprintf("%.0f MB/s", float64(s.rate)/1e6)
	}
	return fmt.Sprintf("%s: +%v first-byte latency per request, %s per connection (shaping proxy)", s.name, s.latency, rate)
}

// calibrateShape checks the shaping proxy: one connection downloading the
// first 32 MiB of an object should reach the rate, and a 1-byte GET should
// take the latency.
func (b *bench) calibrateShape(ctx context.Context) error {
	sh := b.shape
	obj := b.st.objs[0]
	c := b.s3()
	get := func(rng string) (time.Duration, int64, error) {
		start := time.Now()
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(obj.Key), Range: aws.String(rng)})
		if err != nil {
			return 0, 0, err
		}
		n, err := io.Copy(io.Discard, out.Body)
		out.Body.Close()
		return time.Since(start), n, err
	}
	if err := b.coldStart(ctx, obj); err != nil {
		return err
	}
	var lat []float64
	for range 5 {
		d, _, err := get("bytes=0-0")
		if err != nil {
			b.rep.add(failed("proxy", "1-byte GET (first-byte latency)", err))
			return err
		}
		lat = append(lat, ms(d))
	}
	r := measure("proxy", "1-byte GET, p50 of 5 (shaped first byte)", "ms", median(lat), ms(sh.latency), "added latency", nil)
	r.Details = map[string]any{"runs_ms": lat}
	b.rep.add(r)
	if sh.rate <= 0 {
		return nil
	}
	const size = 32 << 20
	name := "1 connection, 32 MiB GET, median of 3 (pacing accuracy)"
	var rates, totals []float64
	for range 3 {
		d, n, err := get(fmt.Sprintf("bytes=0-%d", size-1))
		if err == nil && n != size {
			err = fmt.Errorf("got %d bytes, want %d", n, size)
		}
		if err != nil {
			b.rep.add(failed("proxy", name, err))
			return err
		}
		// The rate of the body alone: the first byte came after about p50.
		body := d - time.Duration(median(lat)*float64(time.Millisecond))
		rates, totals = append(rates, float64(n)/1e6/body.Seconds()), append(totals, ms(d))
	}
	got := median(rates)
	r = measure("proxy", name, "MB/s", got, float64(sh.rate)/1e6, "nominal rate", nil)
	r.Details = map[string]any{"runs_MBps": rates, "runs_total_ms": totals, "best_MBps": maxOf(rates)}
	b.rep.add(r)
	b.log.Info("proxy calibrated", "shape", sh.name, "first byte ms", fmt.Sprintf("%.1f", median(lat)),
		"rate MB/s", fmt.Sprintf("%.2f", got), "nominal", float64(sh.rate)/1e6)
	if math.Abs(got/(float64(sh.rate)/1e6)-1) > 0.05 {
		b.log.Warn("the proxy's achieved rate is more than 5% off the nominal one (a loaded machine?)", "MB/s", got)
	}
	return nil
}

// s3 is the direct client of the current shape: through its proxy when
// shaped, straight to MinIO on loopback.
func (b *bench) s3() *s3.Client {
	if b.shapeS3 != nil {
		return b.shapeS3
	}
	return b.st.s3
}

// endpoint is the S3 endpoint of the current shape (http://host:port).
func (b *bench) endpoint() string {
	if b.shapeProxy != nil {
		return b.shapeProxy.URL
	}
	return b.st.minio.Endpoint
}

// countProxy is the proxy whose counters see the current shape's requests:
// the shaping proxy, or on loopback the unshaped one.
func (b *bench) countProxy() *countingProxy {
	if b.shapeProxy != nil {
		return b.shapeProxy
	}
	return b.st.proxy
}

// useShape starts the shape's proxy and client (none for loopback); the
// returned function stops them.
func (b *bench) useShape(sh shape) (func(), error) {
	b.shape, b.shapeProxy, b.shapeS3 = sh, nil, nil
	b.rep.shape = sh.name
	if sh.loopback() || b.st == nil {
		return func() {}, nil
	}
	p, err := newCountingProxy(b.st.minio.Endpoint, sh)
	if err != nil {
		return nil, err
	}
	stop := b.cl.add("stop the "+sh.name+" proxy", p.close)
	b.shapeProxy, b.shapeS3 = p, directClient(b.st.minio, p.URL)
	return func() {
		stop()
		b.shapeProxy, b.shapeS3 = nil, nil
	}, nil
}
