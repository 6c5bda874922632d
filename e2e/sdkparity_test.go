package e2e

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The scenarios of issue 10: prescientfs works with every deployment the
// Python SDK (v0.4.2) works with. Each test has its own stack
// (authstack_test.go).

// settingsNoRole are a person's settings without PRESCIENT_AWS_ROLE (the
// SDK's default since 0.4): bucket credentials come from the fileproxy.
func (a *authStack) settingsNoRole() []string {
	var out []string
	for _, kv := range a.settings() {
		if !strings.HasPrefix(kv, "PRESCIENT_AWS_ROLE=") && !strings.HasPrefix(kv, "PRESCIENT_AWS_SESSION_DURATION=") {
			out = append(out, kv)
		}
	}
	return out
}

// liveReads reads assets round robin from m for d with two readers and
// returns how many reads succeeded and the failures (at most 10 kept).
func liveReads(m *mount, list []asset, d time.Duration) (int64, int64, []string) {
	var reads, failures atomic.Int64
	var mu sync.Mutex
	var errs []string
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; time.Now().Before(end); i += 2 {
				if err := checkAsset(m, list[i%len(list)], 30*time.Second); err != nil {
					failures.Add(1)
					mu.Lock()
					if len(errs) < 10 {
						errs = append(errs, time.Now().Format("15:04:05.000")+" "+err.Error())
					}
					mu.Unlock()
					if errors.Is(err, errHung) {
						return
					}
					continue
				}
				reads.Add(1)
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return reads.Load(), failures.Load(), errs
}

// TestSDKParityFileproxyBearer: a profile without a role reads assets with
// bucket credentials from {endpoint}fileproxy/credentials, asked with
// Authorization: Bearer <id_token>; under a live reader the 4 s
// credentials and 5 s tokens are renewed many times with no failed read.
func TestSDKParityFileproxyBearer(t *testing.T) {
	t.Parallel()
	const lifetime, run = 5 * time.Second, 30 * time.Second
	a := newAuthStack(t, authStackOptions{TokenLifetime: lifetime})
	env := a.env(t, t.TempDir())
	a.login(t, append(env, a.settingsNoRole()...), "")
	m := mountIn(t, "", env, "--metadata-ttl", "1s")
	reads, failures, errs := liveReads(m, a.assets(t, "many-items"), run)
	m.unmount(t)

	log := readFile(m.log)
	s := credentialStats(t, log)
	t.Logf("fileproxy with a bearer: %s with %s tokens and %s credentials: %d reads, %d failed; "+
		"token_renewals=%s credential_renewals=%s token_failures=%s credential_failures=%s credential_wait_p50=%s credential_wait_max=%s; "+
		"fileproxy bearer calls %d, STS calls %d, STAC requests refused %d",
		run, lifetime, a.fileproxyLifetime, reads, failures, s["token_renewals"], s["credential_renewals"],
		s["token_failures"], s["credential_failures"], s["credential_wait_p50"], s["credential_wait_max"],
		a.fileproxyBearerCalls.Load(), a.stsCalls.Load(), a.rejected.Load())
	if failures > 0 {
		t.Errorf("%d reads failed; first: %s", failures, strings.Join(errs, "\n"))
	}
	if reads < 50 {
		t.Errorf("only %d reads in %s", reads, run)
	}
	if n, _ := strconv.Atoi(s["credential_renewals"]); n < 5 {
		t.Errorf("credential_renewals = %s, want at least 5 over %s of %s credentials", s["credential_renewals"], run, a.fileproxyLifetime)
	}
	if n, _ := strconv.Atoi(s["token_renewals"]); n < 3 {
		t.Errorf("token_renewals = %s, want at least 3 over %s of %s tokens", s["token_renewals"], run, lifetime)
	}
	if c := a.fileproxyBearerCalls.Load(); c < 5 {
		t.Errorf("%d fileproxy calls with a bearer, want renewals", c)
	}
	if c := a.stsCalls.Load(); c != 0 {
		t.Errorf("%d STS calls without a role", c)
	}
	if !strings.Contains(log, "bucket credentials come from the API's fileproxy") {
		t.Error("the mount did not say where bucket credentials come from")
	}
}
