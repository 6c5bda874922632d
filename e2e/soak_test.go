package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/e2e/internal/minio"
	"github.com/prescient/prescientfs/e2e/internal/proc"
	"github.com/prescient/prescientfs/e2e/internal/proxy"
)

// soakEnv is how long TestSoak reads (a Go duration); soakDefault when
// unset. `make soak` sets it (SOAK=10m).
const (
	soakEnv     = "PRESCIENTFS_SOAK"
	soakDefault = 60 * time.Second
)

// The soak mount's settings: a block cache much smaller than the files
// read (about 50 MB), so reads keep going to the store.
const (
	soakReaders     = 32
	soakManyItems   = 240
	soakMemoryLimit = 64 << 20
	soakCacheSize   = 8 << 20
	// soakHeapHeadroom is what the Go heap may hold beyond the read path's
	// budget (--memory-limit + --cache-size): the mount sets its GOMEMLIMIT
	// to the budget + 64 MiB, and FUSE and HTTP buffers, the tree and the
	// index live there too.
	soakHeapHeadroom = 64 << 20
	// soakRSSOverhead is what the process may use beyond the budget: the
	// heap headroom, the runtime, and the race detector's shadow memory
	// (the e2e binary is built with -race: about 200 MiB idle, 350-440 MiB
	// at peak in 60 s runs with a heap of under 100 MiB).
	soakRSSOverhead = 576 << 20
	// Leftovers tolerated after the run: a connection to the IdP (its
	// token renewals go straight to it, not through a proxy) is 1 to 3
	// goroutines and 1 fd.
	soakGoroutineSlack = 6
	soakFDSlack        = 3
)

