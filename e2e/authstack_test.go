package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/e2e/internal/idp"
	"github.com/prescient/prescientfs/e2e/internal/minio"
	"github.com/prescient/prescientfs/e2e/internal/proc"
	"github.com/prescient/prescientfs/e2e/internal/stacserver"
	"github.com/prescient/prescientfs/stacindex"
)

// authStack is the stack of the sign-in tests: the test IdP, a MinIO that
// trusts it for AssumeRoleWithWebIdentity (HTTPS, with a certificate from
// the IdP's CA), a STAC server that accepts only bearers the IdP signed and
// that have not expired (or the API key), a fileproxy/credentials endpoint
// for API-key mode, and a recording proxy in front of MinIO's STS so the
// test knows every bucket secret the mount was given.
type authStack struct {
	idp    *idp.Server
	minio  *minio.Server
	stac   *stacserver.Server
	cat    *fixtures.Catalog
	stsURL string // the recording STS proxy

	apiKey       string
	clientSecret string
	// fileproxyLifetime is the expiration the fileproxy endpoint announces.
	fileproxyLifetime time.Duration

	rejected       atomic.Int64 // STAC requests refused (bad or expired bearer, wrong key)
	fileproxyCalls atomic.Int64
	// fileproxyBearerCalls counts fileproxy calls authorized by a bearer.
	fileproxyBearerCalls atomic.Int64
	// fileproxyStale, when set, makes the next fileproxy answer credentials
	// MinIO does not know, announced to live an hour (credentials revoked
	// or rotated behind the client's back); fileproxyStaleServed counts them.
	fileproxyStale       atomic.Bool
	fileproxyStaleServed atomic.Int64
	stsCalls             atomic.Int64

	mu      sync.Mutex
	secrets []string // STS and fileproxy secrets handed out; guarded by mu
}

type authStackOptions struct {
	// TokenLifetime is the IdP's id_token lifetime (STS credentials end
	// with it: the mounts omit DurationSeconds).
	TokenLifetime time.Duration
	// BigObject adds bench/big/random.bin of this size.
	BigObject int64
	// RotateRefreshTokens makes every refresh token good once.
	RotateRefreshTokens bool
}

