package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/prescient/prescientfs/stacindex"
)

// treeOptions reads the tree's flags: --layout, --max-listing, --search,
// --max-items and --metadata-ttl (the index is opened by openIndex).
func treeOptions(c *cli.Context, log *slog.Logger) (stacindex.TreeOptions, error) {
	o := stacindex.TreeOptions{TTL: c.Duration("metadata-ttl"), Log: log, MaxListing: c.Int("max-listing"), MaxItems: c.Int("max-items")}
	var err error
	if o.Layout, err = stacindex.ParseLayout(c.String("layout")); err != nil {
		return o, err
	}
	if o.MaxListing <= 0 {
		return o, fmt.Errorf("--max-listing must be positive")
	}
	if o.MaxItems < 0 {
		return o, fmt.Errorf("--max-items must not be negative")
	}
	if s := c.String("search"); s != "" {
		if o.Search, err = stacindex.ParseSearch(s, os.ReadFile); err != nil {
			return o, err
		}
	} else if o.MaxItems > 0 {
		return o, fmt.Errorf("--max-items needs --search")
	}
	return o, nil
}

// openIndex opens the persistent index of this catalog and search: in
// --index-dir (default: the user cache directory's prescientfs/index),
// one file per catalog and search. None with --no-index; a mount that
// cannot have it (another mount of the same catalog holds it, or the
// directory is not writable) runs without it, with a warning.
func openIndex(c *cli.Context, catalogURL string, s *stacindex.Search, log *slog.Logger) (*stacindex.Index, error) {
	if c.Bool("no-index") {
		return nil, nil
	}
	dir := c.String("index-dir")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			log.Warn("no user cache directory; running without an index (set --index-dir)", "err", err)
			return nil, nil
		}
		dir = filepath.Join(base, "prescientfs", "index")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("--index-dir: %w", err)
	}
	path := stacindex.IndexPath(dir, catalogURL, s)
	ix, err := stacindex.OpenIndex(path, log)
	switch {
	case errors.Is(err, stacindex.ErrIndexLocked):
		log.Warn("another mount of this catalog holds the index; running without it", "path", path)
		return nil, nil
	case err != nil:
		log.Warn("cannot open the index; running without it", "path", path, "err", err)
		return nil, nil
	}
	log.Debug("index", "path", path)
	return ix, nil
}
