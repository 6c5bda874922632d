package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/fs/objread"
	"github.com/prescient/prescientfs/stacindex"
)

// swappableCreds hands out the MinIO root credentials, or keys MinIO does
// not know once bad is set.
type swappableCreds struct {
	key, secret string
	bad         atomic.Bool
}

func (c *swappableCreds) Retrieve(context.Context) (aws.Credentials, error) {
	if c.bad.Load() {
		return aws.Credentials{AccessKeyID: "unknown-key", SecretAccessKey: "not-the-secret", Source: "e2e"}, nil
	}
	return aws.Credentials{AccessKeyID: c.key, SecretAccessKey: c.secret, Source: "e2e"}, nil
}

// TestS3StoreDirectGets: the store's own signed GETs (every GET of a
// bucket after its first, see fs/objread/s3get.go) read from MinIO the
// bytes stored, for keys that need escaping; MinIO checks their
// signatures (unknown keys are refused as ErrDenied, after one renewal
// of the credentials), and its errors read as the SDK's (a missing key,
// a replaced object).
func TestS3StoreDirectGets(t *testing.T) {
	st := sharedStack(t)
	ctx := context.Background()
	up := st.minio.Client()
	keys := []string{"direct/plain.bin", "direct/a b+c%d?e#f&g=h;ü~'*!(x).bin", "direct/deep/dots/.x..bin"}
	data := map[string][]byte{}
	for i, k := range keys {
		b := make([]byte, 1<<20+i)
		r := rand.New(rand.NewPCG(uint64(i), 1))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if _, err := up.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(fixtures.DefaultBucket), Key: aws.String(k),
			Body: bytes.NewReader(b)}); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
		data[k] = b
	}
	creds := &swappableCreds{key: st.minio.AccessKey, secret: st.minio.SecretKey}
	cache := aws.NewCredentialsCache(creds)
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(st.minio.Endpoint), UsePathStyle: true,
		Credentials: cache, ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired})
	store := &objread.S3Store{Client: client, Creds: cache}
	loc := func(k string) stacindex.Location {
		return stacindex.Location{Kind: stacindex.KindS3, Bucket: fixtures.DefaultBucket, Key: k}
	}
	get := func(k string, off, n int64, etag string) (*objread.Body, []byte, error) {
		body, err := store.GetRange(ctx, loc(k), off, n, etag)
		if err != nil {
			return nil, nil, err
		}
		defer body.Close()
		b, err := io.ReadAll(body)
		return body, b, err
	}

	var etag string
	for _, k := range keys {
		for _, off := range []int64{0, 4097, 1<<20 - 100} {
			body, got, err := get(k, off, 100, etag)
			if err != nil {
				t.Fatalf("%q at %d: %v", k, off, err)
			}
			if !bytes.Equal(got, data[k][off:off+100]) {
				t.Errorf("%q at %d: bytes differ from the object's", k, off)
			}
			if body.Size != int64(len(data[k])) || body.ETag == "" {
				t.Errorf("%q: size %d ETag %q, want %d and an ETag", k, body.Size, body.ETag, len(data[k]))
			}
			etag = body.ETag
		}
		etag = ""
	}
	// The bucket's first GET went through GetObject, the others on its route.
	if n, want := store.DirectGets(), int64(3*len(keys)-1); n != want {
		t.Errorf("%d direct GETs, want %d", n, want)
	}
	if _, _, err := get("direct/missing.bin", 0, 10, ""); !errors.Is(err, objread.ErrNotFound) {
		t.Errorf("missing key: %v, want ErrNotFound", err)
	}
	if _, _, err := get(keys[0], 0, 10, `"0123456789abcdef0123456789abcdef"`); !errors.Is(err, objread.ErrChanged) {
		t.Errorf("If-Match of another version: %v, want ErrChanged", err)
	}
	creds.bad.Store(true)
	cache.Invalidate()
	if _, _, err := get(keys[1], 0, 10, ""); !errors.Is(err, objread.ErrDenied) {
		t.Errorf("unknown keys: %v, want ErrDenied", err)
	}
	if n, want := store.DirectGets(), int64(3*len(keys)+3); n != want { // the refused GET twice
		t.Errorf("%d direct GETs, want %d: the errors came from the SDK's GETs", n, want)
	}
}
