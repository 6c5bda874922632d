package creds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// SessionName is the RoleSessionName of every AssumeRoleWithWebIdentity,
// as the SDK's.
const SessionName = "prescient-s3-access"

// STSAPI is the STS call the web identity provider makes (an *sts.Client).
type STSAPI interface {
	AssumeRoleWithWebIdentity(ctx context.Context, in *sts.AssumeRoleWithWebIdentityInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error)
}

// TokenSource is what the web identity provider needs from a Bearer.
type TokenSource interface {
	Token(ctx context.Context) (Token, error)
	Invalidate()
}

// NewSTSClient returns an STS client that makes anonymous calls
// (AssumeRoleWithWebIdentity is authenticated by the token), in region,
// honouring the AWS SDK's own settings such as AWS_ENDPOINT_URL_STS.
func NewSTSClient(ctx context.Context, region string, httpClient *http.Client) (*sts.Client, error) {
	opts := []func(*config.LoadOptions) error{config.WithCredentialsProvider(aws.AnonymousCredentials{})}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration for STS: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return sts.NewFromConfig(cfg, func(o *sts.Options) {
		// Set here, not with config.WithHTTPClient: LoadDefaultConfig
		// refuses a plain *http.Client when AWS_CA_BUNDLE is set.
		if httpClient != nil {
			o.HTTPClient = httpClient
		}
	}), nil
}

// WebIdentityProvider is an aws.CredentialsProvider that exchanges the
// bearer token for bucket credentials with STS AssumeRoleWithWebIdentity.
// Wrap it in an aws.CredentialsCache (NewCredentialsCache): the credentials
// it returns expire a margin ahead of their real expiry, so the cache
// renews them early.
type WebIdentityProvider struct {
	Tokens  TokenSource
	STS     STSAPI
	RoleARN string
	// Duration is DurationSeconds; 0 omits it (the token's exp decides).
	Duration time.Duration
	Now      func() time.Time // time.Now when nil
	Log      *slog.Logger     // slog.Default() when nil
	Margin   time.Duration    // DefaultMargin when 0

	stats  *counters // set before use, or by once
	once   sync.Once
	mu     sync.Mutex
	expiry time.Time // guarded by mu; real expiry of the last credentials
}

var _ aws.CredentialsProvider = (*WebIdentityProvider)(nil)

// Retrieve implements aws.CredentialsProvider.
func (p *WebIdentityProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	start := time.Now()
	creds, err := p.assume(ctx)
	if err != nil && retryWithNewToken(err) {
		// STS thinks the token expired or is not valid yet: renew it once.
		p.Tokens.Invalidate()
		creds, err = p.assume(ctx)
	}
	if err != nil {
		p.counters().add(func(s *Stats) { s.CredentialFailures++ })
		return aws.Credentials{}, err
	}
	took := time.Since(start)
	p.counters().credentialRenewed(took)
	p.log().Info("renewed bucket credentials", "role", p.RoleARN,
		"expires_in", p.Expiry().Sub(p.now()).Round(time.Second), "took", took.Round(time.Millisecond))
	return creds, nil
}

func (p *WebIdentityProvider) assume(ctx context.Context) (aws.Credentials, error) {
	tok, err := p.Tokens.Token(ctx)
	if err != nil {
		return aws.Credentials{}, err
	}
	in := &sts.AssumeRoleWithWebIdentityInput{
		RoleArn:          aws.String(p.RoleARN),
		RoleSessionName:  aws.String(SessionName),
		WebIdentityToken: aws.String(tok.Value),
	}
	if p.Duration > 0 {
		// DurationSeconds is an int32: a longer duration is sent as the
		// largest one, for STS to refuse with its own message.
		secs := min(p.Duration/time.Second, math.MaxInt32)
		in.DurationSeconds = aws.Int32(int32(secs))
	}
	now := p.now()
	out, err := p.STS.AssumeRoleWithWebIdentity(ctx, in)
	if err != nil {
		return aws.Credentials{}, stsError(p.RoleARN, err)
	}
	c := out.Credentials
	if c == nil || c.AccessKeyId == nil || c.SecretAccessKey == nil || c.Expiration == nil {
		return aws.Credentials{}, fmt.Errorf("STS AssumeRoleWithWebIdentity %s: response without credentials", p.RoleARN)
	}
	p.mu.Lock()
	p.expiry = *c.Expiration
	p.mu.Unlock()
	return aws.Credentials{
		AccessKeyID:     *c.AccessKeyId,
		SecretAccessKey: *c.SecretAccessKey,
		SessionToken:    aws.ToString(c.SessionToken),
		Source:          "PrescientWebIdentity",
		CanExpire:       true,
		Expires:         c.Expiration.Add(-margin(now, *c.Expiration, p.margin())),
	}, nil
}

