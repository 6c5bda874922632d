package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
)

// QGIS, the mission's first client, reading through the mount.

// requireQGISEnv, when set to anything, makes TestQGIS fail instead of
// skip when PyQGIS is missing. The Makefile and .ci/run set it.
const requireQGISEnv = "PRESCIENTFS_REQUIRE_QGIS"

// qgisSide is the width and height of the COG rendered: 4096 x 4096
// pixels of 10 m, 3 bands, uncompressed, tiles of 512 and overviews
// (about 67 MB).
const qgisSide = 4096

// qgisRenders are the extents rendered, each to 1024 x 1024 pixels: the
// whole image (read from the 1024 x 1024 overview) and a 320 x 320 pixel
// window across four full-resolution tiles (upsampled).
var qgisRenders = []struct{ name, extent string }{
	{"full", "300000,4959080,340960,5000040"},
	{"zoom", "318400,4978000,321600,4981200"},
}

// TestQGIS renders a COG served by the mount with PyQGIS, headless, and
// the same object from a local copy of the file, and the two images are
// equal pixel for pixel. The times of each process's first render are
// logged. A copy of the object with its pixel data changed, uploaded in
// its place, renders differently through a new mount: the comparison can
// see a mount that serves wrong bytes.
func TestQGIS(t *testing.T) {
	python := pyQGIS(t)
	st := newStack(t, fixtures.Options{LargeItems: -1, BigCOGSide: qgisSide})
	coll := st.cat.Collection(fixtures.BenchCollection)
	it := coll.Items[0]
	a := it.Asset("visual")
	rel := filepath.Join(coll.ID, it.ID, "visual.tif")

	local := renderQGIS(t, python, a.Path, "local")
	m := mountT(t, st.env(t), "--stac-url", st.stac.URL())
	mounted := renderQGIS(t, python, m.path(rel), "mount")
	t.Logf("QGIS first render of a %dx%d COG (%d bytes) at 1024x1024: mount %.2f s, local %.2f s "+
		"(layer open: mount %.2f s, local %.2f s; zoomed window next: mount %.2f s, local %.2f s; QGIS start %.2f s)",
		qgisSide, qgisSide, a.Size, mounted.Renders[0].Seconds, local.Renders[0].Seconds,
		mounted.OpenS, local.OpenS, mounted.Renders[1].Seconds, local.Renders[1].Seconds, mounted.InitS)
	for _, r := range qgisRenders {
		// Two blank images would be equal too.
		if c := colours(t, filepath.Join(local.dir, r.name+".png")); c < 1000 {
			t.Errorf("render %q of the local file has %d colours: nothing rendered?", r.name, c)
		}
		if n, total := diffPNG(t, filepath.Join(mounted.dir, r.name+".png"), filepath.Join(local.dir, r.name+".png")); n != 0 {
			t.Errorf("render %q: %d of %d pixels differ between the mount and the local file", r.name, n, total)
		}
	}
	if t.Failed() {
		return
	}

	t.Run("wrong bytes show", func(t *testing.T) {
		// Every byte after the header and IFDs inverted: same size, same
		// structure, other pixels.
		data, err := os.ReadFile(a.Path)
		if err != nil {
			t.Fatal(err)
		}
		for i := 64 << 10; i < len(data); i++ {
			data[i] ^= 0xff
		}
		bad := filepath.Join(t.TempDir(), "inverted.tif")
		if err := os.WriteFile(bad, data, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, _, err := fixtures.UploadFile(ctx, st.minio.Client(), a.Bucket, a.ObjectKey, bad); err != nil {
			t.Fatal(err)
		}
		m2 := mountT(t, st.env(t), "--stac-url", st.stac.URL())
		wrong := renderQGIS(t, python, m2.path(rel), "mutated")
		for _, r := range qgisRenders {
			n, total := diffPNG(t, filepath.Join(wrong.dir, r.name+".png"), filepath.Join(local.dir, r.name+".png"))
			t.Logf("render %q of the changed object: %d of %d pixels differ from the local file's", r.name, n, total)
			if n == 0 {
				t.Errorf("render %q: the changed object renders like the original; the comparison cannot see wrong bytes", r.name)
			}
		}
	})
}

// pyQGIS returns a Python interpreter that imports qgis.core, or skips
// (fails when PRESCIENTFS_REQUIRE_QGIS is set). Debian's python3-qgis is
// for the system interpreter, which may not be the first python3 on PATH.
func pyQGIS(t *testing.T) string {
	t.Helper()
	var tried []string
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	for _, py := range candidates {
		cmd := exec.Command(py, "-c", "import qgis.core")
		cmd.Env = append(os.Environ(), "QT_QPA_PLATFORM=offscreen")
		out, err := cmd.CombinedOutput()
		if err == nil {
			return py
		}
		tried = append(tried, fmt.Sprintf("%s: %v: %s", py, err, tail(strings.TrimSpace(string(out)), 300)))
	}
	msg := "PyQGIS is not installed (apt-get install qgis python3-qgis, or `make deps`):\n" + strings.Join(tried, "\n")
	if os.Getenv(requireQGISEnv) != "" {
		t.Fatalf("%s\n(%s is set: QGIS is required)", msg, requireQGISEnv)
	}
	t.Skipf("%s\n(set %s=1 to make this a failure)", msg, requireQGISEnv)
	return ""
}

// qgisResult is what testdata/qgis_render.py prints, plus where the PNGs are.
type qgisResult struct {
	InitS   float64 `json:"init_s"`
	OpenS   float64 `json:"open_s"`
	Renders []struct {
		Name    string  `json:"name"`
		Seconds float64 `json:"seconds"`
	} `json:"renders"`
	dir string
}

// renderQGIS runs testdata/qgis_render.py on path in a new Python process
// (so its first render is that process's first read of the raster) and
// returns its timings; the PNGs are in the result's dir.
func renderQGIS(t *testing.T, python, path, label string) qgisResult {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("testdata", "qgis_render.py"))
	if err != nil {
		t.Fatal(err)
	}
	res := qgisResult{dir: filepath.Join(t.TempDir(), label)}
	if err := os.Mkdir(res.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{script, path, res.dir}
	for _, r := range qgisRenders {
		args = append(args, r.name+":"+r.extent+":1024x1024")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = t.TempDir()
	runtime := filepath.Join(cmd.Dir, "run") // Qt wants it owner-only
	if err := os.Mkdir(runtime, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd.Env = append(os.Environ(),
		"QT_QPA_PLATFORM=offscreen", "DISPLAY=", "WAYLAND_DISPLAY=",
		"HOME="+cmd.Dir, "XDG_RUNTIME_DIR="+runtime, // QGIS writes its profile under HOME
		"GDAL_PAM_ENABLED=NO", // no .aux.xml beside the local copy, none tried on the mount
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("PyQGIS render of %s (%s): %v\n%s", path, label, err, tail(stderr.String(), 4000))
	}
	if err := json.Unmarshal(lastLine(stdout.Bytes()), &res); err != nil || len(res.Renders) != len(qgisRenders) {
		t.Fatalf("PyQGIS render of %s (%s): output %q: %v\n%s", path, label, stdout.String(), err, tail(stderr.String(), 4000))
	}
	return res
}

func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

// diffPNG decodes two PNGs and counts the pixels whose RGBA differ (all
// of them when the sizes differ).
func diffPNG(t *testing.T, a, b string) (diff, total int) {
	t.Helper()
	ia, ib := decodePNG(t, a), decodePNG(t, b)
	ra, rb := ia.Bounds(), ib.Bounds()
	total = ra.Dx() * ra.Dy()
	if ra != rb {
		t.Errorf("%s is %v, %s is %v", a, ra, b, rb)
		return total, total
	}
	for y := ra.Min.Y; y < ra.Max.Y; y++ {
		for x := ra.Min.X; x < ra.Max.X; x++ {
			r1, g1, b1, a1 := ia.At(x, y).RGBA()
			r2, g2, b2, a2 := ib.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				diff++
			}
		}
	}
	return diff, total
}

// colours counts the distinct colours of a PNG.
func colours(t *testing.T, p string) int {
	t.Helper()
	img := decodePNG(t, p)
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
		}
	}
	return len(seen)
}

func decodePNG(t *testing.T, p string) image.Image {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return img
}
