package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/prescient/prescientfs/creds"
	"github.com/prescient/prescientfs/fs/objread"
)

// Prometheus metrics of one mount, served on --metrics-addr.
//
// Most are read at scrape time from the counters the mount keeps anyway
// (objread.Stats, the memory budget and block cache, creds.Stats), so
// the read path pays nothing for them. Latencies are measured where a
// request leaves the process: object GETs and HEADs below the retries
// (metrics_wrap.go), catalog requests at their HTTP transport, and FUSE
// operations at the kernel interface (fs.OpObserver).
//
// Labels are closed sets (operation kinds, outcomes, status classes):
// never a URL, a path, a bucket, a key or a token.
type mountMetrics struct {
	reg *prometheus.Registry

	objRequests  *prometheus.CounterVec   // kind, outcome
	objFirstByte *prometheus.HistogramVec // kind
	objDuration  *prometheus.HistogramVec // kind
	catRequests  *prometheus.CounterVec   // kind, outcome
	catDuration  *prometheus.HistogramVec // kind
	fuseOps      *prometheus.CounterVec   // op, status
	fuseDuration *prometheus.HistogramVec // op
}

const metricsNamespace = "prescientfs"

// latencyBuckets cover 1 ms (a cache hit, a kernel round trip) to a
// minute (a request retried up to --io-timeout).
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2.5, 13)

func newMountMetrics() *mountMetrics {
	m := &mountMetrics{
		reg: prometheus.NewRegistry(),
		objRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "object_requests_total",
			Help: "Requests to the object store (S3 or HTTP), each attempt counted, by kind (get, head) and outcome (ok, not_found, denied, changed, timeout, canceled, error).",
		}, []string{"kind", "outcome"}),
		objFirstByte: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "object_first_byte_seconds",
			Help:    "Time from sending an object request to its first body byte.",
			Buckets: latencyBuckets,
		}, []string{"kind"}),
		objDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "object_request_duration_seconds",
			Help:    "Time from sending an object request until its body was read to the end or closed (HEAD: until the answer).",
			Buckets: latencyBuckets,
		}, []string{"kind"}),
		catRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "catalog_requests_total",
			Help: "Requests to the STAC API, each attempt counted, by kind (items: a page of a listing, search: a page of a search, item, collections, collection, other) and outcome (2xx, 3xx, 4xx, 5xx, canceled, error).",
		}, []string{"kind", "outcome"}),
		catDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "catalog_request_duration_seconds",
			Help:    "Time of a STAC API request including its body; kind items and search are the paging time of listings and searches.",
			Buckets: latencyBuckets,
		}, []string{"kind"}),
		fuseOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "fuse_operations_total",
			Help: "FUSE operations answered, by operation and status (OK or the errno's name).",
		}, []string{"op", "status"}),
		fuseDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "fuse_operation_duration_seconds",
			Help:    "Time the file system took to answer a FUSE operation.",
			Buckets: latencyBuckets,
		}, []string{"op"}),
	}
	m.reg.MustRegister(m.objRequests, m.objFirstByte, m.objDuration, m.catRequests, m.catDuration, m.fuseOps, m.fuseDuration)
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "build_info", Help: "The running version.",
		ConstLabels: prometheus.Labels{"version": version},
	}, func() float64 { return 1 }))
	return m
}

// processMetrics adds the Go runtime's and the process's own metrics
// (memory, goroutines, open file descriptors): for a process that serves
// one mount, not for the CSI plugin's many.
func (m *mountMetrics) processMetrics() {
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// readPath exports the read path's counters and gauges, read at scrape
// time.
func (m *mountMetrics) readPath(st *objread.Stats, budget *objread.Budget, blocks *objread.BlockCache) {
	counter := func(name, help string, v func() int64, labels prometheus.Labels) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metricsNamespace, Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(v()) })
	}
	gauge := func(name, help string, v func() float64, labels prometheus.Labels) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: metricsNamespace, Name: name, Help: help, ConstLabels: labels}, v)
	}
	mem, disk := prometheus.Labels{"cache": "memory"}, prometheus.Labels{"cache": "disk"}
	m.reg.MustRegister(
		counter("bytes_fetched_total", "Body bytes received from the object store.", st.BytesFetched.Load, nil),
		counter("bytes_served_total", "Bytes of assets returned to readers.", st.BytesServed.Load, nil),
		counter("read_retries_total", "Object GETs retried (failed, broken or short), resuming where they broke.", st.Retries.Load, nil),
		counter("cache_hits_total", "Blocks found in a cache.", st.CacheHits.Load, mem),
		counter("cache_misses_total", "Blocks not found in a cache (loaded, or joined while loading).", st.CacheMisses.Load, mem),
		counter("cache_hits_total", "Blocks found in a cache.", st.DiskHits.Load, disk),
		counter("cache_misses_total", "Blocks not found in a cache (loaded, or joined while loading).", st.DiskMisses.Load, disk),
		counter("disk_cache_bytes_read_total", "Bytes read from the disk cache (--cache-dir).", st.DiskBytesRead.Load, nil),
		counter("disk_cache_bytes_written_total", "Bytes written to the disk cache.", st.DiskBytesWritten.Load, nil),
		counter("disk_cache_write_drops_total", "Blocks not written to the disk cache because its writer was behind.", st.DiskWriteDrops.Load, nil),
		counter("disk_cache_write_errors_total", "Blocks whose write to the disk cache failed.", st.DiskWriteErrors.Load, nil),
		counter("prefetch_parts_total", "Prefetch parts (windows of sequential readers) started.", st.Parts.Load, nil),
		counter("prefetch_far_streams_total", "Prefetch streams started in the far store's shape (more, smaller parts: the store answered slowly).", st.FarStreams.Load, nil),
		gauge("object_store_latency_seconds", "The object store's latency: the least time from a GET's request to its response headers among the last 64 (a far store, 40 ms or more, gets streams of more, smaller parts).", func() float64 { return st.FirstByte().Seconds() }, nil),
		counter("prefetch_predicted_runs_total", "Runs loaded ahead of a jumping reader (the next row of tiles).", st.Predicted.Load, nil),
		counter("tiled_objects_total", "Tile layouts of tiled TIFFs and COGs parsed (once per object version).", st.TiledObjects.Load, nil),
		counter("tile_prefetches_total", "Predicted tile ranges loaded ahead of GDAL's reads.", st.TilePrefetches.Load, nil),
		counter("tile_prefetch_bytes_total", "Bytes of the predicted tile ranges loaded ahead.", st.TileBytes.Load, nil),
		counter("prefetch_budget_denials_total", "Prefetch parts the memory budget refused.", st.BudgetDenials.Load, nil),
		counter("direct_reads_total", "Reads sent straight to the store because the memory budget was exhausted.", st.DirectReads.Load, nil),
		gauge("prefetch_streams", "Open files with an active prefetch stream (sequential window) now.", func() float64 { return float64(budget.Streams()) }, nil),
		gauge("memory_budget_used_bytes", "Bytes of prefetch buffers held now.", func() float64 { return float64(budget.Used()) }, nil),
		gauge("memory_budget_peak_bytes", "The most bytes of prefetch buffers held at once.", func() float64 { return float64(budget.Peak()) }, nil),
		gauge("memory_budget_limit_bytes", "The memory budget (--memory-limit).", func() float64 { return float64(budget.Limit()) }, nil),
		gauge("memory_cache_bytes", "Bytes in the in-memory block cache.", func() float64 { _, n := blocks.Len(); return float64(n) }, nil),
	)
}

