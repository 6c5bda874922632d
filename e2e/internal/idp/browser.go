package idp

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
)

var (
	formActionRE = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	formInputRE  = regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)">`)
)

// BrowserSignIn plays the browser for MSAL's interactive flow: it opens
// authURL (what MSAL passes to its open-URL function), and posts the
// sign-in result to MSAL's local redirect listener, as the IdP's
// form_post page would make a browser do. Use it from
// public.WithOpenURL (in a goroutine: MSAL waits for the post).
func (s *Server) BrowserSignIn(authURL string) error {
	hc := s.HTTPClient()
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(authURL)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusFound { // response_mode=query
		r, err := hc.Get(resp.Header.Get("Location"))
		if err == nil {
			r.Body.Close()
		}
		return err
	}
	m := formActionRE.FindSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		return fmt.Errorf("idp: authorize answered %s without a sign-in form", resp.Status)
	}
	form := url.Values{}
	for _, in := range formInputRE.FindAllSubmatch(body, -1) {
		form.Set(html.UnescapeString(string(in[1])), html.UnescapeString(string(in[2])))
	}
	r, err := hc.PostForm(html.UnescapeString(string(m[1])), form)
	if err != nil {
		return err
	}
	r.Body.Close()
	return nil
}
