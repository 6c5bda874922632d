package stacserver

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault describes requests to disturb and how.
type Fault struct {
	// Prefix matches the decoded request path ("" matches everything).
	Prefix string
	// Method matches the request method ("" matches every method).
	Method string
	// Times is how many matching requests the fault affects; 0 means every
	// one until the fault is removed.
	Times int
	// Delay holds the request before it is answered (ends early if the
	// client goes away or the server closes).
	Delay time.Duration
	// Status, when non-zero, answers the request with this status and a
	// JSON error body instead of the real response.
	Status int
	// RetryAfter is sent as the Retry-After header with Status.
	RetryAfter string
	// Truncate cuts the real response body after TruncateAfter bytes and
	// drops the connection (the headers, including Content-Length, are
	// those of the full response).
	Truncate      bool
	TruncateAfter int
}

// FaultFunc decides per request whether to fail it: when handled is true the
// server answers with status (and Retry-After if non-empty).
type FaultFunc func(r *http.Request) (status int, retryAfter string, handled bool)

type faultState struct {
	Fault
	left int // remaining requests when Times > 0
}

// AddFault installs f and returns a function that removes it.
func (s *Server) AddFault(f Fault) (remove func()) {
	st := &faultState{Fault: f, left: f.Times}
	s.mu.Lock()
	s.faults = append(s.faults, st)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, x := range s.faults {
			if x == st {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
				return
			}
		}
	}
}

// FailNext answers the next n requests whose path starts with prefix with
// status, and Retry-After when retryAfter is not empty.
func (s *Server) FailNext(prefix string, n, status int, retryAfter string) {
	s.AddFault(Fault{Prefix: prefix, Times: n, Status: status, RetryAfter: retryAfter})
}

// SetDelay delays every request whose path starts with prefix by d, until
// ClearFaults.
func (s *Server) SetDelay(prefix string, d time.Duration) {
	s.AddFault(Fault{Prefix: prefix, Delay: d})
}

// TruncateNext cuts the bodies of the next n responses whose path starts
// with prefix after keep bytes.
func (s *Server) TruncateNext(prefix string, n, keep int) {
	s.AddFault(Fault{Prefix: prefix, Times: n, Truncate: true, TruncateAfter: keep})
}

// SetFault installs a per-request fault function (nil removes it). It runs
// after the faults added with AddFault.
func (s *Server) SetFault(f FaultFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultFunc = f
}

// ClearFaults removes every fault, including the SetFault function.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults, s.faultFunc = nil, nil
}

// applyFaults applies the matching faults to r. It returns the writer to
// use and false when the request has been answered (or abandoned).
func (s *Server) applyFaults(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, bool) {
	var (
		delay      time.Duration
		status     int
		retryAfter string
		truncate   = -1
	)
	s.mu.Lock()
	kept := s.faults[:0:0]
	for _, f := range s.faults {
		match := strings.HasPrefix(r.URL.Path, f.Prefix) && (f.Method == "" || f.Method == r.Method)
		if match {
			delay += f.Delay
			if f.Status != 0 && status == 0 {
				status, retryAfter = f.Status, f.RetryAfter
			}
			if f.Truncate && truncate < 0 {
				truncate = max(f.TruncateAfter, 0)
			}
			if f.Times > 0 {
				f.left--
			}
		}
		if f.Times == 0 || f.left > 0 {
			kept = append(kept, f)
		}
	}
	s.faults = kept
	fn := s.faultFunc
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return w, false
		}
	}
	if status == 0 && fn != nil {
		if st, ra, handled := fn(r); handled {
			status, retryAfter = st, ra
		}
	}
	if status != 0 {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		writeError(w, status, "injected fault: "+strconv.Itoa(status))
		return w, false
	}
	if truncate >= 0 {
		return &truncatingWriter{ResponseWriter: w, left: truncate}, true
	}
	return w, true
}

// truncatingWriter passes through the first left bytes of the body, then
// flushes and aborts the connection, so the client sees a short body.
type truncatingWriter struct {
	http.ResponseWriter
	left int
}

func (t *truncatingWriter) Write(p []byte) (int, error) {
	if len(p) <= t.left {
		t.left -= len(p)
		return t.ResponseWriter.Write(p)
	}
	_, _ = t.ResponseWriter.Write(p[:t.left])
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	// net/http recovers ErrAbortHandler quietly and closes the connection.
	panic(http.ErrAbortHandler)
}
