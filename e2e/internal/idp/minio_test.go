package idp_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prescient/prescientfs/creds"
	"github.com/prescient/prescientfs/e2e/internal/idp"
	"github.com/prescient/prescientfs/e2e/internal/minio"
)

// stsStack is an IdP and a MinIO that trusts it for AssumeRoleWithWebIdentity.
type stsStack struct {
	idp    *idp.Server
	minio  *minio.Server
	bucket string
	key    string
	data   []byte
}

func startSTSStack(t *testing.T, lifetime time.Duration) *stsStack {
	t.Helper()
	if _, err := minio.FindBinary(); err != nil {
		t.Skipf("no MinIO binary: %v", err)
	}
	s := idp.StartT(t, idp.Options{TokenLifetime: lifetime})
	certs := filepath.Join(t.TempDir(), "certs")
	if err := s.WriteMinIOCerts(certs); err != nil {
		t.Fatal(err)
	}
	// The IdP must be up before MinIO starts: MinIO reads the discovery
	// document once, at start, and silently runs without OpenID otherwise.
	m := minio.StartT(t, minio.Options{Env: s.MinIOEnv(idp.DefaultPolicy), CertsDir: certs, STSRole: s.RoleARN()})
	st := &stsStack{idp: s, minio: m, bucket: "assets", key: "scene/B01.tif", data: bytes.Repeat([]byte("prescient"), 1000)}
	ctx := context.Background()
	root := m.Client()
	if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &st.bucket}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.PutObject(ctx, &s3.PutObjectInput{Bucket: &st.bucket, Key: &st.key, Body: bytes.NewReader(st.data)}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_STS", m.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	return st
}

func (st *stsStack) s3Client(provider aws.CredentialsProvider) *s3.Client {
	return s3.New(s3.Options{
		Region: minio.Region, BaseEndpoint: aws.String(st.minio.Endpoint), UsePathStyle: true,
		Credentials: provider, HTTPClient: st.idp.HTTPClient(),
	})
}

func (st *stsStack) read(ctx context.Context, c *s3.Client) ([]byte, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &st.bucket, Key: &st.key})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// TestMinIOWebIdentity signs in by device code, exchanges the id_token for
// MinIO STS credentials through NewMountAuth (AWS_ENDPOINT_URL_STS, an
// anonymous STS call) and reads an object with them.
func TestMinIOWebIdentity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st := startSTSStack(t, time.Hour)
	settings := settingsFor(t, st.idp, t.TempDir(), map[string]string{
		creds.VarAWSRole: st.idp.RoleARN(), creds.VarAWSRegion: minio.Region,
	})

	// No session yet: mount setup fails at once with the instruction.
	_, err := creds.NewMountAuth(ctx, settings, creds.Options{HTTPClient: st.idp.HTTPClient()})
	if !errors.Is(err, creds.ErrLoginRequired) {
		t.Fatalf("without login: err = %v, want ErrLoginRequired", err)
	}

	pc, err := creds.NewPublicClient(settings, creds.ClientOptions{HTTPClient: st.idp.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	login(t, ctx, st.idp, pc)

	ma, err := creds.NewMountAuth(ctx, settings, creds.Options{HTTPClient: st.idp.HTTPClient()})
	if err != nil {
		t.Fatalf("mount auth: %v", err)
	}
	defer ma.Close()
	got, err := st.read(ctx, st.s3Client(ma.S3Creds))
	if err != nil {
		t.Fatalf("read with STS credentials: %v", err)
	}
	if !bytes.Equal(got, st.data) {
		t.Fatal("wrong bytes")
	}
	h, err := ma.Header(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.idp.Verify(h.Get("Authorization")[len("Bearer "):]); err != nil {
		t.Fatalf("bearer: %v", err)
	}
	if s := ma.Stats(); s.CredentialRenewals != 1 || s.TokenRenewals != 1 {
		t.Errorf("stats = %+v, want one token and one credential renewal", s)
	}
}

// TestMinIOShortLivedCredentials reads continuously while id_tokens and STS
// credentials live 3 s (DurationSeconds omitted, so MinIO's credentials end
// with the token), then revokes the session: reads must fail with
// ErrLoginRequired through the AWS SDK, and heal after a new login.
func TestMinIOShortLivedCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ~12 s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st := startSTSStack(t, 3*time.Second)
	settings := settingsFor(t, st.idp, t.TempDir(), map[string]string{
		creds.VarAWSRole: st.idp.RoleARN(), creds.VarAWSRegion: minio.Region, creds.VarSTSDuration: "0",
	})
	pc, err := creds.NewPublicClient(settings, creds.ClientOptions{HTTPClient: st.idp.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	login(t, ctx, st.idp, pc)
	ma, err := creds.NewMountAuth(ctx, settings, creds.Options{HTTPClient: st.idp.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	c := st.s3Client(ma.S3Creds)
	end := time.Now().Add(10 * time.Second)
	reads := 0
	for time.Now().Before(end) {
		got, err := st.read(ctx, c)
		if err != nil {
			t.Fatalf("read %d at %s: %v", reads, time.Now().Format("15:04:05.000"), err)
		}
		if !bytes.Equal(got, st.data) {
			t.Fatal("wrong bytes")
		}
		reads++
		time.Sleep(20 * time.Millisecond)
	}
	s := ma.Stats()
	t.Logf("%d reads in 10 s; stats %+v; IdP %+v", reads, s, st.idp.Stats())
	if s.CredentialRenewals < 3 || s.TokenRenewals < 3 {
		t.Errorf("expected several renewals over 10 s of 3 s tokens, got %+v", s)
	}

	// Revoke: within a token lifetime, reads fail with ErrLoginRequired.
	st.idp.RevokeRefreshTokens()
	deadline := time.Now().Add(8 * time.Second)
	for {
		_, err := st.read(ctx, c)
		if errors.Is(err, creds.ErrLoginRequired) {
			t.Logf("after revocation: %v", err)
			break
		}
		if err != nil {
			t.Fatalf("after revocation: err = %v, want one wrapping ErrLoginRequired", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("reads still succeed 8 s after revocation")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A new login (as from another terminal) heals the same provider.
	other, err := creds.NewPublicClient(settings, creds.ClientOptions{HTTPClient: st.idp.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	login(t, ctx, st.idp, other)
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, err := st.read(ctx, c)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after a new login: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
