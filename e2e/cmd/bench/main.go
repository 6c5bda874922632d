// Command bench measures prescientfs against the direct S3 limit on the real
// test stack (MinIO, the STAC test server) and prints one table per S3
// shape: each workload through the mount, its baseline in the same run and
// through the same S3, the ratio and the target (issues 4 and 11). The same
// figures are written as JSON.
//
//	make build && go run ./e2e/cmd/bench -bin bin/prescientfs -dir .bench
//
// Shapes. Loopback MinIO answers in about a millisecond and streams a GiB
// a second per connection; a real bucket answers in 10-30 ms and streams
// 50-90 MB/s per connection. -shape lists the S3s to measure against,
// comma-separated, each "loopback" or LATENCY/RATE: LATENCY a Go duration
// added before every request (the first byte of every response comes that
// much later), RATE what each response (one per connection at a time) is
// paced to, in MB (10^6 bytes), MiB, KB, KiB, GB or GiB per second, 0 for
// unlimited. The default, loopback,20ms/50MB,50ms/25MB, is what `make
// bench` runs. For a shaped S3 a shaping proxy (proxy.go) stands in front
// of MinIO, and the mount, the direct aws-sdk-go-v2 baseline and GDAL's
// /vsis3/ (AWS_S3_ENDPOINT) all go through it; the STAC catalog does not.
// Each shaped table starts with the proxy's own check: a 1-byte GET (the
// latency) and one connection downloading 32 MiB (the achieved rate).
//
// The shaped workloads run at every shape: seq (sequential 1 GiB against
// the best of parallel 8 MiB ranged GETs at -seq-conc), first (first 64
// KiB of never-opened files, p50, against one ranged GET, and the requests
// the mount sent), gdalinfo (-scenes new scenes, against /vsis3/) and gdal
// (gdal_translate -srcwin 1024² windows of the big COG, against /vsis3/,
// outputs compared). The others (tree, conc with peak RSS and CPU per GiB,
// random, reopen, rclone, catalog) run on loopback only, as before. To
// measure another build, point -bin at it (e.g. a worktree's
// bin/prescientfs); -only and -shape select what runs:
//
//	go run ./e2e/cmd/bench -bin /work/wt11/bin/prescientfs -dir /work/benchdata -only seq,first,gdal -shape 20ms/50MB
//
// The catalog workloads (lookup by ID in a 10M collection, listings
// against raw paging, the persistent index) need only the STAC test
// server; run them alone with -only catalog.
//
// It needs root (to drop the page cache between cold runs and to mount
// FUSE), GDAL and MinIO; rclone is measured too when it is on PATH. Data
// is made fresh in a new MinIO each run; the big COG is cached in -dir.
// Whatever happens (errors, Ctrl-C), mounts are unmounted and MinIO is
// stopped; a second Ctrl-C forces that at once.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
)

type config struct {
	bin        string
	dir        string
	jsonPath   string
	mountFlags string
	only       string
	shapeList  string
	shapes     []shape
	seqConc    string
	seqConcs   []int

	runs        int
	streams     int
	randomReads int
	countReads  int
	gdalWindows int
	reopenOpens int
	cogSide     int
	treeItems   int
	catPageSize int
	firstFiles  int
	scenes      int

	objectSize sizeFlag
	readSize   sizeFlag
	randSize   sizeFlag
	partSize   sizeFlag

	rclone      bool
	gdal        bool
	dropCaches  bool
	serverCache string
	verbose     bool
	hold        bool
	timeout     time.Duration
}