// TestSoak: 32 readers on one mount for PRESCIENTFS_SOAK (60 s by default)
// over 250+ files (240 small objects, COGs of 0.5 to 17 MB, an 8 MiB
// object): whole-file sequential reads, random preads, GDAL windows
// (gdal_translate -srcwin) and re-opens, every byte compared with its
// source. Underneath, a service principal's 5 s tokens and the STS
// credentials that end with them are renewed, and MinIO is restarted once,
// mid-run. No read may fail. Afterwards, once the servers have closed the
// idle connections (as a server's idle timeout would), the mount's
// goroutines and open files are back to their level before the run, and
// its Go heap (sampled) and peak RSS stayed within its memory budget plus
// soakHeapHeadroom and soakRSSOverhead.
//
// S3, STS and STAC traffic goes through TCP proxies so the test can close
// idle connections: the mount keeps them 90 s otherwise.
func TestSoak(t *testing.T) {
	dur := soakDefault
	if v := os.Getenv(soakEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("%s=%q: want a duration such as 10m", soakEnv, v)
		}
		dur = d
	}
	if _, err := exec.LookPath("gdal_translate"); err != nil {
		t.Skip("gdal_translate is not installed (apt-get install gdal-bin, or `make deps`)")
	}
	testStart := time.Now()
	var phases []string
	phase := func(name string, since time.Time) time.Time {
		phases = append(phases, fmt.Sprintf("%s %v", name, time.Since(since).Round(100*time.Millisecond)))
		return time.Now()
	}
	a := newAuthStack(t, authStackOptions{TokenLifetime: 5 * time.Second})
	mark := phase("stack", testStart)
	s3p := newProxyT(t, a.minio.Endpoint)
	stsp := newProxyT(t, a.stsURL)
	stacp := newProxyT(t, a.stac.BaseURL())
	s3Endpoint := "https://" + s3p.Addr // MinIO speaks TLS; the proxy forwards bytes

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cat, err := fixtures.Build(ctx, fixtures.Options{
		S3: a.minio.Client(), S3Endpoint: s3Endpoint, Bucket: "prescient-soak",
		STACURL: stacp.URL() + "/stac", WorkDir: fixtureCacheDir(),
		LargeItems: soakManyItems, COG: true, BigCOGSide: 2048, BigObjectSize: 8 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	a.cat = cat
	a.stac.SetCatalog(cat)
	mark = phase("fixtures", mark)
	files := soakFiles(ctx, t, a, a.minio.Client())
	windows := soakWindows(ctx, t, cat)
	mark = phase("sources and windows", mark)

	env := a.env(t, t.TempDir(), append(a.settings(),
		"PRESCIENT_CLIENT_SECRET="+a.clientSecret,
		"PRESCIENT_ENDPOINT_URL="+stacp.URL()+"/",
		"AWS_ENDPOINT_URL_S3="+s3Endpoint,
		"AWS_ENDPOINT_URL_STS="+stsp.URL(),
		"PRESCIENT_PPROF="+freeAddr(t),
	)...)
	m := mountIn(t, "", env, "--metadata-ttl", "5s", "--metrics-addr", "127.0.0.1:0",
		"--memory-limit", strconv.Itoa(soakMemoryLimit>>20)+"MiB", "--cache-size", strconv.Itoa(soakCacheSize>>20)+"MiB")
	mark = phase("mount", mark)
	sub := metricsURLRE.FindStringSubmatch(readFile(m.log))
	if sub == nil {
		t.Fatalf("the log does not say where metrics are served:\n%s", readFile(m.log))
	}
	metricsURL := sub[1]
	pprofURL := "http://" + envValue(env, "PRESCIENT_PPROF") + "/debug/pprof/goroutine?debug=1"
	proxies := []*proxy.Proxy{s3p, stsp, stacp}

	// The level before the run: the smallest and the largest file read
	// (pools, caches and the index exist), then the idle connections closed.
	for _, f := range []*soakFile{files[0], files[len(files)-1]} {
		if err := soakSeq(m, f); err != nil {
			t.Fatalf("read before the run: %v", err)
		}
	}
	before := settle(t, m.pid, metricsURL, proxies, nil, 0)
	first := scrape(t, metricsURL)

	phase("level before", mark)
	setupTook := time.Since(testStart)
	s := &soakRun{m: m, files: files, windows: windows, gdalSlots: make(chan struct{}, 4), tmp: t.TempDir(), large: largeFiles(files)}
	start := time.Now()
	end := start.Add(dur)
	var wg sync.WaitGroup
	for i := range soakReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.reader(rand.New(rand.NewPCG(uint64(i), uint64(start.UnixNano()))), end)
		}()
	}

	// The Go heap in use, sampled every second (the budget bounds it; RSS
	// adds the runtime's and the race detector's own memory).
	var heapPeak atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if v, err := metricFromURL(metricsURL, "go_memstats_heap_inuse_bytes"); err == nil && int64(v) > heapPeak.Load() {
				heapPeak.Store(int64(v))
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()

	// MinIO restarted once, at 40% of the run.
	var restartTook time.Duration
	timer := time.NewTimer(time.Until(start.Add(dur * 2 / 5)))
	<-timer.C
	s.outageStart.Store(time.Now().UnixNano())
	// As behind a load balancer with a readiness check: no connection
	// reaches MinIO from the moment it stops until its STS accepts a web
	// identity again. MinIO answers /minio/health/live a second or two
	// before it has loaded its OpenID roles; in that gap its STS answers
	// 400 InvalidParameterValue "RoleARN ... is not defined", which the
	// mount takes as final and fails the reads waiting for credentials
	// (EIO). Without the gate, this test fails that way.
	s3p.SetDown(true)
	stsp.SetDown(true)
	s3Conns, stsConns := s3p.Conns.Load(), stsp.Conns.Load()
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer rcancel()
	if err := a.minio.Restart(rctx); err != nil {
		t.Errorf("MinIO restart: %v\n%s", err, a.minio.Output())
	}
	live := time.Now()
	if err := waitSTS(rctx, a); err != nil {
		t.Errorf("MinIO's STS after the restart: %v\n%s", err, a.minio.Output())
	}
	// The gate stays down until the mount has also met it: a connection
	// it opened while MinIO was away (each reset at once) shows it kept
	// trying. A request whose connection broke when MinIO stopped retries
	// after a backoff (the STS client's is up to 2 s) that may outlast a
	// fast restart, so ending the outage as soon as STS is ready would
	// let that retry pass untested, 1 CI run in 10. 20 s bounds the wait:
	// with 32 readers, a mount that opens no connection for that long has
	// stopped trying, which is the failure this checks for.
	refused := func() (int64, int64) { return s3p.Conns.Load() - s3Conns, stsp.Conns.Load() - stsConns }
	for deadline := time.Unix(0, s.outageStart.Load()).Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if a, b := refused(); a+b > 0 {
			break
		}
	}
	s3Refused, stsRefused := refused()
	s3p.SetDown(false)
	stsp.SetDown(false)
	s.outageEnd.Store(time.Now().UnixNano())
	restartTook = live.Sub(time.Unix(0, s.outageStart.Load()))
	outage := time.Duration(s.outageEnd.Load() - s.outageStart.Load())

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(end) + 3*time.Minute):
		t.Fatalf("readers still busy 3 min after the end of the run: %s\ngoroutines of the mount:\n%s", s.busy(), tail(get(pprofURL), 20000))
	}
	ran := time.Since(start)
	close(stopSampling)
	<-sampled
	last := scrape(t, metricsURL)
	after := settle(t, m.pid, metricsURL, proxies, &before, 60*time.Second)
	hwm, err := proc.StatusBytes(m.pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	moved := func(series string) float64 { return metricValue(t, last, series) - metricValue(t, first, series) }
	budget := int64(soakMemoryLimit + soakCacheSize)

	var big int
	for _, f := range files {
		if f.size >= 1<<20 {
			big++
		}
	}
	t.Logf(`soak figures:
  duration             %v (PRESCIENTFS_SOAK=%v)
  readers              %d
  files                %d (%d of 1 MiB or more; %d GDAL windows)
  bytes checked        %d (%.1f MiB/s)
  reads by kind        sequential %d, random pread %d (%d preads), GDAL window %d, re-open %d (%d opens)
  slowest read         sequential %v, random pread %v, GDAL window %v, re-open %v
  failed reads         %d
  MinIO restart        %v until live, %v until the gate opened (its STS ready, the mount met the outage)
  reads across it      %d (in flight from its start to its end); connections refused meanwhile: S3 %d, STS %d
  token renewals       %v (failures %v)
  credential renewals  %v (failures %v)
  goroutines           %d before, %d after
  open fds             %d before, %d after
  peak RSS (VmHWM)     %.1f MiB (budget %d MiB + overhead %d MiB = %d MiB; RSS before the run %.1f MiB)
  peak Go heap in use  %.1f MiB (sampled every second; budget + headroom %d MiB)
  test time            setup %v (%s), run %v (the last reads ended %v after the deadline), checks after %v`,
		ran.Round(time.Second), dur, soakReaders, len(files), big, len(windows),
		s.bytes.Load(), float64(s.bytes.Load())/(1<<20)/ran.Seconds(),
		s.ops[opSeq].Load(), s.ops[opPread].Load(), s.preads.Load(), s.ops[opGDAL].Load(), s.ops[opReopen].Load(), s.opens.Load(),
		s.slowest[opSeq].Round(time.Millisecond), s.slowest[opPread].Round(time.Millisecond), s.slowest[opGDAL].Round(time.Millisecond), s.slowest[opReopen].Round(time.Millisecond),
		s.failed.Load(), restartTook.Round(time.Millisecond), outage.Round(time.Millisecond), s.acrossOutage.Load(), s3Refused, stsRefused,
		moved("prescientfs_token_renewals_total"), moved("prescientfs_token_renewal_failures_total"),
		moved("prescientfs_credential_renewals_total"), moved("prescientfs_credential_renewal_failures_total"),
		before.goroutines, after.goroutines, before.fds, after.fds,
		float64(hwm)/(1<<20), budget>>20, soakRSSOverhead>>20, (budget+soakRSSOverhead)>>20, float64(before.rss)/(1<<20),
		float64(heapPeak.Load())/(1<<20), (budget+soakHeapHeadroom)>>20, setupTook.Round(time.Second), strings.Join(phases, ", "), ran.Round(time.Second), (ran - dur).Round(time.Second), time.Since(start.Add(ran)).Round(time.Second))

	if n := s.failed.Load(); n > 0 {
		t.Errorf("%d reads failed; the first:\n%s", n, strings.Join(s.firstErrors(), "\n"))
	}
	for k := range opKinds {
		if s.ops[k].Load() == 0 {
			t.Errorf("no %s read ran", opNames[k])
		}
	}
	if s.acrossOutage.Load() == 0 {
		t.Error("no read was in flight across the MinIO restart: the restart tested nothing")
	}
	if s3Refused+stsRefused == 0 {
		t.Error("the mount opened no connection to MinIO (S3 or STS) while it restarted: the reads did not meet the outage")
	}
	// 5 s tokens over the run: a renewal every few seconds.
	wantRenewals := float64(dur/(5*time.Second)) / 2
	if v := moved("prescientfs_token_renewals_total"); v < wantRenewals {
		t.Errorf("%v token renewals in %v of 5 s tokens, want %v or more", v, dur, wantRenewals)
	}
	if v := moved("prescientfs_credential_renewals_total"); v < wantRenewals {
		t.Errorf("%v credential renewals in %v of 5 s credentials, want %v or more", v, dur, wantRenewals)
	}
	if after.goroutines > before.goroutines+soakGoroutineSlack || after.fds > before.fds+soakFDSlack {
		t.Errorf("goroutines %d -> %d, open fds %d -> %d after the run and the idle connections closed: a leak\n%s",
			before.goroutines, after.goroutines, before.fds, after.fds, tail(get(pprofURL), 20000))
	}
	if hwm > budget+soakRSSOverhead {
		t.Errorf("peak RSS %.1f MiB, over the budget %d MiB + %d MiB", float64(hwm)/(1<<20), budget>>20, soakRSSOverhead>>20)
	}
	if p := heapPeak.Load(); p > budget+soakHeapHeadroom {
		t.Errorf("peak Go heap in use %.1f MiB, over the budget %d MiB + %d MiB", float64(p)/(1<<20), budget>>20, soakHeapHeadroom>>20)
	}
	if t.Failed() {
		t.Logf("MinIO restarted from %s to %s", time.Unix(0, s.outageStart.Load()).UTC().Format("15:04:05.000"), time.Unix(0, s.outageEnd.Load()).UTC().Format("15:04:05.000"))
	}
}

