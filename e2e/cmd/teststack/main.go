// Command teststack runs the e2e test stack for demos and benchmarks: a
// MinIO server, the STAC API test server and the fixture catalog, all on
// 127.0.0.1. It prints the shell exports a user needs to point prescientfs
// at it (also written to -env-out), writes -ready-file once everything
// serves, and runs until SIGINT or SIGTERM, then stops everything.
//
//	go run ./e2e/cmd/teststack -dir /tmp/stack -env-out /tmp/stack/env.sh -ready-file /tmp/stack/ready
//	. /tmp/stack/env.sh && prescientfs mount ~/prescient
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/e2e/internal/minio"
	"github.com/prescient/prescientfs/e2e/internal/stacserver"
)

type config struct {
	dir           string
	largeItems    int
	envOut        string
	readyFile     string
	cog           bool
	bigCOGSide    int
	bigObjectSize int64
	pageSize      int
	verbose       bool
}

func main() {
	var c config
	flag.StringVar(&c.dir, "dir", "", "work directory (COG fixtures are cached here); a temporary directory when empty")
	flag.IntVar(&c.largeItems, "large-items", 50, "number of items in the many-items collection")
	flag.StringVar(&c.envOut, "env-out", "", "write the shell export lines to this file (mode 0600)")
	flag.StringVar(&c.readyFile, "ready-file", "", "create this file once the stack is ready")
	flag.BoolVar(&c.cog, "cog", true, "make the sentinel-demo collection with GDAL")
	flag.IntVar(&c.bigCOGSide, "big-cog-side", 0, "add a big uncompressed COG of this side to the bench collection (20000 makes >1 GiB)")
	flag.Int64Var(&c.bigObjectSize, "big-object-size", 0, "add a random object of this many bytes to the bench collection")
	flag.IntVar(&c.pageSize, "max-limit", 100, "largest page the STAC server returns")
	flag.BoolVar(&c.verbose, "v", false, "log MinIO output and debug messages")
	flag.Parse()

	level := slog.LevelInfo
	if c.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log, os.Stdout); err != nil {
		log.Error("teststack failed", "err", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, log *slog.Logger, out io.Writer) error {
	for _, p := range []string{c.readyFile, c.envOut} {
		if p != "" {
			_ = os.Remove(p) // never leave a stale marker from an earlier run
		}
	}
	if c.dir == "" {
		dir, err := os.MkdirTemp("", "teststack-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.dir = dir
	} else if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	// MinIO data is per run: root credentials are new every time.
	dataDir, err := os.MkdirTemp(c.dir, "minio-data-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)

	var minioLog io.Writer
	if c.verbose {
		minioLog = os.Stderr
	}
	m, err := minio.Start(ctx, minio.Options{Dir: dataDir, Logger: minioLog})
	if err != nil {
		return err
	}
	defer m.Stop()
	log.Info("minio ready", "endpoint", m.Endpoint)

	s, err := stacserver.New(stacserver.Options{MaxLimit: c.pageSize, Logger: log})
	if err != nil {
		return err
	}
	defer s.Close()

	start := time.Now()
	cat, err := fixtures.Build(ctx, fixtures.Options{
		S3: m.Client(), S3Endpoint: m.Endpoint, STACURL: s.URL(),
		WorkDir: c.dir, LargeItems: c.largeItems, COG: c.cog,
		BigCOGSide: c.bigCOGSide, BigObjectSize: c.bigObjectSize, Logger: log,
	})
	if err != nil {
		return err
	}
	s.SetCatalog(cat)
	log.Info("catalog ready", "url", s.URL(), "collections", len(cat.Collections), "build", time.Since(start).Round(time.Millisecond))

	env := exports(m, s)
	if _, err := io.WriteString(out, env); err != nil {
		return err
	}
	if c.envOut != "" {
		if err := writeAtomic(c.envOut, []byte(env), 0o600); err != nil {
			return fmt.Errorf("write -env-out: %w", err)
		}
	}
	if c.readyFile != "" {
		if err := writeAtomic(c.readyFile, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
			return fmt.Errorf("write -ready-file: %w", err)
		}
		defer os.Remove(c.readyFile)
	}
	log.Info("test stack ready; Ctrl-C to stop", "stac", s.URL(), "bucket", cat.Bucket)

	<-ctx.Done()
	log.Info("stopping")
	if errors.Is(context.Cause(ctx), context.Canceled) {
		return nil
	}
	return context.Cause(ctx)
}

// exports returns the shell lines that point prescientfs (and the AWS CLI,
// GDAL's /vsis3/) at the stack.
func exports(m *minio.Server, s *stacserver.Server) string {
	vars := [][2]string{
		{"AWS_ENDPOINT_URL_S3", m.Endpoint},
		{"AWS_ACCESS_KEY_ID", m.AccessKey},
		{"AWS_SECRET_ACCESS_KEY", m.SecretKey},
		{"AWS_REGION", minio.Region},
		{"AWS_EC2_METADATA_DISABLED", "true"},
		// The anonymous-catalog mode: `prescientfs mount DIR` needs nothing else.
		{"PRESCIENT_STAC_URL", s.URL()},
		{"STAC_URL", s.URL()},
	}
	var b strings.Builder
	for _, v := range vars {
		fmt.Fprintf(&b, "export %s=%s\n", v[0], shellQuote(v[1]))
	}
	return b.String()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".teststack-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
