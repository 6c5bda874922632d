package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/urfave/cli/v2"

	"github.com/prescient/prescientfs/creds"
	"github.com/prescient/prescientfs/fs"
)

func mountFlags() []cli.Flag {
	return append(authFlags(),
		&cli.StringFlag{Name: "stac-url", EnvVars: []string{"PRESCIENT_STAC_URL"},
			Usage: "STAC API to mount, e.g. https://example.com/stac (default: the Prescient endpoint + \"stac\")"},
		&cli.BoolFlag{Name: "no-sign-request", EnvVars: []string{"PRESCIENT_NO_SIGN_REQUEST"},
			Usage: "read S3 objects anonymously (public buckets) instead of signing with AWS credentials"},
		&cli.StringFlag{Name: "region", EnvVars: []string{"PRESCIENT_S3_REGION"},
			Usage: "S3 region (default: PRESCIENT_AWS_REGION, the AWS config's region, else us-east-1)"},
		&cli.DurationFlag{Name: "metadata-ttl", Value: 5 * time.Minute, EnvVars: []string{"PRESCIENT_METADATA_TTL"},
			Usage: "how long listings, sizes and the kernel's entry/attribute caches are kept"},
		&cli.DurationFlag{Name: "io-timeout", Value: 30 * time.Second, EnvVars: []string{"PRESCIENT_IO_TIMEOUT"},
			Usage: "how long a read or listing waits for the object store or catalog, retries included, before failing with EIO (a read fails after this long without data)"},
		&cli.IntFlag{Name: "page-size", Value: 250, EnvVars: []string{"PRESCIENT_PAGE_SIZE"},
			Usage: "items asked per STAC page (limit), at most 1000"},
		&cli.BoolFlag{Name: "foreground", Aliases: []string{"f"}, EnvVars: []string{"PRESCIENT_FOREGROUND"},
			Usage: "stay attached and log to stderr (systemd, containers, tests); default: serve in the background once mounted"},
		&cli.StringFlag{Name: "log-file", EnvVars: []string{"PRESCIENT_LOG_FILE"},
			Usage: "log file of a background mount (default: $XDG_CACHE_HOME/prescientfs/mount-<name>.log)"},
		&cli.BoolFlag{Name: "debug", EnvVars: []string{"PRESCIENT_DEBUG"},
			Usage: "debug logs, including every FUSE operation"},
		&cli.StringFlag{Name: "memory-limit", Value: "128MiB", EnvVars: []string{"PRESCIENT_MEMORY_LIMIT"},
			Usage: "memory for prefetch buffers, shared by all open files; under pressure windows shrink"},
		&cli.StringFlag{Name: "cache-size", Value: "32MiB", EnvVars: []string{"PRESCIENT_CACHE_SIZE"},
			Usage: "in-memory block cache shared by all opens (GDAL's headers and tiles)"},
		&cli.BoolFlag{Name: "tiff-page-cache", EnvVars: []string{"PRESCIENT_TIFF_PAGE_CACHE"},
			Usage: "let the kernel cache TIFF files (GeoTIFF, COG) and read ahead in them like other files; by default GDAL's reads of them reach the mount as made (direct I/O), so no read carries readahead past a row of tiles"},
		&cli.StringFlag{Name: "cache-dir", EnvVars: []string{"PRESCIENT_CACHE_DIR"},
			Usage: "keep blocks read (of objects with an ETag) in this directory too, for later mounts; safe to delete at any time (default: no disk cache)"},
		&cli.StringFlag{Name: "cache-dir-size", Value: "10GiB", EnvVars: []string{"PRESCIENT_CACHE_DIR_SIZE"},
			Usage: "bound of --cache-dir; the least recently used blocks go first"},
		&cli.StringFlag{Name: "layout", Value: "auto", EnvVars: []string{"PRESCIENT_LAYOUT"},
			Usage: "collection directories: flat (list every item), date (YYYY/MM/DD/<item>) or auto (flat up to --max-listing items, date above); an item is always reachable as <collection>/<item-id>"},
		&cli.IntFlag{Name: "max-listing", Value: 10000, EnvVars: []string{"PRESCIENT_MAX_LISTING"},
			Usage: "with --layout auto, the most items a collection directory lists; larger collections are shown by date"},
		&cli.StringFlag{Name: "search", EnvVars: []string{"PRESCIENT_SEARCH"},
			Usage: "mount only the results of this STAC item search: the query of GET /search (e.g. 'collections=c&bbox=13,52,14,53&datetime=2024-06-01/2024-06-30'), or @FILE with a JSON body for POST /search"},
		&cli.IntFlag{Name: "max-items", EnvVars: []string{"PRESCIENT_MAX_ITEMS"},
			Usage: "with --search, stop after this many results (0: all)"},
		&cli.StringFlag{Name: "index-dir", EnvVars: []string{"PRESCIENT_INDEX_DIR"},
			Usage: "where the persistent index of listings and item documents is kept, one file per catalog and search; safe to delete at any time (default: $XDG_CACHE_HOME/prescientfs/index)"},
		&cli.BoolFlag{Name: "no-index", EnvVars: []string{"PRESCIENT_NO_INDEX"},
			Usage: "keep no index on disk (listings are fetched again on every mount)"},
		&cli.BoolFlag{Name: "allow-other", EnvVars: []string{"PRESCIENT_ALLOW_OTHER"},
			Usage: "let other users read the mount (needs user_allow_other in /etc/fuse.conf unless root)"},
		&cli.StringFlag{Name: "metrics-addr", EnvVars: []string{"PRESCIENT_METRICS_ADDR"},
			Usage: "serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464 (default: off; give a loopback address unless the network is trusted)"},
	)
}

