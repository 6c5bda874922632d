package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/minio"
)

// The sign-in scenarios of issue 3, through the real binary, a real FUSE
// mount, the test IdP, MinIO's STS and a STAC server that checks every
// bearer's signature and expiry. Each test has its own stack (see
// authstack_test.go); they run in parallel.

// TestAuthLoginMountStatusLogout: `auth login` by device code, then a mount
// configured by the saved profile alone; `auth status` and
// `auth print-access-token`; `auth logout` makes mount refuse.
func TestAuthLoginMountStatusLogout(t *testing.T) {
	t.Parallel()
	a := newAuthStack(t, authStackOptions{})
	cfg := t.TempDir()
	env := a.env(t, cfg)

	out := a.login(t, append(env, a.settings()...), "")
	if !strings.Contains(out, "signed in as alice@example.test") {
		t.Errorf("login output does not name the account:\n%s", out)
	}
	for _, p := range []string{
		filepath.Join(cfg, "default", "tokens.json"),
		filepath.Join(cfg, "default", "settings.json"),
		filepath.Join(cfg, "prescient.json"),
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
	}

	// The saved profile alone: no PRESCIENT_ variable but the store, no
	// --stac-url, an empty working directory.
	m := mountIn(t, "", env)
	many := a.assets(t, "many-items")
	for _, as := range many[:4] { // s3:// and https:// hrefs alternate
		if err := checkAsset(m, as, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if log := readFile(m.log); !strings.Contains(log, `msg="signed in" mode=user profile=default`) {
		t.Errorf("the mount did not sign in from the profile:\n%s", tail(log, 2000))
	}

	st := runCLI(t, env, "", "auth", "status")
	if st.err != nil {
		t.Fatalf("auth status: %v\n%s%s", st.err, st.stdout, st.stderr)
	}
	for _, want := range []string{"alice@example.test", a.idp.Tenant, "token expires:", "bucket credentials expire:", "mode:", "user"} {
		if !strings.Contains(st.stdout, want) {
			t.Errorf("auth status lacks %q:\n%s", want, st.stdout)
		}
	}
	pt := runCLI(t, env, "", "auth", "print-access-token")
	if pt.err != nil {
		t.Fatalf("auth print-access-token: %v\n%s", pt.err, pt.stderr)
	}
	tok := strings.TrimSpace(pt.stdout)
	if _, err := a.idp.Verify(tok); err != nil {
		t.Fatalf("printed token: %v", err)
	}
	if code := stacStatus(t, a, tok); code != http.StatusOK {
		t.Fatalf("the STAC server answered %d to the printed token", code)
	}
	if code := stacStatus(t, a, tok+"x"); code != http.StatusUnauthorized {
		t.Fatalf("the STAC server answered %d to a tampered token (its check is not real)", code)
	}
	for _, secret := range a.idp.IssuedSecrets() {
		if strings.Contains(st.stdout+st.stderr, secret) {
			t.Fatal("auth status printed a token")
		}
	}

	lo := runCLI(t, env, "", "auth", "logout")
	if lo.err != nil {
		t.Fatalf("auth logout: %v\n%s", lo.err, lo.stderr)
	}
	if _, err := os.Stat(filepath.Join(cfg, "default", "tokens.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tokens.json after logout: %v", err)
	}
	m2, out2, err := tryMountIn(t, "", env)
	if err == nil {
		t.Fatalf("mount after logout succeeded:\n%s", out2)
	}
	line := oneLine(t, out2)
	if !strings.Contains(line, "prescientfs auth login") {
		t.Fatalf("mount after logout: %q, want the `prescientfs auth login` instruction", line)
	}
	if isMounted(m2.dir) {
		t.Fatal("a refused mount left a mount behind")
	}
	t.Logf("after logout: %s", line)
}

// stacStatus GETs the catalog with a bearer and returns the status.
func stacStatus(t *testing.T, a *authStack, tok string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.stac.URL(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAuthLongLivedMount: tokens and STS credentials live 5 s; readers
// stream and re-read assets for over a minute (12 lifetimes) with no error
// and the right bytes. The renewals are read from the mount's log.
func TestAuthLongLivedMount(t *testing.T) {
	t.Parallel()
	const lifetime, run = 5 * time.Second, 62 * time.Second
	a := newAuthStack(t, authStackOptions{TokenLifetime: lifetime, BigObject: 8 << 20})
	env := a.env(t, t.TempDir())
	a.login(t, append(env, a.settings()...), "")
	// A short metadata TTL makes every open HEAD the object and the
	// listings refresh from the catalog: both need fresh credentials.
	m := mountIn(t, "", env, "--metadata-ttl", "1s")
	big := a.assets(t, "bench")[0]
	small := a.assets(t, "many-items")

	var reads, bytesRead, failures atomic.Int64
	var errMu sync.Mutex
	var errs []string
	fail := func(err error) {
		failures.Add(1)
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < 10 {
			errs = append(errs, time.Now().Format("15:04:05.000")+" "+err.Error())
		}
	}
	end := time.Now().Add(run)
	var wg sync.WaitGroup
	reader := func(list []asset, pause time.Duration) {
		defer wg.Done()
		for i := 0; time.Now().Before(end); i++ {
			as := list[i%len(list)]
			if err := checkAsset(m, as, 30*time.Second); err != nil {
				fail(err)
				if errors.Is(err, errHung) {
					return
				}
			} else {
				reads.Add(1)
				bytesRead.Add(as.size)
			}
			time.Sleep(pause)
		}
	}
	wg.Add(2)
	go reader([]asset{big}, 50*time.Millisecond) // streams the 8 MiB object again and again
	go reader(small, 20*time.Millisecond)        // re-reads the small ones round robin
	wg.Wait()
	m.unmount(t)

	s := credentialStats(t, readFile(m.log))
	rs := logLine(t, readFile(m.log), "read statistics")
	t.Logf("long-lived mount: %s with %s tokens: %d reads (%.0f MiB; the mount made %s requests for %s bytes), %d errors; token_renewals=%s credential_renewals=%s "+
		"token_failures=%s credential_failures=%s credential_wait_p50=%s credential_wait_max=%s; "+
		"STAC requests refused=%d; IdP %+v",
		run, lifetime, reads.Load(), float64(bytesRead.Load())/(1<<20), rs["stats.requests"], rs["stats.bytes_fetched"], failures.Load(),
		s["token_renewals"], s["credential_renewals"], s["token_failures"], s["credential_failures"],
		s["credential_wait_p50"], s["credential_wait_max"], a.rejected.Load(), a.idp.Stats())
	if failures.Load() > 0 {
		t.Errorf("%d reads failed; first: %s", failures.Load(), strings.Join(errs, "\n"))
	}
	if reads.Load() < 100 {
		t.Errorf("only %d reads in %s", reads.Load(), run)
	}
	for _, k := range []string{"token_renewals", "credential_renewals"} {
		if n, _ := strconv.Atoi(s[k]); n < 10 {
			t.Errorf("%s = %s, want at least 10 over %s of %s tokens", k, s[k], run, lifetime)
		}
	}
	for _, k := range []string{"token_failures", "credential_failures"} {
		if s[k] != "0" {
			t.Errorf("%s = %s, want 0", k, s[k])
		}
	}
}

// TestAuthRevokedSessionHeals: the refresh token is revoked under a
// running mount: reads fail with EACCES (not EIO, not a hang) within a
// bounded time and the log says to run `prescientfs auth login`; after
// that login, the same mount reads again.
func TestAuthRevokedSessionHeals(t *testing.T) {
	t.Parallel()
	const lifetime = 5 * time.Second
	a := newAuthStack(t, authStackOptions{TokenLifetime: lifetime})
	cfg := t.TempDir()
	env := a.env(t, cfg)
	a.login(t, append(env, a.settings()...), "")
	m := mountIn(t, "", env, "--metadata-ttl", "1s")
	many := a.assets(t, "many-items")
	next := 0
	read := func() error { // a different asset each time: nothing cached
		as := many[next%len(many)]
		next++
		return checkAsset(m, as, 30*time.Second)
	}
	for range 3 {
		if err := read(); err != nil {
			t.Fatal(err)
		}
	}

	a.idp.RevokeRefreshTokens()
	revoked := time.Now()
	var denied time.Duration
	for {
		err := read()
		if errors.Is(err, syscall.EACCES) {
			denied = time.Since(revoked)
			break
		}
		if err != nil {
			t.Fatalf("%s after revocation: %v, want EACCES", time.Since(revoked).Round(time.Millisecond), err)
		}
		if time.Since(revoked) > 3*lifetime {
			t.Fatalf("reads still succeed %s after revocation", time.Since(revoked).Round(time.Second))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Later reads keep failing fast, with EACCES.
	for range 3 {
		start := time.Now()
		if err := read(); !errors.Is(err, syscall.EACCES) {
			t.Fatalf("read after the session died: %v, want EACCES", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("a refused read took %s", d)
		}
	}
	if log := readFile(m.log); !strings.Contains(log, "run `prescientfs auth login`") {
		t.Fatalf("the log does not say to run `prescientfs auth login`:\n%s", tail(log, 3000))
	}

	a.login(t, append(env, a.settings()...), "") // "in another terminal"
	relogin := time.Now()
	for {
		err := read()
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EACCES) {
			t.Fatalf("after the new login: %v", err)
		}
		if time.Since(relogin) > 15*time.Second {
			t.Fatalf("still refused %s after the new login: %v", time.Since(relogin).Round(time.Second), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	healed := time.Since(relogin)
	for range len(many) {
		if err := read(); err != nil {
			t.Fatalf("after healing: %v", err)
		}
	}
	t.Logf("revoked → EACCES after %s; new login → reads again after %s (no remount)",
		denied.Round(time.Millisecond), healed.Round(time.Millisecond))
}

// TestAuthServicePrincipalAndAPIKey: a service principal (client secret)
// mounts with no saved session; an API key mounts with bucket credentials
// from fileproxy/credentials, renewed before their expiration.
func TestAuthServicePrincipalAndAPIKey(t *testing.T) {
	t.Parallel()
	a := newAuthStack(t, authStackOptions{TokenLifetime: 5 * time.Second})
	many := a.assets(t, "many-items")
	readFor := func(t *testing.T, m *mount, d time.Duration) int {
		t.Helper()
		n := 0
		for end := time.Now().Add(d); time.Now().Before(end); n++ {
			if err := checkAsset(m, many[n%len(many)], 30*time.Second); err != nil {
				t.Fatalf("read %d: %v", n, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return n
	}

	t.Run("service-principal", func(t *testing.T) {
		cfg := t.TempDir()
		env := a.env(t, cfg, append(a.settings(), "PRESCIENT_CLIENT_SECRET="+a.clientSecret)...)
		m := mountIn(t, "", env, "--metadata-ttl", "1s")
		n := readFor(t, m, 12*time.Second)
		m.unmount(t)
		s := credentialStats(t, readFile(m.log))
		t.Logf("service principal: %d reads; %v; IdP client-credential grants %d", n, s, a.idp.Stats().ClientCredentials)
		if !strings.Contains(readFile(m.log), "mode=service-principal") {
			t.Error("the mount did not run as a service principal")
		}
		if g := a.idp.Stats().ClientCredentials; g < 2 {
			t.Errorf("%d client-credential grants over 12 s of 5 s tokens, want renewals", g)
		}
		if entries, _ := os.ReadDir(cfg); len(entries) != 0 {
			t.Errorf("a service principal wrote to the session store: %v", entries)
		}
	})

	t.Run("api-key", func(t *testing.T) {
		a.stac.ResetRequests()
		env := a.env(t, t.TempDir(), "PRESCIENT_ENDPOINT_URL="+a.endpointURL(), "PRESCIENT_API_KEY="+a.apiKey)
		m := mountIn(t, "", env, "--metadata-ttl", "1s")
		n := readFor(t, m, 10*time.Second)
		m.unmount(t)
		s := credentialStats(t, readFile(m.log))
		t.Logf("API key: %d reads; %v; fileproxy calls %d", n, s, a.fileproxyCalls.Load())
		if c := a.fileproxyCalls.Load(); c < 3 {
			t.Errorf("%d fileproxy calls over 10 s of 4 s credentials, want renewals", c)
		}
		stacReqs := 0
		for _, r := range a.stac.Requests() {
			if !strings.HasPrefix(r.Path, "/stac") {
				continue
			}
			stacReqs++
			if r.Header.Get("api-key") != a.apiKey || r.Header.Get("Authorization") != "" {
				t.Fatalf("%s %s sent without the api-key header (or with a bearer)", r.Method, r.Path)
			}
		}
		if stacReqs == 0 {
			t.Fatal("no catalog requests recorded")
		}

		// A wrong key: mount refuses at once, naming the variable.
		bad := a.env(t, t.TempDir(), "PRESCIENT_ENDPOINT_URL="+a.endpointURL(), "PRESCIENT_API_KEY=wrong-key-0000")
		_, out, err := tryMountIn(t, "", bad)
		if err == nil || !strings.Contains(oneLine(t, out), "PRESCIENT_API_KEY") {
			t.Fatalf("mount with a wrong key: %v %q", err, out)
		}
	})
}

// TestAuthConcurrentRefreshOneStore: two mounts and the CLI share one
// profile and refresh 3 s tokens for 20 s, with an IdP that accepts each
// refresh token once (so a lost cache write would log someone out): the
// store's files stay valid JSON, nobody is logged out, both mounts read.
func TestAuthConcurrentRefreshOneStore(t *testing.T) {
	t.Parallel()
	const run = 20 * time.Second
	a := newAuthStack(t, authStackOptions{TokenLifetime: 3 * time.Second, RotateRefreshTokens: true})
	cfg := t.TempDir()
	env := a.env(t, cfg)
	a.login(t, append(env, a.settings()...), "")
	m1 := mountIn(t, "", env, "--metadata-ttl", "1s")
	m2 := mountIn(t, "", env, "--metadata-ttl", "1s")
	many := a.assets(t, "many-items")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	var errMu sync.Mutex
	var errs []string
	fail := func(format string, args ...any) {
		failures.Add(1)
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < 10 {
			errs = append(errs, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var reads, cliRuns, checks atomic.Int64
	for _, m := range []*mount{m1, m2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stopped(); i++ {
				if err := checkAsset(m, many[i%len(many)], 30*time.Second); err != nil {
					fail("mount %s: %v", filepath.Base(filepath.Dir(m.dir)), err)
				} else {
					reads.Add(1)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	wg.Add(1)
	go func() { // the CLI, as a person or a script would use it meanwhile
		defer wg.Done()
		for i := 0; !stopped(); i++ {
			args := []string{"auth", "status"}
			if i%2 == 1 {
				args = []string{"auth", "print-access-token"}
			}
			r := runCLI(t, env, "", args...)
			if r.err != nil {
				fail("%s: %v: %s%s", strings.Join(args, " "), r.err, r.stdout, r.stderr)
				continue
			}
			if i%2 == 1 {
				if _, err := a.idp.Verify(strings.TrimSpace(r.stdout)); err != nil {
					fail("printed token: %v", err)
				}
			}
			cliRuns.Add(1)
		}
	}()
	wg.Add(1)
	go func() { // the store's files, read as often as possible
		defer wg.Done()
		files := []string{filepath.Join(cfg, "default", "tokens.json"), filepath.Join(cfg, "default", "settings.json"), filepath.Join(cfg, "prescient.json")}
		for !stopped() {
			for _, p := range files {
				data, err := os.ReadFile(p)
				switch {
				case err != nil:
					fail("read %s: %v", p, err)
				case !json.Valid(data):
					fail("%s is not valid JSON (%d bytes)", p, len(data))
				}
				fi, err := os.Stat(p)
				if err == nil && fi.Mode().Perm() != 0o600 {
					fail("%s has mode %v", p, fi.Mode().Perm())
				}
			}
			checks.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(run)
	close(stop)
	wg.Wait()
	m1.unmount(t)
	m2.unmount(t)
	s1, s2 := credentialStats(t, readFile(m1.log)), credentialStats(t, readFile(m2.log))
	st := a.idp.Stats()
	t.Logf("%s: %d reads on two mounts, %d CLI commands, %d store checks, %d failures; refresh grants %d, rejected %d; "+
		"mount 1 token_renewals=%s credential_renewals=%s; mount 2 token_renewals=%s credential_renewals=%s",
		run, reads.Load(), cliRuns.Load(), checks.Load(), failures.Load(), st.RefreshGrants, st.RejectedRefreshes,
		s1["token_renewals"], s1["credential_renewals"], s2["token_renewals"], s2["credential_renewals"])
	if failures.Load() > 0 {
		t.Errorf("%d failures; first:\n%s", failures.Load(), strings.Join(errs, "\n"))
	}
	if st.RejectedRefreshes != 0 {
		t.Errorf("the IdP refused %d refresh tokens: a process used one another had already redeemed", st.RejectedRefreshes)
	}
	if st.RefreshGrants < 5 || cliRuns.Load() < 5 {
		t.Errorf("too little concurrency to mean anything: %d refreshes, %d CLI commands", st.RefreshGrants, cliRuns.Load())
	}
	for i, s := range []map[string]string{s1, s2} {
		if s["token_failures"] != "0" || s["credential_failures"] != "0" {
			t.Errorf("mount %d: %v", i+1, s)
		}
	}
	if r := runCLI(t, env, "", "auth", "status"); r.err != nil {
		t.Errorf("logged out at the end: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
}

// TestAuthConfigEnv: a config.env with the SDK's variable names works for
// login and mount; --env-file pointing nowhere and missing required
// settings give the promised one-line messages.
func TestAuthConfigEnv(t *testing.T) {
	t.Parallel()
	a := newAuthStack(t, authStackOptions{})
	many := a.assets(t, "many-items")
	writeEnv := func(t *testing.T, lines ...string) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.env"), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	t.Run("sdk-config-env", func(t *testing.T) {
		// As the SDK's documentation writes it: quotes, comments, the
		// authority with a trailing slash.
		dir := writeEnv(t,
			"# prescient_sdk settings",
			`PRESCIENT_ENDPOINT_URL="`+a.endpointURL()+`"`,
			"PRESCIENT_AUTH_PROVIDER=microsoft",
			"PRESCIENT_CLIENT_ID='"+a.idp.ClientID+"'",
			"PRESCIENT_AUTH_URL="+a.idp.URL+"/",
			"PRESCIENT_TENANT_ID="+a.idp.Tenant+" # the directory",
			"PRESCIENT_AWS_ROLE="+a.idp.RoleARN(),
			"PRESCIENT_AWS_REGION="+minio.Region,
		)
		env := a.env(t, t.TempDir())
		show := runCLI(t, env, dir, "config", "show")
		if show.err != nil || !strings.Contains(show.stdout, "(file "+filepath.Join(dir, "config.env")+")") {
			t.Fatalf("config show does not read ./config.env: %v\n%s%s", show.err, show.stdout, show.stderr)
		}
		a.login(t, env, dir)
		m := mountIn(t, dir, env)
		if err := checkAsset(m, many[0], 30*time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("api-key-config-env", func(t *testing.T) {
		// No login, no profile: the mount's settings come from ./config.env only.
		dir := writeEnv(t, "PRESCIENT_ENDPOINT_URL="+a.endpointURL(), "PRESCIENT_API_KEY="+a.apiKey)
		m := mountIn(t, dir, a.env(t, t.TempDir()))
		if err := checkAsset(m, many[1], 30*time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("env-file-missing", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nowhere.env")
		_, out, err := tryMountIn(t, "", a.env(t, t.TempDir()), "--env-file", missing)
		line := oneLine(t, out)
		if err == nil || !strings.Contains(line, "--env-file "+missing+" does not exist") {
			t.Fatalf("mount --env-file nowhere: %v %q", err, line)
		}
		r := runCLI(t, a.env(t, t.TempDir()), "", "auth", "login", "--env-file", missing)
		if r.err == nil || !strings.Contains(r.stderr, "does not exist") {
			t.Fatalf("auth login --env-file nowhere: %v %q", r.err, r.stderr)
		}
	})

	t.Run("missing-required", func(t *testing.T) {
		dir := writeEnv(t, "PRESCIENT_ENDPOINT_URL="+a.endpointURL(), "PRESCIENT_CLIENT_ID="+a.idp.ClientID, "PRESCIENT_AUTH_URL="+a.idp.URL+"/")
		_, out, err := tryMountIn(t, dir, a.env(t, t.TempDir()))
		line := oneLine(t, out)
		if err == nil || !strings.Contains(line, "PRESCIENT_TENANT_ID") || !strings.Contains(line, filepath.Join(dir, "config.env")) {
			t.Fatalf("mount without a tenant: %v %q, want the variable and where it was looked for", err, line)
		}
		for _, v := range []string{"PRESCIENT_CLIENT_ID", "PRESCIENT_AUTH_URL"} {
			if strings.Contains(line, v) {
				t.Errorf("message names %s, which is set: %q", v, line)
			}
		}
		t.Logf("missing tenant: %s", line)

		// The environment wins over the file, and supplies what it lacks.
		env := a.env(t, t.TempDir(), "PRESCIENT_TENANT_ID="+a.idp.Tenant)
		show := runCLI(t, env, dir, "config", "show")
		if show.err != nil || !regexp.MustCompile(`(?m)^PRESCIENT_TENANT_ID\s+`+regexp.QuoteMeta(a.idp.Tenant)+`\s+\(env\)$`).MatchString(show.stdout) {
			t.Errorf("config show with the tenant in the environment: %v\n%s", show.err, show.stdout)
		}

		dir2 := writeEnv(t, "PRESCIENT_ENDPOINT_URL="+a.endpointURL())
		_, out, err = tryMountIn(t, dir2, a.env(t, t.TempDir()))
		line = oneLine(t, out)
		for _, v := range []string{"PRESCIENT_CLIENT_ID", "PRESCIENT_AUTH_URL", "PRESCIENT_TENANT_ID"} {
			if err == nil || !strings.Contains(line, v) {
				t.Errorf("mount with only the endpoint: %v %q, want %s named", err, line, v)
			}
		}
	})
}

// fuseDebugRE matches go-fuse's debug trace of one request.
var fuseDebugRE = regexp.MustCompile(`(?m) rx \d+: (LOOKUP|OPEN|READ) `)

// TestAuthSecretsNeverLogged runs a person's mount and an API-key mount
// with --debug, both renewing often, plus the auth commands, then looks
// for every token, refresh token, bucket secret and key issued in the
// test in their logs and output: none may appear.
func TestAuthSecretsNeverLogged(t *testing.T) {
	t.Parallel()
	a := newAuthStack(t, authStackOptions{TokenLifetime: 4 * time.Second})
	many := a.assets(t, "many-items")
	cfg := t.TempDir()
	env := a.env(t, cfg)
	var outputs []string
	outputs = append(outputs, a.login(t, append(env, a.settings()...), ""))
	readFor := func(m *mount, d time.Duration) {
		for i, end := 0, time.Now().Add(d); time.Now().Before(end); i++ {
			if err := checkAsset(m, many[i%len(many)], 30*time.Second); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	user := mountIn(t, "", env, "--debug", "--metadata-ttl", "1s")
	readFor(user, 10*time.Second)
	for _, args := range [][]string{{"auth", "status"}, {"config", "show"}, {"auth", "profile", "show"}} {
		r := runCLI(t, append(env, a.settings()...), "", args...)
		outputs = append(outputs, r.stdout, r.stderr)
	}
	user.unmount(t)

	keyEnv := a.env(t, t.TempDir(), "PRESCIENT_ENDPOINT_URL="+a.endpointURL(), "PRESCIENT_API_KEY="+a.apiKey)
	key := mountIn(t, "", keyEnv, "--debug", "--metadata-ttl", "1s")
	readFor(key, 6*time.Second)
	r := runCLI(t, keyEnv, "", "config", "show")
	outputs = append(outputs, r.stdout, r.stderr)
	key.unmount(t)

	logs := map[string]string{"user mount log": readFile(user.log), "api-key mount log": readFile(key.log), "CLI output": strings.Join(outputs, "\n")}
	for name, text := range logs {
		if name != "CLI output" && !fuseDebugRE.MatchString(text) {
			t.Errorf("%s has no FUSE debug lines: was --debug on?", name)
		}
	}
	tokens := a.idp.IssuedSecrets()
	bucket := a.bucketSecrets()
	secrets := append(append(append([]string{}, tokens...), bucket...), a.apiKey)
	if len(tokens) < 6 || len(bucket) < 4 {
		t.Fatalf("too few secrets issued to mean anything: %d tokens, %d bucket secrets", len(tokens), len(bucket))
	}
	// The needles are in the form the binary handles them: its own token
	// cache holds some.
	cache := readFile(filepath.Join(cfg, "default", "tokens.json"))
	found := 0
	for _, s := range tokens {
		if strings.Contains(cache, s) {
			found++
		}
	}
	if found == 0 {
		t.Fatal("no issued token is in the mount's token cache: the leak check would find nothing")
	}
	leaks := 0
	for _, s := range secrets {
		for name, text := range logs {
			if n := leakedPiece(s, text); n != "" {
				leaks++
				t.Errorf("a secret issued in the test (%d chars) appears in the %s: %s…", len(s), name, n[:6])
			}
		}
	}
	t.Logf("checked %d tokens and refresh tokens, %d bucket secrets and the API key against %d bytes of debug logs and CLI output: %d leaks",
		len(tokens), len(bucket), len(logs["user mount log"])+len(logs["api-key mount log"])+len(logs["CLI output"]), leaks)
}

// leakedPiece returns a piece of secret found in text: the whole secret, or
// any aligned 16-character chunk of it (so a truncated or partly logged
// secret of 32 characters or more is found too). A JWT's header is shared
// by all tokens of a key and is not secret, so only its claims and
// signature are chunked.
func leakedPiece(secret, text string) string {
	if strings.Contains(text, secret) {
		return secret
	}
	const chunk = 16
	parts := []string{secret}
	if p := strings.Split(secret, "."); len(p) == 3 {
		parts = p[1:]
	}
	for _, p := range parts {
		for i := 0; i+chunk <= len(p); i += chunk {
			if strings.Contains(text, p[i:i+chunk]) {
				return p[i : i+chunk]
			}
		}
	}
	return ""
}