func newAuthStack(t *testing.T, o authStackOptions) *authStack {
	t.Helper()
	if _, err := minio.FindBinary(); err != nil {
		t.Skipf("no MinIO binary: %v", err)
	}
	if o.TokenLifetime == 0 {
		o.TokenLifetime = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	a := &authStack{apiKey: "pk-" + randomHex(16), clientSecret: "cs-" + randomHex(16), fileproxyLifetime: 4 * time.Second}
	var err error
	a.idp, err = idp.Start(idp.Options{Dir: dir, TokenLifetime: o.TokenLifetime,
		RotateRefreshTokens: o.RotateRefreshTokens})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.idp.Close)
	a.idp.SetClientSecret(a.idp.ClientID, a.clientSecret)
	certs := filepath.Join(dir, "certs")
	if err := a.idp.WriteMinIOCerts(certs); err != nil {
		t.Fatal(err)
	}
	// The IdP must be up before MinIO starts: MinIO reads its discovery
	// document once, at start, and runs without OpenID if that fails.
	a.minio = minio.StartT(t, minio.Options{Dir: filepath.Join(dir, "minio"), Env: a.idp.MinIOEnv(idp.DefaultPolicy), CertsDir: certs, STSRole: a.idp.RoleARN()})

	sts := httptest.NewServer(a.stsRecorder())
	t.Cleanup(sts.Close)
	a.stsURL = sts.URL

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if a.stac, err = stacserver.New(stacserver.Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.stac.Close)
	a.stac.SetAuth(a.allowed)
	a.stac.Handle("GET /fileproxy/credentials", http.HandlerFunc(a.fileproxy))

	a.cat, err = fixtures.Build(ctx, fixtures.Options{
		S3: a.minio.Client(), S3Endpoint: a.minio.Endpoint, STACURL: a.stac.URL(),
		WorkDir: filepath.Join(dir, "fixtures"), LargeItems: 20, BigObjectSize: o.BigObject, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.stac.SetCatalog(a.cat)
	return a
}

// allowed is the STAC server's check: a bearer the IdP signed for the
// client, not expired, or the API key.
func (a *authStack) allowed(r *http.Request) bool {
	if k := r.Header.Get("api-key"); k != "" {
		if k == a.apiKey {
			return true
		}
		a.rejected.Add(1)
		return false
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		a.rejected.Add(1)
		return false
	}
	if _, err := a.idp.Verify(tok); err != nil {
		a.rejected.Add(1)
		return false
	}
	return true
}

var (
	stsSecretRE  = regexp.MustCompile(`<SecretAccessKey>([^<]+)</SecretAccessKey>`)
	stsSessionRE = regexp.MustCompile(`<SessionToken>([^<]+)</SessionToken>`)
)

// stsRecorder forwards STS calls to MinIO and remembers the secrets in
// the answers.
func (a *authStack) stsRecorder() http.Handler {
	target, _ := url.Parse(a.minio.Endpoint)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = a.idp.HTTPClient().Transport
	rp.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		a.stsCalls.Add(1)
		a.remember(stsSecretRE.FindAllSubmatch(body, -1), stsSessionRE.FindAllSubmatch(body, -1))
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil
	}
	return rp
}

func (a *authStack) remember(groups ...[][][]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, g := range groups {
		for _, m := range g {
			a.secrets = append(a.secrets, string(m[1]))
		}
	}
}

// fileproxy is GET {endpoint}fileproxy/credentials (api-key or bearer): fresh MinIO session
// credentials (STS AssumeRole with the root user) announced to expire in
// fileproxyLifetime, so that the mount renews them often.
func (a *authStack) fileproxy(w http.ResponseWriter, r *http.Request) {
	// As the Prescient API: the api-key header, or (no role configured)
	// the signed-in user's id_token as a bearer.
	if r.Header.Get("api-key") != "" || r.Header.Get("Authorization") == "" {
		if r.Header.Get("api-key") != a.apiKey {
			a.rejected.Add(1)
			http.Error(w, `{"detail":"invalid api key"}`, http.StatusUnauthorized)
			return
		}
	} else if !a.allowed(r) {
		http.Error(w, `{"detail":"invalid token"}`, http.StatusUnauthorized)
		return
	} else {
		a.fileproxyBearerCalls.Add(1)
	}
	a.fileproxyCalls.Add(1)
	if a.fileproxyStale.CompareAndSwap(true, false) {
		a.fileproxyStaleServed.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"access_key_id": "STALE" + strings.ToUpper(randomHex(6)), "secret_access_key": randomHex(20),
			"session_token": randomHex(32), "expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		})
		return
	}
	c := sts.New(sts.Options{
		Region: minio.Region, BaseEndpoint: aws.String(a.minio.Endpoint), HTTPClient: a.idp.HTTPClient(),
		Credentials: credentials.NewStaticCredentialsProvider(a.minio.AccessKey, a.minio.SecretKey, ""),
	})
	out, err := c.AssumeRole(r.Context(), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:xxx:xxx:xxx:xxxx"), RoleSessionName: aws.String("fileproxy"),
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	cr := out.Credentials
	a.mu.Lock()
	a.secrets = append(a.secrets, aws.ToString(cr.SecretAccessKey), aws.ToString(cr.SessionToken))
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"access_key_id":     aws.ToString(cr.AccessKeyId),
		"secret_access_key": aws.ToString(cr.SecretAccessKey),
		"session_token":     aws.ToString(cr.SessionToken),
		// As Python's datetime.isoformat() writes it.
		"expiration": time.Now().Add(a.fileproxyLifetime).UTC().Format("2006-01-02T15:04:05.000000+00:00"),
	})
}

// bucketSecrets returns the STS and fileproxy secrets handed out so far.
func (a *authStack) bucketSecrets() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.secrets...)
}

