package minio

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Region is the region the server and its clients use.
const Region = "us-east-1"

// Client returns an S3 client for the server's root credentials, path-style,
// region us-east-1.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   s.httpClient(),
	})
}

// httpClient trusts the server's certificate when it runs with CertsDir.
func (s *Server) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // loopback only; never go through a proxy from the environment
	if s.opts.CertsDir != "" {
		pool := x509.NewCertPool()
		for _, name := range []string{"public.crt", filepath.Join("CAs", "ca.crt")} {
			if pem, err := os.ReadFile(filepath.Join(s.opts.CertsDir, name)); err == nil {
				pool.AppendCertsFromPEM(pem)
			}
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}
}

func httpGet(ctx context.Context, url string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
}
