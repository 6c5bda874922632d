// Package proxy is a TCP proxy for fault injection: it sits between a
// prescientfs mount and a server (MinIO, the STAC server) and can refuse,
// slow down, stall, reset or cut connections, optionally after a number of
// bytes sent towards the client (to break a response mid-body).
//
// Faults act on the server-to-client direction, where response bodies
// flow. All methods are safe for concurrent use.
package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Cut is how a connection is broken.
type Cut int

const (
	// Reset aborts both sides with a TCP RST: the client reads
	// "connection reset by peer".
	Reset Cut = iota
	// Truncate closes both sides cleanly: the client sees the stream end
	// early (a short body).
	Truncate
)

// Proxy forwards connections from Addr to a target address.
type Proxy struct {
	// Addr is the listening address, "127.0.0.1:PORT".
	Addr   string
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   map[*pair]struct{} // guarded by mu
	down    bool               // guarded by mu; new connections are reset at once
	stalled chan struct{}      // guarded by mu; non-nil while stalled: closed on resume
	rate    int64              // guarded by mu; bytes per second per connection, 0 unlimited
	latency time.Duration      // guarded by mu; added before each request towards the server
	faults  []*fault           // guarded by mu

	// Counters.
	Conns atomic.Int64 // connections accepted
	// Requests counts request starts: the first bytes a client sends on a
	// connection, and its first bytes after each response (HTTP/1.1).
	Requests atomic.Int64
	Bytes    atomic.Int64 // bytes forwarded towards clients
	Fired    atomic.Int64 // faults that fired
	closed   atomic.Bool
}

// fault breaks the connection carrying the (after+1)th byte sent to
// clients from the moment it was armed.
type fault struct {
	left int64
	cut  Cut
}

// pair is one proxied connection.
type pair struct {
	client, server net.Conn
	once           sync.Once
	// answered: the server has sent bytes since the client last began a
	// request, so the client's next bytes begin a new one. It starts true.
	answered atomic.Bool
	// newResponse: a request went to the server; the pacer of the
	// server-to-client direction starts a new schedule at its next bytes.
	newResponse atomic.Bool
	pace        Pacer // used by the server-to-client pipe only
}

func (c *pair) close(cut Cut) {
	c.once.Do(func() {
		if cut == Reset {
			for _, conn := range []net.Conn{c.client, c.server} {
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
			}
		}
		c.client.Close()
		c.server.Close()
	})
}

// New listens on a free loopback port and forwards to target ("host:port").
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[*pair]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// URL is "http://" + Addr.
func (p *Proxy) URL() string { return "http://" + p.Addr }

// Close stops listening and closes every connection.
func (p *Proxy) Close() {
	if p.closed.Swap(true) {
		return
	}
	p.ln.Close()
	p.Resume()
	p.CutAll(Truncate)
	p.wg.Wait()
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.Conns.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

func (p *Proxy) handle(client net.Conn) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		(&pair{client: client, server: nopConn{client}}).close(Reset)
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil { // the target is down: so are we
		(&pair{client: client, server: nopConn{client}}).close(Reset)
		return
	}
	c := &pair{client: client, server: server}
	c.answered.Store(true)
	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		c.close(Truncate)
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.pipe(c, client, server, false)
	}()
	p.pipe(c, server, client, true)
	<-done
	c.close(Truncate)
}

// pipe copies src to dst; toClient applies the faults. An error on either
// side resets the pair, so a server that dies shows as a reset.
func (p *Proxy) pipe(c *pair, src, dst net.Conn, toClient bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.waitStalled() {
			c.close(Truncate)
			return
		}
		chunk := buf[:n]
		if toClient && n > 0 {
			var cut *Cut
			chunk, cut = p.apply(chunk)
			if c.newResponse.Swap(false) {
				c.pace.Start()
			}
			p.throttle(c, len(chunk))
			if len(chunk) > 0 {
				// Marked before the write: the client may read this
				// answer and send its next request before Write returns
				// here, and that request must be seen as a new one.
				c.answered.Store(true)
				if _, werr := dst.Write(chunk); werr != nil {
					c.close(Reset)
					return
				}
				p.Bytes.Add(int64(len(chunk)))
			}
			if cut != nil {
				c.close(*cut)
				return
			}
		} else if n > 0 {
			if c.answered.Swap(false) { // a new request, not more of one
				p.Requests.Add(1)
				p.delay()
				c.newResponse.Store(true)
			}
			if _, werr := dst.Write(chunk); werr != nil {
				c.close(Reset)
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				// Half-close: pass the end on, let the other direction finish.
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
					return
				}
			}
			c.close(Reset)
			return
		}
	}
}

