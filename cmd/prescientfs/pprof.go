package main

import (
	"net"
	"net/http"
	_ "net/http/pprof" // profiles for PRESCIENT_PPROF
	"os"
)

// startPprof serves Go profiles on PRESCIENT_PPROF (e.g. 127.0.0.1:6060)
// for performance work on a live mount. Off unless set.
func startPprof() {
	addr := os.Getenv("PRESCIENT_PPROF")
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return
	}
	go http.Serve(ln, nil)
}
