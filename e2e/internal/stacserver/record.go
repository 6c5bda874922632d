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
	return append([]Recorded(nil), s.requests...)
}

// ResetRequests empties the request log.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// recorder captures the status of a response for the log.
type recorder struct {
	http.ResponseWriter
	s      *Server
	entry  Recorded
	status int
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
	return &recorder{ResponseWriter: w, s: s, entry: e}
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.ResponseWriter.Write(p)
}

// Flush lets truncation push partial bodies out.
func (rec *recorder) Flush() {
	if f, ok := rec.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// finish appends the entry to the log; it runs deferred, also when the
// handler aborts the connection.
func (rec *recorder) finish() {
	rec.entry.Status = rec.status
	rec.s.mu.Lock()
	defer rec.s.mu.Unlock()
	rec.s.requests = append(rec.s.requests, rec.entry)
}
