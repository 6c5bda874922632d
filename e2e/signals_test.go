package e2e

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/e2e/internal/stacserver"
	"github.com/prescient/prescientfs/stacindex"
)

// TestSignals: a program that survives a signal never sees a call fail
// because of it, and a program that a signal kills is not held up by a
// read in flight. The catalog and the bucket are 20 ms away (a delay on
// every STAC request, a proxy holding every S3 request), so nearly every
// call is in flight when a signal lands.
func TestSignals(t *testing.T) {
	reader := buildSigreader(t)
	fs := newFaultStack(t, fixtures.Options{LargeItems: 400, BigObjectSize: 32 << 20})

	t.Run("SignalPressure", func(t *testing.T) { testSignalPressure(t, fs, reader) })
	t.Run("DyingReaderNotHeldUp", func(t *testing.T) { testDyingReader(t, fs, reader) })
}

// buildSigreader compiles testdata/sigreader.c (a C reader: raw system
// calls, no EINTR retry) with the C compiler that -race already needs.
func buildSigreader(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sigreader")
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if out, err := exec.Command(cc, "-O2", "-Wall", "-o", bin, "testdata/sigreader.c").CombinedOutput(); err != nil {
		t.Fatalf("building the C reader: %v\n%s", err, out)
	}
	return bin
}

// testSignalPressure: four C readers, each with a SIGALRM every 500 µs,
// stat, open and pread at four offsets 200 files in all (those read with
// S3, through the proxy), none opened before, in a collection never listed. Every call succeeds and every
// byte read is the object's.
func testSignalPressure(t *testing.T, fs *faultStack, reader string) {
	fs.s3.SetLatency(20 * time.Millisecond)
	defer fs.s3.SetLatency(0)
	defer fs.stac.AddFault(stacserver.Fault{Delay: 20 * time.Millisecond})()
	m := fs.mount(t)

	var paths []string
	var want [][]byte
	for _, it := range fs.cat.Collection(fixtures.ManyCollection).Items {
		a := it.Asset("data")
		if !strings.HasPrefix(a.Href, "s3://") {
			continue // http hrefs name MinIO itself, not the proxy
		}
		paths = append(paths, m.path(fixtures.ManyCollection, it.ID, stacindex.AssetFileName(a.Key, a.Href, "application/octet-stream")))
		b, err := os.ReadFile(a.Path)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b)
	}
	if len(paths) < 200 {
		t.Fatalf("%d files, want at least 200", len(paths))
	}

	const procs = 4
	type result struct {
		out []byte
		err error
	}
	results := make([]chan result, procs)
	start := time.Now()
	for p := range procs {
		results[p] = make(chan result, 1)
		var mine []string
		for i := p; i < len(paths); i += procs {
			mine = append(mine, paths[i])
		}
		go func() {
			cmd := exec.Command(reader, append([]string{"pressure", "500"}, mine...)...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				err = fmt.Errorf("%v: %s", err, stderr.Bytes())
			}
			results[p] <- result{out, err}
		}()
	}
	var calls, eintr, failures, signals, reads int
	for p := range procs {
		var r result
		select {
		case r = <-results[p]:
		case <-time.After(4 * time.Minute):
			t.Fatal("a reader under signals did not finish in 4 minutes")
		}
		if r.err != nil {
			t.Fatalf("reader %d: %v", p, r.err)
		}
		sc := bufio.NewScanner(bytes.NewReader(r.out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) >= 3 && f[0] == "R":
				i, off := atoi(f[1])*procs+p, atoi(f[2])
				got := []byte{}
				if len(f) == 4 {
					got, _ = hex.DecodeString(f[3])
				}
				if end := off + len(got); end > len(want[i]) || !bytes.Equal(got, want[i][off:end]) || len(got) == 0 {
					t.Errorf("%s at %d: %d bytes that are not the object's", paths[i], off, len(got))
				}
				reads++
			case len(f) == 4 && f[0] == "E":
				t.Errorf("%s: %s failed: %s", paths[atoi(f[1])*procs+p], f[2], f[3])
			case len(f) == 5 && f[0] == "S":
				calls += kv(f[1])
				eintr += kv(f[2])
				failures += kv(f[3])
				signals += kv(f[4])
			}
		}
	}
	took := time.Since(start)
	t.Logf("%d files, %d calls (%d preads checked) under %d SIGALRMs (every 500 µs) in %v: %d failed, %d with EINTR",
		len(paths), calls, reads, signals, took.Round(time.Millisecond), failures, eintr)
	if failures != 0 || eintr != 0 {
		t.Errorf("%d calls failed (%d EINTR), want 0", failures, eintr)
	}
	if reads != 4*len(paths) {
		t.Errorf("%d preads returned bytes, want %d", reads, 4*len(paths))
	}
	// The mount counts the INTERRUPTs the kernel sent it: the signals
	// really landed while calls were in flight, and none was taken for a
	// dying caller.
	st := faultStats(t, m)
	t.Logf("the mount received %d INTERRUPTs (%d for a dying caller)", st["fuse_interrupts"], st["fuse_interrupts_dying_caller"])
	if st["fuse_interrupts"] < int64(len(paths)) {
		t.Errorf("%d INTERRUPTs for %d files: the pressure was too low to mean anything", st["fuse_interrupts"], len(paths))
	}
	if st["fuse_interrupts_dying_caller"] != 0 {
		t.Errorf("%d requests cancelled as if their caller were dying", st["fuse_interrupts_dying_caller"])
	}
}

