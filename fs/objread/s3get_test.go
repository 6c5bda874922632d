package objread

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/encoding/httpbinding"

	"github.com/prescient/prescientfs/stacindex"
)

// s3Fake is an S3-shaped server (path-style) for the store's GETs: it
// serves ranges of fake objects and S3's XML errors, and records each
// request.
type s3Fake struct {
	t    *testing.T
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []*http.Request   // guarded by mu
	objs map[string][]byte // by escaped path, read-only
	// answer, if set, may answer a request itself (true).
	answer func(w http.ResponseWriter, r *http.Request) bool
}

func newS3Fake(t *testing.T, keys ...string) *s3Fake {
	f := &s3Fake{t: t, objs: map[string][]byte{}}
	for i, k := range keys {
		b := make([]byte, 300*KiB+int64(i))
		fakeBytes(b, int64(i)*7919, 0)
		f.objs["/bkt/"+httpbinding.EscapePath(k, false)] = b
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *s3Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, r.Clone(context.Background()))
	f.mu.Unlock()
	if f.answer != nil && f.answer(w, r) {
		return
	}
	s3err := func(status int, code string) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>m</Message><RequestId>r1</RequestId></Error>`, code)
	}
	data, ok := f.objs[r.URL.EscapedPath()]
	if !ok {
		s3err(http.StatusNotFound, "NoSuchKey")
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && m != `"v1"` {
		s3err(http.StatusPreconditionFailed, "PreconditionFailed")
		return
	}
	var from, to int64
	if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &from, &to); err != nil {
		s3err(http.StatusBadRequest, "InvalidArgument")
		return
	}
	to = min(to, int64(len(data))-1)
	w.Header().Set("ETag", `"v1"`)
	w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to, len(data)))
	w.Header().Set("Content-Length", fmt.Sprint(to-from+1))
	w.WriteHeader(http.StatusPartialContent)
	_, _ = w.Write(data[from : to+1])
}

// direct reports whether request i was one of the store's own (not the SDK's).
func (f *s3Fake) direct(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[i].Header.Get("User-Agent") == "prescientfs"
}

func (f *s3Fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *s3Fake) req(i int) *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[i]
}

// countingCreds counts how often the credentials were fetched.
type countingCreds struct{ n atomic.Int32 }

func (c *countingCreds) Retrieve(context.Context) (aws.Credentials, error) {
	c.n.Add(1)
	return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret", SessionToken: "tok", Source: "test"}, nil
}

func newFakeS3Store(f *s3Fake, anonymous bool) (*S3Store, *countingCreds) {
	cc := &countingCreds{}
	var prov aws.CredentialsProvider = aws.NewCredentialsCache(cc)
	if anonymous {
		prov = aws.AnonymousCredentials{}
	}
	c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.srv.URL), UsePathStyle: true, Credentials: prov,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired})
	return &S3Store{Client: c, Creds: prov}, cc
}

func s3loc(key string) stacindex.Location {
	return stacindex.Location{Kind: stacindex.KindS3, Bucket: "bkt", Key: key}
}

// getRange reads n bytes at off of key through s and checks them.
func getRange(t *testing.T, s *S3Store, f *s3Fake, key string, off, n int64, etag string) error {
	t.Helper()
	body, err := s.GetRange(context.Background(), s3loc(key), off, n, etag)
	if err != nil {
		return err
	}
	defer body.Close()
	got, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("%s: body: %v", key, err)
	}
	want := f.objs[f.req(f.count()-1).URL.EscapedPath()]
	if string(got) != string(want[off:off+n]) {
		t.Errorf("%s: wrong bytes at %d", key, off)
	}
	if body.ETag != `"v1"` || body.Size != int64(len(want)) {
		t.Errorf("%s: ETag %s size %d, want \"v1\" %d", key, body.ETag, body.Size, len(want))
	}
	return nil
}

// A bucket's first GET goes through the SDK; the later ones are the
// store's own, signed alike, on the same path for every key (escaped as
// the SDK escapes it), with the range and If-Match asked.
func TestDirectGetsAfterTheFirst(t *testing.T) {
	keys := []string{"scenes/a.tif", "odd/a b+c%d?e#f&g=h;ü~'*!.tif", "deep/x/y/z/../w.bin"}
	f := newS3Fake(t, keys...)
	s, cc := newFakeS3Store(f, false)
	for _, k := range keys {
		for i, off := range []int64{0, 1000, 299 * KiB} {
			etag := ""
			if i > 0 {
				etag = `"v1"`
			}
			if err := getRange(t, s, f, k, off, 1024, etag); err != nil {
				t.Fatalf("%q at %d: %v", k, off, err)
			}
		}
	}
	if !(!f.direct(0) && f.direct(1) && f.direct(2)) {
		t.Errorf("requests 0-2 direct: %v %v %v, want the SDK's first, then the store's", f.direct(0), f.direct(1), f.direct(2))
	}
	paths := map[string]bool{}
	for i := range f.count() {
		r := f.req(i)
		if i > 0 && !f.direct(i) {
			t.Errorf("request %d went through the SDK", i)
		}
		paths[r.URL.EscapedPath()] = true
		auth := r.Header.Get("Authorization")
		if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKID/") || !strings.Contains(auth, "/us-east-1/s3/aws4_request") {
			t.Errorf("request %d: Authorization %q", i, auth)
		}
		if r.Header.Get("X-Amz-Security-Token") != "tok" || r.Header.Get("X-Amz-Date") == "" {
			t.Errorf("request %d: no session token or date", i)
		}
		if r.URL.Query().Get("x-id") != "GetObject" {
			t.Errorf("request %d: query %q", i, r.URL.RawQuery)
		}
	}
	if len(paths) != len(keys) {
		t.Errorf("%d paths for %d keys: %v", len(paths), len(keys), paths)
	}
	if n := cc.n.Load(); n != 1 {
		t.Errorf("credentials fetched %d times, want once (cached)", n)
	}
}

// The store's own GETs fail as GetObject's do: a missing key is
// ErrNotFound, a changed object ErrChanged, a throttled answer retryable
// after the Retry-After asked, and expired credentials are renewed and
// the GET sent again.
func TestDirectGetErrors(t *testing.T) {
	f := newS3Fake(t, "a.tif")
	s, cc := newFakeS3Store(f, false)
	if err := getRange(t, s, f, "a.tif", 0, 10, ""); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetRange(context.Background(), s3loc("missing.tif"), 0, 10, "")
	if !errors.Is(err, ErrNotFound) || !f.direct(f.count()-1) {
		t.Errorf("missing key: %v (direct %v), want ErrNotFound from a direct GET", err, f.direct(f.count()-1))
	}
	_, err = s.GetRange(context.Background(), s3loc("a.tif"), 0, 10, `"v0"`)
	if !errors.Is(err, ErrChanged) || Retryable(err) {
		t.Errorf("If-Match of an old version: %v, want ErrChanged, final", err)
	}

	var slow atomic.Bool
	slow.Store(true)
	f.answer = func(w http.ResponseWriter, r *http.Request) bool {
		if !slow.Load() {
			return false
		}
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
		return true
	}
	_, err = s.GetRange(context.Background(), s3loc("a.tif"), 0, 10, "")
	if !Retryable(err) || retryAfterOf(err) != 2*time.Second || !strings.Contains(err.Error(), "SlowDown") {
		t.Errorf("503 SlowDown: %v (retryable %v, after %v), want retryable after 2s", err, Retryable(err), retryAfterOf(err))
	}
	slow.Store(false)

	var expired atomic.Int32
	expired.Store(1)
	f.answer = func(w http.ResponseWriter, r *http.Request) bool {
		if expired.Add(-1) < 0 {
			return false
		}
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>`)
		return true
	}
	before := cc.n.Load()
	if err := getRange(t, s, f, "a.tif", 5, 10, `"v1"`); err != nil {
		t.Fatalf("after an expired token: %v, want the GET sent again with new credentials", err)
	}
	if cc.n.Load() != before+1 {
		t.Errorf("credentials fetched %d more times, want 1 (renewed)", cc.n.Load()-before)
	}
}

