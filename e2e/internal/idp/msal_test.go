package idp_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/prescient/prescientfs/creds"
	"github.com/prescient/prescientfs/e2e/internal/idp"
)

// settingsFor returns creds settings pointing at the IdP, with the store in
// configDir.
func settingsFor(t *testing.T, s *idp.Server, configDir string, extra map[string]string) *creds.Settings {
	t.Helper()
	env := map[string]string{
		creds.VarEndpointURL: "https://api.invalid/",
		creds.VarClientID:    s.ClientID,
		creds.VarAuthURL:     s.URL,
		creds.VarTenantID:    s.Tenant,
		creds.VarConfigDir:   configDir,
	}
	for k, v := range extra {
		env[k] = v
	}
	st, err := creds.Load(creds.LoadOptions{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Dir:       t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// login signs in with the device-code flow, approving through the IdP hook.
func login(t *testing.T, ctx context.Context, s *idp.Server, pc *creds.PublicClient) creds.Token {
	t.Helper()
	tok, err := pc.LoginDeviceCode(ctx, func(info creds.DeviceCodeInfo) {
		if info.VerificationURL == "" || info.UserCode == "" {
			t.Errorf("device code prompt without URL or code: %+v", info)
		}
		if err := s.ApproveDeviceCode(info.UserCode); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatalf("device-code login: %v", err)
	}
	return tok
}

func TestMSALDeviceCodeRefreshRevokeRelogin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := idp.StartT(t, idp.Options{TokenLifetime: time.Hour})
	dir := t.TempDir()
	st := settingsFor(t, s, dir, nil)
	pc, err := creds.NewPublicClient(st, creds.ClientOptions{HTTPClient: s.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}

	tok := login(t, ctx, s, pc)
	if _, err := s.Verify(tok.Value); err != nil {
		t.Fatalf("login gave a token the IdP does not accept: %v", err)
	}
	if tok.Username != "alice@example.test" {
		t.Errorf("username = %q", tok.Username)
	}
	fi, err := os.Stat(st.Store.TokenPath(st.Profile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token cache mode = %v, want 0600", fi.Mode().Perm())
	}

	// A silent call is served from the cache; a forced one redeems the
	// refresh token.
	before := s.Stats().RefreshGrants
	if got, err := pc.Token(ctx, false); err != nil || got.Value != tok.Value {
		t.Fatalf("silent token: err=%v same=%v", err, got.Value == tok.Value)
	}
	if s.Stats().RefreshGrants != before {
		t.Error("a silent call with a valid token went to the IdP")
	}
	time.Sleep(1100 * time.Millisecond) // new iat, so a new token differs
	forced, err := pc.Token(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if forced.Value == tok.Value || s.Stats().RefreshGrants != before+1 {
		t.Errorf("forced refresh: new token=%v, refresh grants %d→%d", forced.Value != tok.Value, before, s.Stats().RefreshGrants)
	}

	// Another process (a second client on the same store) sees the session.
	other, err := creds.NewPublicClient(st, creds.ClientOptions{HTTPClient: s.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Token(ctx, false); err != nil {
		t.Fatalf("second client on the same store: %v", err)
	}

	// Revoked refresh token: a forced renewal says "log in".
	s.RevokeRefreshTokens()
	_, err = pc.Token(ctx, true)
	if !errors.Is(err, creds.ErrLoginRequired) {
		t.Fatalf("after revocation: err = %v, want ErrLoginRequired", err)
	}

	// Login through the other client heals the first, with no restart.
	login(t, ctx, s, other)
	if _, err := pc.Token(ctx, true); err != nil {
		t.Fatalf("after login elsewhere: %v", err)
	}

	// Logout: no session.
	if err := st.Store.Logout(ctx, st.Profile); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Token(ctx, false); !errors.Is(err, creds.ErrLoginRequired) {
		t.Fatalf("after logout: err = %v, want ErrLoginRequired", err)
	}
}

func TestMSALClientSecret(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := idp.StartT(t, idp.Options{})
	s.SetClientSecret(s.ClientID, "s3cret-value-for-tests")
	st := settingsFor(t, s, t.TempDir(), map[string]string{creds.VarClientSecret: "s3cret-value-for-tests"})
	id, err := creds.NewIdentity(st, creds.ClientOptions{HTTPClient: s.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := id.Token(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(tok.Value); err != nil {
		t.Fatalf("service principal token: %v", err)
	}
	bad := settingsFor(t, s, t.TempDir(), map[string]string{creds.VarClientSecret: "wrong-secret-value"})
	id, err = creds.NewIdentity(bad, creds.ClientOptions{HTTPClient: s.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := id.Token(ctx, false); !errors.Is(err, creds.ErrCredentialsRejected) {
		t.Fatalf("wrong secret: err = %v, want ErrCredentialsRejected", err)
	}
}

func TestMSALBrowserLogin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := idp.StartT(t, idp.Options{})
	st := settingsFor(t, s, t.TempDir(), nil)
	pc, err := creds.NewPublicClient(st, creds.ClientOptions{HTTPClient: s.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pc.LoginBrowser(ctx, func(u string) error {
		go func() {
			if err := s.BrowserSignIn(u); err != nil {
				t.Error(err)
			}
		}()
		return nil
	})
	if err != nil {
		t.Fatalf("browser login: %v", err)
	}
	if _, err := s.Verify(tok.Value); err != nil {
		t.Fatal(err)
	}
	if s.Stats().AuthCodeGrants != 1 {
		t.Errorf("stats %+v", s.Stats())
	}
}
