package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/e2e/internal/proc"
	"github.com/prescient/prescientfs/e2e/internal/proxy"
	"github.com/prescient/prescientfs/e2e/internal/stacserver"
	"github.com/prescient/prescientfs/fs/mountinfo"
	"github.com/prescient/prescientfs/stacindex"
)

// bigSize is the object the fault tests read: big enough that reads are
// mid-stream when a fault hits.
const bigSize = 128 << 20

// faultStack is a private stack (MinIO, STAC server, a 128 MiB object in
// bench/big/random.bin) with a TCP proxy in front of MinIO.
type faultStack struct {
	*stack
	s3     *proxy.Proxy
	big    fixtures.AssetFixture
	bigRel []string // path of the big object below the mount
}

// TestFaults injects faults between a mount and its servers. Subtests
// share one stack and leave it healthy; each mounts afresh (a new mount
// has an empty page cache and block cache).
func TestFaults(t *testing.T) {
	fs := newFaultStack(t, fixtures.Options{BigObjectSize: bigSize, LargeItems: -1})

	report := &faultReport{}
	t.Cleanup(func() { report.log(t) })
	for _, tc := range []struct {
		name string
		run  func(*testing.T, *faultStack, *faultReport)
	}{
		{"MinIOKilledMidStream", testMinIOKilledMidStream},
		{"ServerGoneLongerThanTimeout", testServerGoneLongerThanTimeout},
		{"ResetAndTruncateMidRange", testResetAndTruncate},
		{"InterruptedRead", testInterruptedRead},
		{"STACErrors", testSTACErrors},
		{"ObjectReplacedAndDeleted", testObjectReplacedAndDeleted},
		{"SIGTERMUnderLoad", testSIGTERMUnderLoad},
		{"SIGKILLUnderLoad", testSIGKILLUnderLoad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer fs.heal(t)
			tc.run(t, fs, report)
		})
	}
}

// newFaultStack starts a private stack with opts (which must have a
// BigObjectSize) and a proxy in front of its MinIO.
func newFaultStack(t *testing.T, opts fixtures.Options) *faultStack {
	st := newStack(t, opts)
	px, err := proxy.New(strings.TrimPrefix(st.minio.Endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	fs := &faultStack{stack: st, s3: px}
	it := st.cat.Collection(fixtures.BenchCollection).Items[0]
	fs.big = *it.Asset("random")
	fs.bigRel = []string{fixtures.BenchCollection, it.ID, stacindex.AssetFileName("random", fs.big.Href, "application/octet-stream")}
	return fs
}

// heal brings the stack back after a subtest, whatever happened.
func (fs *faultStack) heal(t *testing.T) {
	fs.s3.Clear()
	fs.stac.ClearFaults()
	_ = fs.minio.Resume()
	if !fs.minioUp() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := fs.minio.Restart(ctx); err != nil {
			t.Errorf("restarting MinIO: %v", err)
		}
	}
}

func (fs *faultStack) minioUp() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := fs.minio.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(fs.cat.Bucket)})
	return err == nil
}

// env reads S3 through the proxy. The big object's href is s3://, so it
// is read with the S3 client, through the proxy.
func (fs *faultStack) env(t *testing.T) []string {
	var env []string
	for _, kv := range fs.stack.env(t) {
		if !strings.HasPrefix(kv, "AWS_ENDPOINT_URL_S3=") {
			env = append(env, kv)
		}
	}
	return append(env, "AWS_ENDPOINT_URL_S3="+fs.s3.URL())
}

func (fs *faultStack) mount(t *testing.T, args ...string) *mount {
	return mountT(t, fs.env(t), append([]string{"--stac-url", fs.stac.URL()}, args...)...)
}