func parseFlags() config {
	c := config{objectSize: 1 << 30, readSize: 1 << 20, randSize: 64 << 10, partSize: 8 << 20}
	flag.StringVar(&c.bin, "bin", "bin/prescientfs", "the prescientfs binary to measure")
	flag.StringVar(&c.dir, "dir", ".bench", "work directory: mountpoints, logs, the cached big COG, bench.json")
	flag.StringVar(&c.jsonPath, "json", "", "write the results as JSON here (default <dir>/bench.json)")
	flag.StringVar(&c.mountFlags, "mount-flags", "", "extra flags for `prescientfs mount`, space-separated (e.g. \"--memory-limit 256MiB\")")
	flag.StringVar(&c.only, "only", "", "comma-separated workloads to run (default all): "+strings.Join(allWorkloads, ","))
	flag.StringVar(&c.shapeList, "shape", "loopback,20ms/50MB,50ms/25MB", "comma-separated S3 shapes, each loopback or LATENCY/RATE per connection (e.g. 20ms/50MB); the shaped workloads run at each, the others on loopback only")
	flag.StringVar(&c.seqConc, "seq-conc", "4,8,16,32", "concurrencies of the direct parallel ranged GETs (-part-size parts) of the sequential baseline: the best is the baseline")
	flag.Var(&c.partSize, "part-size", "part size of the direct parallel ranged GETs")
	flag.IntVar(&c.firstFiles, "first-files", 16, "never-opened files read (first -random-size bytes) per run in the first-read workload")
	flag.IntVar(&c.scenes, "scenes", 8, "new scenes (small COGs) per run in the gdalinfo workload")
	flag.IntVar(&c.runs, "runs", 3, "repetitions of each throughput workload (median reported; direct baseline: best)")
	flag.IntVar(&c.streams, "streams", 4, "concurrent readers (and random objects)")
	flag.IntVar(&c.randomReads, "random-reads", 200, "cold random reads timed per side")
	flag.IntVar(&c.countReads, "count-reads", 50, "cold random reads in the separate pass that counts S3 bytes through a proxy")
	flag.IntVar(&c.gdalWindows, "gdal-windows", 5, "gdal_translate windows per side (median reported)")
	flag.IntVar(&c.reopenOpens, "reopen-opens", 3, "opens per pass in the repeated-opens workload")
	flag.IntVar(&c.cogSide, "cog-side", fixtures.DefaultBigCOGSide, "side in pixels of the big 3-band COG (20000 makes >1 GiB)")
	flag.IntVar(&c.treeItems, "tree-items", 200, "items (2 assets each) in the collection walked by find")
	flag.IntVar(&c.catPageSize, "catalog-page-size", 250, "page size of the catalog workloads (--page-size of the mount and of the raw paging baseline)")
	flag.Var(&c.objectSize, "object-size", "size of each random object (e.g. 1GiB, 64MiB)")
	flag.Var(&c.readSize, "read-size", "read size of the sequential workloads")
	flag.Var(&c.randSize, "random-size", "read size of the random workloads")
	flag.BoolVar(&c.rclone, "rclone", true, "also measure `rclone mount` when rclone is on PATH")
	flag.BoolVar(&c.gdal, "gdal", true, "run the gdal_translate workload")
	flag.BoolVar(&c.dropCaches, "drop-caches", true, "drop the page cache before cold runs (needs root)")
	flag.StringVar(&c.serverCache, "server-cache", "warm", "MinIO's data in cold runs: warm (read once, untimed, after the drop: S3 at network speed) or cold (from this machine's disk)")
	flag.BoolVar(&c.verbose, "v", false, "debug logging and MinIO output")
	flag.BoolVar(&c.hold, "hold", false, "after setup, print the environment for mounting the stack by hand and wait for Ctrl-C (for profiling; with a single shaped -shape, S3 is its proxy); no workloads run")
	flag.DurationVar(&c.timeout, "timeout", 45*time.Minute, "give up (and clean up) after this long")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	return c
}

func main() {
	c := parseFlags()
	level := slog.LevelInfo
	if c.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := c.validate(); err != nil {
		log.Error("bad flags", "err", err)
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	cl := &cleaner{log: log}

	// First signal: cancel and let run unwind (its cleanups run). Second
	// signal, or a run that does not unwind in time (a read stuck in a dead
	// mount): clean up from here and exit.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		log.Warn("interrupted: cleaning up (send again to force)", "signal", s.String())
		cancel()
		select {
		case <-sigs:
		case <-time.After(30 * time.Second):
		}
		log.Warn("forcing cleanup")
		cl.run()
		os.Exit(130)
	}()

	code := 0
	if err := run(ctx, c, log, cl); err != nil {
		log.Error("bench failed", "err", err)
		code = 1
	}
	cl.run()
	if ctx.Err() != nil && code == 0 {
		code = 1
	}
	os.Exit(code)
}

