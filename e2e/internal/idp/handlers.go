package idp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"time"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	t := "/" + s.Tenant
	mux.HandleFunc("GET "+t+"/v2.0/.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET "+t+"/discovery/v2.0/keys", s.jwks)
	mux.HandleFunc("POST "+t+"/oauth2/v2.0/devicecode", s.deviceCode)
	mux.HandleFunc("POST "+t+"/oauth2/v2.0/token", s.token)
	mux.HandleFunc("GET "+t+"/oauth2/v2.0/authorize", s.authorize)
	mux.HandleFunc("/devicelogin", s.deviceLogin)
	s.googleRoutes(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.logf != nil {
			s.logf("idp: %s %s", r.Method, r.URL.Path)
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]any{"error": code, "error_description": desc})
}

func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	a := s.Authority
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.Issuer(),
		"authorization_endpoint":                a + "/oauth2/v2.0/authorize",
		"token_endpoint":                        s.TokenEndpoint(),
		"device_authorization_endpoint":         a + "/oauth2/v2.0/devicecode",
		"jwks_uri":                              a + "/discovery/v2.0/keys",
		"response_types_supported":              []string{"code", "id_token", "code id_token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"claims_supported":                      []string{"sub", "iss", "aud", "exp", "iat", "oid", "tid", "preferred_username", "name", "policy"},
		"code_challenge_methods_supported":      []string{"S256"},
		"tenant_region_scope":                   nil,
	})
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": []jwk{publicJWK(s.kid, s.PublicKey())}})
}

func (s *Server) deviceCode(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	clientID := r.PostForm.Get("client_id")
	if clientID == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_id is required")
		return
	}
	d := &deviceCode{
		userCode: strings.ToUpper(randHex(4)),
		clientID: clientID,
		scope:    r.PostForm.Get("scope"),
		expires:  time.Now().Add(15 * time.Minute),
	}
	dc := randHex(24)
	verify := s.URL + "/devicelogin"
	s.mu.Lock()
	s.devices[dc] = d
	if s.autoApprove {
		d.approved, d.user = true, s.user
	}
	s.stats.DeviceCodesIssued++
	close(s.pendingCh)
	s.pendingCh = make(chan struct{})
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":      dc,
		"user_code":        d.userCode,
		"verification_uri": verify,
		"expires_in":       900,
		"interval":         1,
		"message":          "To sign in, use a web browser to open the page " + verify + " and enter the code " + d.userCode + " to authenticate.",
	})
}

// deviceLogin approves the device code in user_code (a stand-in for the
// page where a person types the code).
func (s *Server) deviceLogin(w http.ResponseWriter, r *http.Request) {
	code := r.FormValue("user_code")
	if code == "" {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("test IdP: POST user_code=CODE to approve a device code\n"))
		return
	}
	if err := s.ApproveDeviceCode(code); err != nil {
		http.Error(w, "unknown or used code", http.StatusNotFound)
		return
	}
	_, _ = w.Write([]byte("approved\n"))
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || redirect.Scheme == "" || q.Get("client_id") == "" {
		http.Error(w, "redirect_uri and client_id are required", http.StatusBadRequest)
		return
	}
	code := randHex(16)
	s.mu.Lock()
	s.codes[code] = &authCode{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"),
		challenge: q.Get("code_challenge"), scope: q.Get("scope"), user: s.user}
	s.mu.Unlock()
	params := url.Values{"code": {code}, "state": {q.Get("state")}, "client_info": {clientInfo(s.user, s.Tenant)}}
	if q.Get("response_mode") == "form_post" {
		// As Entra does: a page whose form posts the result to the app.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<html><body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"%s\">",
			html.EscapeString(redirect.String()))
		for k, v := range params {
			fmt.Fprintf(w, "<input type=\"hidden\" name=\"%s\" value=\"%s\">", html.EscapeString(k), html.EscapeString(v[0]))
		}
		fmt.Fprint(w, "</form></body></html>")
		return
	}
	rq := redirect.Query()
	for k, v := range params {
		rq.Set(k, v[0])
	}
	redirect.RawQuery = rq.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	f := r.PostForm
	clientID := f.Get("client_id")
	if id, _, ok := r.BasicAuth(); ok && clientID == "" {
		clientID = id
	}
	switch gt := f.Get("grant_type"); gt {
	case "device_code", "urn:ietf:params:oauth:grant-type:device_code":
		s.grantDeviceCode(w, f, clientID)
	case "refresh_token":
		s.grantRefresh(w, f, clientID)
	case "client_credentials":
		s.grantClientCredentials(w, r, clientID)
	case "authorization_code":
		s.grantAuthCode(w, f, clientID)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type "+gt+" is not supported")
	}
}

