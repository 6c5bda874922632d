package creds

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// GoogleScopes are the SDK's scopes for Google sign-in.
var GoogleScopes = []string{"openid", "https://www.googleapis.com/auth/userinfo.email"}

// GoogleClient signs a person in with Google's OAuth2 installed-app flow,
// as the SDK does (google-auth-oauthlib's InstalledAppFlow.run_local_server):
// auth and token URIs joined to PRESCIENT_AUTH_URL, a loopback redirect on
// PRESCIENT_GOOGLE_REDIRECT_PORT, the client secret from
// PRESCIENT_GOOGLE_CLIENT_SECRET, PKCE. The bearer is the id_token; the
// refresh token is kept in the profile (google.json, 0600, written
// atomically under the profile's lock) and re-read at every renewal, so a
// login in another terminal heals a running mount.
type GoogleClient struct {
	cfg      oauth2.Config
	tokenURL string
	port     int
	store    *Store
	profile  string
	hc       *http.Client
	now      func() time.Time

	mu sync.Mutex // one renewal at a time in this process
}

// googleSession is google.json.
type googleSession struct {
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token,omitempty"`
	// ClientSecret is the installed app's (Google: "not treated as a
	// secret"), kept so that a mount configured by the profile alone can
	// renew; PRESCIENT_GOOGLE_CLIENT_SECRET, when set, wins.
	ClientSecret string `json:"client_secret,omitempty"`
}

// savedGoogleClientSecret returns the client secret saved with the
// profile's Google session ("" when none).
func (s *Store) savedGoogleClientSecret(profile string) string {
	data, err := os.ReadFile(s.GoogleTokenPath(profile))
	if err != nil {
		return ""
	}
	var sess googleSession
	_ = json.Unmarshal(data, &sess)
	return sess.ClientSecret
}

// NewGoogleClient returns the Google client for the settings' profile.
func NewGoogleClient(s *Settings, o ClientOptions) (*GoogleClient, error) {
	authURL, err := URLJoin(s.AuthURL, "/o/oauth2/auth")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", VarAuthURL, err)
	}
	tokenURL, err := URLJoin(s.AuthURL, "/o/oauth2/token")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", VarAuthURL, err)
	}
	return &GoogleClient{
		cfg: oauth2.Config{
			ClientID: s.ClientID, ClientSecret: s.GoogleClientSecret, Scopes: GoogleScopes,
			Endpoint: oauth2.Endpoint{AuthURL: authURL, TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams},
		},
		tokenURL: tokenURL, port: s.GoogleRedirectPort, store: s.Store, profile: s.Profile,
		hc: o.HTTPClient, now: nowFunc(o.Now),
	}, nil
}

func (g *GoogleClient) ctx(ctx context.Context) context.Context {
	if g.hc == nil {
		return ctx
	}
	return context.WithValue(ctx, oauth2.HTTPClient, g.hc)
}

// Token implements Identity: the saved id_token while it is valid (unless
// force), else a new one for the saved refresh token.
func (g *GoogleClient) Token(ctx context.Context, force bool) (Token, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	unlock, err := lockPath(ctx, g.store.lockPath(g.profile))
	if err != nil {
		return Token{}, err
	}
	defer unlock()
	sess, err := g.load()
	if err != nil {
		return Token{}, err
	}
	if sess.RefreshToken == "" {
		return Token{}, loginRequired(g.profile, "no saved Google session in %s", g.store.ProfileDir(g.profile))
	}
	if !force && sess.IDToken != "" {
		if tok, err := tokenFromJWT(sess.IDToken); err == nil && tok.Expires.After(g.now()) {
			return tok, nil
		}
	}
	t, err := g.cfg.TokenSource(g.ctx(ctx), &oauth2.Token{RefreshToken: sess.RefreshToken}).Token()
	if err != nil {
		return Token{}, g.oauthError(err)
	}
	return g.save(sess, t)
}

// oauthError says what failed without the response body; a refused grant
// is ErrLoginRequired.
func (g *GoogleClient) oauthError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return fmt.Errorf("the Google token endpoint %s: %w", g.tokenURL, err)
	}
	switch re.ErrorCode {
	case "invalid_grant", "invalid_client", "unauthorized_client", "access_denied":
		return loginRequired(g.profile, "%s refused the session (%s)", g.tokenURL, re.ErrorCode)
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	return fmt.Errorf("the Google token endpoint %s answered HTTP %d %s", g.tokenURL, status, re.ErrorCode)
}

func (g *GoogleClient) path() string { return g.store.GoogleTokenPath(g.profile) }