// Expiry is the real expiry of the last credentials (zero before any).
func (p *WebIdentityProvider) Expiry() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.expiry
}

func (p *WebIdentityProvider) now() time.Time { return nowFunc(p.Now)() }

func (p *WebIdentityProvider) margin() time.Duration {
	if p.Margin == 0 {
		return DefaultMargin
	}
	return p.Margin
}

func (p *WebIdentityProvider) log() *slog.Logger {
	if p.Log == nil {
		return slog.Default()
	}
	return p.Log
}

func (p *WebIdentityProvider) counters() *counters {
	p.once.Do(func() {
		if p.stats == nil {
			p.stats = &counters{}
		}
	})
	return p.stats
}

// retryWithNewToken reports whether STS refused the token in a way a new
// token can fix.
func retryWithNewToken(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ExpiredTokenException", "ExpiredToken", "InvalidIdentityToken", "InvalidIdentityTokenException":
			return true
		case "InvalidParameterValue":
			// MinIO's STS: "Token is expired". A token handed out with
			// a little life left can expire on its way (a slow or loaded
			// client); a new one fixes that.
			return strings.Contains(strings.ToLower(ae.ErrorMessage()), "expired")
		}
	}
	return false
}

// stsError says what failed; STS refusing the role maps to
// ErrCredentialsRejected (a person must fix the role or its trust policy).
func stsError(role string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied" {
		return fmt.Errorf("STS refused to assume %s (%s=%s; check the role's trust policy): %w",
			role, VarAWSRole, role, ErrCredentialsRejected)
	}
	return fmt.Errorf("STS AssumeRoleWithWebIdentity %s: %w", role, err)
}

// FileProxyProvider is an aws.CredentialsProvider that gets bucket
// credentials as the SDK does without a role: GET
// {endpoint}fileproxy/credentials with the api-key header (API-key mode) or
// with Authorization: Bearer <id_token> (a signed-in person or a service
// principal, when PRESCIENT_AWS_ROLE is unset).
type FileProxyProvider struct {
	URL string
	// APIKey is sent as the api-key header when Tokens is nil.
	APIKey string
	// Tokens, when set, supplies the bearer; a 401 or 403 makes it renew
	// the token (Invalidate) and the request is sent once more.
	Tokens TokenSource
	Client *http.Client     // http.DefaultClient when nil
	Now    func() time.Time // time.Now when nil
	Log    *slog.Logger
	Margin time.Duration

	stats  *counters // set before use, or by once
	once   sync.Once
	mu     sync.Mutex
	expiry time.Time // guarded by mu
}

var _ aws.CredentialsProvider = (*FileProxyProvider)(nil)

// fileProxyCredentials is the endpoint's answer.
type fileProxyCredentials struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token"`
	Expiration      string `json:"expiration"`
}

// errFileProxyRefused is a 401 or 403 from the endpoint, before it is
// explained to a person.
var errFileProxyRefused = errors.New("refused")