func (s *Server) grantDeviceCode(w http.ResponseWriter, f url.Values, clientID string) {
	if s.noPublicFlows.Load() {
		oauthError(w, http.StatusUnauthorized, "invalid_client",
			"AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	dc := f.Get("device_code")
	s.mu.Lock()
	d, ok := s.devices[dc]
	switch {
	case !ok || d.clientID != clientID:
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "AADSTS70000: unknown device code")
		return
	case time.Now().After(d.expires):
		delete(s.devices, dc)
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "expired_token", "AADSTS70020: the device code expired")
		return
	case !d.approved:
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "authorization_pending", "AADSTS70016: waiting for the user")
		return
	}
	delete(s.devices, dc)
	s.stats.DeviceCodeGrants++
	resp := s.issueLocked(d.user, clientID, d.scope, true)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) grantRefresh(w http.ResponseWriter, f url.Values, clientID string) {
	s.mu.Lock()
	sess, ok := s.refresh[f.Get("refresh_token")]
	if !ok || sess.revoked || sess.clientID != clientID {
		s.stats.RejectedRefreshes++
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant",
			"AADSTS70008: The provided refresh token has expired or been revoked.")
		return
	}
	s.stats.RefreshGrants++
	if s.rotate {
		sess.revoked = true
	}
	scope := f.Get("scope")
	if scope == "" {
		scope = sess.scope
	}
	resp := s.issueLocked(sess.user, clientID, scope, true)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) grantClientCredentials(w http.ResponseWriter, r *http.Request, clientID string) {
	secret := r.PostForm.Get("client_secret")
	if _, p, ok := r.BasicAuth(); ok && secret == "" {
		secret = p
	}
	s.mu.Lock()
	want, ok := s.secrets[clientID]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		s.stats.RejectedClientAuth++
		s.mu.Unlock()
		oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		return
	}
	s.stats.ClientCredentials++
	now := time.Now()
	lifetime := s.lifetime
	claims := map[string]any{
		"iss": s.Issuer(), "sub": clientID, "aud": clientID, "azp": clientID, "appid": clientID,
		"tid": s.Tenant, "oid": clientID, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(lifetime).Unix(), "ver": "2.0", "policy": s.policy,
	}
	s.mu.Unlock()
	at, err := signRS256(s.key, s.kid, claims)
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "server_error", "signing failed")
		return
	}
	s.mu.Lock()
	s.issued = append(s.issued, at)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": int(lifetime.Seconds()), "ext_expires_in": int(lifetime.Seconds()),
		"access_token": at,
	})
}

func (s *Server) grantAuthCode(w http.ResponseWriter, f url.Values, clientID string) {
	s.mu.Lock()
	c, ok := s.codes[f.Get("code")]
	delete(s.codes, f.Get("code"))
	if !ok || c.clientID != clientID || c.redirectURI != f.Get("redirect_uri") || !pkceOK(c.challenge, f.Get("code_verifier")) {
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "AADSTS70000: bad authorization code")
		return
	}
	s.stats.AuthCodeGrants++
	resp := s.issueLocked(c.user, clientID, c.scope, true)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func pkceOK(challenge, verifier string) bool {
	if challenge == "" {
		return true
	}
	sum := sha256.Sum256([]byte(verifier))
	return b64.EncodeToString(sum[:]) == challenge
}

// issueLocked signs an id_token and access token for user and, with
// refresh, records a new refresh token. s.mu must be held.
func (s *Server) issueLocked(user User, clientID, scope string, refresh bool) map[string]any {
	now := time.Now()
	idClaims := map[string]any{
		"iss": s.Issuer(), "sub": user.OID, "aud": clientID, "exp": now.Add(s.lifetime).Unix(),
		"iat": now.Unix(), "nbf": now.Unix(), "oid": user.OID, "tid": s.Tenant,
		"preferred_username": user.Username, "name": user.Name, "ver": "2.0", "policy": s.policy,
		"email": user.Username, "email_verified": true,
	}
	atLifetime := s.lifetime * 3 / 2
	atClaims := map[string]any{
		"iss": s.Issuer(), "sub": user.OID, "aud": clientID, "azp": clientID, "exp": now.Add(atLifetime).Unix(),
		"iat": now.Unix(), "nbf": now.Unix(), "oid": user.OID, "tid": s.Tenant, "scp": scope, "ver": "2.0",
		"policy": s.policy,
	}
	idToken, err1 := signRS256(s.key, s.kid, idClaims)
	accessToken, err2 := signRS256(s.key, s.kid, atClaims)
	if err1 != nil || err2 != nil {
		return map[string]any{"error": "server_error"}
	}
	resp := map[string]any{
		"token_type": "Bearer", "scope": scope,
		"expires_in": int(atLifetime.Seconds()), "ext_expires_in": int(atLifetime.Seconds()),
		"access_token": accessToken, "id_token": idToken,
		"client_info": clientInfo(user, s.Tenant),
	}
	s.issued = append(s.issued, idToken, accessToken)
	if refresh {
		rt := randHex(32)
		s.refresh[rt] = &session{user: user, clientID: clientID, scope: scope}
		resp["refresh_token"] = rt
		s.issued = append(s.issued, rt)
	}
	return resp
}

func clientInfo(u User, tenant string) string {
	b, _ := json.Marshal(map[string]string{"uid": u.OID, "utid": tenant})
	return b64.EncodeToString(b)
}
