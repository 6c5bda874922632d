package stacindex

import (
	"fmt"
	"net/url"
)

// Kind says how an object is fetched.
type Kind int

const (
	// KindS3 objects are read with S3 GetObject/HeadObject.
	KindS3 Kind = iota + 1
	// KindHTTP objects are read with plain HTTP GET/HEAD and Range headers.
	KindHTTP
)

// Location names one remote object an asset points to.
type Location struct {
	Kind   Kind
	Bucket string // KindS3
	Key    string // KindS3, decoded
	Region string // KindS3: the region named in an AWS URL, if any
	URL    string // KindHTTP: the absolute http(s) URL
}

// String renders the location for logs (never carries credentials: hrefs
// with userinfo or query strings are shown without them).
func (l Location) String() string {
	switch l.Kind {
	case KindS3:
		return "s3://" + l.Bucket + "/" + l.Key
	case KindHTTP:
		u, err := url.Parse(l.URL)
		if err != nil {
			return "http(s) object"
		}
		u.User = nil
		u.RawQuery = ""
		return u.String()
	}
	return fmt.Sprintf("location(kind=%d)", l.Kind)
}

// ID is a stable identity string for the object, used for inode numbers
// and cache keys.
func (l Location) ID() string {
	if l.Kind == KindS3 {
		return "s3\x00" + l.Bucket + "\x00" + l.Key
	}
	return "http\x00" + l.URL
}