// Retrieve implements aws.CredentialsProvider.
func (p *FileProxyProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	start := time.Now()
	creds, err := p.fetch(ctx)
	if errors.Is(err, errFileProxyRefused) && p.Tokens != nil {
		// The API no longer takes the token (revoked, or its exp is
		// behind the server's clock): renew it once and ask again.
		p.Tokens.Invalidate()
		creds, err = p.fetch(ctx)
	}
	p.once.Do(func() {
		if p.stats == nil {
			p.stats = &counters{}
		}
	})
	if errors.Is(err, errFileProxyRefused) {
		if p.Tokens != nil {
			err = fmt.Errorf("%s refused the signed-in session (%v): is this account allowed to read the bucket? "+
				"Sign in again with `prescientfs auth login`, or set %s: %w", p.URL, err, VarAWSRole, ErrCredentialsRejected)
		} else {
			err = fmt.Errorf("%s answered %v (check %s): %w", p.URL, err, VarAPIKey, ErrCredentialsRejected)
		}
	}
	if err != nil {
		p.stats.add(func(s *Stats) { s.CredentialFailures++ })
		return aws.Credentials{}, err
	}
	took := time.Since(start)
	p.stats.credentialRenewed(took)
	log := p.Log
	if log == nil {
		log = slog.Default()
	}
	log.Info("renewed bucket credentials", "source", "fileproxy", "auth", p.authKind(), "expires_in",
		p.Expiry().Sub(nowFunc(p.Now)()).Round(time.Second), "took", took.Round(time.Millisecond))
	return creds, nil
}

func (p *FileProxyProvider) authKind() string {
	if p.Tokens != nil {
		return "bearer"
	}
	return "api-key"
}

func (p *FileProxyProvider) fetch(ctx context.Context) (aws.Credentials, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return aws.Credentials{}, err
	}
	if p.Tokens != nil {
		tok, err := p.Tokens.Token(ctx)
		if err != nil {
			return aws.Credentials{}, err
		}
		req.Header.Set("Authorization", "Bearer "+tok.Value)
	} else {
		req.Header.Set("api-key", p.APIKey)
	}
	req.Header.Set("Accept", "application/json")
	hc := p.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	now := nowFunc(p.Now)()
	resp, err := hc.Do(req)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("bucket credentials from %s: %w", p.URL, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return aws.Credentials{}, fmt.Errorf("%s %w", resp.Status, errFileProxyRefused)
	case resp.StatusCode != http.StatusOK:
		return aws.Credentials{}, fmt.Errorf("bucket credentials from %s: %s", p.URL, resp.Status)
	}
	var fc fileProxyCredentials
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&fc); err != nil {
		return aws.Credentials{}, fmt.Errorf("bucket credentials from %s: %w", p.URL, err)
	}
	if fc.AccessKeyID == "" || fc.SecretAccessKey == "" {
		return aws.Credentials{}, fmt.Errorf("bucket credentials from %s: no access_key_id or secret_access_key", p.URL)
	}
	exp, err := parseISO8601(fc.Expiration)
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("bucket credentials from %s: expiration %q: %w", p.URL, fc.Expiration, err)
	}
	p.mu.Lock()
	p.expiry = exp
	p.mu.Unlock()
	m := p.Margin
	if m == 0 {
		m = DefaultMargin
	}
	return aws.Credentials{
		AccessKeyID: fc.AccessKeyID, SecretAccessKey: fc.SecretAccessKey, SessionToken: fc.SessionToken,
		Source: "PrescientFileProxy", CanExpire: true, Expires: exp.Add(-margin(now, exp, m)),
	}, nil
}

// Expiry is the real expiry of the last credentials (zero before any).
func (p *FileProxyProvider) Expiry() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.expiry
}

// parseISO8601 accepts what Python's datetime.isoformat() and common APIs
// produce; a time without a zone is UTC.
func parseISO8601(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not an ISO-8601 time")
}

// NewCredentialsCache wraps a provider in the AWS SDK's cache: one renewal
// at a time however many requests wait, renewed when the (margin-adjusted)
// expiry passes, and Invalidate for the S3 store's retry after a
// stale-credential 403.
func NewCredentialsCache(p aws.CredentialsProvider) *aws.CredentialsCache {
	return aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) {
		// The providers already subtract an adaptive margin (a fifth of the
		// lifetime, at most DefaultMargin): a fixed window would renew
		// 5-minute credentials on every request.
		o.ExpiryWindow = 0
	})
}