// endpointURL is PRESCIENT_ENDPOINT_URL: the catalog is it joined with "stac".
func (a *authStack) endpointURL() string { return a.stac.BaseURL() + "/" }

// settings are the PRESCIENT_* variables of a person signing in.
func (a *authStack) settings() []string {
	return []string{
		"PRESCIENT_ENDPOINT_URL=" + a.endpointURL(),
		"PRESCIENT_CLIENT_ID=" + a.idp.ClientID,
		"PRESCIENT_AUTH_URL=" + a.idp.URL,
		"PRESCIENT_TENANT_ID=" + a.idp.Tenant,
		"PRESCIENT_AWS_ROLE=" + a.idp.RoleARN(),
		"PRESCIENT_AWS_REGION=" + minio.Region,
		// MinIO's minimum DurationSeconds is 900: omit it so the
		// credentials end with the token.
		"PRESCIENT_AWS_SESSION_DURATION=0",
	}
}

// env is a prescientfs process's environment: isolated from the machine
// (baseEnv), trusting the IdP's CA (and so MinIO), with the AWS SDK's S3
// and STS endpoints, the session store in configDir, and nothing else.
func (a *authStack) env(t *testing.T, configDir string, extra ...string) []string {
	env := append(baseEnv(t),
		"SSL_CERT_FILE="+a.idp.CAFile,
		"AWS_ENDPOINT_URL_S3="+a.minio.Endpoint,
		"AWS_ENDPOINT_URL_STS="+a.stsURL,
		"PRESCIENT_CONFIG_DIR="+configDir,
		// No display: `auth login` signs in by device code (or prints
		// Google's URL) instead of opening a browser on this machine.
		"DISPLAY=", "WAYLAND_DISPLAY=",
	)
	return append(env, extra...)
}

// cliResult is the outcome of one prescientfs command.
type cliResult struct {
	stdout, stderr string
	err            error
	took           time.Duration
}

