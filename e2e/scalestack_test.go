package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/proc"
	"github.com/prescient/prescientfs/e2e/internal/stacserver"
)

// scaleStack is a STAC test server with generated collections; every item's
// "visual" asset is one static file on the same server, so the request log
// counts catalog and object requests alike. No MinIO is needed.
type scaleStack struct {
	stac      *stacserver.Server
	asset     []byte
	assetSHA  string
	big       stacserver.GenSpec // 10,000,000 items from 2020-01-01, 4,320 a day
	hundredK  stacserver.GenSpec // 100,000 items from 2023-01-01
	small     stacserver.GenSpec // 500 items from 2021-03-01, numberMatched served
	assetPath string
}

// scaleAssetSize is the size of the shared asset (more than the 1 MiB the
// tests read).
const scaleAssetSize = 3 << 20

func newScaleStack(t *testing.T, extra ...stacserver.GenSpec) *scaleStack {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := stacserver.NewT(t, stacserver.Options{Logger: quiet})
	ss := &scaleStack{stac: s, assetPath: "scale/visual.tif"}
	ss.asset = make([]byte, scaleAssetSize)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range ss.asset {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		ss.asset[i] = byte(x)
	}
	sum := sha256.Sum256(ss.asset)
	ss.assetSHA = hex.EncodeToString(sum[:])
	s.SetFile(ss.assetPath, ss.asset)
	href := s.FilesURL() + "/" + ss.assetPath
	asset := func(string) string { return href }
	ss.big = stacserver.GenSpec{ID: "big", Items: 10_000_000, Start: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		Step: stacserver.DayStep, AssetHref: asset, AssetSize: scaleAssetSize}
	ss.hundredK = stacserver.GenSpec{ID: "hundredk", Items: 100_000, Start: time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC),
		Step: stacserver.DayStep, AssetHref: asset, AssetSize: scaleAssetSize}
	ss.small = stacserver.GenSpec{ID: "small", Items: 500, Start: time.Date(2021, 3, 1, 0, 0, 0, 0, time.UTC),
		Step: time.Hour, AssetHref: asset, AssetSize: scaleAssetSize, NumberMatched: true}
	for _, g := range append([]stacserver.GenSpec{ss.big, ss.hundredK, ss.small}, extra...) {
		if g.AssetHref == nil {
			g.AssetHref, g.AssetSize = asset, scaleAssetSize
		}
		s.AddGenerated(g)
	}
	return ss
}

// mount mounts the stack's catalog without request signing.
func (ss *scaleStack) mount(t *testing.T, args ...string) *mount {
	t.Helper()
	return mountT(t, baseEnv(t), append([]string{"--stac-url", ss.stac.URL(), "--no-sign-request"}, args...)...)
}

// requestCounts counts the logged requests by kind.
type requestCounts struct {
	all, catalog, listings, itemByID, files int
	listingPaths                            []string
}

func (ss *scaleStack) counts() requestCounts {
	var c requestCounts
	for _, r := range ss.stac.Requests() {
		c.all++
		switch {
		case strings.HasPrefix(r.Path, "/files/"):
			c.files++
		case strings.HasSuffix(r.Path, "/search") && strings.Contains(r.RawQuery+string(r.Body), "ids"):
			c.catalog++
			c.itemByID++ // a search by ID (what IDs that items/{id} refuses need)
		case strings.HasSuffix(r.Path, "/items") || strings.HasSuffix(r.Path, "/search"):
			c.catalog++
			c.listings++
			if len(c.listingPaths) < 5 {
				c.listingPaths = append(c.listingPaths, r.Method+" "+r.Path+"?"+r.RawQuery)
			}
		case strings.Contains(r.Path, "/items/"):
			c.catalog++
			c.itemByID++
		default:
			c.catalog++
		}
	}
	return c
}

// genIDs returns the IDs of items lo..hi of g.
func genIDs(g stacserver.GenSpec, lo, hi int) []string {
	var ids []string
	for i := lo; i <= hi; i++ {
		ids = append(ids, stacserver.GenItemID(g.ID, i))
	}
	return ids
}

// timedNames lists dir and reports how long it took.
func timedNames(t *testing.T, dir string) ([]string, time.Duration) {
	t.Helper()
	start := time.Now()
	names := readNames(t, dir)
	return names, time.Since(start)
}

// without returns names minus the given ones.
func without(names []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return slices.Contains(drop, n) })
}

// diffNames describes how got differs from want as sets ("" when equal);
// a name listed twice counts as extra.
func diffNames(got, want []string) string {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if slices.Equal(g, w) {
		return ""
	}
	missing, extra := 0, 0
	var first []string
	i, j := 0, 0
	for i < len(g) || j < len(w) {
		switch {
		case j == len(w) || (i < len(g) && g[i] < w[j]):
			extra++
			if len(first) < 3 {
				first = append(first, "extra "+g[i])
			}
			i++
		case i == len(g) || w[j] < g[i]:
			missing++
			if len(first) < 3 {
				first = append(first, "missing "+w[j])
			}
			j++
		default:
			i++
			j++
		}
	}
	return fmt.Sprintf("%s (%d names, %d wanted, %d missing, %d extra)", strings.Join(first, ", "), len(got), len(want), missing, extra)
}

var (
	plainBinOnce sync.Once
	plainBin     string
	plainBinErr  error
)

// withPlainBinary makes the mounts of this test run a binary built without
// -race, whose memory is the product's (the race detector multiplies it).
// Swapping binPath is safe in a test that does not call t.Parallel: the
// package's parallel tests start only after every sequential one ended.
func withPlainBinary(t *testing.T) {
	t.Helper()
	plainBinOnce.Do(func() {
		plainBin = filepath.Join(filepath.Dir(binPath), "prescientfs-norace")
		out, err := exec.Command("go", "build", "-o", plainBin, "../cmd/prescientfs").CombinedOutput()
		if err != nil {
			plainBinErr = fmt.Errorf("building prescientfs without -race: %v\n%s", err, out)
		}
	})
	if plainBinErr != nil {
		t.Fatal(plainBinErr)
	}
	old := binPath
	binPath = plainBin
	t.Cleanup(func() { binPath = old })
}

// filesIn lists the regular files below dir.
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rssOf is the resident set of a process, in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := proc.StatusBytes(pid, "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