// waitSTS polls MinIO (directly, not through the proxies) until it
// exchanges a service principal's token for credentials.
func waitSTS(ctx context.Context, a *authStack) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	hc := a.idp.HTTPClient()
	c := sts.New(sts.Options{Region: minio.Region, BaseEndpoint: aws.String(a.minio.Endpoint), HTTPClient: hc,
		Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1})
	for {
		err := func() error {
			resp, err := hc.PostForm(a.idp.TokenEndpoint(), url.Values{"grant_type": {"client_credentials"},
				"client_id": {a.idp.ClientID}, "client_secret": {a.clientSecret}, "scope": {a.idp.ClientID + "/.default"}})
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
				return fmt.Errorf("IdP token: %s %v", resp.Status, err)
			}
			_, err = c.AssumeRoleWithWebIdentity(ctx, &sts.AssumeRoleWithWebIdentityInput{
				RoleArn: aws.String(a.idp.RoleARN()), RoleSessionName: aws.String("soak-probe"), WebIdentityToken: aws.String(tok.AccessToken),
			})
			return err
		}()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// soakFile is one file of the mount and its source bytes.
type soakFile struct {
	rel  string
	data []byte
	size int64
}

// soakFiles lists the servable files of the soak collections with their
// bytes (from the local copies, or from MinIO for the generated big object),
// small files first.
func soakFiles(ctx context.Context, t *testing.T, a *authStack, c *s3.Client) []*soakFile {
	t.Helper()
	var out []*soakFile
	for _, id := range []string{fixtures.ManyCollection, fixtures.SentinelCollection, fixtures.BenchCollection} {
		coll := a.cat.Collection(id)
		byObject := map[string]fixtures.AssetFixture{}
		for _, it := range coll.Items {
			for _, fa := range it.Assets {
				byObject[fa.SHA256] = fa
			}
		}
		for _, as := range a.assets(t, id) {
			fa := byObject[as.sha256]
			var data []byte
			var err error
			if fa.Path != "" {
				data, err = os.ReadFile(fa.Path)
			} else {
				data, err = getObject(ctx, c, fa.Bucket, fa.ObjectKey)
			}
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != as.sha256 {
				t.Fatalf("%s: the source bytes are not the fixture's", as.rel)
			}
			out = append(out, &soakFile{rel: as.rel, data: data, size: as.size})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].size < out[j].size })
	if len(out) < 200 {
		t.Fatalf("%d files, want 200 or more", len(out))
	}
	return out
}