func mountCommand() *cli.Command {
	return &cli.Command{
		Name:      "mount",
		Usage:     "mount the catalog at MOUNTPOINT (returns once the mount is ready)",
		ArgsUsage: "MOUNTPOINT",
		Description: "Mounts the STAC catalog read-only: MOUNTPOINT/<collection>/<item>/<asset>.<ext>, plus\n" +
			"collection.json and item.json as served. Every flag can also be set by the environment\n" +
			"variable shown beside it.",
		Flags:  mountFlags(),
		Action: runMount,
	}
}

func runMount(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("usage: prescientfs mount [flags] MOUNTPOINT", 2)
	}
	dir, err := filepath.Abs(c.Args().First())
	if err != nil {
		return err
	}
	if err := checkMountpoint(dir); err != nil {
		return cli.Exit("prescientfs: "+err.Error(), 1)
	}
	if err := checkNotNested(dir, c.String("log-file"), c.String("cache-dir")); err != nil {
		return cli.Exit("prescientfs: "+err.Error(), 1)
	}
	if c.Duration("io-timeout") <= 0 {
		return cli.Exit("prescientfs: --io-timeout must be positive", 2)
	}
	if _, err := treeOptions(c, nil); err != nil {
		return cli.Exit("prescientfs: "+err.Error(), 2)
	}
	if c.String("index-dir") != "" && !c.Bool("no-index") {
		if err := checkNotNested(dir, "", c.String("index-dir")); err != nil {
			return cli.Exit("prescientfs: "+err.Error(), 1)
		}
	}
	if !c.Bool("foreground") && os.Getenv(readyFDEnv) == "" {
		return daemonize(c, dir)
	}
	log, closeLog, err := mountLogger(c, dir)
	if err != nil {
		return err
	}
	defer closeLog()
	err = serve(c, dir, log)
	if err != nil {
		log.Error("mount failed", "err", err)
		signalReady(err)
		return cli.Exit("prescientfs: "+err.Error(), 1)
	}
	return nil
}

// checkMountpoint: exists, a directory, empty, not already mounted.
func checkMountpoint(dir string) error {
	st, err := os.Stat(dir)
	_, mounted := mountType(dir)
	switch {
	case errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) ||
		(err != nil && !errors.Is(err, os.ErrNotExist) && mounted):
		// A mount whose process died: the kernel answers ENOTCONN or
		// ECONNABORTED, or EIO for a request the death cut short.
		return fmt.Errorf("mountpoint %s is a dead mount: run `prescientfs unmount %s` first", dir, dir)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("mountpoint %s does not exist: create it with `mkdir -p %s`", dir, dir)
	case err != nil:
		return fmt.Errorf("mountpoint %s: %v", dir, err)
	case !st.IsDir():
		return fmt.Errorf("mountpoint %s is not a directory", dir)
	}
	if mounted {
		return fmt.Errorf("mountpoint %s is already mounted: run `prescientfs unmount %s` first", dir, dir)
	}
	f, err := os.Open(dir) // #nosec G304 -- the mountpoint the user named
	if err != nil {
		return fmt.Errorf("mountpoint %s: %v", dir, err)
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("mountpoint %s is not empty", dir)
	}
	return nil
}