// A redirect on a route drops it: the GET goes through the SDK again,
// and so does the next one until the SDK's answers teach a route anew.
func TestDirectGetRedirectDropsRoute(t *testing.T) {
	f := newS3Fake(t, "a.tif")
	s, _ := newFakeS3Store(f, false)
	if err := getRange(t, s, f, "a.tif", 0, 10, ""); err != nil {
		t.Fatal(err)
	}
	f.answer = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("User-Agent") != "prescientfs" {
			return false
		}
		w.WriteHeader(http.StatusMovedPermanently)
		_, _ = io.WriteString(w, `<Error><Code>PermanentRedirect</Code><Message>elsewhere</Message></Error>`)
		return true
	}
	n := f.count()
	if err := getRange(t, s, f, "a.tif", 0, 10, `"v1"`); err != nil {
		t.Fatalf("after a redirect: %v, want the SDK's GET", err)
	}
	if f.count() != n+2 || !f.direct(n) || f.direct(n+1) {
		t.Errorf("requests after the redirect: %d, want the direct one and the SDK's", f.count()-n)
	}
}

// Without credentials (--no-sign-request) the store's GETs go unsigned,
// as the SDK's do.
func TestDirectGetUnsigned(t *testing.T) {
	f := newS3Fake(t, "a.tif")
	s, _ := newFakeS3Store(f, true)
	for range 2 {
		if err := getRange(t, s, f, "a.tif", 0, 10, ""); err != nil {
			t.Fatal(err)
		}
	}
	if !f.direct(1) || f.req(1).Header.Get("Authorization") != "" || f.req(0).Header.Get("Authorization") != "" {
		t.Errorf("second GET direct %v, Authorization %q / %q: want a direct unsigned GET", f.direct(1),
			f.req(0).Header.Get("Authorization"), f.req(1).Header.Get("Authorization"))
	}
}

// NoDirectGets keeps every GET in the SDK.
func TestNoDirectGets(t *testing.T) {
	f := newS3Fake(t, "a.tif")
	s, _ := newFakeS3Store(f, false)
	s.NoDirectGets = true
	for range 3 {
		if err := getRange(t, s, f, "a.tif", 0, 10, ""); err != nil {
			t.Fatal(err)
		}
	}
	for i := range f.count() {
		if f.direct(i) {
			t.Errorf("request %d was direct", i)
		}
	}
}