func (g *GoogleClient) load() (googleSession, error) {
	var sess googleSession
	data, err := os.ReadFile(g.path())
	if errors.Is(err, fs.ErrNotExist) {
		return sess, nil
	}
	if err != nil {
		return sess, fmt.Errorf("read %s: %w", g.path(), err)
	}
	if err := json.Unmarshal(data, &sess); err != nil {
		return sess, loginRequired(g.profile, "%s is damaged", g.path())
	}
	return sess, nil
}

// save writes the session with t's tokens (the lock is held) and returns
// the bearer.
func (g *GoogleClient) save(sess googleSession, t *oauth2.Token) (Token, error) {
	idt, _ := t.Extra("id_token").(string)
	if idt == "" {
		return Token{}, fmt.Errorf("%s returned no id_token (is \"openid\" among the scopes?)", g.tokenURL)
	}
	tok, err := tokenFromJWT(idt)
	if err != nil {
		return Token{}, fmt.Errorf("%s returned an id_token that is not a JWT", g.tokenURL)
	}
	sess.IDToken = idt
	if t.RefreshToken != "" {
		sess.RefreshToken = t.RefreshToken
	}
	data, _ := json.MarshalIndent(sess, "", "  ") // #nosec G117 -- the refresh token is the session: saved 0600 in the store, as the SDK does
	if err := writeFileAtomic(g.path(), append(data, '\n')); err != nil {
		return Token{}, err
	}
	return tok, nil
}

// tokenFromJWT reads the claims that say who and until when.
func tokenFromJWT(raw string) (Token, error) {
	c, err := parseJWT(raw)
	if err != nil {
		return Token{}, err
	}
	tok := Token{Value: raw, Expires: time.Unix(c.Exp, 0), Username: c.Email, TenantID: c.TenantID}
	if tok.Username == "" {
		tok.Username = c.PreferredUsername
	}
	if c.Iat != 0 {
		tok.Issued = time.Unix(c.Iat, 0)
	}
	return tok, nil
}

// GoogleLoginPrompt is what a person needs when no browser opens: the URL
// and the loopback address the browser is sent back to.
type GoogleLoginPrompt struct {
	URL         string
	RedirectURI string
	Port        int
}

// Login runs the installed-app flow: it listens on the loopback redirect
// port, calls prompt with the sign-in URL (and openURL, when not nil, to
// open a browser), waits for the redirect (or ctx), exchanges the code and
// saves the session in the profile.
func (g *GoogleClient) Login(ctx context.Context, openURL func(string) error, prompt func(GoogleLoginPrompt)) (Token, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(g.port)))
	if err != nil {
		return Token{}, fmt.Errorf("listen for the Google sign-in redirect on port %d (%s): %w", g.port, VarGoogleRedirectPort, err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	// Browsers may try ::1 for localhost first; serve it too when we can.
	ln6, _ := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port)))

	cfg := g.cfg
	cfg.RedirectURL = fmt.Sprintf("http://localhost:%d/", port)
	verifier := oauth2.GenerateVerifier()
	state := randomState()
	authURL := cfg.AuthCodeURL(state, oauth2.AccessTypeOffline, oauth2.S256ChallengeOption(verifier))

	type result struct {
		code string
		err  error
	}
	done := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("state") != state || (q.Get("code") == "" && q.Get("error") == "") {
			http.Error(w, "not the sign-in you started", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if e := q.Get("error"); e != "" {
			fmt.Fprintf(w, "<p>Sign-in failed: %s. You may close this window.</p>", html.EscapeString(e))
			select {
			case done <- result{err: loginRequired(g.profile, "Google sign-in refused (%s)", e)}:
			default:
			}
			return
		}
		fmt.Fprint(w, "<p>The authentication flow has completed. You may close this window.</p>")
		select {
		case done <- result{code: q.Get("code")}:
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	if ln6 != nil {
		go func() { _ = srv.Serve(ln6) }()
	}
	defer srv.Close()

	prompt(GoogleLoginPrompt{URL: authURL, RedirectURI: cfg.RedirectURL, Port: port})
	if openURL != nil {
		_ = openURL(authURL) // the prompt already printed the URL
	}
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		return Token{}, fmt.Errorf("waiting for the Google sign-in redirect: %w", ctx.Err())
	}
	if res.err != nil {
		return Token{}, res.err
	}
	t, err := cfg.Exchange(g.ctx(ctx), res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Token{}, fmt.Errorf("google sign-in: %w", g.oauthError(err))
	}
	if t.RefreshToken == "" {
		return Token{}, fmt.Errorf("%s returned no refresh token: the session could not be renewed", g.tokenURL)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	unlock, err := lockPath(ctx, g.store.lockPath(g.profile))
	if err != nil {
		return Token{}, err
	}
	defer unlock()
	return g.save(googleSession{ClientSecret: g.cfg.ClientSecret}, t)
}

func randomState() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
