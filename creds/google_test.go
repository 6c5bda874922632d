package creds

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGoogle is /o/oauth2/token: refresh_token grants for the refresh
// tokens it knows, id_tokens (unsigned JWTs) living `lifetime` on the fake
// clock; with rotate, each refresh answers a new refresh token.
type fakeGoogle struct {
	clock    *fakeClock
	lifetime time.Duration
	rotate   bool

	mu       sync.Mutex
	valid    map[string]bool // guarded by mu
	n        int             // guarded by mu; tokens issued
	secrets  []string        // guarded by mu; client secrets seen
	refreshN int             // guarded by mu
}

func fakeJWT(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(b) + ".sig"
}

func (f *fakeGoogle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secrets = append(f.secrets, r.PostForm.Get("client_secret"))
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path != "/o/oauth2/token" || r.PostForm.Get("grant_type") != "refresh_token" || !f.valid[r.PostForm.Get("refresh_token")] {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Token has been expired or revoked."}`)
		return
	}
	f.refreshN++
	f.n++
	now := f.clock.Now()
	resp := map[string]any{
		"access_token": fmt.Sprintf("at-%d", f.n), "expires_in": int(f.lifetime.Seconds()), "token_type": "Bearer",
		"id_token": fakeJWT(map[string]any{"email": "ada@example.com", "iat": now.Unix(), "exp": now.Add(f.lifetime).Unix(), "n": f.n}),
	}
	if f.rotate {
		delete(f.valid, r.PostForm.Get("refresh_token"))
		rt := fmt.Sprintf("rt-%d", f.n)
		f.valid[rt] = true
		resp["refresh_token"] = rt
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func googleSettings(t *testing.T, authURL string) *Settings {
	t.Helper()
	s, err := Load(LoadOptions{Dir: t.TempDir(), LookupEnv: envOf(map[string]string{
		VarEndpointURL: "https://api.example.com/", VarAuthProvider: "google", VarClientID: "cid",
		VarAuthURL: authURL + "/", VarGoogleClientSecret: "gsecret-123456", VarConfigDir: t.TempDir(),
	})})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

func writeGoogleSession(t *testing.T, s *Settings, sess googleSession) {
	t.Helper()
	data, _ := json.Marshal(sess)
	if err := writeFileAtomic(s.Store.GoogleTokenPath(s.Profile), data); err != nil {
		t.Fatal(err)
	}
}

// TestGoogleClientRenewal: the saved id_token is used until the Bearer's
// margin, then the refresh token renews it (once however many wait); the
// refresh token is kept when Google answers none and replaced when it
// answers one; a refused refresh is ErrLoginRequired until a new session
// is written by another process.
func TestGoogleClientRenewal(t *testing.T) {
	clock := newClock()
	fg := &fakeGoogle{clock: clock, lifetime: time.Hour, valid: map[string]bool{"rt-0": true}}
	srv := httptest.NewServer(fg)
	defer srv.Close()
	s := googleSettings(t, srv.URL)
	g, err := NewGoogleClient(s, ClientOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := g.Token(ctx, false); !errors.Is(err, ErrLoginRequired) {
		t.Fatalf("no session: %v", err)
	}
	writeGoogleSession(t, s, googleSession{RefreshToken: "rt-0", ClientSecret: "gsecret-123456"})
	if fi, _ := os.Stat(s.Store.GoogleTokenPath(s.Profile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("session file mode %v", fi.Mode())
	}

	b := NewBearer(g, BearerOptions{Now: clock.Now, Log: quietLog()})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Token(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	tok, _ := b.Token(ctx)
	if fg.refreshN != 1 || tok.Username != "ada@example.com" || !tok.Expires.Equal(clock.Now().Add(time.Hour).Truncate(time.Second)) {
		t.Fatalf("first token: %d refreshes, %v", fg.refreshN, tok)
	}
	if fg.secrets[0] != "gsecret-123456" {
		t.Errorf("client secret sent: %q", fg.secrets[0])
	}
	// Within the lifetime: no request.
	clock.Advance(50 * time.Minute)
	if _, err := b.Token(ctx); err != nil || fg.refreshN != 1 {
		t.Fatalf("within the lifetime: %v, %d refreshes", err, fg.refreshN)
	}
	// Within the 5-minute margin: renewed with the same refresh token,
	// which is kept (Google answers none).
	clock.Advance(6 * time.Minute)
	if _, err := b.Token(ctx); err != nil || fg.refreshN != 2 {
		t.Fatalf("in the margin: %v, %d refreshes", err, fg.refreshN)
	}
	sess, _ := g.load()
	if sess.RefreshToken != "rt-0" || sess.IDToken == "" {
		t.Errorf("session after refresh: rt %q", sess.RefreshToken)
	}
	// A rotated refresh token is saved.
	fg.mu.Lock()
	fg.rotate = true
	fg.mu.Unlock()
	if _, err := g.Token(ctx, true); err != nil {
		t.Fatal(err)
	}
	if sess, _ := g.load(); sess.RefreshToken != "rt-3" {
		t.Errorf("rotated refresh token not saved: %q", sess.RefreshToken)
	}

	// Revoked: ErrLoginRequired, with no secret in the message.
	fg.mu.Lock()
	fg.valid = map[string]bool{}
	fg.mu.Unlock()
	_, err = g.Token(ctx, true)
	if !errors.Is(err, ErrLoginRequired) || strings.Contains(err.Error(), "rt-") || strings.Contains(err.Error(), "gsecret") {
		t.Fatalf("revoked: %v", err)
	}
	// A login elsewhere writes a new session: the same client heals.
	fg.mu.Lock()
	fg.valid["rt-new"] = true
	fg.mu.Unlock()
	writeGoogleSession(t, s, googleSession{RefreshToken: "rt-new"})
	if _, err := g.Token(ctx, true); err != nil {
		t.Fatalf("after a new login: %v", err)
	}

	// The saved client secret configures a profile-only process.
	writeGoogleSession(t, s, googleSession{RefreshToken: "rt-new", ClientSecret: "gsecret-123456"})
	s2, err := Load(LoadOptions{Dir: t.TempDir(), LookupEnv: envOf(map[string]string{
		VarEndpointURL: "https://api.example.com/", VarAuthProvider: "google", VarClientID: "cid",
		VarAuthURL: srv.URL + "/", VarConfigDir: s.Store.Dir,
	})})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Validate(); err != nil || s2.GoogleClientSecret != "gsecret-123456" || s2.Source(VarGoogleClientSecret).Kind != "profile" {
		t.Errorf("client secret from the session: %v %v", err, s2.Source(VarGoogleClientSecret))
	}
	for _, e := range s2.Entries() {
		if strings.Contains(e.Value, "gsecret") {
			t.Errorf("%s shows the secret", e.Name)
		}
	}
}
