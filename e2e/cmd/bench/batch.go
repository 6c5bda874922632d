package main

import (
	"context"
	"fmt"
	"time"
)

// batchWorkload: a batch job's way through the objects, each read once
// front to back, one after another, all through one mount; against the
// same reads with the best concurrency of the seq workload's ranged GETs.
// A single stream starts on a machine whose caches were just dropped; a
// batch job's later files find memory the earlier ones filled.
func (b *bench) batchWorkload(ctx context.Context, base *baselines) error {
	objs := b.st.objs
	name := fmt.Sprintf("%d × sequential %s, one after another", len(objs), formatSize(objs[0].Size))
	conc := base.seqConc
	if conc == 0 {
		conc = b.cfg.seqConcs[len(b.cfg.seqConcs)-1]
	}
	var want int64
	for _, o := range objs {
		want += o.Size
	}
	buf := make([]byte, b.cfg.readSize)
	mt := b.prescientfs()
	var res throughputResult
	for run := 1; run <= b.cfg.runs; run++ {
		if err := b.coldStart(ctx, objs...); err != nil {
			return err
		}
		minioPid := b.st.minio.Pid()
		cpu := startCPU(0, minioPid)
		n, d, err := sequence(objs, func(o object) (int64, error) { return rangedRead(ctx, b.s3(), o, int64(b.cfg.partSize), conc) })
		if err != nil {
			b.rep.add(failed("prescientfs", name, err))
			return fmt.Errorf("direct batch run %d: %w", run, err)
		}
		res.direct = append(res.direct, gibps(n, d))
		res.cpuDirect = append(res.cpuDirect, cpu.perGiB(n))
		b.coldSecond()

		m, err := mt.mount(ctx, fmt.Sprintf("batch-%d", run), false)
		if err != nil {
			return err
		}
		cpu = startCPU(m.pid, 0, minioPid)
		n, d, err = sequence(objs, func(o object) (int64, error) { return streamFile(ctx, mt.path(m, o), buf) })
		cpuPerGiB := cpu.perGiB(n)
		closeErr := m.close()
		if err == nil && n != want {
			err = fmt.Errorf("read %d bytes through the mount, want %d", n, want)
		}
		if err == nil {
			err = closeErr
		}
		if err != nil {
			b.rep.add(failed("prescientfs", name, err))
			return fmt.Errorf("batch run %d: %w (log %s)", run, err, m.logPath)
		}
		res.mount = append(res.mount, gibps(n, d))
		res.cpuMount = append(res.cpuMount, cpuPerGiB)
		b.log.Info("run", "workload", "batch", "run", run, "GiB/s", fmt.Sprintf("%.3f", gibps(n, d)),
			"direct GiB/s", fmt.Sprintf("%.3f", lastOr(res.direct, 0)))
	}
	r := res.row("prescientfs", name, median(res.direct), nil)
	r.BaselineName = fmt.Sprintf("direct: %d × %s ranged GETs, one object after another", conc, formatSize(int64(b.cfg.partSize)))
	b.rep.add(r, res.cpuRow("prescientfs", "CPU per GiB, one after another"))
	return nil
}

// sequence runs fn for each object in turn; it returns the bytes read in
// total and the wall time.
func sequence(objs []object, fn func(o object) (int64, error)) (int64, time.Duration, error) {
	start := time.Now()
	var total int64
	for _, o := range objs {
		n, err := fn(o)
		total += n
		if err != nil {
			return total, time.Since(start), fmt.Errorf("%s: %w", o.Key, err)
		}
	}
	return total, time.Since(start), nil
}