func getObject(ctx context.Context, c *s3.Client, bucket, key string) ([]byte, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// soakWindow is a gdal_translate -srcwin of a COG and the SHA-256 of what
// it writes from the local copy.
type soakWindow struct {
	rel    string
	srcwin [4]int
	sha256 string
}

// soakWindows cuts windows (across tile boundaries and at the edges) from
// the soak's COGs locally.
func soakWindows(ctx context.Context, t *testing.T, cat *fixtures.Catalog) []soakWindow {
	t.Helper()
	var out []soakWindow
	tmp := t.TempDir()
	add := func(coll, item, key string, wins ...[4]int) {
		it := cat.Collection(coll).Item(item)
		fa := it.Asset(key)
		if fa == nil || fa.Path == "" {
			t.Fatalf("no local COG for %s/%s/%s", coll, item, key)
		}
		for _, w := range wins {
			sum, err := gdalWindow(ctx, fa.Path, w, filepath.Join(tmp, "w.tif"))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, soakWindow{rel: filepath.Join(coll, item, key+".tif"), srcwin: w, sha256: sum})
		}
	}
	big := cat.Collection(fixtures.BenchCollection).Items[0].ID
	add(fixtures.BenchCollection, big, "visual", [4]int{400, 400, 300, 300}, [4]int{1792, 1792, 256, 256}, [4]int{0, 1024, 2048, 16})
	sentinel := cat.Collection(fixtures.SentinelCollection).Items
	add(fixtures.SentinelCollection, sentinel[0].ID, "visual", [4]int{100, 100, 200, 200})
	add(fixtures.SentinelCollection, sentinel[1].ID, "B04", [4]int{256, 0, 256, 512})
	return out
}

