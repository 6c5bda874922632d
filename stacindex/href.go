package stacindex

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// ErrUnsupportedHref is returned for asset hrefs prescientfs cannot serve
// (file://, ftp://, data: and the like). Such assets are left out of the tree.
var ErrUnsupportedHref = errors.New("unsupported asset href")

// Resolver turns asset hrefs into object locations.
type Resolver struct {
	// S3Endpoint is a custom S3 endpoint (AWS_ENDPOINT_URL_S3); http(s)
	// hrefs on its host are read as path-style S3 objects. Nil for AWS.
	S3Endpoint *url.URL
}

// Resolve maps href, relative to base (the item's self link), to a
// location. It never yields a local file.
func (r Resolver) Resolve(href, base string) (Location, error) {
	if strings.ContainsAny(href, "\x00\r\n") {
		return Location{}, fmt.Errorf("%w: control characters in href", ErrUnsupportedHref)
	}
	if rest, ok := cutPrefixFold(href, "s3://"); ok {
		bucket, key, _ := strings.Cut(rest, "/")
		if bucket == "" || key == "" {
			return Location{}, fmt.Errorf("%w: %q has no bucket or key", ErrUnsupportedHref, redact(href))
		}
		return Location{Kind: KindS3, Bucket: bucket, Key: key}, nil
	}
	u, err := url.Parse(href)
	if err != nil {
		return Location{}, fmt.Errorf("%w: %v", ErrUnsupportedHref, err)
	}
	if !u.IsAbs() {
		if base == "" {
			return Location{}, fmt.Errorf("%w: relative href %q and the item has no self link", ErrUnsupportedHref, redact(href))
		}
		b, err := url.Parse(base)
		if err != nil || !b.IsAbs() {
			return Location{}, fmt.Errorf("%w: relative href %q against an unusable self link", ErrUnsupportedHref, redact(href))
		}
		if b.Scheme == "s3" {
			return r.Resolve(b.ResolveReference(u).String(), "")
		}
		u = b.ResolveReference(u)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	default:
		return Location{}, fmt.Errorf("%w: scheme %q", ErrUnsupportedHref, u.Scheme)
	}
	if u.Host == "" {
		return Location{}, fmt.Errorf("%w: %q has no host", ErrUnsupportedHref, redact(href))
	}
	if loc, ok := r.s3FromURL(u); ok {
		return loc, nil
	}
	u.Fragment = ""
	// What is served is the URL's text, so the text must read back as the
	// same kind of URL: "//::" parses, but "http://::" does not.
	s := u.String()
	if v, err := url.Parse(s); err != nil || v.Host == "" {
		return Location{}, fmt.Errorf("%w: %q resolves to no usable URL", ErrUnsupportedHref, redact(href))
	}
	return Location{Kind: KindHTTP, URL: s}, nil
}

// s3FromURL recognises S3 virtual-hosted and path-style URLs, on AWS and
// on the custom endpoint. Signed URLs (with a query) stay plain HTTP.
func (r Resolver) s3FromURL(u *url.URL) (Location, bool) {
	if u.RawQuery != "" {
		return Location{}, false
	}
	host := strings.ToLower(u.Hostname())
	p := strings.TrimPrefix(u.Path, "/") // decoded
	pathStyle := func() (Location, bool) {
		bucket, key, _ := strings.Cut(p, "/")
		if bucket == "" || key == "" {
			return Location{}, false
		}
		return Location{Kind: KindS3, Bucket: bucket, Key: key}, true
	}
	if r.S3Endpoint != nil && strings.EqualFold(u.Host, r.S3Endpoint.Host) {
		return pathStyle()
	}
	if !strings.HasSuffix(host, ".amazonaws.com") {
		return Location{}, false
	}
	labels := strings.Split(strings.TrimSuffix(host, ".amazonaws.com"), ".")
	// s3 | s3.<region> | s3-<region>  => path-style
	if isS3Label(labels[0]) {
		loc, ok := pathStyle()
		loc.Region = regionOf(labels)
		return loc, ok
	}
	// <bucket>.s3 | <bucket>.s3.<region> | <bucket>.s3-<region> => virtual-hosted
	for i := 1; i < len(labels); i++ {
		if slices.Contains(labels[:i], "") {
			break // ".s3.amazonaws.com", "a..b.s3…": no bucket; a host nobody answers for
		}
		if isS3Label(labels[i]) && p != "" {
			return Location{Kind: KindS3, Bucket: strings.Join(labels[:i], "."), Key: p, Region: regionOf(labels[i:])}, true
		}
	}
	return Location{}, false
}

// regionOf reads the region from the labels from "s3" on: s3.<region>,
// s3-<region>, s3.dualstack.<region>.
func regionOf(labels []string) string {
	if r, ok := strings.CutPrefix(labels[0], "s3-"); ok {
		return r
	}
	for _, l := range labels[1:] {
		if l != "dualstack" && strings.Count(l, "-") >= 2 {
			return l
		}
	}
	return ""
}

func isS3Label(l string) bool {
	return l == "s3" || strings.HasPrefix(l, "s3-") && l != "s3-accesspoint" || l == "s3.dualstack"
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// redact drops the query (signatures) and userinfo from a URL for messages.
func redact(href string) string {
	u, err := url.Parse(href)
	if err != nil {
		if i := strings.IndexAny(href, "?#"); i >= 0 {
			return href[:i]
		}
		return href
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	return u.String()
}
