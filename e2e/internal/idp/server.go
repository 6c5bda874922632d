package idp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Defaults for Options.
const (
	DefaultTenant   = "5f0c7a1e-test-tenant"
	DefaultClientID = "prescientfs-test-client"
	DefaultPolicy   = "readonly"
)

// User is the person who approves device codes and browser sign-ins.
type User struct {
	OID      string // object id: sub, oid and the uid in client_info
	Username string // preferred_username
	Name     string
}

// Options configures Start. The zero value is usable.
type Options struct {
	// Dir receives ca.pem; a temporary directory (removed by Close) when empty.
	Dir string
	// Tenant is the path segment of the authority; it must not contain
	// "token" (MSAL derives the device-code URL by replacing that word).
	Tenant string
	// ClientID is the application; tokens carry it as aud.
	ClientID string
	// TokenLifetime is the id_token lifetime (default 1h); access tokens
	// live 1.5 times as long, as Entra's often outlive the id_token.
	TokenLifetime time.Duration
	// User approves device codes; a default user when zero.
	User User
	// Policy is the "policy" claim (MinIO's claim-based policy), default readonly.
	Policy string
	// AutoApprove approves every device code as soon as it is issued.
	AutoApprove bool
	// RotateRefreshTokens makes every refresh token good for one
	// redemption, as with OAuth 2.1 rotation (Entra ID does not rotate):
	// a client that loses the new refresh token, e.g. because another
	// process overwrote its cache with an older one, is logged out.
	RotateRefreshTokens bool
	// Logf, when set, receives one line per request (never a token).
	Logf func(format string, args ...any)
}

// Stats counts what the IdP did.
type Stats struct {
	DeviceCodesIssued  int // device codes handed out
	DeviceCodeGrants   int // tokens issued for an approved device code
	RefreshGrants      int // tokens issued for a refresh token
	ClientCredentials  int // tokens issued for a client secret
	AuthCodeGrants     int // tokens issued for a browser sign-in
	RejectedRefreshes  int // refresh tokens refused (revoked or unknown)
	RejectedClientAuth int // client secrets refused
	// GoogleAuthCodeGrants and GoogleRefreshGrants count the Google-shaped
	// token endpoint's grants (/o/oauth2/token).
	GoogleAuthCodeGrants int
	GoogleRefreshGrants  int
}

// Server is a running IdP. Its methods are safe for concurrent use.
type Server struct {
	// URL is https://127.0.0.1:PORT.
	URL string
	// Authority is URL/Tenant, what MSAL is given.
	Authority string
	// Tenant and ClientID are as configured.
	Tenant   string
	ClientID string
	// CAFile is the PEM file of the CA that signed the server certificate.
	CAFile string

	key     *rsa.PrivateKey
	kid     string
	ca      *testCA
	srv     *http.Server
	ln      net.Listener
	dir     string
	tempDir bool
	policy  string
	logf    func(string, ...any)
	rotate  bool

	noPublicFlows atomic.Bool // device-code grants fail with AADSTS7000218

	mu          sync.Mutex
	lifetime    time.Duration          // guarded by mu
	user        User                   // guarded by mu
	autoApprove bool                   // guarded by mu
	devices     map[string]*deviceCode // guarded by mu; by device_code
	refresh     map[string]*session    // guarded by mu; by refresh token
	codes       map[string]*authCode   // guarded by mu; by authorization code
	secrets     map[string]string      // guarded by mu; client id → secret
	stats       Stats                  // guarded by mu
	pendingCh   chan struct{}          // guarded by mu; closed and replaced when a device code is issued
	issued      []string               // guarded by mu; every token and refresh token handed out
}

type deviceCode struct {
	userCode string
	clientID string
	scope    string
	expires  time.Time
	approved bool
	user     User
}

type session struct {
	user     User
	clientID string
	scope    string
	revoked  bool
}

type authCode struct {
	clientID, redirectURI, challenge, scope string
	user                                    User
}

// Start runs an IdP on a free loopback port.
func Start(opts Options) (*Server, error) {
	if opts.Tenant == "" {
		opts.Tenant = DefaultTenant
	}
	if strings.Contains(opts.Tenant, "token") || strings.Contains(opts.Tenant, "/") {
		return nil, fmt.Errorf("idp: tenant %q must not contain \"token\" or \"/\"", opts.Tenant)
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = time.Hour
	}
	if opts.User == (User{}) {
		opts.User = User{OID: "00000000-0000-0000-0000-00000000a11c", Username: "alice@example.test", Name: "Alice Test"}
	}
	if opts.Policy == "" {
		opts.Policy = DefaultPolicy
	}
	s := &Server{
		Tenant: opts.Tenant, ClientID: opts.ClientID,
		kid: "test-" + randHex(4), policy: opts.Policy, logf: opts.Logf, rotate: opts.RotateRefreshTokens,
		lifetime: opts.TokenLifetime, user: opts.User, autoApprove: opts.AutoApprove,
		devices: map[string]*deviceCode{}, refresh: map[string]*session{},
		codes: map[string]*authCode{}, secrets: map[string]string{},
		pendingCh: make(chan struct{}),
	}
	var err error
	if s.key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return nil, err
	}
	if s.ca, err = newCA(); err != nil {
		return nil, fmt.Errorf("idp: CA: %w", err)
	}
	s.dir = opts.Dir
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "idp-"); err != nil {
			return nil, err
		}
		s.tempDir = true
	}
	s.CAFile = filepath.Join(s.dir, "ca.pem")
	if err := os.WriteFile(s.CAFile, s.ca.certPEM, 0o644); err != nil {
		s.cleanup()
		return nil, err
	}
	cert, _, _, err := s.ca.issue()
	if err != nil {
		s.cleanup()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.cleanup()
		return nil, err
	}
	s.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	s.URL = "https://" + ln.Addr().String()
	s.Authority = s.URL + "/" + s.Tenant
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(s.ln) }()
	return s, nil
}

