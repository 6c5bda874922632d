package main

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// rcloneWorkloads runs the sequential, concurrent and random workloads
// through `rclone mount --vfs-cache-mode off` on the same objects, for
// comparison; the baselines are the direct ones of this run (measured here
// when the prescientfs workloads that make them were not run).
func (b *bench) rcloneWorkloads(ctx context.Context, base *baselines) error {
	mt := b.rcloneMounter()
	var errs []error

	objs := b.st.objs[:1]
	name := fmt.Sprintf("sequential %s, %s reads", formatSize(objs[0].Size), formatSize(int64(b.cfg.readSize)))
	direct := directNone
	if math.IsNaN(base.seqBest) {
		direct = directRanged
	}
	res, err := b.throughput(ctx, mt, objs, "rclone-seq", direct, false)
	if err != nil {
		b.rep.add(failed("rclone", name, err))
		errs = append(errs, err)
	} else {
		if math.IsNaN(base.seqBest) {
			_, base.seqBest = res.rangedRow(b.cfg, "rclone", name)
		}
		r := res.row("rclone", name, base.seqBest, nil)
		r.BaselineName = "best direct parallel ranged GETs"
		b.rep.add(r)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	objs = b.st.objs
	name = fmt.Sprintf("%d × sequential %s, aggregate", len(objs), formatSize(objs[0].Size))
	rssName := fmt.Sprintf("peak RSS during %d × %s streams", len(objs), formatSize(objs[0].Size))
	direct = directNone
	if math.IsNaN(base.concBest) {
		direct = directWhole
	}
	res, err = b.throughput(ctx, mt, objs, "rclone-conc", direct, true)
	if err != nil {
		b.rep.add(failed("rclone", name, err))
		errs = append(errs, err)
	} else {
		if math.IsNaN(base.concBest) {
			base.concBest = maxOf(res.direct)
		}
		b.rep.add(res.row("rclone", name, base.concBest, nil), res.rssRow("rclone", rssName, nil))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	p50Name, p90Name, bytesName := randomNames(int64(b.cfg.randSize))
	if err := b.ensureDirectRandom(ctx, base); err != nil {
		b.rep.add(failed("rclone", p50Name, fmt.Errorf("direct: %w", err)))
		return errors.Join(append(errs, err)...)
	}
	if err := b.randomRows(ctx, mt, base, p50Name, p90Name, bytesName, nil, nil); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