// want returns bytes [off, off+n) of an object, read from MinIO directly.
func (fs *faultStack) want(t *testing.T, key string, off, n int64) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := fs.minio.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(fs.cat.Bucket), Key: aws.String(key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))})
	if err != nil {
		t.Fatalf("get %s from MinIO: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// faultReport collects what each fault did, for the log (and the issue).
type faultReport struct {
	mu   sync.Mutex
	rows []string
}

func (r *faultReport) add(fault, outcome string, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, fmt.Sprintf("| %s | %s | %v |", fault, outcome, took.Round(10*time.Millisecond)))
}

func (r *faultReport) log(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Logf("faults injected:\n| fault | outcome | time |\n|---|---|---|\n%s", strings.Join(r.rows, "\n"))
}

// faultStats reads the mount's read-path counters.
func faultStats(t *testing.T, m *mount) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(m.path(".prescientfs-stats"))
	if err != nil {
		t.Fatalf("stats: %v", err)
	}
	var s map[string]int64
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("stats %s: %v", b, err)
	}
	return s
}

// countingHash hashes what it is given and counts it.
type countingHash struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n atomic.Int64
}

func newCountingHash() *countingHash { return &countingHash{h: sha256.New()} }

func (c *countingHash) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return c.h.Write(p)
}

func (c *countingHash) hex() string { return hex.EncodeToString(c.h.Sum(nil)) }

// hashFile reads the file from start to end in 1 MiB reads.
func hashFile(p string, w io.Writer) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(w, f, make([]byte, 1<<20))
	return err
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testMinIOKilledMidStream: MinIO dies while a file streams and is back
// within 5 s; the read completes with the right bytes.
func testMinIOKilledMidStream(t *testing.T, fs *faultStack, rep *faultReport) {
	m := fs.mount(t, "--io-timeout", "15s")
	fs.s3.SetRate(6 << 20) // per connection: the stream is mid-flight when MinIO dies
	h := newCountingHash()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- hashFile(m.path(fs.bigRel...), h) }()
	waitUntil(t, 30*time.Second, "24 MiB read", func() bool { return h.n.Load() >= 24<<20 })
	at := h.n.Load()
	fs.minio.Kill()
	killed := time.Now()
	time.Sleep(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fs.minio.Restart(ctx); err != nil {
		t.Fatalf("restart MinIO: %v", err)
	}
	outage := time.Since(killed)
	if outage > 5*time.Second {
		t.Logf("MinIO took %v to come back (want < 5 s)", outage)
	}
	if err := <-done; err != nil {
		t.Fatalf("read across a MinIO restart: %v", err)
	}
	if h.n.Load() != bigSize || h.hex() != fs.big.SHA256 {
		t.Fatalf("read %d bytes, sha256 %s; want %d bytes, %s", h.n.Load(), h.hex(), int64(bigSize), fs.big.SHA256)
	}
	s := faultStats(t, m)
	if s["retries"] == 0 {
		t.Errorf("no retries counted: %v", s)
	}
	rep.add(fmt.Sprintf("MinIO SIGKILLed at %d MiB into a 128 MiB stream, back after %v", at>>20, outage.Round(100*time.Millisecond)),
		fmt.Sprintf("read completed, sha256 matches (%d retries)", s["retries"]), time.Since(start))
}

