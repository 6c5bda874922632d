package creds

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"
)

// fakeSTS issues credentials that live `lifetime`, or fails with errs in turn.
type fakeSTS struct {
	clock    *fakeClock
	lifetime time.Duration
	mu       sync.Mutex
	inputs   []*sts.AssumeRoleWithWebIdentityInput
	errs     []error
}

func (f *fakeSTS) AssumeRoleWithWebIdentity(_ context.Context, in *sts.AssumeRoleWithWebIdentityInput, _ ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inputs = append(f.inputs, in)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	exp := f.clock.Now().Add(f.lifetime)
	return &sts.AssumeRoleWithWebIdentityOutput{Credentials: &ststypes.Credentials{
		AccessKeyId: aws.String("AK"), SecretAccessKey: aws.String("SK"), SessionToken: aws.String("ST"), Expiration: &exp,
	}}, nil
}

func TestWebIdentityProvider(t *testing.T) {
	clock := newClock()
	id := &fakeIdentity{clock: clock, lifetime: time.Hour}
	b := NewBearer(id, BearerOptions{Now: clock.Now, Log: quietLog()})
	fs := &fakeSTS{clock: clock, lifetime: time.Hour}
	p := &WebIdentityProvider{Tokens: b, STS: fs, RoleARN: "arn:aws:iam::1:role/r", Duration: time.Hour, Now: clock.Now, Log: quietLog()}
	c, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	in := fs.inputs[0]
	if aws.ToString(in.RoleSessionName) != SessionName || aws.ToString(in.WebIdentityToken) != "token-1" ||
		aws.ToInt32(in.DurationSeconds) != 3600 || aws.ToString(in.RoleArn) != "arn:aws:iam::1:role/r" {
		t.Errorf("input %+v", in)
	}
	if want := clock.Now().Add(55 * time.Minute); !c.Expires.Equal(want) || !c.CanExpire {
		t.Errorf("expires %v, want %v (5 min ahead)", c.Expires, want)
	}

	// DurationSeconds omitted: the token's exp decides.
	p.Duration = 0
	p.Retrieve(context.Background())
	if fs.inputs[1].DurationSeconds != nil {
		t.Error("DurationSeconds sent with Duration 0")
	}

	// STS says the token expired: renew it once and retry.
	fs.errs = []error{&smithy.GenericAPIError{Code: "ExpiredTokenException", Message: "token expired"}}
	clock.Advance(2 * time.Minute) // past minForceInterval
	if _, err := p.Retrieve(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(fs.inputs[3].WebIdentityToken); got != "token-2" {
		t.Errorf("retry used %s, want a new token", got)
	}

	// MinIO's STS says so as InvalidParameterValue: the same.
	fs.errs = []error{&smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "Token is expired"}}
	clock.Advance(2 * time.Minute)
	if _, err := p.Retrieve(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(fs.inputs[5].WebIdentityToken); got != "token-3" {
		t.Errorf("retry after MinIO's expired-token answer used %s, want a new token", got)
	}
	// Another invalid parameter is no token problem: no retry.
	fs.errs = []error{&smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "RoleARN is not defined"}}
	if _, err := p.Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), "RoleARN is not defined") {
		t.Errorf("an invalid role: %v", err)
	}

	// Role refused: a typed error.
	fs.errs = []error{&smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized"}}
	if _, err := p.Retrieve(context.Background()); !errors.Is(err, ErrCredentialsRejected) {
		t.Errorf("AccessDenied: %v", err)
	}
}

// TestLoginRequiredThroughS3Client checks that a dead session, returned by
// the credentials provider, reaches the S3 caller with errors.Is intact
// (the SDK wraps it as "get identity: get credentials: failed to refresh
// cached credentials, ...").
func TestLoginRequiredThroughS3Client(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("request sent without credentials")
	}))
	defer srv.Close()
	clock := newClock()
	id := &fakeIdentity{clock: clock, lifetime: time.Hour, err: loginRequired("default", "refused (invalid_grant)")}
	b := NewBearer(id, BearerOptions{Now: clock.Now, Log: quietLog()})
	prov := NewCredentialsCache(&WebIdentityProvider{Tokens: b, STS: &fakeSTS{clock: clock, lifetime: time.Hour}, RoleARN: "r", Log: quietLog()})
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, Credentials: prov})
	_, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
	if !errors.Is(err, ErrLoginRequired) {
		t.Fatalf("err = %v; errors.Is(ErrLoginRequired) is false", err)
	}
	if !strings.Contains(err.Error(), "prescientfs auth login") {
		t.Errorf("message lacks the hint: %v", err)
	}
}

func TestFileProxyProvider(t *testing.T) {
	clock := newClock()
	var status = http.StatusOK
	exp := clock.Now().Add(time.Hour)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/fileproxy/credentials" || r.Header.Get("api-key") != "the-key" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{
			"access_key_id": "AK", "secret_access_key": "SK", "session_token": "ST",
			"expiration": exp.Format("2006-01-02T15:04:05.000000"), // Python isoformat, no zone
		})
	}))
	defer srv.Close()
	u, _ := URLJoin(srv.URL+"/", "fileproxy/credentials")
	p := &FileProxyProvider{URL: u, APIKey: "the-key", Now: clock.Now, Log: quietLog()}
	c, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKeyID != "AK" || c.SessionToken != "ST" || !c.Expires.Equal(exp.Add(-5*time.Minute)) {
		t.Errorf("creds %+v", c)
	}
	p.APIKey = "wrong"
	_, err = p.Retrieve(context.Background())
	if !errors.Is(err, ErrCredentialsRejected) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("bad key: %v", err)
	}
	p.APIKey, status = "the-key", http.StatusBadGateway
	if _, err := p.Retrieve(context.Background()); err == nil || IsAuthError(err) {
		t.Errorf("502 should be a plain error: %v", err)
	}
}

func TestParseISO8601(t *testing.T) {
	want := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, s := range []string{"2030-01-02T03:04:05Z", "2030-01-02T03:04:05+00:00", "2030-01-02T03:04:05", "2030-01-02T03:04:05.000000", "2030-01-02 03:04:05+00:00"} {
		got, err := parseISO8601(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v", s, got, err)
		}
	}
}