// runCLI runs prescientfs in cwd (a new empty directory when "") and waits
// at most a minute.
func runCLI(t *testing.T, env []string, cwd string, args ...string) cliResult {
	t.Helper()
	if cwd == "" {
		cwd = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env, cmd.Dir = env, cwd
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	return cliResult{stdout: out.String(), stderr: errb.String(), err: err, took: time.Since(start)}
}

var deviceCodeRE = regexp.MustCompile(`(?m)^Code: (\S+)$`)

// login runs `prescientfs auth login` (device code) in cwd and approves
// the code it prints as a person would, by posting it to the IdP's
// /devicelogin page. It returns the command's stderr.
func (a *authStack) login(t *testing.T, env []string, cwd string, args ...string) string {
	t.Helper()
	if cwd == "" {
		cwd = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, append([]string{"auth", "login"}, args...)...)
	cmd.Env, cmd.Dir = env, cwd
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	approved := false
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if m := deviceCodeRE.FindStringSubmatch(line); m != nil && !approved {
			approved = true
			resp, err := a.idp.HTTPClient().PostForm(a.idp.URL+"/devicelogin", url.Values{"user_code": {m[1]}})
			if err != nil {
				t.Errorf("approve device code: %v", err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("approve device code: %s", resp.Status)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("auth login: %v\n%s%s", err, out.String(), stdout.String())
	}
	if !approved {
		t.Fatalf("auth login printed no device code:\n%s", out.String())
	}
	return out.String()
}

// tryMountIn is tryMount with the working directory set (so config.env
// there is read, and none is read by accident).
func tryMountIn(t *testing.T, cwd string, env []string, args ...string) (*mount, string, error) {
	t.Helper()
	tmp := t.TempDir()
	m := &mount{dir: filepath.Join(tmp, "mnt"), log: filepath.Join(tmp, "mount.log"), env: env}
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if cwd == "" {
		cwd = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append(append([]string{"mount", "--log-file", m.log}, args...), m.dir)
	cmd := exec.CommandContext(ctx, binPath, full...)
	cmd.Env, cmd.Dir = env, cwd
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if mm := pidRE.FindStringSubmatch(out.String()); mm != nil {
		fmt.Sscan(mm[1], &m.pid)
	}
	t.Cleanup(func() { m.cleanup(t) })
	return m, out.String(), err
}

func mountIn(t *testing.T, cwd string, env []string, args ...string) *mount {
	t.Helper()
	m, out, err := tryMountIn(t, cwd, env, args...)
	if err != nil {
		t.Fatalf("mount: %v\n%s\nlog:\n%s", err, out, tail(readFile(m.log), 4000))
	}
	return m
}

// unmount unmounts m with `prescientfs unmount` and waits for its process,
// so its log is complete.
func (m *mount) unmount(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(binPath, "unmount", m.dir).CombinedOutput(); err != nil {
		t.Fatalf("unmount: %v: %s", err, out)
	}
	if m.pid > 0 && !proc.WaitExit(m.pid, 20*time.Second) {
		t.Fatal("mount process still running 20 s after unmount")
	}
}

// asset is one fixture asset as the mount shows it.
type asset struct {
	rel    string // path below the mountpoint
	sha256 string
	size   int64
}

// assets lists the servable assets of a collection.
func (a *authStack) assets(t *testing.T, collection string) []asset {
	t.Helper()
	coll := a.cat.Collection(collection)
	if coll == nil {
		t.Fatalf("no fixture collection %s", collection)
	}
	var out []asset
	for _, it := range coll.Items {
		for _, fa := range it.Assets {
			if fa.Servable {
				name := stacindex.AssetFileName(fa.Key, fa.Href, assetType(t, it, fa.Key))
				out = append(out, asset{rel: filepath.Join(coll.ID, it.ID, name), sha256: fa.SHA256, size: fa.Size})
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("collection %s has no servable assets", collection)
	}
	return out
}

// readAsset opens and reads a whole file, returns its SHA-256, and drops
// it from the page cache so that the next read asks the mount again.
func readAsset(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return "", err
	}
	dropCache(f)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// dropCache is posix_fadvise(POSIX_FADV_DONTNEED) on the whole file.
func dropCache(f *os.File) {
	const fadvDontNeed = 4
	_, _, _ = syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0)
}

// checkAsset reads an asset of the mount and compares its bytes, giving
// up (as a failure, not a hang) after limit.
func checkAsset(m *mount, as asset, limit time.Duration) error {
	done := make(chan error, 1)
	go func() {
		sum, err := readAsset(m.path(as.rel))
		switch {
		case err != nil:
			done <- err
		case sum != as.sha256:
			done <- fmt.Errorf("%s: sha256 %s, want %s", as.rel, sum[:12], as.sha256[:12])
		default:
			done <- nil
		}
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		return fmt.Errorf("%s: %w", as.rel, errHung)
	}
}

var errHung = errors.New("read still blocked")

// credentialStats parses the "credential statistics" line a mount logs at
// unmount (key → value).
func credentialStats(t *testing.T, log string) map[string]string {
	t.Helper()
	return logLine(t, log, "credential statistics")
}

// logLine parses the attributes of the last log line with message msg.
func logLine(t *testing.T, log, msg string) map[string]string {
	t.Helper()
	m := regexp.MustCompile(`msg="`+regexp.QuoteMeta(msg)+`"(.*)`).FindAllStringSubmatch(log, -1)
	if m == nil {
		t.Fatalf("the mount logged no %s:\n%s", msg, tail(log, 3000))
	}
	out := map[string]string{}
	for _, kv := range strings.Fields(m[len(m)-1][1]) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// oneLine returns s's only line, or fails when s has more than one.
func oneLine(t *testing.T, s string) string {
	t.Helper()
	s = strings.TrimSpace(s)
	if s == "" || strings.Contains(s, "\n") {
		t.Fatalf("want a one-line message, got %q", s)
	}
	return s
}
