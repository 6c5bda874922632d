package idp_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prescient/prescientfs/creds"
	"github.com/prescient/prescientfs/e2e/internal/idp"
)

// googleLogin signs in with creds.GoogleClient (golang.org/x/oauth2) and
// the IdP's fake browser following /o/oauth2/auth to the loopback redirect.
func googleLogin(t *testing.T, ctx context.Context, s *idp.Server, g *creds.GoogleClient) creds.Token {
	t.Helper()
	browserErr := make(chan error, 1)
	tok, err := g.Login(ctx, nil, func(p creds.GoogleLoginPrompt) {
		go func() { browserErr <- s.BrowserSignIn(p.URL) }()
	})
	if err != nil {
		t.Fatalf("google login: %v", err)
	}
	if err := <-browserErr; err != nil {
		t.Fatalf("browser: %v", err)
	}
	return tok
}

// TestGoogleSignIn: the installed-app flow with PKCE through the real
// oauth2 library, a refresh-token renewal per short token, the refresh
// token saved 0600 in the profile, revocation → ErrLoginRequired, a new
// login healing the same client.
func TestGoogleSignIn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := idp.StartT(t, idp.Options{TokenLifetime: 2 * time.Second})
	const secret = "google-client-secret-1"
	s.SetClientSecret(s.ClientID, secret)
	cfg := t.TempDir()
	settings := settingsFor(t, s, cfg, map[string]string{
		creds.VarAuthProvider: "google", creds.VarTenantID: "", creds.VarGoogleClientSecret: secret,
		creds.VarGoogleRedirectPort: "0",
	})
	if err := settings.Validate(); err != nil {
		t.Fatal(err)
	}
	id, err := creds.NewIdentity(settings, creds.ClientOptions{HTTPClient: s.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	g := id.(*creds.GoogleClient)
	if _, err := g.Token(ctx, false); !errors.Is(err, creds.ErrLoginRequired) {
		t.Fatalf("before login: %v", err)
	}
	tok := googleLogin(t, ctx, s, g)
	if c, err := s.Verify(tok.Value); err != nil || tok.Username != "alice@example.test" || c["email"] != tok.Username {
		t.Fatalf("id_token %v: %v", tok, err)
	}
	fi, err := os.Stat(settings.Store.GoogleTokenPath(settings.Profile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v %v", fi, err)
	}
	if st := s.Stats(); st.GoogleAuthCodeGrants != 1 {
		t.Errorf("stats %+v", st)
	}

	// The saved id_token while valid; a forced call refreshes.
	again, err := g.Token(ctx, false)
	if err != nil || again.Value != tok.Value {
		t.Fatalf("cached token: %v", err)
	}
	// Each call past the renewal point of the token in hand (a fifth of
	// its life before exp) renews it with a refresh grant. JWT times are
	// whole seconds, so that point is 0.6 to 1.6 s after a 2 s token was
	// issued: wait for it, as computed from the token, not a fixed time.
	b := creds.NewBearer(g, creds.BearerOptions{})
	cur := tok
	for i := range 3 {
		renewAt := cur.Expires.Add(-cur.Expires.Sub(cur.Issued) / 5)
		time.Sleep(time.Until(renewAt) + 50*time.Millisecond)
		grants := s.Stats().GoogleRefreshGrants
		nt, err := b.Token(ctx)
		if err != nil {
			t.Fatalf("renewal %d: %v", i, err)
		}
		if _, err := s.Verify(nt.Value); err != nil {
			t.Fatalf("renewal %d: %v", i, err)
		}
		if got := s.Stats().GoogleRefreshGrants; got <= grants {
			t.Errorf("renewal %d: no refresh grant past the token's renewal point (%d grants)", i, got)
		}
		cur = nt
	}
	data, _ := os.ReadFile(settings.Store.GoogleTokenPath(settings.Profile))
	if !strings.Contains(string(data), "refresh_token") {
		t.Error("refresh token not kept after refreshes without a new one")
	}

	s.RevokeRefreshTokens()
	_, revokedErr := g.Token(ctx, true)
	if !errors.Is(revokedErr, creds.ErrLoginRequired) {
		t.Fatalf("revoked: %v", revokedErr)
	}
	other, _ := creds.NewGoogleClient(settings, creds.ClientOptions{HTTPClient: s.HTTPClient()})
	googleLogin(t, ctx, s, other)
	if _, err := g.Token(ctx, true); err != nil {
		t.Fatalf("after a new login elsewhere: %v", err)
	}
	for _, sec := range append(s.IssuedSecrets(), secret) {
		if strings.Contains(revokedErr.Error(), sec) {
			t.Fatal("a secret in an error")
		}
	}
}

// TestDeviceCodeWithoutPublicClientFlows: an app registration without
// "Allow public client flows" refuses device code (AADSTS7000218); the
// error says what to do, and the browser sign-in works.
func TestDeviceCodeWithoutPublicClientFlows(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := idp.StartT(t, idp.Options{AutoApprove: true})
	s.SetPublicClientFlows(false)
	settings := settingsFor(t, s, t.TempDir(), nil)
	pc, err := creds.NewPublicClient(settings, creds.ClientOptions{HTTPClient: s.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = pc.LoginDeviceCode(ctx, func(creds.DeviceCodeInfo) {})
	if err == nil || !errors.Is(err, creds.ErrCredentialsRejected) {
		t.Fatalf("device code without public client flows: %v", err)
	}
	for _, want := range []string{"AADSTS7000218", "--browser", "Allow public client flows"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	t.Logf("device code refused: %v", err)
	tok, err := pc.LoginBrowser(ctx, func(u string) error {
		go func() { _ = s.BrowserSignIn(u) }()
		return nil
	})
	if err != nil || tok.Username == "" {
		t.Fatalf("browser sign-in: %v", err)
	}
}