// testServerGoneLongerThanTimeout: MinIO hung (SIGSTOP), then dead
// (SIGKILL), for longer than --io-timeout: reads fail with EIO within the
// bound, the mount stays usable, and once MinIO is back the same open file
// reads correctly.
func testServerGoneLongerThanTimeout(t *testing.T, fs *faultStack, rep *faultReport) {
	const timeout = 3 * time.Second
	m := fs.mount(t, "--io-timeout", timeout.String())
	f, err := os.Open(m.path(fs.bigRel...))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	key := fs.big.ObjectKey
	checkRead := func(off int64) {
		t.Helper()
		p := make([]byte, 256<<10)
		if _, err := f.ReadAt(p, off); err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if !bytes.Equal(p, fs.want(t, key, off, int64(len(p)))) {
			t.Fatalf("read at %d: wrong bytes", off)
		}
	}
	checkRead(0)
	for _, phase := range []struct {
		name       string
		down, back func() error
		off        int64
	}{
		{"hung (SIGSTOP)", fs.minio.Pause, fs.minio.Resume, 100 << 20},
		{"dead (SIGKILL)", func() error { fs.minio.Kill(); return nil }, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return fs.minio.Restart(ctx)
		}, 60 << 20},
	} {
		if err := phase.down(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := f.ReadAt(make([]byte, 256<<10), phase.off)
		took := time.Since(start)
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("%s: read: %v, want EIO", phase.name, err)
		}
		if took > timeout+2*time.Second {
			t.Errorf("%s: EIO after %v, --io-timeout %v", phase.name, took, timeout)
		}
		// The mount stays usable: the catalog side still answers.
		lsStart := time.Now()
		if names := readNames(t, m.path(fixtures.BenchCollection)); len(names) == 0 || time.Since(lsStart) > 2*time.Second {
			t.Errorf("%s: listing during the outage: %v in %v", phase.name, names, time.Since(lsStart))
		}
		time.Sleep(timeout) // gone for longer than the timeout
		if err := phase.back(); err != nil {
			t.Fatal(err)
		}
		checkRead(phase.off)
		rep.add(fmt.Sprintf("MinIO %s for %v, --io-timeout %v", phase.name, time.Since(start).Round(100*time.Millisecond), timeout),
			fmt.Sprintf("read: %v; after MinIO returned the same fd read the right bytes", errnoOf(err)), took)
	}
	if !strings.Contains(readFile(m.log), "errno=EIO") {
		t.Errorf("the EIO is not logged:\n%s", tail(readFile(m.log), 2000))
	}
}

// testResetAndTruncate: connections reset and bodies cut mid-range are
// retried from where they broke; the bytes are right, the short bodies are
// never taken for the end of the file.
func testResetAndTruncate(t *testing.T, fs *faultStack, rep *faultReport) {
	m := fs.mount(t, "--io-timeout", "10s")
	p := m.path(fs.bigRel...)
	key := fs.big.ObjectKey

	// Random reads (through the block cache).
	start := time.Now()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i, cut := range []proxy.Cut{proxy.Truncate, proxy.Reset, proxy.Truncate, proxy.Reset} {
		fs.s3.CutAfter(int64(40<<10+i*7000), cut)
		off := rng.Int64N(bigSize - 1<<20)
		got := make([]byte, 200<<10)
		n, err := f.ReadAt(got, off)
		if err != nil || n != len(got) {
			t.Fatalf("random read at %d with a %v: %d bytes, %v", off, cut, n, err)
		}
		if !bytes.Equal(got, fs.want(t, key, off, int64(len(got)))) {
			t.Fatalf("random read at %d with a cut: wrong bytes", off)
		}
	}
	f.Close()
	if fs.s3.Armed() != 0 {
		t.Fatalf("%d faults did not fire", fs.s3.Armed())
	}
	rep.add("random 200 KiB reads, each with a reset or truncated response 40 KiB in (4 reads)", "bytes right", time.Since(start))

	// A whole-file stream with cuts in four of its parts.
	start = time.Now()
	fired := fs.s3.Fired.Load()
	for i, at := range []int64{5 << 20, 20 << 20, 50 << 20, 80 << 20} {
		cut := proxy.Reset
		if i%2 == 1 {
			cut = proxy.Truncate
		}
		fs.s3.CutAfter(at, cut)
	}
	h := newCountingHash()
	if err := hashFile(p, h); err != nil {
		t.Fatalf("stream with resets and truncations: %v", err)
	}
	if h.n.Load() != bigSize || h.hex() != fs.big.SHA256 {
		t.Fatalf("stream: %d bytes, sha256 %s; want %d, %s", h.n.Load(), h.hex(), int64(bigSize), fs.big.SHA256)
	}
	if n := fs.s3.Fired.Load() - fired; n != 4 {
		t.Errorf("%d of 4 cuts fired", n)
	}
	s := faultStats(t, m)
	if s["retries"] < 8 {
		t.Errorf("stats %v: want a retry per cut", s)
	}
	rep.add("128 MiB stream with 2 resets and 2 truncated bodies mid-part", fmt.Sprintf("sha256 matches, full length (%d retries in all)", s["retries"]), time.Since(start))
}

