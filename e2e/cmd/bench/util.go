package main

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/proc"
)

// sizeFlag is a byte count given as 65536, 64KiB, 1MiB or 1GiB.
type sizeFlag int64

func (s *sizeFlag) String() string { return formatSize(int64(*s)) }

func (s *sizeFlag) Set(v string) error {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSuffix(v, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("bad size %q (want e.g. 65536, 64KiB, 1GiB)", v)
	}
	*s = sizeFlag(n * mult)
	return nil
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.FormatInt(n, 10)
}

// cleaner runs cleanups in reverse order of registration, each once, from
// whichever goroutine gets there first (the normal exit path or the
// signal handler).
type cleaner struct {
	log   *slog.Logger
	mu    sync.Mutex
	items []*cleanup
}

type cleanup struct {
	name string
	once sync.Once
	fn   func()
}

func (c *cleanup) do() { c.once.Do(c.fn) }

// add registers fn and returns a function that runs it now (once).
func (cl *cleaner) add(name string, fn func()) func() {
	c := &cleanup{name: name, fn: fn}
	cl.mu.Lock()
	cl.items = append(cl.items, c)
	cl.mu.Unlock()
	return c.do
}

// run runs every pending cleanup, newest first.
func (cl *cleaner) run() {
	for {
		cl.mu.Lock()
		if len(cl.items) == 0 {
			cl.mu.Unlock()
			return
		}
		c := cl.items[len(cl.items)-1]
		cl.items = cl.items[:len(cl.items)-1]
		cl.mu.Unlock()
		cl.log.Debug("cleanup", "what", c.name)
		c.do()
	}
}

// dropCaches writes back dirty pages and drops the page cache, dentries and
// inodes, so the next read comes from disk (MinIO's) and not memory.
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}

// median of xs (0 when empty).
func median(xs []float64) float64 { return percentile(xs, 50) }

// percentile p (0..100) of xs by linear interpolation between closest ranks.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	r := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(r))
	hi := int(math.Ceil(r))
	return s[lo] + (s[hi]-s[lo])*(r-float64(lo))
}

func maxOf(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return slices.Max(xs)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func gibps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return math.NaN()
	}
	return float64(bytes) / float64(1<<30) / d.Seconds()
}

func mib(n int64) float64 { return float64(n) / float64(1<<20) }

// copyExecutable copies src to dst (mode 0755) and returns dst.
func copyExecutable(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return "", err
	}
	return dst, out.Close()
}

// cpuSpan measures the CPU time of pids between start and stop.
type cpuSpan struct {
	pids  []int
	start []float64
}

func startCPU(pids ...int) *cpuSpan {
	c := &cpuSpan{pids: pids}
	for _, p := range pids {
		c.start = append(c.start, proc.CPUSeconds(p))
	}
	return c
}

// perGiB returns each process's CPU seconds since start per GiB of n bytes.
func (c *cpuSpan) perGiB(n int64) []float64 {
	out := make([]float64, len(c.pids))
	for i, p := range c.pids {
		out[i] = (proc.CPUSeconds(p) - c.start[i]) / (float64(n) / (1 << 30))
	}
	return out
}