// checkNotNested refuses a mountpoint inside the directories the mount
// process itself uses (its cache and default log directory, the session
// store it re-reads, the --cache-dir) or containing them, and a log file
// inside the mountpoint: a process that reads or writes its own mount
// deadlocks.
func checkNotNested(dir, logFile, diskCache string) error {
	var own []struct{ what, path string }
	add := func(what, path string) {
		if path != "" {
			own = append(own, struct{ what, path string }{what, realPath(path)})
		}
	}
	if base, err := os.UserCacheDir(); err == nil {
		add("the cache directory", filepath.Join(base, "prescientfs"))
	}
	if home, err := os.UserHomeDir(); err == nil || os.Getenv(creds.VarConfigDir) != "" {
		add("the session store", creds.NewStore(os.Getenv(creds.VarConfigDir), home).Dir)
	}
	if diskCache != "" {
		if abs, err := filepath.Abs(diskCache); err == nil {
			add("the disk cache (--cache-dir)", abs)
		}
	}
	dir = realPath(dir)
	for _, d := range own {
		switch {
		case within(dir, d.path):
			return fmt.Errorf("mountpoint %s is inside %s (%s): choose a mountpoint elsewhere", dir, d.what, d.path)
		case within(d.path, dir):
			return fmt.Errorf("mountpoint %s contains %s (%s): choose a mountpoint elsewhere", dir, d.what, d.path)
		}
	}
	if logFile != "" {
		if abs, err := filepath.Abs(logFile); err == nil && within(realPath(abs), dir) {
			return fmt.Errorf("log file %s is inside the mountpoint %s: put it elsewhere", abs, dir)
		}
	}
	return nil
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// realPath resolves symlinks in the longest existing prefix of p.
func realPath(p string) string {
	p = filepath.Clean(p)
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	parent := filepath.Dir(p)
	if parent == p {
		return p
	}
	return filepath.Join(realPath(parent), filepath.Base(p))
}

// serve mounts and blocks until the file system is unmounted (by
// `prescientfs unmount`, umount, or SIGINT/SIGTERM).
func serve(c *cli.Context, dir string, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	// Signals are caught from the start: one that arrives while we sign in
	// or mount cancels the setup, and then unmounts as soon as there is a
	// mount, instead of killing the process half-way.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	mounted := make(chan *fuse.Server, 1)
	notify := newNotifier(log)
	go handleSignals(sigs, mounted, cancel, dir, log, notify.Stopping)
	w, err := wire(ctx, c, log)
	if err != nil {
		return err
	}
	defer w.close()
	if addr := c.String("metrics-addr"); addr != "" {
		w.metrics.processMetrics()
		_, stop, err := w.metrics.serve(addr, log)
		if err != nil {
			return fmt.Errorf("--metrics-addr %s: %w", addr, err)
		}
		defer stop()
	}
	// Validate the catalog and build the tree (a search the API rejects
	// fails the mount, with the API's message): nothing is mounted on failure.
	cfg, closeIndex, err := newFSConfig(ctx, c, w, log)
	if err != nil {
		return err
	}
	defer closeIndex()
	srv, err := fs.Mount(dir, cfg, fs.MountOptions{AllowOther: c.Bool("allow-other"), Debug: c.Bool("debug"), FsName: "prescientfs", Observe: w.metrics.observeFUSE})
	if err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	startPprof(log)
	log.Info("mounted", "mountpoint", dir, "catalog", w.client.URL(), "version", version)
	signalReady(nil)
	notify.Ready(dir)

	mounted <- srv
	srv.Wait()
	notify.Stopping()
	w.logStats(log)
	log.Info("unmounted", "mountpoint", dir)
	return nil
}

// handleSignals cancels the setup on SIGINT/SIGTERM, and unmounts once
// (or as soon as) the file system is mounted.
func handleSignals(sigs <-chan os.Signal, mounted <-chan *fuse.Server, cancel context.CancelFunc, dir string, log *slog.Logger, stopping func()) {
	var srv *fuse.Server
	pending := false
	unmount := func() {
		if err := srv.Unmount(); err != nil {
			log.Warn("unmount failed; detaching lazily", "err", err)
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				log.Warn("lazy unmount failed", "mountpoint", dir, "err", err)
			}
		}
	}
	for {
		select {
		case srv = <-mounted:
			if pending {
				unmount()
			}
		case s := <-sigs:
			log.Info("unmounting", "signal", s.String())
			stopping()
			cancel()
			if srv == nil {
				pending = true
				continue
			}
			unmount()
		}
	}
}

func mountLogger(c *cli.Context, dir string) (*slog.Logger, func(), error) {
	level := slog.LevelInfo
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	// A background mount's stderr is its log file (see daemonize).
	var w io.Writer = os.Stderr
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), func() {}, nil
}