// gdalWindow runs gdal_translate -srcwin on src into out and returns the
// output's SHA-256.
func gdalWindow(ctx context.Context, src string, w [4]int, out string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "gdal_translate", "-q", "-of", "GTiff", "-srcwin",
		strconv.Itoa(w[0]), strconv.Itoa(w[1]), strconv.Itoa(w[2]), strconv.Itoa(w[3]), src, out)
	cmd.Env = append(os.Environ(), "GDAL_PAM_ENABLED=NO")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("gdal_translate -srcwin %v %s: %v: %s", w, src, err, b)
	}
	data, err := os.ReadFile(out)
	os.Remove(out)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

const (
	opSeq = iota
	opPread
	opGDAL
	opReopen
	opKinds
)

var opNames = [opKinds]string{"sequential", "random pread", "GDAL window", "re-open"}

// soakRun is the state the readers share.
type soakRun struct {
	m         *mount
	files     []*soakFile
	windows   []soakWindow
	gdalSlots chan struct{} // bounds concurrent gdal_translate processes
	tmp       string

	large        []*soakFile
	ops          [opKinds]atomic.Int64
	preads       atomic.Int64
	opens        atomic.Int64
	bytes        atomic.Int64
	failed       atomic.Int64
	acrossOutage atomic.Int64 // reads in flight across the whole MinIO restart
	outageStart  atomic.Int64 // UnixNano when the restart began, 0 before
	outageEnd    atomic.Int64 // UnixNano when MinIO was back, 0 before
	inFlight     sync.Map     // reader -> "op file since"

	mu      sync.Mutex
	errors  []string               // guarded by mu; the first few
	slowest [opKinds]time.Duration // guarded by mu
}

func (s *soakRun) noteLatency(kind int, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slowest[kind] = max(s.slowest[kind], d)
}

