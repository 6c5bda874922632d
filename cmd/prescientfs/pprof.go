package main

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"time"
)

// startPprof serves Go profiles at http://PRESCIENT_PPROF/debug/pprof/
// (e.g. 127.0.0.1:6060; a bare ":6060" is loopback too, see listenLocal)
// for performance work on a live mount, until the process exits. Off
// unless set; a failure to listen is logged, not fatal.
func startPprof(log *slog.Logger) {
	addr := os.Getenv("PRESCIENT_PPROF")
	if addr == "" {
		return
	}
	if _, _, err := servePprof(addr, log); err != nil {
		log.Warn("pprof not served", "PRESCIENT_PPROF", addr, "err", err)
	}
}

// servePprof serves net/http/pprof's handlers on addr, on their own mux:
// nothing else the process serves exposes them. It returns the index's
// URL; stop closes the endpoint.
func servePprof(addr string, log *slog.Logger) (url string, stop func(), err error) {
	ln, err := listenLocal("pprof", addr, log)
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or trace takes as long as asked.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ErrServerClosed once stopped
	url = "http://" + ln.Addr().String() + "/debug/pprof/"
	log.Info("pprof served", "url", url)
	return url, func() { _ = srv.Close() }, nil
}
