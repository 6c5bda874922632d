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
	"sync"
	"sync/atomic"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/proxy"
)

// countingProxy is a reverse proxy in front of MinIO that counts the
// requests a client sends and the body bytes MinIO returns, and shapes
// them like a remote S3 (see shape): it holds every request for the
// shape's latency before forwarding it (once per HTTP request: an upload's
// body is not held again) and paces every response to the shape's rate
// (each response on its own connection, as HTTP/1.1 carries one at a
// time; proxy.Pacer keeps a schedule, so the rate is reached, not lost to
// timer granularity). It keeps the Host header, so SigV4 signatures made
// for the proxy's address verify. Unshaped, it still costs some CPU and
// latency, so on loopback only the passes that count requests go through
// it (both sides of a comparison alike).
type countingProxy struct {
	URL   string // http://127.0.0.1:PORT
	Shape shape
	srv   *http.Server
	gets  atomic.Int64
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

// newCountingProxy starts a proxy to upstream shaped by sh (the zero
// shape: none).
func newCountingProxy(upstream string, sh shape) (*countingProxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{URL: "http://" + ln.Addr().String(), Shape: sh}
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
			resp.Body = &countingBody{ReadCloser: resp.Body, n: &p.bytes, rate: sh.rate}
			return nil
		},
		BufferPool: &copyBuffers,
		ErrorLog:   log.New(io.Discard, "", 0), // clients dropping streams is normal
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
			if sh.latency > 0 {
				t := time.NewTimer(sh.latency)
				select {
				case <-t.C:
				case <-r.Context().Done():
					t.Stop()
					return
				}
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

// countingBody counts a response's bytes and paces them to rate (0:
// unlimited): each chunk is held until the schedule lets it go.
type countingBody struct {
	io.ReadCloser
	n    *atomic.Int64
	rate int64
	pace proxy.Pacer
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.rate > 0 && len(p) > paceChunk {
		p = p[:paceChunk]
	}
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.pace.Wait(n, b.rate)
	}
	b.n.Add(int64(n))
	return n, err
}

// paceChunk bounds what a paced response passes on at once: 128 KiB is
// 2.6 ms at 50 MB/s, far finer than a real bucket's delivery (a TCP
// window of about a megabyte a round trip at 20 ms and 50 MB/s). It was
// 16 KiB: each chunk its own read, write and often sleep, and the proxy
// took 1.0-1.5 core-s per GiB, a third of a 2-core machine at 20 ms,
// from both sides of every shaped comparison.
const paceChunk = 128 << 10

// copyBuffers are the reverse proxy's copy buffers, a chunk each.
var copyBuffers = bufferPool{sync.Pool{New: func() any { return make([]byte, paceChunk) }}}

type bufferPool struct{ sync.Pool }

func (p *bufferPool) Get() []byte { return p.Pool.Get().([]byte) }

//lint:ignore SA6002 httputil.BufferPool hands slices back; a header per Put is cheap
func (p *bufferPool) Put(b []byte) { p.Pool.Put(b) }
