package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/minio"
)

// gdalWorkload: gdal_translate -srcwin of a 1024×1024 window of the big
// COG, cold, from the mount and through GDAL's own /vsis3/, alternating,
// one window position per pair; the outputs must be identical.
func (b *bench) gdalWorkload(ctx context.Context, _ *baselines) error {
	win := min(1024, b.cfg.cogSide)
	name := fmt.Sprintf("gdal_translate -srcwin %d×%d from the COG, median", win, win)
	if _, err := exec.LookPath("gdal_translate"); err != nil {
		b.rep.add(failed("prescientfs", name, err))
		return err
	}
	cog := b.st.cog
	vsis3 := "/vsis3/" + bucket + "/" + cog.Key
	s3Env, localEnv := b.s3Env(), b.localEnv()

	rng := rand.New(rand.NewPCG(4, 0x6764616c))
	var mountMS, s3MS []float64
	for i := range b.cfg.gdalWindows {
		x, y := rng.IntN(b.cfg.cogSide-win+1), rng.IntN(b.cfg.cogSide-win+1)
		srcwin := []string{strconv.Itoa(x), strconv.Itoa(y), strconv.Itoa(win), strconv.Itoa(win)}

		if err := b.coldStart(ctx, cog); err != nil {
			return err
		}
		warmGDAL(ctx)
		dS3, sumS3, err := gdalTranslate(ctx, s3Env, vsis3, srcwin, b.tmpDir())
		if err != nil {
			b.rep.add(failed("prescientfs", name, fmt.Errorf("/vsis3/: %w", err)))
			return err
		}

		b.coldSecond()
		m, err := b.mountPrescient(ctx, fmt.Sprintf("gdal-%d", i+1), false)
		if err != nil {
			b.rep.add(failed("prescientfs", name, err))
			return err
		}
		warmGDAL(ctx)
		dMount, sumMount, err := gdalTranslate(ctx, localEnv, m.path(cog.Rel), srcwin, b.tmpDir())
		if cerr := m.close(); err == nil {
			err = cerr
		}
		if err == nil && sumMount != sumS3 {
			err = fmt.Errorf("window %v: the output from the mount differs from the one from /vsis3/", srcwin)
		}
		if err != nil {
			b.rep.add(failed("prescientfs", name, fmt.Errorf("%w (log %s)", err, m.logPath)))
			return err
		}
		s3MS, mountMS = append(s3MS, ms(dS3)), append(mountMS, ms(dMount))
		b.log.Info("gdal window", "srcwin", strings.Join(srcwin, " "), "mount ms", fmt.Sprintf("%.1f", ms(dMount)), "vsis3 ms", fmt.Sprintf("%.1f", ms(dS3)))
	}
	r := measure("prescientfs", name, "ms", median(mountMS), median(s3MS), "GDAL /vsis3/", tgtGDAL)
	r.Details = map[string]any{"mount_runs_ms": mountMS, "vsis3_runs_ms": s3MS}
	b.rep.add(r)
	return nil
}

// s3Env is GDAL's environment for /vsis3/ at the current shape's S3 (its
// proxy when shaped).
func (b *bench) s3Env() []string {
	return append(cleanEnv(), "HOME="+filepath.Join(b.tmpDir(), "home"),
		"AWS_S3_ENDPOINT="+strings.TrimPrefix(b.endpoint(), "http://"),
		"AWS_HTTPS=NO", "AWS_VIRTUAL_HOSTING=FALSE",
		"AWS_ACCESS_KEY_ID="+b.st.minio.AccessKey, "AWS_SECRET_ACCESS_KEY="+b.st.minio.SecretKey,
		"AWS_REGION="+minio.Region, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
}

// localEnv is GDAL's environment for files below the mount.
func (b *bench) localEnv() []string {
	return append(cleanEnv(), "HOME="+filepath.Join(b.tmpDir(), "home"))
}

// warmGDAL loads GDAL's binaries and libraries back into the page cache
// after a drop, so the timed command measures reading the data.
func warmGDAL(ctx context.Context) {
	_ = exec.CommandContext(ctx, "gdal_translate", "--formats").Run()
}

// gdalTranslate runs gdal_translate -srcwin to a GeoTIFF in dir and
// returns the time it took and the SHA-256 of the output.
func gdalTranslate(ctx context.Context, env []string, src string, srcwin []string, dir string) (time.Duration, string, error) {
	out := filepath.Join(dir, "window.tif")
	_ = os.Remove(out)
	defer os.Remove(out)
	args := append([]string{"-q", "-of", "GTiff", "-srcwin"}, srcwin...)
	cmd := exec.CommandContext(ctx, "gdal_translate", append(args, src, out)...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, "", fmt.Errorf("gdal_translate %s: %v: %s", src, err, bytes.TrimSpace(stderr.Bytes()))
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return 0, "", err
	}
	sum := sha256.Sum256(data)
	return d, hex.EncodeToString(sum[:]), nil
}