// testInterruptedRead: Ctrl-C on a cat stuck on a hung server returns at
// once (FUSE INTERRUPT cancels the read), long before --io-timeout.
func testInterruptedRead(t *testing.T, fs *faultStack, rep *faultReport) {
	m := fs.mount(t, "--io-timeout", "60s")
	fs.s3.SetRate(1 << 20)
	cat := exec.Command("cat", m.path(fs.bigRel...))
	cat.Stdout = io.Discard
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cat.Wait() }()
	time.Sleep(1500 * time.Millisecond) // reading, slowly
	fs.s3.Stall()
	time.Sleep(time.Second) // now stuck in read(2)
	select {
	case err := <-exited:
		t.Fatalf("cat ended before the interrupt: %v", err)
	default:
	}
	start := time.Now()
	cat.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cat.Process.Kill()
		t.Fatal("cat still stuck 10 s after SIGINT")
	}
	took := time.Since(start)
	if took > 2*time.Second {
		t.Errorf("cat took %v to end after SIGINT", took)
	}
	fs.s3.Resume()
	fs.s3.SetRate(0)
	// The mount is fine afterwards.
	f, err := os.Open(m.path(fs.bigRel...))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, 64<<10)
	if _, err := f.ReadAt(got, 90<<20); err != nil || !bytes.Equal(got, fs.want(t, fs.big.ObjectKey, 90<<20, 64<<10)) {
		t.Fatalf("read after the interrupt: %v", err)
	}
	rep.add("SIGINT to `cat` blocked on a stalled S3 connection (--io-timeout 60s)", "cat exited", took)
}