// apply runs the armed faults over chunk: it returns the part to forward
// and the cut to make after it, if one fired. Every fault counts the bytes
// sent to clients from the moment it was armed.
func (p *Proxy) apply(chunk []byte) ([]byte, *Cut) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := int64(len(chunk))
	fire := -1
	for i, f := range p.faults {
		if f.left < n && (fire < 0 || f.left < p.faults[fire].left) {
			fire = i
		}
	}
	if fire < 0 {
		for _, f := range p.faults {
			f.left -= n
		}
		return chunk, nil
	}
	f := p.faults[fire]
	keep := max(f.left, 0)
	p.faults = append(p.faults[:fire:fire], p.faults[fire+1:]...)
	for _, g := range p.faults {
		g.left -= keep
	}
	p.Fired.Add(1)
	cut := f.cut
	return chunk[:keep], &cut
}

// throttle paces the connection's bytes towards the client to the rate.
func (p *Proxy) throttle(c *pair, n int) {
	p.mu.Lock()
	rate := p.rate
	p.mu.Unlock()
	if n > 0 {
		c.pace.Wait(n, rate)
	}
}

// delay holds the start of a request towards the server for the latency.
func (p *Proxy) delay() {
	p.mu.Lock()
	d := p.latency
	p.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
}

// waitStalled blocks while the proxy is stalled; false if it closed.
func (p *Proxy) waitStalled() bool {
	for {
		p.mu.Lock()
		ch := p.stalled
		p.mu.Unlock()
		if ch == nil {
			return !p.closed.Load()
		}
		<-ch
	}
}

// CutAfter arms a one-shot fault: the connection that carries the byte
// after the next n bytes sent to clients (on all connections together) is
// broken with cut, right after the first n bytes.
func (p *Proxy) CutAfter(n int64, cut Cut) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &fault{left: n, cut: cut})
}

// Armed is the number of faults that have not fired yet.
func (p *Proxy) Armed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.faults)
}

// CutAll breaks every open connection now.
func (p *Proxy) CutAll(cut Cut) {
	p.mu.Lock()
	conns := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close(cut)
	}
}

// SetDown makes new connections fail (reset at once) while down is true;
// with down it also resets the open ones.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.CutAll(Reset)
	}
}

// Stall holds every byte in both directions until Resume: a hung server
// that keeps its connections open.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
}

// Resume ends a Stall.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
}

// SetLatency holds the start of every request a client sends for d
// before it reaches the server: a far server's round trip, before the
// first byte of every response. A request starts with the first bytes on
// a connection and with the first bytes after each response (HTTP/1.1);
// the rest of a request (an upload's body) is not held again. With
// "Expect: 100-continue" the body comes after the server's interim
// response, so it counts as a new request and is held once. 0 removes it.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = d
}

// SetRate limits each connection's bytes per second towards the client
// (0: unlimited). The pacing keeps a schedule (see Pacer): a long response
// arrives at the rate, not slower by the timer's granularity, and each
// response starts a new schedule, so idle time earns no burst.
func (p *Proxy) SetRate(bytesPerSecond int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = bytesPerSecond
}

// Clear removes every fault: up, not stalled, unlimited, nothing armed.
func (p *Proxy) Clear() {
	p.SetDown(false)
	p.Resume()
	p.SetRate(0)
	p.mu.Lock()
	p.faults = nil
	p.mu.Unlock()
}

// nopConn stands in for a server side that was never dialled.
type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }
