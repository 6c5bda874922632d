package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the table. Mount is the figure through the mount
// under test (prescientfs, or rclone in the rclone rows), Baseline the
// reference measured in the same run, Ratio = Mount / Baseline.
type row struct {
	Shape        string         `json:"shape"` // the S3 shape (see -shape): "loopback", "20ms/50MB"
	Group        string         `json:"group"` // "prescientfs", "rclone" or "proxy" (the shape's own check)
	Workload     string         `json:"workload"`
	Unit         string         `json:"unit"`
	Mount        *float64       `json:"mount"`
	Baseline     *float64       `json:"baseline"`
	BaselineName string         `json:"baseline_name,omitempty"`
	Ratio        *float64       `json:"ratio"`
	Target       string         `json:"target,omitempty"`
	Pass         *bool          `json:"pass,omitempty"`
	Note         string         `json:"note,omitempty"`
	Error        string         `json:"error,omitempty"`
	Details      map[string]any `json:"details,omitempty"`
}

// target is a bound on the ratio or on the mount's own figure.
type target struct {
	text    string
	onRatio bool    // compare Ratio (else Mount)
	atLeast bool    // >= limit (else <=)
	limit   float64 // the bound
}

var (
	tgtSeq      = &target{text: "≥ 0.90×", onRatio: true, atLeast: true, limit: 0.9}
	tgtFirst    = &target{text: "≤ 1.20×", onRatio: true, limit: 1.2}
	tgtFirstReq = &target{text: "1", limit: 1}
	tgtLatency  = &target{text: "≤ 1.50×", onRatio: true, limit: 1.5}
	tgtBytes    = &target{text: "≤ 2 MiB", limit: 2}
	tgtGDAL     = &target{text: "≤ 1.00×", onRatio: true, limit: 1.0}
	tgtRequests = &target{text: "0", limit: 0}
	tgtRSS      = &target{text: "≤ 256 MiB", limit: 256}
)

// measure fills a row: mount/baseline may be NaN for "not measured".
func measure(group, workload, unit string, mount, baseline float64, baselineName string, t *target) row {
	r := row{Group: group, Workload: workload, Unit: unit, BaselineName: baselineName}
	if !math.IsNaN(mount) {
		r.Mount = &mount
	}
	if !math.IsNaN(baseline) {
		r.Baseline = &baseline
	}
	if r.Mount != nil && r.Baseline != nil && baseline != 0 {
		ratio := mount / baseline
		r.Ratio = &ratio
	}
	if t != nil {
		r.Target = t.text
		v := r.Mount
		if t.onRatio {
			v = r.Ratio
		}
		if v != nil {
			ok := *v <= t.limit
			if t.atLeast {
				ok = *v >= t.limit
			}
			r.Pass = &ok
		}
	}
	return r
}

func failed(group, workload string, err error) row {
	return row{Group: group, Workload: workload, Error: err.Error()}
}

type report struct {
	Started       time.Time      `json:"started"`
	Total         string         `json:"total"`
	TotalSeconds  float64        `json:"total_seconds"`
	Setup         string         `json:"setup"`
	Machine       map[string]any `json:"machine"`
	Binary        string         `json:"binary"`
	GitDescribe   string         `json:"git_describe,omitempty"`
	Flags         map[string]any `json:"flags"`
	CachesDropped bool           `json:"caches_dropped"`
	ServerCache   string         `json:"server_cache"`
	Objects       []object       `json:"objects,omitempty"`
	Shapes        []string       `json:"shapes"`
	ShapeTimes    []shapeTime    `json:"shape_times,omitempty"`
	Rows          []row          `json:"rows"`

	shape string // stamped on the rows added
}

// shapeTime is how long one shape's workloads took.
type shapeTime struct {
	Shape   string  `json:"shape"`
	Seconds float64 `json:"seconds"`
}

func newReport(c config, start time.Time) *report {
	r := &report{
		Started:       start.UTC(),
		Binary:        c.bin,
		CachesDropped: c.dropCaches,
		ServerCache:   c.serverCache,
		Machine:       machine(),
		Flags: map[string]any{
			"runs": c.runs, "streams": c.streams, "random_reads": c.randomReads, "count_reads": c.countReads,
			"gdal_windows": c.gdalWindows, "reopen_opens": c.reopenOpens, "cog_side": c.cogSide,
			"tree_items": c.treeItems, "catalog_page_size": c.catPageSize, "object_size": int64(c.objectSize), "read_size": int64(c.readSize),
			"random_size": int64(c.randSize), "mount_flags": c.mountFlags, "only": c.only,
			"rclone": c.rclone, "gdal": c.gdal, "drop_caches": c.dropCaches, "server_cache": c.serverCache,
			"shape": c.shapeList, "seq_conc": c.seqConcs, "part_size": int64(c.partSize), "first_files": c.firstFiles, "scenes": c.scenes,
		},
	}
	for _, sh := range c.shapes {
		r.Shapes = append(r.Shapes, sh.describe())
	}
	if out, err := exec.Command("git", "-C", filepath.Dir(c.bin), "describe", "--always", "--dirty").Output(); err == nil {
		r.GitDescribe = strings.TrimSpace(string(out))
	}
	return r
}

