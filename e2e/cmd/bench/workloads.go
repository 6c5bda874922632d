package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// allWorkloads in the order they run (at each shape: shapedWorkloads).
var allWorkloads = []string{"tree", "seq", "conc", "batch", "random", "reopen", "first", "gdalinfo", "gdal", "rclone", "catalog"}

// shapedWorkloads run at every shape; the others on loopback only.
var shapedWorkloads = []string{"seq", "first", "gdalinfo", "gdal"}

// baselines measured by the prescientfs workloads, reused by the rclone rows.
type baselines struct {
	seqBest, concBest, randP50, randP90 float64
	seqConc                             int      // the best concurrency of the seq workload's ranged GETs
	randOffs                            []int64  // offsets of the timed random reads
	randCRC                             []uint32 // CRC-32 of the direct reads there
	randFresh                           bool     // the direct pass just ran (a mount pass may follow at once)
}

func (b *bench) runWorkloads(ctx context.Context) error {
	if b.st != nil {
		b.rep.Objects = append(slices.Clone(b.st.objs), b.st.cog)
	}
	only := splitList(b.cfg.only)
	steps := map[string]func(context.Context, *baselines) error{
		"tree":     b.treeWorkload,
		"seq":      b.seqWorkload,
		"conc":     b.concWorkload,
		"batch":    b.batchWorkload,
		"random":   b.randomWorkload,
		"reopen":   b.reopenWorkload,
		"first":    b.firstReadWorkload,
		"gdalinfo": b.gdalinfoWorkload,
		"gdal":     b.gdalWorkload,
		"rclone":   b.rcloneWorkloads,
		"catalog":  b.catalogWorkloads,
	}
	ran := 0
	for _, sh := range b.cfg.shapes {
		var names []string
		for _, name := range allWorkloads {
			if len(only) > 0 && !slices.Contains(only, name) {
				continue
			}
			if !sh.loopback() && !slices.Contains(shapedWorkloads, name) {
				continue
			}
			if (name == "gdal" || name == "gdalinfo") && !b.cfg.gdal {
				continue
			}
			if name == "rclone" {
				if !b.cfg.rclone {
					continue
				}
				if _, err := exec.LookPath("rclone"); err != nil {
					b.log.Info("rclone is not on PATH; skipping the rclone comparison")
					continue
				}
			}
			names = append(names, name)
		}
		if len(names) == 0 {
			continue
		}
		ran++
		if err := b.runShape(ctx, sh, names, steps); err != nil {
			return err
		}
	}
	if ran == 0 {
		b.log.Warn("no workload runs: -only names only loopback workloads and -shape has no loopback?",
			"only", b.cfg.only, "shape", b.cfg.shapeList, "shaped", strings.Join(shapedWorkloads, ","))
	}
	return nil
}

// runShape runs the named workloads with S3 shaped by sh.
func (b *bench) runShape(ctx context.Context, sh shape, names []string, steps map[string]func(context.Context, *baselines) error) error {
	stop, err := b.useShape(sh)
	if err != nil {
		return err
	}
	defer stop()
	shapeStart := time.Now()
	b.log.Info("shape", "name", sh.name, "workloads", strings.Join(names, ","))
	if b.shapeProxy != nil {
		if err := b.calibrateShape(ctx); err != nil {
			b.log.Error("proxy check failed", "shape", sh.name, "err", err)
		}
	}
	base := &baselines{seqBest: math.NaN(), concBest: math.NaN(), randP50: math.NaN(), randP90: math.NaN()}
	for _, name := range names {
		start := time.Now()
		b.log.Info("workload", "name", name, "shape", sh.name)
		err := steps[name](ctx, base)
		if ctx.Err() != nil {
			return fmt.Errorf("%s (%s): %w", name, sh.name, context.Cause(ctx))
		}
		if err != nil {
			// The step recorded what it could; keep going with the others.
			b.log.Error("workload failed", "name", name, "shape", sh.name, "err", err)
		}
		b.log.Info("workload done", "name", name, "shape", sh.name, "elapsed", time.Since(start).Round(time.Millisecond))
	}
	b.rep.ShapeTimes = append(b.rep.ShapeTimes, shapeTime{Shape: sh.name, Seconds: time.Since(shapeStart).Seconds()})
	return nil
}

// treeWorkload: time from `prescientfs mount` to the first listing of the
// root, then a find over the whole tree (stat of every entry), cold.
func (b *bench) treeWorkload(ctx context.Context, _ *baselines) error {
	if err := b.coldStart(ctx); err != nil {
		return err
	}
	start := time.Now()
	m, err := b.mountPrescient(ctx, "tree", false)
	if err != nil {
		b.rep.add(failed("prescientfs", "mount → first ls of root", err))
		return err
	}
	defer m.close()
	ents, err := os.ReadDir(m.dir)
	lsAt := time.Since(start)
	if err == nil && len(ents) == 0 {
		err = errors.New("the root is empty")
	}
	if err != nil {
		b.rep.add(failed("prescientfs", "mount → first ls of root", err))
		return err
	}
	r := measure("prescientfs", "mount → first ls of root", "ms", ms(lsAt), math.NaN(), "", nil)
	r.Details = map[string]any{"mount_command_ms": ms(m.took), "ls_ms": ms(lsAt - m.took), "root_entries": len(ents)}
	b.rep.add(r)

	// The expected files must be there before anything else is measured.
	for _, o := range append(slices.Clone(b.st.objs), b.st.cog) {
		fi, err := os.Stat(m.path(o.Rel))
		if err == nil && fi.Size() != o.Size {
			err = fmt.Errorf("%s has size %d, want %d", o.Rel, fi.Size(), o.Size)
		}
		if err != nil {
			b.rep.add(failed("prescientfs", "find over the tree", err))
			return err
		}
	}

	findStart := time.Now()
	n := 0
	err = filepath.WalkDir(m.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if _, err := d.Info(); err != nil { // lstat, as find -ls does
			return err
		}
		n++
		return nil
	})
	took := time.Since(findStart)
	if err != nil {
		b.rep.add(failed("prescientfs", "find over the tree", err))
		return err
	}
	r = measure("prescientfs", fmt.Sprintf("find over the tree (%d entries)", n), "ms", ms(took), math.NaN(), "", nil)
	r.Details = map[string]any{"entries": n, "tree_items": b.cfg.treeItems}
	b.rep.add(r)
	return m.close()
}
