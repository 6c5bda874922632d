package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
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
// credentials and 5 s tokens are renewed many times, and credentials S3
// refuses before their announced expiration are renewed after the 403,
// with no failed read.
func TestSDKParityFileproxyBearer(t *testing.T) {
	t.Parallel()
	const lifetime, run = 5 * time.Second, 30 * time.Second
	a := newAuthStack(t, authStackOptions{TokenLifetime: lifetime})
	env := a.env(t, t.TempDir())
	a.login(t, append(env, a.settingsNoRole()...), "")
	m := mountIn(t, "", env, "--metadata-ttl", "1s")
	// Twice during the run the fileproxy hands out credentials S3 refuses
	// (announced to live an hour): the 403 must renew them, unseen.
	stop := make(chan struct{})
	go func() {
		for _, at := range []time.Duration{run / 3, run / 3} {
			select {
			case <-time.After(at):
				a.fileproxyStale.Store(true)
			case <-stop:
				return
			}
		}
	}()
	reads, failures, errs := liveReads(m, a.assets(t, "many-items"), run)
	close(stop)
	m.unmount(t)

	log := readFile(m.log)
	s := credentialStats(t, log)
	t.Logf("fileproxy with a bearer: %s with %s tokens and %s credentials: %d reads, %d failed; "+
		"token_renewals=%s credential_renewals=%s token_failures=%s credential_failures=%s credential_wait_p50=%s credential_wait_max=%s; "+
		"fileproxy bearer calls %d (%d of them stale credentials S3 refused), STS calls %d, STAC requests refused %d",
		run, lifetime, a.fileproxyLifetime, reads, failures, s["token_renewals"], s["credential_renewals"],
		s["token_failures"], s["credential_failures"], s["credential_wait_p50"], s["credential_wait_max"],
		a.fileproxyBearerCalls.Load(), a.fileproxyStaleServed.Load(), a.stsCalls.Load(), a.rejected.Load())
	if n := a.fileproxyStaleServed.Load(); n != 2 {
		t.Errorf("%d stale credentials handed out, want 2", n)
	}
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

// googleSettings are the SDK's settings of a Google deployment (no role:
// bucket credentials from the fileproxy), with the redirect on port.
func (a *authStack) googleSettings(port int) []string {
	return []string{
		"PRESCIENT_ENDPOINT_URL=" + a.endpointURL(),
		"PRESCIENT_AUTH_PROVIDER=google",
		"PRESCIENT_CLIENT_ID=" + a.idp.ClientID,
		"PRESCIENT_AUTH_URL=" + a.idp.URL,
		"PRESCIENT_GOOGLE_CLIENT_SECRET=" + a.clientSecret,
		"PRESCIENT_GOOGLE_REDIRECT_PORT=" + strconv.Itoa(port),
	}
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var signInURLRE = regexp.MustCompile(`(?m)^URL: (\S+)$`)

// googleLogin runs `prescientfs auth login` for Google, without a display:
// it prints the URL and waits; the test plays the browser (the IdP signs
// the user in and redirects to the loopback port). Returns stderr.
func (a *authStack) googleLogin(t *testing.T, env []string, cwd string) string {
	t.Helper()
	if cwd == "" {
		cwd = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "auth", "login")
	cmd.Env, cmd.Dir = env, cwd
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	browsed := make(chan error, 1)
	started := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if m := signInURLRE.FindStringSubmatch(sc.Text()); m != nil && !started {
			started = true
			go func() { browsed <- a.idp.BrowserSignIn(m[1]) }()
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("auth login: %v\n%s", err, out.String())
	}
	if !started {
		t.Fatalf("auth login printed no URL:\n%s", out.String())
	}
	if err := <-browsed; err != nil {
		t.Fatalf("browser: %v", err)
	}
	return out.String()
}

// TestSDKParityGoogle: PRESCIENT_AUTH_PROVIDER=google signs in with the
// installed-app flow (URL printed, loopback redirect), the mount reads
// with fileproxy credentials for the Google id_token while both renew
// under a live reader, a revoked session gives EACCES, a new login in
// another terminal heals the mount, and status / print-access-token /
// logout work.
func TestSDKParityGoogle(t *testing.T) {
	t.Parallel()
	const lifetime, run = 5 * time.Second, 25 * time.Second
	a := newAuthStack(t, authStackOptions{TokenLifetime: lifetime})
	env := a.env(t, t.TempDir())
	port := freePort(t)
	out := a.googleLogin(t, append(env, a.googleSettings(port)...), "")
	if !strings.Contains(out, fmt.Sprintf("ssh -L %d:localhost:%d", port, port)) || !strings.Contains(out, "signed in as alice@example.test") {
		t.Errorf("login output:\n%s", out)
	}
	if st := a.idp.Stats(); st.GoogleAuthCodeGrants != 1 {
		t.Fatalf("IdP %+v, want one Google authorization-code grant", st)
	}

	// The profile alone configures everything from now on.
	st := runCLI(t, env, "", "auth", "status")
	if st.err != nil || !strings.Contains(st.stdout, "alice@example.test") || !strings.Contains(st.stdout, "bucket credentials expire") {
		t.Fatalf("auth status: %v\n%s%s", st.err, st.stdout, st.stderr)
	}
	pt := runCLI(t, env, "", "auth", "print-access-token")
	if _, err := a.idp.Verify(strings.TrimSpace(pt.stdout)); pt.err != nil || err != nil {
		t.Fatalf("print-access-token: %v %v %s", pt.err, err, pt.stderr)
	}

	m := mountIn(t, "", env, "--metadata-ttl", "1s")
	many := a.assets(t, "many-items")
	before := a.idp.Stats()
	fpBefore := a.fileproxyBearerCalls.Load()
	reads, failures, errs := liveReads(m, many, run)
	live := a.idp.Stats()
	refreshes := live.GoogleRefreshGrants - before.GoogleRefreshGrants
	fpCalls := a.fileproxyBearerCalls.Load() - fpBefore
	t.Logf("google: %s with %s id_tokens and %s fileproxy credentials: %d reads, %d failed; %d Google refresh-token renewals, %d fileproxy renewals",
		run, lifetime, a.fileproxyLifetime, reads, failures, refreshes, fpCalls)
	if failures > 0 {
		t.Errorf("%d reads failed; first: %s", failures, strings.Join(errs, "\n"))
	}
	if refreshes < 3 || fpCalls < 5 {
		t.Errorf("%d token and %d credential renewals over %s, want several", refreshes, fpCalls, run)
	}

	// Revoked: EACCES within a few lifetimes; a login elsewhere heals.
	a.idp.RevokeRefreshTokens()
	revoked := time.Now()
	next := 0
	read := func() error { as := many[next%len(many)]; next++; return checkAsset(m, as, 30*time.Second) }
	for {
		err := read()
		if errors.Is(err, syscall.EACCES) {
			break
		}
		if err != nil {
			t.Fatalf("after revocation: %v, want EACCES", err)
		}
		if time.Since(revoked) > 4*lifetime {
			t.Fatal("reads still succeed long after revocation")
		}
		time.Sleep(200 * time.Millisecond)
	}
	denied := time.Since(revoked)
	a.googleLogin(t, append(env, a.googleSettings(port)...), "")
	relogin := time.Now()
	for {
		err := read()
		if err == nil {
			break
		}
		if time.Since(relogin) > 15*time.Second {
			t.Fatalf("still failing %s after a new login: %v", time.Since(relogin).Round(time.Second), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	healed := time.Since(relogin)
	for range 10 {
		if err := read(); err != nil {
			t.Fatalf("after healing: %v", err)
		}
	}
	m.unmount(t)

	// With a role, the Google id_token is the web identity for STS.
	sts := a.stsCalls.Load()
	withRole := mountIn(t, "", append(env, "PRESCIENT_AWS_ROLE="+a.idp.RoleARN(), "PRESCIENT_AWS_REGION="+minio.Region,
		"PRESCIENT_AWS_SESSION_DURATION=0"))
	if err := checkAsset(withRole, many[0], 30*time.Second); err != nil {
		t.Fatalf("google with a role: %v", err)
	}
	withRole.unmount(t)
	if a.stsCalls.Load() == sts {
		t.Error("a mount with a role made no STS call")
	}
	s := credentialStats(t, readFile(m.log))
	t.Logf("google: revoked → EACCES after %s; new login → reads again after %s (no remount); mount totals %v",
		denied.Round(time.Millisecond), healed.Round(time.Millisecond), s)

	if r := runCLI(t, env, "", "auth", "logout"); r.err != nil {
		t.Fatalf("logout: %v %s", r.err, r.stderr)
	}
	if r := runCLI(t, env, "", "auth", "status"); r.err == nil || !strings.Contains(r.stdout+r.stderr, "prescientfs auth login") {
		t.Errorf("status after logout: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	for _, sec := range append(a.idp.IssuedSecrets(), a.clientSecret) {
		if strings.Contains(readFile(m.log), sec) {
			t.Fatal("a secret in the mount log")
		}
	}
}

// TestSDKParityConfigEnv: config.env files the SDK reads are read the same
// way: lower-case keys, ${VAR} from the environment, SDK-only keys; an
// empty environment variable overrides the file; config show warns about
// keys the SDK would reject.
func TestSDKParityConfigEnv(t *testing.T) {
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

	t.Run("lower-case", func(t *testing.T) {
		var lines []string
		for _, kv := range a.settingsNoRole() {
			k, v, _ := strings.Cut(kv, "=")
			lines = append(lines, strings.ToLower(k)+"="+v)
		}
		dir := writeEnv(t, lines...)
		env := a.env(t, t.TempDir())
		a.login(t, env, dir)
		m := mountIn(t, dir, env)
		if err := checkAsset(m, many[0], 30*time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("expansion", func(t *testing.T) {
		dir := writeEnv(t,
			"PRESCIENT_ENDPOINT_URL=${API_BASE}/",
			`PRESCIENT_API_KEY="${MY_PRESCIENT_KEY}"`,
		)
		env := a.env(t, t.TempDir(), "API_BASE="+strings.TrimSuffix(a.endpointURL(), "/"), "MY_PRESCIENT_KEY="+a.apiKey)
		show := runCLI(t, env, dir, "config", "show")
		if !regexp.MustCompile(`(?m)^PRESCIENT_ENDPOINT_URL\s+` + regexp.QuoteMeta(a.endpointURL()) + `\s`).MatchString(show.stdout) {
			t.Errorf("config show does not expand ${API_BASE}:\n%s", show.stdout)
		}
		m := mountIn(t, dir, env)
		if err := checkAsset(m, many[1], 30*time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("sdk-only-keys", func(t *testing.T) {
		dir := writeEnv(t,
			"PRESCIENT_ENDPOINT_URL="+a.endpointURL(),
			"PRESCIENT_API_KEY="+a.apiKey,
			"PRESCIENT_AUTH_TOKEN_PATH=/home/someone/.prescient/token.json",
			"PRESCIENT_UPLOAD_ROLE=arn:aws:iam::123456789012:role/prescient-upload",
			"PRESCIENT_UPLOAD_BUCKET=prescient-uploads",
			"PRESCIENT_GOOGLE_REDIRECT_PORT=8765",
			"PRESCIENT_AWS_ROLE=arn:aws:iam::123456789012:role/ignored-with-a-key",
		)
		env := a.env(t, t.TempDir())
		show := runCLI(t, env, dir, "config", "show")
		if show.err != nil || strings.Contains(show.stdout, "warning:") {
			t.Errorf("config show with SDK keys only: %v\n%s%s", show.err, show.stdout, show.stderr)
		}
		m := mountIn(t, dir, env)
		if err := checkAsset(m, many[2], 30*time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("empty-env-and-warnings", func(t *testing.T) {
		dir := writeEnv(t,
			"PRESCIENT_ENDPOINT_URL="+a.endpointURL(),
			"PRESCIENT_AWS_ROLE=arn:aws:iam::123456789012:role/from-the-file",
			"PRESCIENT_CLIENT_SECRET=cs-not-for-the-sdk",
		)
		env := a.env(t, t.TempDir(), "PRESCIENT_AWS_ROLE=")
		show := runCLI(t, env, dir, "config", "show")
		if !regexp.MustCompile(`(?m)^PRESCIENT_AWS_ROLE\s+-\s+\(env\)$`).MatchString(show.stdout) {
			t.Errorf("an empty PRESCIENT_AWS_ROLE in the environment does not override the file:\n%s", show.stdout)
		}
		if !strings.Contains(show.stdout, "warning: PRESCIENT_CLIENT_SECRET in "+filepath.Join(dir, "config.env")) ||
			!strings.Contains(show.stdout, "extra_forbidden") {
			t.Errorf("config show does not warn about a key the SDK rejects:\n%s", show.stdout)
		}
		if strings.Contains(show.stdout, "cs-not-for-the-sdk") {
			t.Error("config show printed a secret")
		}
	})
}

// TestSDKParityMicrosoftBrowser: with a display, `auth login` signs in with
// the browser as the SDK does (MSAL's interactive flow; the browser is a
// fake xdg-open that hands the URL to the test, which plays the user);
// over SSH it uses the device code.
func TestSDKParityMicrosoftBrowser(t *testing.T) {
	t.Parallel()
	a := newAuthStack(t, authStackOptions{})
	bin := t.TempDir()
	urlFile := filepath.Join(t.TempDir(), "opened")
	script := "#!/bin/sh\nprintf '%s' \"$1\" > " + urlFile + ".tmp && mv " + urlFile + ".tmp " + urlFile + "\n"
	if err := os.WriteFile(filepath.Join(bin, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env := a.env(t, t.TempDir(), append(a.settingsNoRole(), "DISPLAY=:99", "PATH="+bin+":"+os.Getenv("PATH"))...)

	done := make(chan cliResult, 1)
	go func() { done <- runCLI(t, env, "", "auth", "login") }()
	var opened string
	for deadline := time.Now().Add(30 * time.Second); opened == ""; {
		if data, err := os.ReadFile(urlFile); err == nil {
			opened = string(data)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("auth login opened no browser within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := a.idp.BrowserSignIn(opened); err != nil {
		t.Fatalf("browser: %v", err)
	}
	r := <-done
	if r.err != nil || !strings.Contains(r.stderr, "signed in as alice@example.test") {
		t.Fatalf("auth login with a display: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	if st := a.idp.Stats(); st.AuthCodeGrants != 1 || st.DeviceCodesIssued != 0 {
		t.Fatalf("IdP %+v: want one browser sign-in and no device code", st)
	}

	// Over SSH (a display forwarded or not): the device code.
	a.login(t, append(env, "SSH_CONNECTION=192.0.2.1 50000 192.0.2.2 22"), "")
	if st := a.idp.Stats(); st.DeviceCodeGrants != 1 {
		t.Fatalf("IdP %+v: want a device-code sign-in over SSH", st)
	}
	if st := runCLI(t, env, "", "auth", "status"); st.err != nil || !strings.Contains(st.stdout, "alice@example.test") {
		t.Fatalf("auth status: %v\n%s%s", st.err, st.stdout, st.stderr)
	}
}