// testSTACErrors: item pages answering 500 or 429 + Retry-After are
// retried and the listing completes; a persistent failure serves the
// cached listing (stale while erroring) and gives EIO with a clear log
// where nothing is cached; a hung catalog gives EIO within the bound.
func testSTACErrors(t *testing.T, fs *faultStack, rep *faultReport) {
	const ttl = time.Second
	m := mountT(t, fs.stack.env(t), "--stac-url", fs.stac.URL(), "--metadata-ttl", ttl.String(), "--io-timeout", "4s")
	bench := "/stac/collections/" + fixtures.BenchCollection + "/items"
	statuses := func(prefix string) (fails int) {
		for _, r := range fs.stac.Requests() {
			if strings.HasPrefix(r.Path, prefix) && r.Status >= 429 {
				fails++
			}
		}
		return fails
	}
	list := func() time.Duration {
		t.Helper()
		start := time.Now()
		if names := readNames(t, m.path(fixtures.BenchCollection)); !contains(names, "big") {
			t.Fatalf("bench lists %v", names)
		}
		return time.Since(start)
	}

	fs.stac.ResetRequests()
	fs.stac.FailNext(bench, 2, 500, "")
	took := list()
	if n := statuses(bench); n != 2 {
		t.Errorf("%d failed item requests, want 2", n)
	}
	rep.add("STAC item page: 500, 500, then 200", "listing complete", took)

	// An expired listing is served at once and refreshed behind it; the
	// refresh honours Retry-After.
	time.Sleep(ttl + 200*time.Millisecond)
	fs.stac.ResetRequests()
	fs.stac.FailNext(bench, 1, 429, "1")
	list()
	var pages []stacserver.Recorded
	waitUntil(t, 20*time.Second, "the refresh to retry after its 429", func() bool {
		pages = pages[:0]
		for _, r := range fs.stac.Requests() {
			if r.Path == bench { // item pages, not items/{id}
				pages = append(pages, r)
			}
		}
		return len(pages) >= 2 && pages[1].Status == 200
	})
	gap := pages[1].Time.Sub(pages[0].Time)
	if pages[0].Status != 429 || gap < time.Second {
		t.Errorf("429 with Retry-After: 1: status %d, retried after %v", pages[0].Status, gap)
	}
	rep.add("STAC item page: 429 Retry-After: 1, then 200", "listing refreshed after the wait", gap)

	// Persistent failure.
	time.Sleep(ttl + 200*time.Millisecond)
	fs.stac.AddFault(stacserver.Fault{Prefix: "/stac/collections", Status: 500})
	took = list() // cached, served stale
	if took > 3*time.Second {
		t.Errorf("the cached listing took %v to be served", took)
	}
	waitUntil(t, 10*time.Second, "the failed refresh logged", func() bool {
		return strings.Contains(readFile(m.log), "catalog refresh failed; serving the cached listing")
	})
	rep.add("STAC answering 500 to everything, listing cached (TTL expired)", "cached listing served, warning logged", took)
	hostile := m.path(stacindex.SafeName(fixtures.HostileCollection))
	start := time.Now()
	_, err := os.ReadDir(hostile)
	took = time.Since(start)
	if !errors.Is(err, syscall.EIO) || took > 8*time.Second {
		t.Errorf("listing a collection never loaded while STAC fails: %v after %v, want EIO", err, took)
	}
	if log := readFile(m.log); !strings.Contains(log, "readdir failed") || !strings.Contains(log, "HTTP 500") || !strings.Contains(log, "errno=EIO") {
		t.Errorf("the failure is not logged clearly:\n%s", tail(log, 2000))
	}
	rep.add("STAC answering 500 to everything, listing not cached", fmt.Sprintf("%v, `readdir failed ... HTTP 500 (after N attempts)` logged", errnoOf(err)), took)

	// A hung catalog.
	fs.stac.ClearFaults()
	fs.stac.SetDelay("/stac/collections/"+fixtures.HostileCollection, time.Minute)
	time.Sleep(ttl + 200*time.Millisecond) // the kernel's negative/attr caches
	start = time.Now()
	_, err = os.ReadDir(hostile)
	took = time.Since(start)
	if !errors.Is(err, syscall.EIO) || took > 9*time.Second {
		t.Errorf("listing from a hung catalog: %v after %v, want EIO within 2 × --io-timeout", err, took)
	}
	rep.add("STAC hanging (no answer), --io-timeout 4s", errnoOf(err).Error(), took)
	fs.stac.ClearFaults()
	time.Sleep(ttl + 200*time.Millisecond)
	if names := readNames(t, hostile); len(names) == 0 {
		t.Error("hostile collection empty once the catalog is back")
	}
}

