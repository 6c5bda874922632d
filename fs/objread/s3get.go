package objread

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/httpbinding"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/prescient/prescientfs/stacindex"
)

// The ranged GETs of a bucket after its first are sent as plain signed
// HTTP requests (the SDK's SigV4 signer and HTTP client), not through
// the SDK's GetObject. Its middleware stack (endpoint rules, checksum and
// retry set-up, user agent, response binding) cost 130-200 µs of CPU a
// call against 60 µs for the request itself (a 64 KiB GET from a local
// server, warm), and 330-450 µs inside a mount, where a cold read finds
// the CPU's caches cold: a fifth of a cold 64 KiB read from loopback
// MinIO. GDAL's /vsis3/ signs its own requests too.
//
// The SDK still decides everything: a bucket's first GET goes through
// GetObject, and the request it signs (seen by a middleware after its
// signing step) gives the route: scheme, host, the path before the key,
// the query, the signing region and service. Only SigV4 and unsigned
// requests whose path ends in the key as the SDK escapes it make a
// route; any other bucket (access points, SigV4a, S3 Express) keeps
// GetObject. A redirect on a route (or a signature for the wrong region)
// drops it.

// s3Route is how a bucket's GETs are sent, learned from the SDK's.
type s3Route struct {
	scheme, host    string
	prefix          string // escaped path before "/" + the escaped key
	query           string
	region, service string // of the signature; empty: unsigned
}

// emptySHA256 is the payload hash of a GET.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// s3Routes holds the routes learned, by bucket and region.
type s3Routes struct {
	mu     sync.Mutex
	m      map[string]*s3Route // guarded by mu
	signer *v4.Signer          // set with the first route
}

func routeKey(loc stacindex.Location) string { return loc.Region + "\x00" + loc.Bucket }

// route returns loc's route, or nil.
func (s *S3Store) route(loc stacindex.Location) *s3Route {
	s.routes.mu.Lock()
	defer s.routes.mu.Unlock()
	return s.routes.m[routeKey(loc)]
}

// forgetRoute drops loc's route: its GETs go through the SDK again.
func (s *S3Store) forgetRoute(loc stacindex.Location) {
	s.routes.mu.Lock()
	defer s.routes.mu.Unlock()
	delete(s.routes.m, routeKey(loc))
}

// learnRoute keeps the route of req, a GetObject of loc the SDK signed
// and S3 answered, if it is one plain requests can take.
func (s *S3Store) learnRoute(loc stacindex.Location, req *http.Request) {
	if s.NoDirectGets || req == nil || req.URL == nil {
		return
	}
	esc := "/" + httpbinding.EscapePath(loc.Key, false)
	path := req.URL.EscapedPath()
	if !strings.HasSuffix(path, esc) {
		return
	}
	r := &s3Route{scheme: req.URL.Scheme, host: req.URL.Host, prefix: strings.TrimSuffix(path, esc), query: req.URL.RawQuery}
	if _, err := url.PathUnescape(r.prefix); err != nil {
		return
	}
	switch auth := req.Header.Get("Authorization"); {
	case auth == "":
	case strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="):
		// Credential=AKID/date/region/service/aws4_request, SignedHeaders=…
		scope, _, _ := strings.Cut(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 Credential="), ",")
		parts := strings.Split(scope, "/")
		if len(parts) != 5 || parts[4] != "aws4_request" || parts[2] == "" || parts[3] == "" || s.Creds == nil {
			return
		}
		r.region, r.service = parts[2], parts[3]
	default:
		return // SigV4a and the like: the SDK's
	}
	s.routes.mu.Lock()
	defer s.routes.mu.Unlock()
	if s.routes.m == nil {
		s.routes.m = make(map[string]*s3Route)
		s.routes.signer = v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	}
	s.routes.m[routeKey(loc)] = r
}

// captureRequest lets GetObject hand the last request it signed to *dst.
func captureRequest(dst **http.Request) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("prescientfs:route",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					if req, ok := in.Request.(*smithyhttp.Request); ok {
						*dst = req.Request
					}
					return next.HandleFinalize(ctx, in)
				}), middleware.After)
		})
	}
}

// errRouteGone is a route's request answered with a redirect (or a
// complaint about its signature's region): the SDK should send it.
var errRouteGone = errors.New("route no longer valid")

// getDirect sends a ranged GET of loc on route r.
func (s *S3Store) getDirect(ctx context.Context, r *s3Route, loc stacindex.Location, off, n int64, etag string) (*Body, error) {
	prefix, _ := url.PathUnescape(r.prefix) // checked when learned
	u := &url.URL{Scheme: r.scheme, Host: r.host, Path: prefix + "/" + loc.Key,
		RawPath: r.prefix + "/" + httpbinding.EscapePath(loc.Key, false), RawQuery: r.query}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.URL = u // as built: String and back could re-escape
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	if etag != "" {
		req.Header.Set("If-Match", etag)
	}
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", "prescientfs")
	if r.service != "" {
		creds, err := s.Creds.Retrieve(ctx)
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		if err := s.routes.signer.SignHTTP(ctx, creds, req, emptySHA256, r.service, r.region, time.Now().UTC()); err != nil {
			return nil, err
		}
	}
	s.direct.Add(1)
	resp, err := s.Client.Options().HTTPClient.Do(req)
	if err != nil {
		return nil, &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &smithyhttp.RequestSendError{Err: err}}
	}
	if resp.StatusCode/100 != 2 {
		err := responseError(resp)
		var ae smithy.APIError
		switch {
		case resp.StatusCode == http.StatusMovedPermanently, resp.StatusCode == http.StatusTemporaryRedirect,
			errors.As(err, &ae) && ae.ErrorCode() == "AuthorizationHeaderMalformed": // another region
			return nil, fmt.Errorf("%w: %w", errRouteGone, err)
		}
		return nil, err
	}
	size := totalFromContentRange(resp.Header.Get("Content-Range"))
	if resp.Header.Get("Content-Range") == "" {
		size = resp.ContentLength // a whole-object answer
	}
	return &Body{ReadCloser: resp.Body, ETag: resp.Header.Get("ETag"), Size: size}, nil
}

// responseError reads an S3 error answer (closing its body) into the error
// GetObject would return: an API error with S3's code inside a response
// error with the status, so that classifyS3, IsStaleCredentials,
// Retryable and retryAfterOf read it alike.
func responseError(resp *http.Response) error {
	var doc struct {
		Code      string `xml:"Code"`
		Message   string `xml:"Message"`
		RequestID string `xml:"RequestId"`
	}
	_ = xml.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&doc) // no body (a HEAD-like answer): the status says it
	_ = resp.Body.Close()                                              // read what matters
	if doc.Code == "" {
		doc.Code = strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "")
	}
	if doc.RequestID == "" {
		doc.RequestID = resp.Header.Get("X-Amz-Request-Id")
	}
	return &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: resp},
			Err:      &smithy.GenericAPIError{Code: doc.Code, Message: doc.Message},
		},
		RequestID: doc.RequestID,
	}}
}