// StartT starts an IdP for a test and closes it in t.Cleanup.
func StartT(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logf == nil && testing.Verbose() {
		opts.Logf = t.Logf
	}
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and removes a temporary directory.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.cleanup()
}

func (s *Server) cleanup() {
	if s.tempDir {
		_ = os.RemoveAll(s.dir)
	}
}

// DiscoveryURL is the OpenID configuration URL (MinIO's
// MINIO_IDENTITY_OPENID_CONFIG_URL).
func (s *Server) DiscoveryURL() string {
	return s.Authority + "/v2.0/.well-known/openid-configuration"
}

// Issuer is the iss of every token.
func (s *Server) Issuer() string { return s.Authority + "/v2.0" }

// TokenEndpoint is where MSAL posts grants.
func (s *Server) TokenEndpoint() string { return s.Authority + "/oauth2/v2.0/token" }

// HTTPClient returns a client that trusts the IdP's CA (and so MinIO's
// certificate from WriteMinIOCerts).
func (s *Server) HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.TLSClientConfig = &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// RoleARN is the role MinIO derives for ClientID when configured with
// MINIO_IDENTITY_OPENID_ROLE_POLICY (and no MINIO_REGION):
// arn:minio:iam:::role/ + base64url(sha1(client id)).
func (s *Server) RoleARN() string {
	sum := sha1.Sum([]byte(s.ClientID))
	return "arn:minio:iam:::role/" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// MinIOEnv is the environment that makes MinIO accept this IdP's tokens in
// AssumeRoleWithWebIdentity. With rolePolicy, MinIO applies that policy to
// RoleARN(); otherwise it reads the "policy" claim.
func (s *Server) MinIOEnv(rolePolicy string) []string {
	env := []string{
		"MINIO_IDENTITY_OPENID_CONFIG_URL=" + s.DiscoveryURL(),
		"MINIO_IDENTITY_OPENID_CLIENT_ID=" + s.ClientID,
		"MINIO_IDENTITY_OPENID_SCOPES=openid",
	}
	if rolePolicy != "" {
		return append(env, "MINIO_IDENTITY_OPENID_ROLE_POLICY="+rolePolicy)
	}
	return append(env, "MINIO_IDENTITY_OPENID_CLAIM_NAME=policy")
}

// PublicKey is the token signing key.
func (s *Server) PublicKey() *rsa.PublicKey { return &s.key.PublicKey }

// Verify checks a bearer the IdP issued: signature, exp and aud = ClientID.
func (s *Server) Verify(token string) (Claims, error) {
	c, err := VerifyJWT(token, s.PublicKey(), s.ClientID, time.Now())
	if err != nil {
		return nil, err
	}
	if iss, _ := c["iss"].(string); iss != s.Issuer() {
		return nil, fmt.Errorf("%w: issuer %q", ErrInvalidToken, iss)
	}
	return c, nil
}

// SetTokenLifetime changes the lifetime of tokens issued from now on.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// SetAutoApprove turns automatic approval of device codes on or off.
func (s *Server) SetAutoApprove(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.autoApprove = on
}

// SetPublicClientFlows turns "Allow public client flows" of the app
// registration on (the default) or off: off, device-code sign-ins fail
// with AADSTS7000218 as Entra's do.
func (s *Server) SetPublicClientFlows(on bool) { s.noPublicFlows.Store(!on) }

// SetClientSecret registers a confidential client for the client
// credentials grant.
func (s *Server) SetClientSecret(clientID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[clientID] = secret
}

// RevokeRefreshTokens revokes every refresh token issued so far; later
// sign-ins get working ones.
func (s *Server) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.refresh {
		sess.revoked = true
	}
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// IssuedSecrets returns every id_token, access token and refresh token
// issued so far (for tests that check no secret is ever logged).
func (s *Server) IssuedSecrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// PendingDeviceCodes returns the user codes waiting for approval.
func (s *Server) PendingDeviceCodes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var codes []string
	for _, d := range s.devices {
		if !d.approved && time.Now().Before(d.expires) {
			codes = append(codes, d.userCode)
		}
	}
	return codes
}

// ErrNoSuchCode is returned by ApproveDeviceCode for an unknown user code.
var ErrNoSuchCode = errors.New("idp: no pending device code")

// ApproveDeviceCode signs the user in on the device code with userCode.
func (s *Server) ApproveDeviceCode(userCode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.devices {
		if strings.EqualFold(d.userCode, strings.TrimSpace(userCode)) && !d.approved {
			d.approved, d.user = true, s.user
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrNoSuchCode, userCode)
}

// WaitDeviceCode waits until a device code is pending and returns its user code.
func (s *Server) WaitDeviceCode(ctx context.Context) (string, error) {
	for {
		s.mu.Lock()
		ch := s.pendingCh
		s.mu.Unlock()
		if codes := s.PendingDeviceCodes(); len(codes) > 0 {
			return codes[0], nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
