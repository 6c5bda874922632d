package main

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"
)

// countingProxy is a reverse proxy in front of MinIO that counts the
// requests a client sends and the body bytes MinIO returns. It keeps the
// Host header, so SigV4 signatures made for the proxy's address verify.
// It costs latency and throughput, so only the passes that count bytes and
// requests go through it, never the timed ones.
type countingProxy struct {
	URL  string // http://127.0.0.1:PORT
	srv  *http.Server
	gets atomic.Int64
	// heads counts HEAD requests; other counts everything else (LIST, ...).
	heads, other atomic.Int64
	bytes        atomic.Int64
}

// proxyCounts is a snapshot of the counters.
type proxyCounts struct {
	GETs  int64 `json:"gets"`
	HEADs int64 `json:"heads"`
	Other int64 `json:"other"`
	Bytes int64 `json:"bytes"`
}

func (c proxyCounts) requests() int64 { return c.GETs + c.HEADs + c.Other }

func (c proxyCounts) sub(d proxyCounts) proxyCounts {
	return proxyCounts{GETs: c.GETs - d.GETs, HEADs: c.HEADs - d.HEADs, Other: c.Other - d.Other, Bytes: c.Bytes - d.Bytes}
}

func newCountingProxy(upstream string) (*countingProxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{URL: "http://" + ln.Addr().String()}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConnsPerHost = 128
	tr.DisableCompression = true
	rp := &httputil.ReverseProxy{
		// Only the URL changes: the inbound Host header is what the client signed.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = u.Scheme, u.Host
			pr.Out.Host = pr.In.Host
		},
		Transport: tr,
		ModifyResponse: func(resp *http.Response) error {
			resp.Body = &countingBody{ReadCloser: resp.Body, n: &p.bytes}
			return nil
		},
		ErrorLog: log.New(io.Discard, "", 0), // clients dropping streams is normal
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if !errors.Is(err, context.Canceled) {
				w.WriteHeader(http.StatusBadGateway)
			}
		},
	}
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case http.MethodGet:
				p.gets.Add(1)
			case http.MethodHead:
				p.heads.Add(1)
			default:
				p.other.Add(1)
			}
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
	}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *countingProxy) counts() proxyCounts {
	return proxyCounts{GETs: p.gets.Load(), HEADs: p.heads.Load(), Other: p.other.Load(), Bytes: p.bytes.Load()}
}

func (p *countingProxy) close() { _ = p.srv.Close() }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