func (s *soakRun) reader(rng *rand.Rand, end time.Time) {
	key := new(int)
	for time.Now().Before(end) {
		var kind int
		switch p := rng.IntN(100); {
		case p < 35:
			kind = opSeq
		case p < 70:
			kind = opPread
		case p < 80:
			kind = opGDAL
		default:
			kind = opReopen
		}
		var f *soakFile
		var label string
		switch kind {
		case opGDAL:
			w := s.windows[rng.IntN(len(s.windows))]
			label = fmt.Sprintf("%s -srcwin %v", w.rel, w.srcwin)
		case opPread:
			// Mostly the files of 256 KiB or more.
			f = s.files[rng.IntN(len(s.files))]
			if rng.IntN(5) > 0 {
				f = s.large[rng.IntN(len(s.large))]
			}
			label = f.rel
		default:
			f = s.files[rng.IntN(len(s.files))]
			label = f.rel
		}
		began := time.Now()
		s.inFlight.Store(key, fmt.Sprintf("%s %s since %v", opNames[kind], label, began.Format("15:04:05.000")))
		var err error
		switch kind {
		case opSeq:
			err = soakSeq(s.m, f)
			if err == nil {
				s.bytes.Add(f.size)
			}
		case opPread:
			err = s.pread(rng, f)
		case opGDAL:
			var ran bool
			ran, began, err = s.gdal(rng, end)
			if !ran {
				s.inFlight.Delete(key)
				continue
			}
		case opReopen:
			err = s.reopen(rng, f)
		}
		s.inFlight.Delete(key)
		s.ops[kind].Add(1)
		s.noteLatency(kind, time.Since(began))
		if err != nil {
			s.fail(fmt.Errorf("%s %s (after %v): %w", opNames[kind], label, time.Since(began).Round(time.Millisecond), err))
			continue
		}
		// In flight from before MinIO stopped until after it was back.
		if os, oe := s.outageStart.Load(), s.outageEnd.Load(); os != 0 && oe != 0 && began.UnixNano() <= os {
			s.acrossOutage.Add(1)
		}
	}
}

// largeFiles are the files of 256 KiB or more.
func largeFiles(files []*soakFile) []*soakFile {
	var out []*soakFile
	for _, f := range files {
		if f.size >= 256<<10 {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return files
	}
	return out
}

func (s *soakRun) fail(err error) {
	s.failed.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errors) < 10 {
		s.errors = append(s.errors, err.Error())
	}
}

func (s *soakRun) firstErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errors...)
}

// busy lists the reads in flight.
func (s *soakRun) busy() string {
	var out []string
	s.inFlight.Range(func(_, v any) bool { out = append(out, v.(string)); return true })
	return strings.Join(out, "\n")
}

