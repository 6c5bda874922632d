package creds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/public"
)

// Token is a bearer token. Value is a secret: Token's String and LogValue
// never show it.
type Token struct {
	Value    string
	Expires  time.Time
	Issued   time.Time // iat, when known: with Expires, the lifetime
	Username string    // the account, when the token names one
	TenantID string
}

func (t Token) String() string {
	return fmt.Sprintf("token(user=%q, expires=%s)", t.Username, t.Expires.UTC().Format(time.RFC3339))
}

// LogValue implements slog.LogValuer without the secret.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", t.Username), slog.Time("expires", t.Expires))
}

// Identity obtains bearer tokens.
type Identity interface {
	// Token returns a bearer. force bypasses every cache and asks the
	// identity provider (used when the cached token is near its own exp
	// or the API refused it).
	Token(ctx context.Context, force bool) (Token, error)
}

// ClientOptions tune the MSAL clients.
type ClientOptions struct {
	// HTTPClient talks to the authority; nil uses MSAL's default, whose
	// TLS trust is the system pool (Go honours SSL_CERT_FILE).
	HTTPClient *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// microsoftHosts are the cloud hosts MSAL's instance discovery knows.
var microsoftHosts = map[string]bool{
	"login.microsoftonline.com":        true,
	"login.microsoft.com":              true,
	"login.windows.net":                true,
	"sts.windows.net":                  true,
	"login.microsoftonline.us":         true,
	"login.usgovcloudapi.net":          true,
	"login.chinacloudapi.cn":           true,
	"login.partner.microsoftonline.cn": true,
	"login.microsoftonline.de":         true,
}

// instanceDiscovery reports whether MSAL should validate the authority
// with Microsoft's instance discovery: only for Microsoft's own hosts.
func instanceDiscovery(authority string) bool {
	u, err := url.Parse(authority)
	return err == nil && microsoftHosts[strings.ToLower(u.Hostname())]
}

// forceClaims is a claims request that makes MSAL skip its cached access
// token and redeem the refresh token (MSAL Go has no ForceRefresh). It is
// the nbf challenge Entra ID itself issues for continuous access
// evaluation, so the identity provider accepts it.
func forceClaims(now time.Time) string {
	return fmt.Sprintf(`{"access_token":{"nbf":{"essential":true,"value":"%d"}}}`, now.Unix())
}

// PublicClient signs a person in with MSAL (device code or browser) and
// renews their tokens from the profile's saved session.
type PublicClient struct {
	client  public.Client
	scopes  []string
	profile string
	now     func() time.Time

	// mu serializes MSAL operations in this process. A token operation
	// holds the profile's file lock from its first cache read to its last
	// write (see withLockScope); letting two interleave would deadlock
	// against MSAL's own cache mutex. Waiters want the same refresh anyway.
	mu sync.Mutex
}

// NewPublicClient returns the MSAL public client for the settings' profile.
func NewPublicClient(s *Settings, o ClientOptions) (*PublicClient, error) {
	authority, err := s.Authority()
	if err != nil {
		return nil, err
	}
	opts := []public.Option{
		public.WithAuthority(authority),
		public.WithCache(s.Store.TokenCache(s.Profile)),
		public.WithInstanceDiscovery(instanceDiscovery(authority)),
	}
	if o.HTTPClient != nil {
		opts = append(opts, public.WithHTTPClient(o.HTTPClient))
	}
	c, err := public.New(s.ClientID, opts...)
	if err != nil {
		return nil, fmt.Errorf("MSAL client for %s: %w", authority, err)
	}
	return &PublicClient{client: c, scopes: s.Scopes, profile: s.Profile, now: nowFunc(o.Now)}, nil
}

func nowFunc(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

// Token implements Identity from the saved session: MSAL's cache, or its
// refresh token.
func (p *PublicClient) Token(ctx context.Context, force bool) (Token, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ctx, release := withLockScope(ctx)
	defer release()
	acct, err := p.account(ctx)
	if err != nil {
		return Token{}, err
	}
	opts := []public.AcquireSilentOption{public.WithSilentAccount(acct)}
	if force {
		opts = append(opts, public.WithClaims(forceClaims(p.now())))
	}
	res, err := p.client.AcquireTokenSilent(ctx, p.scopes, opts...)
	if err != nil {
		return Token{}, classifyMSAL(p.profile, err)
	}
	return fromIDToken(res)
}

// account returns the profile's signed-in account.
func (p *PublicClient) account(ctx context.Context) (public.Account, error) {
	accts, err := p.client.Accounts(ctx)
	if err != nil {
		return public.Account{}, err
	}
	if len(accts) == 0 {
		return public.Account{}, loginRequired(p.profile, "no saved session")
	}
	return accts[0], nil
}

// DeviceCodeInfo is what a person needs to finish a device-code sign-in.
type DeviceCodeInfo struct {
	VerificationURL string
	UserCode        string
	Message         string
	Expires         time.Time
}

// LoginDeviceCode signs in with the device-code flow: prompt is called
// with the URL and code, then LoginDeviceCode waits until the person
// approves (or ctx ends). The session is saved in the profile, replacing
// any other account.
func (p *PublicClient) LoginDeviceCode(ctx context.Context, prompt func(DeviceCodeInfo)) (Token, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dc, err := p.client.AcquireTokenByDeviceCode(ctx, p.scopes)
	if err != nil {
		return Token{}, fmt.Errorf("start device-code sign-in: %w", classifyMSAL(p.profile, err))
	}
	prompt(DeviceCodeInfo{VerificationURL: dc.Result.VerificationURL, UserCode: dc.Result.UserCode,
		Message: dc.Result.Message, Expires: dc.Result.ExpiresOn})
	ctx, release := withLockScope(ctx)
	defer release()
	res, err := dc.AuthenticationResult(ctx)
	if err != nil {
		return Token{}, fmt.Errorf("device-code sign-in: %w", classifyMSAL(p.profile, err))
	}
	return p.finishLogin(ctx, res)
}

// LoginBrowser signs in with MSAL's interactive flow (a browser and a
// local redirect). openURL opens the sign-in page; nil uses the system
// browser.
func (p *PublicClient) LoginBrowser(ctx context.Context, openURL func(string) error) (Token, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var opts []public.AcquireInteractiveOption
	if openURL != nil {
		opts = append(opts, public.WithOpenURL(openURL))
	}
	ctx, release := withLockScope(ctx)
	defer release()
	res, err := p.client.AcquireTokenInteractive(ctx, p.scopes, opts...)
	if err != nil {
		return Token{}, fmt.Errorf("browser sign-in: %w", classifyMSAL(p.profile, err))
	}
	return p.finishLogin(ctx, res)
}

// finishLogin drops accounts other than the one just signed in, so the
// profile holds one session.
func (p *PublicClient) finishLogin(ctx context.Context, res public.AuthResult) (Token, error) {
	accts, err := p.client.Accounts(ctx)
	if err != nil {
		return Token{}, err
	}
	for _, a := range accts {
		if a.HomeAccountID != res.Account.HomeAccountID {
			if err := p.client.RemoveAccount(ctx, a); err != nil {
				return Token{}, err
			}
		}
	}
	return fromIDToken(res)
}

func fromIDToken(res public.AuthResult) (Token, error) {
	raw := res.IDToken.RawToken
	if raw == "" {
		return Token{}, errors.New("the identity provider returned no id_token (is \"openid\" among the scopes?)")
	}
	exp := res.ExpiresOn
	if res.IDToken.ExpirationTime != 0 {
		exp = time.Unix(res.IDToken.ExpirationTime, 0)
	}
	user := res.IDToken.PreferredUsername
	if user == "" {
		user = res.Account.PreferredUsername
	}
	var iat time.Time
	if res.IDToken.IssuedAt != 0 {
		iat = time.Unix(res.IDToken.IssuedAt, 0)
	}
	return Token{Value: raw, Expires: exp, Issued: iat, Username: user, TenantID: res.IDToken.TenantID}, nil
}

// ConfidentialClient is a service principal: MSAL's client-credentials
// flow with a client secret. Its bearer is the access token (there is no
// id_token without a person). Nothing is saved.
type ConfidentialClient struct {
	client confidential.Client
	scopes []string
	now    func() time.Time
}

// NewConfidentialClient returns the service-principal client. Its scopes
// are PRESCIENT_SCOPES when set, else "<client id>/.default".
func NewConfidentialClient(s *Settings, o ClientOptions) (*ConfidentialClient, error) {
	authority, err := s.Authority()
	if err != nil {
		return nil, err
	}
	cred, err := confidential.NewCredFromSecret(s.ClientSecret)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", VarClientSecret, err)
	}
	opts := []confidential.Option{confidential.WithInstanceDiscovery(instanceDiscovery(authority))}
	if o.HTTPClient != nil {
		opts = append(opts, confidential.WithHTTPClient(o.HTTPClient))
	}
	c, err := confidential.New(authority, s.ClientID, cred, opts...)
	if err != nil {
		return nil, fmt.Errorf("MSAL client for %s: %w", authority, err)
	}
	scopes := s.Scopes
	if s.Source(VarScopes).Kind == "default" {
		scopes = []string{s.ClientID + "/.default"}
	}
	return &ConfidentialClient{client: c, scopes: scopes, now: nowFunc(o.Now)}, nil
}

// Token implements Identity.
func (c *ConfidentialClient) Token(ctx context.Context, force bool) (Token, error) {
	var opts []confidential.AcquireByCredentialOption
	if force {
		opts = append(opts, confidential.WithClaims(forceClaims(c.now())))
	}
	res, err := c.client.AcquireTokenByCredential(ctx, c.scopes, opts...)
	if err != nil {
		err = classifyMSAL("", err)
		if errors.Is(err, ErrLoginRequired) {
			return Token{}, fmt.Errorf("service principal sign-in refused (check %s and %s): %w",
				VarClientID, VarClientSecret, ErrCredentialsRejected)
		}
		return Token{}, err
	}
	exp := res.ExpiresOn
	c2, perr := parseJWT(res.AccessToken)
	if perr == nil {
		exp = c2.expiry(exp)
	}
	var iat time.Time
	if c2.Iat != 0 {
		iat = time.Unix(c2.Iat, 0)
	}
	return Token{Value: res.AccessToken, Expires: exp, Issued: iat, Username: c2.Subject, TenantID: c2.TenantID}, nil
}

// classifyMSAL turns an MSAL error into ErrLoginRequired when the identity
// provider refused the session, and otherwise into an error that says
// which endpoint failed, without response bodies (they can be long) or
// anything secret.
func classifyMSAL(profile string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ce msalerrors.CallErr
	if !errors.As(err, &ce) || ce.Resp == nil {
		return fmt.Errorf("identity provider: %w", err)
	}
	code, desc := oauthErrorCode(ce.Resp)
	endpoint := "identity provider"
	if ce.Req != nil && ce.Req.URL != nil {
		endpoint = ce.Req.URL.Scheme + "://" + ce.Req.URL.Host + ce.Req.URL.Path
	}
	if strings.Contains(desc, "AADSTS7000218") {
		// Entra asks a public client for a secret: the app registration
		// does not allow public client flows, which device code needs
		// (the SDK signs in with the browser and never did).
		return fmt.Errorf("%s refused device-code sign-in (AADSTS7000218): the app registration (%s) does not allow public client flows. "+
			"Sign in with a browser instead (`prescientfs auth login --browser`, on a machine with a display, then copy ~/.prescient and "+
			"~/.prescient.json to the machine without one), or ask its administrator to set \"Allow public client flows\" to Yes "+
			"(Entra ID > App registrations > Authentication): %w", endpoint, VarClientID, ErrCredentialsRejected)
	}
	switch code {
	case "invalid_grant", "interaction_required", "login_required", "consent_required",
		"invalid_client", "unauthorized_client", "expired_token", "access_denied":
		return loginRequired(profile, "%s refused the session (%s)", endpoint, code)
	}
	return fmt.Errorf("%s answered HTTP %d %s", endpoint, ce.Resp.StatusCode, code)
}

// oauthErrorCode returns the error and error_description of an OAuth
// error response (descriptions carry Entra's AADSTS codes; never secrets).
func oauthErrorCode(resp *http.Response) (code, desc string) {
	if resp.Body == nil {
		return "", ""
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var v struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(data, &v)
	return v.Error, v.Description
}