func (r *report) add(rows ...row) {
	for i := range rows {
		if rows[i].Shape == "" {
			rows[i].Shape = r.shape
		}
	}
	r.Rows = append(r.Rows, rows...)
}

func (r *report) finish(d time.Duration) {
	r.Total = d.Round(time.Second).String()
	r.TotalSeconds = d.Seconds()
}

func (r *report) failedWorkloads() int {
	n := 0
	for _, row := range r.Rows {
		if row.Error != "" {
			n++
		}
	}
	return n
}

func machine() map[string]any {
	m := map[string]any{"cpus": runtime.NumCPU(), "goarch": runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu"] = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if v, err := procMeminfoKB("MemTotal"); err == nil {
		m["mem_gib"] = math.Round(float64(v)/float64(1<<30)*10) / 10
	}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		m["kernel"] = strings.TrimSpace(string(out))
	}
	for _, tool := range [][]string{{"gdal_translate", "--version"}, {"rclone", "version"}} {
		if out, err := exec.Command(tool[0], tool[1:]...).Output(); err == nil {
			m[tool[0]] = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
		}
	}
	return m
}

func procMeminfoKB(field string) (int64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var n int64
			_, err := fmt.Sscan(rest, &n)
			return n << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/meminfo", field)
}

func fmtVal(v *float64, unit string) string {
	if v == nil {
		return "n/a"
	}
	switch {
	case unit == "requests" || unit == "entries":
		return fmt.Sprintf("%.0f", *v)
	case *v >= 100:
		return fmt.Sprintf("%.0f %s", *v, unit)
	case *v >= 10:
		return fmt.Sprintf("%.1f %s", *v, unit)
	}
	return fmt.Sprintf("%.2f %s", *v, unit)
}

// printTable writes one table per shape, in the order measured, then one
// footnote per error or note.
func (r *report) printTable(w io.Writer) {
	var shapes []string
	for _, row := range r.Rows {
		if !slices.Contains(shapes, row.Shape) {
			shapes = append(shapes, row.Shape)
		}
	}
	var notes []string
	for i, sh := range shapes {
		if i > 0 {
			fmt.Fprintln(w)
		}
		head := "S3: " + sh
		for _, d := range r.Shapes {
			if strings.HasPrefix(d, sh+" ") || strings.HasPrefix(d, sh+":") {
				head = "S3: " + d
			}
		}
		if st := r.shapeSeconds(sh); st > 0 {
			head += fmt.Sprintf(" [%s]", (time.Duration(st) * time.Second).Round(time.Second))
		}
		fmt.Fprintln(w, head)
		notes = r.printShape(w, sh, notes)
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	dropped := "yes"
	if !r.CachesDropped {
		dropped = "NO"
	}
	fmt.Fprintf(w, "caches dropped before cold runs: %s; MinIO data in cold runs: %s; total time %s (setup %s)\n",
		dropped, r.ServerCache, r.Total, r.Setup)
}

func (r *report) shapeSeconds(sh string) float64 {
	for _, t := range r.ShapeTimes {
		if t.Shape == sh {
			return t.Seconds
		}
	}
	return 0
}

// printShape writes the table of one shape's rows and returns notes with
// its footnotes added.
func (r *report) printShape(w io.Writer, shape string, notes []string) []string {
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\tmount\tbaseline\tratio\ttarget\tpass?")
	fmt.Fprintln(tw, "--------\t-----\t--------\t-----\t------\t-----")
	for _, row := range r.Rows {
		if row.Shape != shape {
			continue
		}
		name := row.Workload
		if row.Group != "" && row.Group != "prescientfs" {
			name = row.Group + ": " + name
		}
		if row.Error != "" || row.Note != "" {
			notes = append(notes, fmt.Sprintf("[%d] %s", len(notes)+1, strings.TrimSpace(row.Error+" "+row.Note)))
			name += fmt.Sprintf(" [%d]", len(notes))
		}
		if row.Error != "" {
			fmt.Fprintf(tw, "%s\tERROR\t\t\t%s\t\n", name, row.Target)
			continue
		}
		base := fmtVal(row.Baseline, row.Unit)
		if row.BaselineName != "" && row.Baseline != nil {
			base += " (" + row.BaselineName + ")"
		}
		ratio := "—"
		if row.Ratio != nil {
			ratio = fmt.Sprintf("%.2f×", *row.Ratio)
		}
		pass := "—"
		if row.Pass != nil {
			pass = map[bool]string{true: "yes", false: "NO"}[*row.Pass]
		}
		target := row.Target
		if target == "" {
			target = "—"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, fmtVal(row.Mount, row.Unit), base, ratio, target, pass)
	}
	tw.Flush()
	return notes
}

func (r *report) writeJSON(path string) error {
	for i := range r.Rows {
		for k, v := range r.Rows[i].Details {
			r.Rows[i].Details[k] = finite(v)
		}
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// finite replaces NaN and infinities, which JSON cannot hold, by null.
func finite(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case []float64:
		out := make([]any, len(x))
		for i, f := range x {
			out[i] = finite(f)
		}
		return out
	}
	return v
}