// credentials exports token and bucket-credential renewals and the time
// left on the bucket credentials.
func (m *mountMetrics) credentials(stats func() creds.Stats, expiry func() time.Time) {
	m.reg.MustRegister(&credsCollector{stats: stats, expiry: expiry})
}

var (
	descTokenRenewals = prometheus.NewDesc(metricsNamespace+"_token_renewals_total",
		"API tokens obtained (sign-in refreshes).", nil, nil)
	descTokenFailures = prometheus.NewDesc(metricsNamespace+"_token_renewal_failures_total",
		"API token renewals that failed.", nil, nil)
	descCredRenewals = prometheus.NewDesc(metricsNamespace+"_credential_renewals_total",
		"Bucket credentials obtained (STS or the fileproxy).", nil, nil)
	descCredFailures = prometheus.NewDesc(metricsNamespace+"_credential_renewal_failures_total",
		"Bucket credential renewals that failed.", nil, nil)
	descCredExpiry = prometheus.NewDesc(metricsNamespace+"_credentials_expiry_seconds",
		"Seconds until the current bucket credentials expire (absent before the first or for credentials that do not expire).", nil, nil)
)

type credsCollector struct {
	stats  func() creds.Stats
	expiry func() time.Time
}

func (c *credsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descTokenRenewals
	ch <- descTokenFailures
	ch <- descCredRenewals
	ch <- descCredFailures
	ch <- descCredExpiry
}

func (c *credsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	ch <- prometheus.MustNewConstMetric(descTokenRenewals, prometheus.CounterValue, float64(st.TokenRenewals))
	ch <- prometheus.MustNewConstMetric(descTokenFailures, prometheus.CounterValue, float64(st.TokenFailures))
	ch <- prometheus.MustNewConstMetric(descCredRenewals, prometheus.CounterValue, float64(st.CredentialRenewals))
	ch <- prometheus.MustNewConstMetric(descCredFailures, prometheus.CounterValue, float64(st.CredentialFailures))
	if c.expiry == nil {
		return
	}
	if exp := c.expiry(); !exp.IsZero() {
		ch <- prometheus.MustNewConstMetric(descCredExpiry, prometheus.GaugeValue, time.Until(exp).Seconds())
	}
}

// observeFUSE is the mount's fs.OpObserver.
func (m *mountMetrics) observeFUSE(op string, st fuse.Status, took time.Duration) {
	m.fuseOps.WithLabelValues(op, fuseStatusName(st)).Inc()
	m.fuseDuration.WithLabelValues(op).Observe(took.Seconds())
}

// fuseStatusName is "OK" or the errno's symbolic name (ENOENT, EACCES, ...).
func fuseStatusName(st fuse.Status) string {
	if st == fuse.OK {
		return "OK"
	}
	if st < 0 {
		return "errno_" + strconv.Itoa(int(st))
	}
	if name := unix.ErrnoName(syscall.Errno(st)); name != "" {
		return name
	}
	return "errno_" + strconv.Itoa(int(st))
}

// handler serves the registry in the Prometheus text format.
func (m *mountMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// serve starts the metrics endpoint: http://addr/metrics, on loopback
// unless addr names another interface (see listenLocal). The listener is
// made at once, so a port in use fails the mount before anything is
// mounted. It returns the URL (with the port chosen for ":0"); stop
// closes the endpoint.
func (m *mountMetrics) serve(addr string, log *slog.Logger) (url string, stop func(), err error) {
	ln, err := listenLocal("metrics", addr, log)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ErrServerClosed once stopped
	url = fmt.Sprintf("http://%s/metrics", ln.Addr())
	log.Info("metrics served", "url", url)
	return url, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			log.Debug("metrics server shutdown", "err", err)
		}
		_ = srv.Close() // after Shutdown: only what outlived its timeout
	}, nil
}