func kv(s string) int {
	_, v, _ := strings.Cut(s, "=")
	n, _ := strconv.Atoi(v)
	return n
}

// testDyingReader: a reader blocked in a long read (one synchronous FUSE
// request paced at 128 KiB/s) that is sent SIGKILL, or SIGINT with no
// handler, is gone within 1.5 s; the mount serves the next reader.
func testDyingReader(t *testing.T, fs *faultStack, reader string) {
	m := fs.mount(t, "--io-timeout", "60s")
	path := m.path(fs.bigRel...)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			fs.s3.SetRate(128 << 10)
			defer fs.s3.SetRate(0)
			before := fs.s3.Bytes.Load()
			// 4 MiB at an offset no earlier read touched: 32 s at this pace.
			off := int64(4<<20) * int64(1+sig%8)
			cmd := exec.Command(reader, "direct", path, strconv.FormatInt(off, 10), strconv.Itoa(4<<20))
			var out bytes.Buffer
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			// Blocked in pread once its bytes are flowing.
			waitUntil(t, 30*time.Second, "the read to start", func() bool { return fs.s3.Bytes.Load() > before+64<<10 })
			time.Sleep(200 * time.Millisecond)
			select {
			case err := <-exited:
				t.Fatalf("the reader ended before the signal: %v: %s", err, out.String())
			default:
			}
			sent := time.Now()
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				took := time.Since(sent)
				t.Logf("%v: the reader was gone %v after the signal (%v)", sig, took.Round(time.Millisecond), err)
				if took > 1500*time.Millisecond {
					t.Errorf("%v: the reader took %v to end, want < 1.5 s", sig, took)
				}
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != sig {
					t.Errorf("the reader did not die of %v: %v, output %q", sig, cmd.ProcessState, out.String())
				}
			case <-time.After(40 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("%v: the reader still blocked 40 s after the signal", sig)
			}
		})
	}
	// The mount is unharmed: the next read is right.
	fs.s3.SetRate(0)
	got := make([]byte, 256<<10)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(got, 20<<20); err != nil || !bytes.Equal(got, fs.want(t, fs.big.ObjectKey, 20<<20, 256<<10)) {
		t.Fatalf("read after the killed readers: %v", err)
	}
}
