package creds

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// MountAuth is everything a mount needs to reach the API and the bucket.
type MountAuth struct {
	// STACURL is the catalog: PRESCIENT_ENDPOINT_URL joined with "stac".
	STACURL string
	// Header returns the headers for an API request: Authorization:
	// Bearer <id_token>, or api-key: KEY. Its errors wrap ErrLoginRequired
	// or ErrCredentialsRejected when a person must act.
	Header func(context.Context) (http.Header, error)
	// OnUnauthorized is called when the API answered 401; the next Header
	// renews the token. Retry the request once.
	OnUnauthorized func()
	// S3Creds signs bucket requests: STS with PRESCIENT_AWS_ROLE, else the
	// API's fileproxy (nil only without Prescient settings). It is
	// an *aws.CredentialsCache (Invalidate renews after a stale-credential 403).
	S3Creds aws.CredentialsProvider
	// Region is PRESCIENT_AWS_REGION (may be empty).
	Region string
	// Close releases resources; safe to call more than once.
	Close func()

	// Mode and Profile describe the session, for logs.
	Mode    Mode
	Profile string
	// Bearer is the token keeper (nil in API-key mode).
	Bearer *Bearer
	// Stats reports renewals.
	Stats func() Stats
	// CredentialsExpiry is the real expiry of the last bucket credentials.
	CredentialsExpiry func() time.Time
	// CredentialsFrom says where bucket credentials come from, for people.
	CredentialsFrom string
}

// Options tune NewMountAuth.
type Options struct {
	// HTTPClient talks to the authority and the fileproxy endpoint (and
	// STS when STS is nil); nil uses defaults whose TLS trust is the system
	// pool (SSL_CERT_FILE).
	HTTPClient *http.Client
	Now        func() time.Time
	Log        *slog.Logger
	// Margin is the most tokens and credentials are renewed ahead of expiry.
	Margin time.Duration
	// STS replaces the STS client (tests).
	STS STSAPI
	// NoCheck skips fetching a token and bucket credentials up front.
	// Without it NewMountAuth fails at once when there is no usable session.
	NoCheck bool
}

// NewIdentity returns the identity the settings select for the token modes:
// Google sign-in with PRESCIENT_AUTH_PROVIDER=google, a service principal
// with PRESCIENT_CLIENT_SECRET, else the profile's saved MSAL session.
func NewIdentity(s *Settings, o ClientOptions) (Identity, error) {
	if s.AuthProvider == ProviderGoogle {
		return NewGoogleClient(s, o)
	}
	if s.Mode() == ModeServicePrincipal {
		return NewConfidentialClient(s, o)
	}
	return NewPublicClient(s, o)
}

// NewMountAuth builds the mount's authentication from settings. It returns
// (nil, nil) when the settings name no Prescient endpoint (the tool then
// runs anonymously or with the AWS chain). Unless o.NoCheck, it obtains a
// token and bucket credentials before returning, so a mount without a
// usable session fails at once with ErrLoginRequired.
func NewMountAuth(ctx context.Context, s *Settings, o Options) (*MountAuth, error) {
	if !s.Configured() {
		return nil, nil
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	stacURL, err := s.STACURL()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", VarEndpointURL, err)
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("profile", s.Profile, "mode", string(s.Mode()))
	stats := &counters{}
	m := &MountAuth{
		STACURL: stacURL, Region: s.AWSRegion, Mode: s.Mode(), Profile: s.Profile,
		Close: func() {}, OnUnauthorized: func() {}, Stats: stats.snapshot,
		CredentialsExpiry: func() time.Time { return time.Time{} },
	}

	if s.Mode() == ModeAPIKey {
		if s.AWSRole != "" {
			log.Warn(VarAWSRole + " is ignored with " + VarAPIKey + " (as by the SDK: STS needs an id_token); bucket credentials come from the fileproxy")
		}
		key := s.APIKey
		m.Header = func(context.Context) (http.Header, error) {
			h := http.Header{}
			h.Set("api-key", key)
			return h, nil
		}
		u, err := URLJoin(s.EndpointURL, "fileproxy/credentials")
		if err != nil {
			return nil, err
		}
		fp := &FileProxyProvider{URL: u, APIKey: key, Client: o.HTTPClient, Now: o.Now, Log: log, Margin: o.Margin, stats: stats}
		m.S3Creds, m.CredentialsExpiry = NewCredentialsCache(fp), fp.Expiry
		m.CredentialsFrom = u + " (api-key)"
	} else {
		if s.Mode() == ModeUser && !o.NoCheck && !s.Store.HasSession(s.Profile) {
			return nil, loginRequired(s.Profile, "no saved session in %s", s.Store.ProfileDir(s.Profile))
		}
		id, err := NewIdentity(s, ClientOptions{HTTPClient: o.HTTPClient, Now: o.Now})
		if err != nil {
			return nil, err
		}
		b := NewBearer(id, BearerOptions{Now: o.Now, Log: log, Margin: o.Margin, stats: stats})
		m.Bearer, m.Header, m.OnUnauthorized = b, b.Header, b.Invalidate
		if s.AWSRole != "" {
			api := o.STS
			if api == nil {
				if api, err = NewSTSClient(ctx, s.AWSRegion, o.HTTPClient); err != nil {
					return nil, err
				}
			}
			wp := &WebIdentityProvider{Tokens: b, STS: api, RoleARN: s.AWSRole, Duration: s.STSDuration,
				Now: o.Now, Log: log, Margin: o.Margin, stats: stats}
			m.S3Creds, m.CredentialsExpiry = NewCredentialsCache(wp), wp.Expiry
			m.CredentialsFrom = "STS AssumeRoleWithWebIdentity " + s.AWSRole
		} else {
			// As the SDK since 0.4: without a role, the API's fileproxy
			// hands out bucket credentials for the user's token.
			u, err := URLJoin(s.EndpointURL, "fileproxy/credentials")
			if err != nil {
				return nil, err
			}
			fp := &FileProxyProvider{URL: u, Tokens: b, Client: o.HTTPClient, Now: o.Now, Log: log, Margin: o.Margin, stats: stats}
			m.S3Creds, m.CredentialsExpiry = NewCredentialsCache(fp), fp.Expiry
			m.CredentialsFrom = u + " (bearer)"
			log.Info("no "+VarAWSRole+": bucket credentials come from the API's fileproxy", "url", u)
		}
	}
	if o.NoCheck {
		return m, nil
	}
	if _, err := m.Header(ctx); err != nil {
		return nil, err
	}
	if m.S3Creds != nil {
		if _, err := m.S3Creds.Retrieve(ctx); err != nil {
			return nil, fmt.Errorf("bucket credentials: %w", err)
		}
	}
	return m, nil
}