func (c *config) validate() error {
	if c.bin == "" {
		return fmt.Errorf("-bin is required")
	}
	bin, err := filepath.Abs(c.bin)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("-bin %s is not an executable file (run `make build`)", bin)
	}
	c.bin = bin
	if c.dir, err = filepath.Abs(c.dir); err != nil {
		return err
	}
	if c.jsonPath == "" {
		c.jsonPath = filepath.Join(c.dir, "bench.json")
	}
	if c.catPageSize < 1 {
		return fmt.Errorf("-catalog-page-size must be >= 1")
	}
	if c.runs < 1 || c.streams < 1 || c.randomReads < 1 || c.gdalWindows < 1 || c.reopenOpens < 1 {
		return fmt.Errorf("-runs, -streams, -random-reads, -gdal-windows and -reopen-opens must be >= 1")
	}
	if int64(c.objectSize) < int64(c.randSize)+4096 || c.readSize <= 0 || c.randSize <= 0 {
		return fmt.Errorf("-object-size must exceed -random-size; sizes must be positive")
	}
	if c.shapes, err = parseShapes(c.shapeList); err != nil {
		return err
	}
	for _, f := range splitList(c.seqConc) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("-seq-conc: bad concurrency %q", f)
		}
		c.seqConcs = append(c.seqConcs, n)
	}
	if len(c.seqConcs) == 0 || c.partSize <= 0 || c.firstFiles < 1 || c.scenes < 1 {
		return fmt.Errorf("-seq-conc needs a concurrency; -part-size, -first-files and -scenes must be positive")
	}
	if int64(c.randSize) > coldSize {
		return fmt.Errorf("-random-size must be at most %s (the first-read files' size)", formatSize(coldSize))
	}
	if c.serverCache != "warm" && c.serverCache != "cold" {
		return fmt.Errorf("-server-cache must be warm or cold")
	}
	for _, w := range splitList(c.only) {
		if !slices.Contains(allWorkloads, w) {
			return fmt.Errorf("-only: unknown workload %q (have %s)", w, strings.Join(allWorkloads, ","))
		}
	}
	return nil
}

// run starts the stack, makes the data, runs the workloads and writes the
// report. Cleanups go to cl, which the caller runs.
func run(ctx context.Context, c config, log *slog.Logger, cl *cleaner) error {
	start := time.Now()
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		log.Warn("not root: FUSE mounts and dropping caches may fail")
	}
	sweepStaleMounts(c.dir, log)
	var err error
	b := &bench{cfg: c, log: log, cl: cl, rep: newReport(c, start)}
	if err := b.prepareDirs(); err != nil {
		return err
	}
	// Measure a private copy: a `make build` elsewhere during the run
	// must not swap the binary between mounts.
	if b.cfg.bin, err = copyExecutable(c.bin, filepath.Join(b.tmpDir(), "prescientfs")); err != nil {
		return err
	}
	// The catalog workloads bring their own STAC server: alone, they need
	// neither MinIO nor the big COG.
	if only := splitList(c.only); len(only) != 1 || only[0] != "catalog" {
		st, err := startStack(ctx, c, log, cl)
		if err != nil {
			return err
		}
		b.st = st
	}
	b.rep.Setup = time.Since(start).Round(time.Millisecond).String()
	log.Info("stack and data ready", "elapsed", b.rep.Setup)
	if c.hold {
		if b.st == nil {
			return fmt.Errorf("-hold needs the read-path stack: not with -only catalog")
		}
		return b.holdStack(ctx)
	}

	runErr := b.runWorkloads(ctx)
	b.rep.finish(time.Since(start))
	b.rep.printTable(os.Stdout)
	if err := b.rep.writeJSON(c.jsonPath); err != nil {
		log.Error("write JSON", "err", err)
	} else {
		log.Info("results written", "json", c.jsonPath, "total", b.rep.Total)
	}
	if runErr != nil {
		return runErr
	}
	if n := b.rep.failedWorkloads(); n > 0 {
		return fmt.Errorf("%d workload(s) failed; see the table and %s", n, c.jsonPath)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
