package stacserver

import (
	"bytes"
	"io"
	"net/http"
	"time"
)

// maxRecordedBody bounds the request body kept in the log.
const maxRecordedBody = 64 << 10

// Recorded is one request as the server received it.
type Recorded struct {
	Time   time.Time
	Method string
	// Path is the decoded path; EscapedPath as sent.
	Path        string
	EscapedPath string
	RawQuery    string
	Header      http.Header
	// Body is the start of the request body (POST search bodies).
	Body []byte
	// Status is the response status (0 if the connection was dropped
	// before a response, e.g. by a delay the client gave up on).
	Status int
}

// Requests returns a copy of the request log, oldest first.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Recorded, len(s.requests))
	for i, e := range s.requests {
		out[i] = *e
	}
	return out
}

// ResetRequests empties the request log.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// recorder captures the status of a response for the log. The entry is
// in the log before the handler runs, so a client that has seen the
// response always finds its request there.
type recorder struct {
	http.ResponseWriter
	s     *Server
	entry *Recorded // in s.requests; Status guarded by s.mu
}

func (s *Server) record(w http.ResponseWriter, r *http.Request) *recorder {
	e := Recorded{
		Time:        time.Now(),
		Method:      r.Method,
		Path:        r.URL.Path,
		EscapedPath: r.URL.EscapedPath(),
		RawQuery:    r.URL.RawQuery,
		Header:      r.Header.Clone(),
	}
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
		body, _ := io.ReadAll(io.LimitReader(r.Body, maxRecordedBody+1))
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		e.Body = body[:min(len(body), maxRecordedBody)]
	}
	s.mu.Lock()
	s.requests = append(s.requests, &e)
	s.mu.Unlock()
	return &recorder{ResponseWriter: w, s: s, entry: &e}
}

// setStatus records the first status written.
func (rec *recorder) setStatus(code int) {
	rec.s.mu.Lock()
	defer rec.s.mu.Unlock()
	if rec.entry.Status == 0 {
		rec.entry.Status = code
	}
}

func (rec *recorder) WriteHeader(code int) {
	rec.setStatus(code)
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	rec.setStatus(http.StatusOK)
	return rec.ResponseWriter.Write(p)
}

// Flush lets truncation push partial bodies out.
func (rec *recorder) Flush() {
	if f, ok := rec.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
