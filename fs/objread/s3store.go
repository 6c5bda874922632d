package objread

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/prescient/prescientfs/stacindex"
)

// S3Store reads objects with an S3 client.
type S3Store struct {
	Client *s3.Client
	// Creds, when it has an Invalidate method (aws.CredentialsCache does),
	// is invalidated on a 403 that means stale credentials, and the request
	// is retried once with fresh ones.
	Creds aws.CredentialsProvider
	// NoDirectGets keeps every ranged GET in the SDK's GetObject (see
	// s3get.go).
	NoDirectGets bool

	routes s3Routes
	direct atomic.Int64 // GETs sent on a route
}

// DirectGets returns how many ranged GETs were sent as the store's own
// signed requests rather than through GetObject.
func (s *S3Store) DirectGets() int64 { return s.direct.Load() }

var _ Store = (*S3Store)(nil)

// Stat implements Store with HeadObject.
func (s *S3Store) Stat(ctx context.Context, loc stacindex.Location) (ObjectInfo, error) {
	var out *s3.HeadObjectOutput
	err := s.retryStale(func() error {
		var err error
		out, err = s.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &loc.Bucket, Key: &loc.Key}, inRegion(loc))
		return err
	})
	if err != nil {
		return ObjectInfo{}, s3Error("stat", loc, err)
	}
	info := ObjectInfo{Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag)}
	if out.LastModified != nil {
		info.LastModified = *out.LastModified
	}
	return info, nil
}

// GetRange implements Store with a ranged GetObject.
func (s *S3Store) GetRange(ctx context.Context, loc stacindex.Location, off, n int64, etag string) (*Body, error) {
	in := &s3.GetObjectInput{
		Bucket: &loc.Bucket,
		Key:    &loc.Key,
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	}
	if etag != "" {
		in.IfMatch = aws.String(etag)
	}
	var out *s3.GetObjectOutput
	var direct *Body
	err := s.retryStale(func() error {
		if r := s.route(loc); r != nil {
			var err error
			direct, err = s.getDirect(ctx, r, loc, off, n, etag)
			if !errors.Is(err, errRouteGone) {
				return err
			}
			s.forgetRoute(loc)
		}
		var req *http.Request
		var err error
		out, err = s.Client.GetObject(ctx, in, inRegion(loc), captureRequest(&req))
		if err == nil {
			s.learnRoute(loc, req)
		}
		return err
	})
	if err != nil {
		return nil, s3Error("read", loc, err)
	}
	if direct != nil {
		return direct, nil
	}
	size := totalFromContentRange(aws.ToString(out.ContentRange))
	if out.ContentRange == nil && out.ContentLength != nil {
		size = *out.ContentLength // a whole-object answer
	}
	return &Body{ReadCloser: out.Body, ETag: aws.ToString(out.ETag), Size: size}, nil
}

// retryStale runs op, and once more after invalidating the credentials
// when the first attempt failed with stale credentials.
func (s *S3Store) retryStale(op func() error) error {
	err := op()
	if err == nil || !IsStaleCredentials(err) {
		return err
	}
	inv, ok := s.Creds.(interface{ Invalidate() })
	if !ok {
		return err
	}
	inv.Invalidate()
	return op()
}

// IsStaleCredentials reports whether err is S3 refusing credentials that
// expired or were replaced: renewing them and retrying may succeed.
func IsStaleCredentials(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ExpiredToken", "InvalidAccessKeyId", "InvalidToken", "TokenRefreshRequired", "RequestExpired":
			return true
		}
	}
	// HEAD responses have no body, so a 403 carries no code: treat it as
	// possibly stale (one retry is cheap).
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() == "Forbidden" {
			return true
		}
	}
	return false
}

func s3Error(op string, loc stacindex.Location, err error) error {
	kind := classifyS3(err)
	if kind == nil {
		return fmt.Errorf("%s %s: %w", op, loc, err)
	}
	return fmt.Errorf("%s %s: %w: %w", op, loc, kind, err)
}

func classifyS3(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchBucket":
			return ErrNotFound
		case "PreconditionFailed":
			return ErrChanged
		case "InvalidRange":
			return errBeyondEnd
		case "AccessDenied", "Forbidden", "ExpiredToken", "InvalidAccessKeyId", "InvalidToken", "SignatureDoesNotMatch":
			return ErrDenied
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusNotFound:
			return ErrNotFound
		case http.StatusPreconditionFailed:
			return ErrChanged
		case http.StatusRequestedRangeNotSatisfiable:
			return errBeyondEnd
		case http.StatusForbidden, http.StatusUnauthorized:
			return ErrDenied
		}
	}
	return nil
}

// inRegion sends the request to the region an AWS href named, if any:
// public catalogs point at buckets in many regions.
func inRegion(loc stacindex.Location) func(*s3.Options) {
	return func(o *s3.Options) {
		if loc.Region != "" && o.BaseEndpoint == nil {
			o.Region = loc.Region
		}
	}
}
