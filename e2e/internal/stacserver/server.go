package stacserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
)

// Options configures New. The zero value is usable.
type Options struct {
	// MaxLimit caps the limit parameter of item pages and search; 100 when 0.
	MaxLimit int
	// DefaultLimit is the page size when a request has no limit; 10 when 0.
	DefaultLimit int
	// Logger receives handler errors; slog.Default when nil.
	Logger *slog.Logger
}

// Server is a running STAC API test server. All methods are safe for
// concurrent use.
type Server struct {
	base   string // http://127.0.0.1:PORT
	opts   Options
	srv    *http.Server
	cancel context.CancelFunc
	extra  *http.ServeMux

	cat atomic.Pointer[catalogIndex]

	mu        sync.Mutex
	pageSize  map[string]int           // guarded by mu; per-collection page cap
	files     map[string][]byte        // guarded by mu; SetFile overrides
	auth      func(*http.Request) bool // guarded by mu
	filesAuth func(*http.Request) bool // guarded by mu
	faults    []*faultState            // guarded by mu
	faultFunc FaultFunc                // guarded by mu
	requests  []*Recorded              // guarded by mu (with each entry's Status)

	genMu sync.Mutex
	gens  []*genColl // guarded by genMu; replaced, never changed in place
}

// New starts a server with an empty catalog; its URL is known at once, so
// fixtures can link to it before SetCatalog.
func New(opts Options) (*Server, error) {
	if opts.MaxLimit <= 0 {
		opts.MaxLimit = 100
	}
	if opts.DefaultLimit <= 0 {
		opts.DefaultLimit = 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		base:     "http://" + ln.Addr().String(),
		opts:     opts,
		cancel:   cancel,
		extra:    http.NewServeMux(),
		pageSize: map[string]int{},
		files:    map[string][]byte{},
	}
	s.cat.Store(newCatalogIndex(&fixtures.Catalog{}))
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		// Closing the server cancels this context, which ends injected delays.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Logger.Error("stacserver: serve", "err", err)
		}
	}()
	return s, nil
}

// NewT starts a server for a test and closes it in t.Cleanup.
func NewT(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// URL is the catalog (landing page) URL, http://127.0.0.1:PORT/stac.
func (s *Server) URL() string { return s.base + catalogPath }

// BaseURL is http://127.0.0.1:PORT.
func (s *Server) BaseURL() string { return s.base }

// FilesURL is the URL below which static files are served.
func (s *Server) FilesURL() string { return s.base + filesPath }

// Close stops the server and drops open connections at once.
func (s *Server) Close() {
	s.cancel()
	_ = s.srv.Close()
}

// SetCatalog replaces the catalog served (tests may call it again to
// simulate catalog changes).
func (s *Server) SetCatalog(c *fixtures.Catalog) {
	if c == nil {
		c = &fixtures.Catalog{}
	}
	s.cat.Store(newCatalogIndex(c))
}

// SetPageSize caps the items pages of one collection at n items (n <= 0
// removes the cap).
func (s *Server) SetPageSize(collection string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.pageSize, collection)
		return
	}
	s.pageSize[collection] = n
}

// SetFile serves data at FilesURL()+"/"+rel, overriding Catalog.Files; nil
// data removes the override.
func (s *Server) SetFile(rel string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if data == nil {
		delete(s.files, rel)
		return
	}
	s.files[rel] = data
}

// SetAuth makes /stac requests for which ok returns false fail with 401
// (nil: no check). Typical: check r.Header.Get("Authorization").
func (s *Server) SetAuth(ok func(r *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth = ok
}

// SetFilesAuth is SetAuth for /files requests.
func (s *Server) SetFilesAuth(ok func(r *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filesAuth = ok
}

// Handle registers a handler for other paths, with http.ServeMux patterns,
// e.g. Handle("GET /fileproxy/credentials", h). Patterns below /stac and
// /files are never reached.
func (s *Server) Handle(pattern string, h http.Handler) { s.extra.Handle(pattern, h) }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w = s.record(w, r)
	w, ok := s.applyFaults(w, r)
	if !ok {
		return
	}
	path := r.URL.EscapedPath()
	switch {
	case path == catalogPath || strings.HasPrefix(path, catalogPath+"/"):
		if s.denied(w, r, s.authFunc(false)) {
			return
		}
		s.serveCatalog(w, r, strings.TrimPrefix(path, catalogPath))
	case strings.HasPrefix(path, filesPath+"/"):
		if s.denied(w, r, s.authFunc(true)) {
			return
		}
		s.serveFile(w, r, strings.TrimPrefix(path, filesPath+"/"))
	default:
		s.extra.ServeHTTP(w, r)
	}
}

func (s *Server) authFunc(files bool) func(*http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if files {
		return s.filesAuth
	}
	return s.auth
}

func (s *Server) denied(w http.ResponseWriter, r *http.Request, ok func(*http.Request) bool) bool {
	if ok == nil || ok(r) {
		return false
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="stac"`)
	writeError(w, http.StatusUnauthorized, "authentication required")
	return true
}