// testObjectReplacedAndDeleted: an object replaced under an open handle
// gives ESTALE on that handle and new opens read the new bytes; a deleted
// object gives ENOENT on a new open.
func testObjectReplacedAndDeleted(t *testing.T, fs *faultStack, rep *faultReport) {
	const ttl = time.Second
	ctx := context.Background()
	c := fs.minio.Client()
	put := func(key string, data []byte) {
		t.Helper()
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(fs.cat.Bucket), Key: aws.String(key), Body: bytes.NewReader(data)},
			func(o *s3.Options) { o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired })
		if err != nil {
			t.Fatal(err)
		}
	}
	randomData := func(seed uint64, n int) []byte {
		b := make([]byte, n)
		r := rand.New(rand.NewPCG(seed, 99))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	v1, v2 := randomData(1, 16<<20), randomData(2, 16<<20)
	gone := randomData(3, 1<<20)
	put("mutable/replaced.bin", v1)
	put("mutable/deleted.bin", gone)
	fs.stac.SetCatalog(withMutable(t, fs.cat, fs.stac.URL()))
	defer fs.stac.SetCatalog(fs.cat)

	m := mountT(t, fs.stack.env(t), "--stac-url", fs.stac.URL(), "--metadata-ttl", ttl.String())
	p := m.path("mutable", "objects", "replaced.bin")
	f1, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	head := make([]byte, 256<<10)
	if _, err := f1.ReadAt(head, 0); err != nil || !bytes.Equal(head, v1[:len(head)]) {
		t.Fatalf("first read: %v", err)
	}
	start := time.Now()
	put("mutable/replaced.bin", v2)
	_, err = f1.ReadAt(make([]byte, 128<<10), 12<<20) // beyond what the kernel cached
	if !errors.Is(err, syscall.ESTALE) {
		t.Errorf("read of a replaced object on the old handle: %v, want ESTALE", err)
	}
	rep.add("object replaced (PutObject) under an open handle", errnoOf(err).Error()+" on that handle", time.Since(start))

	time.Sleep(ttl + 200*time.Millisecond)
	start = time.Now()
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, v2) {
		t.Errorf("new open after the replacement: %d bytes, %v, new bytes: %v (old head cached: %v)",
			len(got), err, bytes.Equal(got, v2), len(got) >= len(head) && bytes.Equal(got[:len(head)], head))
	}
	rep.add("new open after the replacement", "reads the new bytes (page cache of the old version dropped)", time.Since(start))

	d := m.path("mutable", "objects", "deleted.bin")
	if _, err := os.ReadFile(d); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(fs.cat.Bucket), Key: aws.String("mutable/deleted.bin")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl + 200*time.Millisecond)
	start = time.Now()
	_, err = os.Open(d)
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("open of a deleted object: %v, want ENOENT", err)
	}
	rep.add("object deleted, then opened (after the metadata TTL)", errnoOf(err).Error(), time.Since(start))
}

// withMutable returns cat plus a collection "mutable" with one item
// "objects" whose assets (no file:size, so sizes come from HEAD) are
// mutable/replaced.bin and mutable/deleted.bin.
func withMutable(t *testing.T, cat *fixtures.Catalog, stacURL string) *fixtures.Catalog {
	t.Helper()
	bucket := cat.Bucket
	assets := map[string]any{}
	var fx []fixtures.AssetFixture
	for _, k := range []string{"replaced", "deleted"} {
		href := "s3://" + bucket + "/mutable/" + k + ".bin"
		assets[k] = map[string]any{"href": href, "type": "application/octet-stream", "roles": []string{"data"}}
		fx = append(fx, fixtures.AssetFixture{Key: k, Href: href, Servable: true, Bucket: bucket, ObjectKey: "mutable/" + k + ".bin"})
	}
	item := map[string]any{
		"type": "Feature", "stac_version": "1.0.0", "stac_extensions": []string{}, "id": "objects", "collection": "mutable",
		"geometry":   map[string]any{"type": "Point", "coordinates": []float64{12, 45}},
		"bbox":       []float64{12, 45, 12, 45},
		"properties": map[string]any{"datetime": "2024-05-01T00:00:00Z"},
		"links": []map[string]string{
			{"rel": "self", "href": fixtures.ItemURL(stacURL, "mutable", "objects")},
			{"rel": "collection", "href": fixtures.CollectionURL(stacURL, "mutable")},
			{"rel": "root", "href": stacURL},
		},
		"assets": assets,
	}
	coll := map[string]any{
		"type": "Collection", "stac_version": "1.0.0", "id": "mutable", "description": "objects that change", "license": "proprietary",
		"extent": map[string]any{"spatial": map[string]any{"bbox": [][]float64{{-180, -90, 180, 90}}},
			"temporal": map[string]any{"interval": [][]any{{"2024-01-01T00:00:00Z", nil}}}},
		"links": []map[string]string{
			{"rel": "self", "href": fixtures.CollectionURL(stacURL, "mutable")},
			{"rel": "items", "href": fixtures.CollectionURL(stacURL, "mutable") + "/items"},
			{"rel": "root", "href": stacURL},
		},
	}
	ij, err := json.Marshal(item)
	if err != nil {
		t.Fatal(err)
	}
	cj, err := json.Marshal(coll)
	if err != nil {
		t.Fatal(err)
	}
	out := *cat
	out.Collections = append(append([]fixtures.Collection(nil), cat.Collections...), fixtures.Collection{
		ID: "mutable", JSON: cj, Items: []fixtures.Item{{ID: "objects", JSON: ij, Assets: fx}},
	})
	return &out
}