// soakSeq reads a whole file in 1 MiB reads and compares it with its
// source, then drops it from the page cache.
func soakSeq(m *mount, f *soakFile) error {
	fh, err := os.Open(m.path(f.rel))
	if err != nil {
		return err
	}
	defer fh.Close()
	defer dropCache(fh)
	buf := make([]byte, 1<<20)
	var off int64
	for {
		n, err := fh.Read(buf)
		if n > 0 {
			if off+int64(n) > f.size || !bytes.Equal(buf[:n], f.data[off:off+int64(n)]) {
				return fmt.Errorf("bytes %d-%d differ from the source", off, off+int64(n))
			}
			off += int64(n)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != f.size {
		return fmt.Errorf("read %d bytes of %d", off, f.size)
	}
	return nil
}

// pread makes 8 reads of up to 256 KiB at random offsets of one open file.
func (s *soakRun) pread(rng *rand.Rand, f *soakFile) error {
	fh, err := os.Open(s.m.path(f.rel))
	if err != nil {
		return err
	}
	defer fh.Close()
	defer dropCache(fh)
	buf := make([]byte, 256<<10)
	for range 8 {
		off := rng.Int64N(f.size)
		n := 1 + rng.Int64N(min(int64(len(buf)), f.size-off))
		got, err := fh.ReadAt(buf[:n], off)
		if err != nil && !(err == io.EOF && off+int64(got) == f.size) {
			return fmt.Errorf("pread %d@%d: %w", n, off, err)
		}
		if int64(got) != n || !bytes.Equal(buf[:got], f.data[off:off+n]) {
			return fmt.Errorf("pread %d@%d: %d bytes, not the source's", n, off, got)
		}
		s.preads.Add(1)
		s.bytes.Add(n)
	}
	return nil
}

// reopen opens a file 4 times, each time checking its size and a random
// 4 KiB.
func (s *soakRun) reopen(rng *rand.Rand, f *soakFile) error {
	buf := make([]byte, 4096)
	for range 4 {
		fh, err := os.Open(s.m.path(f.rel))
		if err != nil {
			return err
		}
		s.opens.Add(1)
		fi, err := fh.Stat()
		if err != nil || fi.Size() != f.size {
			fh.Close()
			return fmt.Errorf("stat: size %v (%v), want %d", fi, err, f.size)
		}
		off := rng.Int64N(f.size)
		n := min(int64(len(buf)), f.size-off)
		got, err := fh.ReadAt(buf[:n], off)
		dropCache(fh)
		fh.Close()
		if err != nil && err != io.EOF || int64(got) != n || !bytes.Equal(buf[:got], f.data[off:off+n]) {
			return fmt.Errorf("read %d@%d: %d bytes (%v), not the source's", n, off, got, err)
		}
		s.bytes.Add(n)
	}
	return nil
}

// gdal cuts a window from a mounted COG with gdal_translate and compares
// the output with the local copy's.
// It returns when gdal_translate started (after the wait for a slot), or
// false, having read nothing, when the run ended while it waited.
func (s *soakRun) gdal(rng *rand.Rand, end time.Time) (bool, time.Time, error) {
	w := s.windows[rng.IntN(len(s.windows))]
	s.gdalSlots <- struct{}{}
	defer func() { <-s.gdalSlots }()
	began := time.Now()
	if began.After(end) {
		return false, began, nil
	}
	out := filepath.Join(s.tmp, fmt.Sprintf("w-%d.tif", rng.Int64()))
	sum, err := gdalWindow(context.Background(), s.m.path(w.rel), w.srcwin, out)
	if err != nil {
		return true, began, err
	}
	if sum != w.sha256 {
		return true, began, fmt.Errorf("-srcwin %v: the output differs from the local file's", w.srcwin)
	}
	s.bytes.Add(int64(w.srcwin[2] * w.srcwin[3]))
	return true, began, nil
}

// procLevel is a mount process's goroutines, open fds and RSS.
type procLevel struct {
	goroutines, fds int
	rss             int64
}

// settle closes the idle connections the proxies carry (again on every
// poll: credential renewals open new ones) and polls the mount's level
// every 250 ms, returning the lowest goroutine and fd counts seen over
// settleWindow. With want set it first waits (up to deadline) for a level
// within the slack of want, and returns the last level seen if none comes.
func settle(t *testing.T, pid int, metricsURL string, proxies []*proxy.Proxy, want *procLevel, deadline time.Duration) procLevel {
	t.Helper()
	const settleWindow = 3 * time.Second
	start := time.Now()
	var low procLevel
	var lowSince time.Time // when the window started; zero before
	for {
		for _, p := range proxies {
			p.CutAll(proxy.Truncate)
		}
		cur := level(t, pid, metricsURL)
		within := want == nil || cur.goroutines <= want.goroutines+soakGoroutineSlack && cur.fds <= want.fds+soakFDSlack
		if within && lowSince.IsZero() {
			lowSince, low = time.Now(), cur
		}
		if !lowSince.IsZero() {
			low.goroutines, low.fds, low.rss = min(low.goroutines, cur.goroutines), min(low.fds, cur.fds), cur.rss
			if time.Since(lowSince) >= settleWindow {
				return low
			}
		} else if time.Since(start) >= deadline {
			return cur
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// level reads go_goroutines from the mount's metrics, and its open fds
// and RSS from /proc.
func level(t *testing.T, pid int, metricsURL string) procLevel {
	t.Helper()
	g := metricValue(t, scrapeOnce(t, metricsURL), "go_goroutines")
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	rss, err := proc.StatusBytes(pid, "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	return procLevel{goroutines: int(g), fds: len(ents), rss: rss}
}

// scrapeOnce scrapes on a connection closed afterwards, so the scrape
// leaves no connection (goroutines, fd) in the mount.
func scrapeOnce(t *testing.T, u string) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}, Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape %s: %v %d", u, err, resp.StatusCode)
	}
	return string(b)
}

// metricFromURL scrapes one value (for use off the test goroutine).
func metricFromURL(u, series string) (float64, error) {
	for _, line := range strings.Split(get(u), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no %s in %s", series, u)
}

// get returns a URL's body, or the error as text (for failure messages).
func get(u string) string {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}, Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// newProxyT starts a TCP proxy to the host of a URL, closed at cleanup.
func newProxyT(t *testing.T, target string) *proxy.Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// envValue is the last value of key in env.
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
