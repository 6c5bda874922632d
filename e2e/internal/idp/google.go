package idp

import (
	"crypto/subtle"
	"net/http"
	"net/url"
)

// Google-shaped endpoints, as google-auth-oauthlib and golang.org/x/oauth2
// use them for the installed-app flow (PRESCIENT_AUTH_PROVIDER=google):
//
//	GET  /o/oauth2/auth    sign-in: redirects to the loopback redirect_uri
//	                       with code and state (BrowserSignIn follows it)
//	POST /o/oauth2/token   authorization_code (PKCE S256 checked when a
//	                       challenge was sent) and refresh_token grants; the
//	                       client must send the secret registered with
//	                       SetClientSecret; a refresh answers no new
//	                       refresh_token, as Google's
//	POST /o/oauth2/revoke  token=REFRESH_TOKEN revokes it
//
// Tokens are signed like the Azure-shaped ones (same issuer, key and
// lifetime), with an email claim, so Verify, the STAC server and MinIO
// accept them.

func (s *Server) googleRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /o/oauth2/auth", s.googleAuthorize)
	mux.HandleFunc("POST /o/oauth2/token", s.googleToken)
	mux.HandleFunc("POST /o/oauth2/revoke", s.googleRevoke)
}

func (s *Server) googleAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme != "http" || (redirect.Hostname() != "localhost" && redirect.Hostname() != "127.0.0.1") {
		http.Error(w, "redirect_uri must be a loopback http URL", http.StatusBadRequest)
		return
	}
	if q.Get("response_type") != "code" || q.Get("client_id") == "" {
		http.Error(w, "response_type=code and client_id are required", http.StatusBadRequest)
		return
	}
	if m := q.Get("code_challenge_method"); q.Get("code_challenge") != "" && m != "S256" {
		http.Error(w, "code_challenge_method must be S256", http.StatusBadRequest)
		return
	}
	code := randHex(16)
	s.mu.Lock()
	s.codes[code] = &authCode{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"),
		challenge: q.Get("code_challenge"), scope: q.Get("scope"), user: s.user}
	s.mu.Unlock()
	rq := redirect.Query()
	rq.Set("code", code)
	rq.Set("state", q.Get("state"))
	rq.Set("scope", q.Get("scope"))
	redirect.RawQuery = rq.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// googleClientOK checks the client secret (form or basic auth).
func (s *Server) googleClientOK(r *http.Request) (string, bool) {
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	want, ok := s.secrets[id]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		s.stats.RejectedClientAuth++
		return id, false
	}
	return id, true
}

func (s *Server) googleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	clientID, ok := s.googleClientOK(r)
	if !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "The OAuth client was not found.")
		return
	}
	f := r.PostForm
	switch f.Get("grant_type") {
	case "authorization_code":
		s.mu.Lock()
		c, ok := s.codes[f.Get("code")]
		delete(s.codes, f.Get("code"))
		if !ok || c.clientID != clientID || c.redirectURI != f.Get("redirect_uri") || !pkceOK(c.challenge, f.Get("code_verifier")) {
			s.mu.Unlock()
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Bad Request")
			return
		}
		s.stats.GoogleAuthCodeGrants++
		resp := s.issueLocked(c.user, clientID, c.scope, true)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, googleShape(resp))
	case "refresh_token":
		s.mu.Lock()
		sess, ok := s.refresh[f.Get("refresh_token")]
		if !ok || sess.revoked || sess.clientID != clientID {
			s.stats.RejectedRefreshes++
			s.mu.Unlock()
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
			return
		}
		s.stats.GoogleRefreshGrants++
		resp := s.issueLocked(sess.user, clientID, sess.scope, false)
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, googleShape(resp))
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+f.Get("grant_type"))
	}
}

// googleShape keeps the fields Google's token endpoint answers.
func googleShape(resp map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range []string{"access_token", "expires_in", "id_token", "refresh_token", "scope", "token_type"} {
		if v, ok := resp[k]; ok {
			out[k] = v
		}
	}
	return out
}

func (s *Server) googleRevoke(w http.ResponseWriter, r *http.Request) {
	tok := r.FormValue("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.refresh[tok]; ok {
		sess.revoked = true
		w.WriteHeader(http.StatusOK)
		return
	}
	oauthError(w, http.StatusBadRequest, "invalid_token", "Token is not valid")
}