// readRanges reads n ranges of the big file concurrently, each on its own
// handle; each reader reports its error (nil: all bytes right).
func readRanges(fs *faultStack, m *mount, n int, size int64, check func(off int64, got []byte) bool) []chan error {
	var errs []chan error
	for i := range n {
		ch := make(chan error, 1)
		errs = append(errs, ch)
		go func() {
			f, err := os.Open(m.path(fs.bigRel...))
			if err != nil {
				ch <- err
				return
			}
			defer f.Close()
			off := int64(i) * (bigSize / int64(n))
			buf := make([]byte, size)
			got, err := io.ReadFull(io.NewSectionReader(f, off, size), buf)
			if err != nil {
				ch <- fmt.Errorf("reader %d: %d bytes: %w", i, got, err)
				return
			}
			if check != nil && !check(off, buf) {
				ch <- fmt.Errorf("reader %d: wrong bytes", i)
				return
			}
			ch <- nil
		}()
	}
	return errs
}

// testSIGTERMUnderLoad: SIGTERM while four readers stream: the mount is
// detached at once, the open files finish reading right, then the process
// exits and nothing is left mounted.
func testSIGTERMUnderLoad(t *testing.T, fs *faultStack, rep *faultReport) {
	m := fs.mount(t)
	fs.s3.SetRate(8 << 20)
	const size = 24 << 20
	readers := readRanges(fs, m, 4, size, func(off int64, got []byte) bool {
		return bytes.Equal(got, fs.want(t, fs.big.ObjectKey, off, int64(len(got))))
	})
	time.Sleep(time.Second)
	start := time.Now()
	if err := syscall.Kill(m.pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, ch := range readers {
		if err := <-ch; err != nil {
			t.Errorf("reader after SIGTERM: %v", err)
		}
	}
	if !proc.WaitExit(m.pid, 20*time.Second) {
		t.Fatal("mount process still running 20 s after SIGTERM and the readers closed")
	}
	took := time.Since(start)
	if isMounted(m.dir) {
		t.Fatal("still mounted after SIGTERM")
	}
	if _, err := os.ReadDir(m.dir); err != nil {
		t.Fatalf("mountpoint after SIGTERM: %v", err)
	}
	if log := readFile(m.log); !strings.Contains(log, "unmounted") {
		t.Fatalf("log does not record the unmount:\n%s", tail(log, 2000))
	}
	rep.add("SIGTERM to the mount during 4 concurrent 24 MiB reads", "readers finished with right bytes, process exited, no mount left", took)
}

// testSIGKILLUnderLoad: SIGKILL while readers stream: the readers fail at
// once (no hang), `prescientfs unmount` cleans up, and a new mount at the
// same path works.
func testSIGKILLUnderLoad(t *testing.T, fs *faultStack, rep *faultReport) {
	m := fs.mount(t)
	fs.s3.SetRate(4 << 20)
	readers := readRanges(fs, m, 4, 48<<20, nil)
	time.Sleep(time.Second)
	start := time.Now()
	if err := syscall.Kill(m.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, ch := range readers {
		select {
		case err := <-ch:
			if err == nil {
				t.Error("a reader finished 48 MiB at 4 MiB/s despite the SIGKILL")
			} else if !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
				t.Logf("reader error after SIGKILL: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a reader hangs after the mount process was killed")
		}
	}
	readersDone := time.Since(start)
	proc.WaitExit(m.pid, 10*time.Second)
	fs.s3.SetRate(0)
	if out, err := exec.Command(binPath, "unmount", m.dir).CombinedOutput(); err != nil {
		t.Fatalf("unmount of the dead mount: %v: %s", err, out)
	}
	if isMounted(m.dir) {
		t.Fatal("dead mount still there")
	}
	cmd := exec.Command(binPath, "mount", "--stac-url", fs.stac.URL(), "--log-file", m.log, m.dir)
	cmd.Env = m.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	if mm := pidRE.FindStringSubmatch(string(out)); mm != nil {
		m.pid = atoi(mm[1])
	}
	got := make([]byte, 1<<20)
	f, err := os.Open(m.path(fs.bigRel...))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(got, 7<<20); err != nil || !bytes.Equal(got, fs.want(t, fs.big.ObjectKey, 7<<20, 1<<20)) {
		t.Fatalf("read on the new mount: %v", err)
	}
	rep.add("SIGKILL to the mount during 4 concurrent reads", fmt.Sprintf("readers failed after %v (no hang); unmount + remount at the same path read right", readersDone.Round(10*time.Millisecond)), time.Since(start))
}

func errnoOf(err error) error {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	if err == nil {
		return errors.New("no error")
	}
	return err
}

// TestHardening: read-only, nosuid, nodev always; allow_other only when
// asked, and then with default_permissions; a mountpoint inside the
// mount's own cache directory (or a log file inside the mountpoint) is
// refused.
func TestHardening(t *testing.T) {
	st := sharedStack(t)
	for _, tc := range []struct {
		args       []string
		want, not  []string
		allowOther bool
	}{
		{nil, []string{"ro", "nosuid", "nodev"}, []string{"allow_other"}, false},
		{[]string{"--allow-other"}, []string{"ro", "nosuid", "nodev", "allow_other", "default_permissions"}, nil, true},
	} {
		m := mountT(t, st.env(t), append([]string{"--stac-url", st.stac.URL()}, tc.args...)...)
		opts := mountOptions(t, m.dir)
		for _, o := range tc.want {
			if !opts[o] {
				t.Errorf("%v: mount options %v lack %s", tc.args, opts, o)
			}
		}
		for _, o := range tc.not {
			if opts[o] {
				t.Errorf("%v: mount options %v have %s", tc.args, opts, o)
			}
		}
		exec.Command(binPath, "unmount", m.dir).Run()
	}

	env := st.env(t)
	var cache string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "XDG_CACHE_HOME="); ok {
			cache = v
		}
	}
	inCache := filepath.Join(cache, "prescientfs", "mnt")
	outside := t.TempDir()
	for _, tc := range []struct {
		name, dir, log, want string
	}{
		{"mountpoint in the cache directory", inCache, filepath.Join(t.TempDir(), "m.log"), "inside the cache directory"},
		{"log file in the mountpoint", outside, filepath.Join(outside, "m.log"), "inside the mountpoint"},
	} {
		if err := os.MkdirAll(tc.dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(binPath, "mount", "--stac-url", st.stac.URL(), "--log-file", tc.log, tc.dir)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: %v %s", tc.name, err, out)
		}
		if isMounted(tc.dir) {
			syscall.Unmount(tc.dir, syscall.MNT_DETACH)
			t.Errorf("%s: mounted", tc.name)
		}
	}
}

// mountOptions returns the per-mount and superblock options of dir.
func mountOptions(t *testing.T, dir string) map[string]bool {
	t.Helper()
	m, ok := mountinfo.Find(dir)
	if !ok {
		t.Fatalf("%s not in mountinfo", dir)
	}
	opts := map[string]bool{}
	for _, o := range m.Options {
		opts[o] = true
	}
	return opts
}
