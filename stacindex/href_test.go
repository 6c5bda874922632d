package stacindex

import (
	"errors"
	"net/url"
	"testing"
)

func TestResolve(t *testing.T) {
	ep, _ := url.Parse("http://127.0.0.1:9000")
	r := Resolver{S3Endpoint: ep}
	s3 := func(b, k string) Location { return Location{Kind: KindS3, Bucket: b, Key: k} }
	s3r := func(b, k, r string) Location { return Location{Kind: KindS3, Bucket: b, Key: k, Region: r} }
	web := func(u string) Location { return Location{Kind: KindHTTP, URL: u} }
	self := "https://stac.example.com/stac/collections/c/items/i"
	tests := []struct {
		href string
		base string
		want Location
	}{
		{"s3://bkt/a/b.tif", "", s3("bkt", "a/b.tif")},
		{"S3://bkt/k", "", s3("bkt", "k")},
		{"https://bkt.s3.us-west-2.amazonaws.com/a/b.tif", "", s3r("bkt", "a/b.tif", "us-west-2")},
		{"https://bkt.s3-eu-west-1.amazonaws.com/k", "", s3r("bkt", "k", "eu-west-1")},
		{"https://bkt.s3.amazonaws.com/a/b.tif", "", s3("bkt", "a/b.tif")},
		{"https://my.dotted.bkt.s3.eu-central-1.amazonaws.com/k", "", s3r("my.dotted.bkt", "k", "eu-central-1")},
		{"https://s3.us-west-2.amazonaws.com/bkt/a/b.tif", "", s3r("bkt", "a/b.tif", "us-west-2")},
		{"https://s3.amazonaws.com/bkt/k", "", s3("bkt", "k")},
		{"http://127.0.0.1:9000/bkt/dir/x%20y%25z.tif", "", s3("bkt", "dir/x y%z.tif")},
		{"https://bkt.s3.amazonaws.com/k?X-Amz-Signature=abc", "", web("https://bkt.s3.amazonaws.com/k?X-Amz-Signature=abc")},
		{"https://example.com/data/x.tif", "", web("https://example.com/data/x.tif")},
		{"./B04.tif", self, web("https://stac.example.com/stac/collections/c/items/B04.tif")},
		{"../../secret", self, web("https://stac.example.com/stac/collections/secret")},
		{"B04.tif", "s3://bkt/items/i.json", s3("bkt", "items/B04.tif")},
		// Found by FuzzResolve: an empty bucket label is no bucket.
		{"//.s3.AmAZonAws.Com/0", self, web("https://.s3.AmAZonAws.Com/0")},
		{"https://a..b.s3.amazonaws.com/k", "", web("https://a..b.s3.amazonaws.com/k")},
	}
	for _, tt := range tests {
		t.Run(tt.href, func(t *testing.T) {
			got, err := r.Resolve(tt.href, tt.base)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResolveRejects(t *testing.T) {
	r := Resolver{}
	for _, href := range []string{"file:///etc/passwd", "ftp://example.invalid/x", "data:text/plain,hi", "s3://bucket-only", "relative.tif", "/abs/path.tif", "http://x/\x00", "https:///nohost", "http://[::1"} {
		t.Run(href, func(t *testing.T) {
			_, err := r.Resolve(href, "")
			if !errors.Is(err, ErrUnsupportedHref) {
				t.Fatalf("Resolve(%q) = %v, want ErrUnsupportedHref", href, err)
			}
		})
	}
	// Found by FuzzResolve: "//::" parses as a relative URL with host "::",
	// but against an http(s) self link its text "http://::" parses as nothing.
	for _, href := range []string{"//::", "//a:b:c/k"} {
		if loc, err := r.Resolve(href, "https://stac.example.com/stac/collections/c/items/i"); !errors.Is(err, ErrUnsupportedHref) {
			t.Errorf("Resolve(%q) = %+v, %v, want ErrUnsupportedHref", href, loc, err)
		}
	}
}
