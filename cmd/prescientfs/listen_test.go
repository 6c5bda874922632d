package main

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// The metrics and pprof endpoints listen on loopback unless the user
// names another interface; then they listen there and the log says the
// endpoint is reachable from the network.
func TestListenLocal(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		loopback bool
	}{
		{":0", true}, // no host: loopback, not every interface
		{"127.0.0.1:0", true},
		{"localhost:0", true},
		{"[::1]:0", true},
		{"0.0.0.0:0", false}, // asked for: every interface
	} {
		t.Run(tc.addr, func(t *testing.T) {
			var logs bytes.Buffer
			ln, err := listenLocal("metrics", tc.addr, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				if strings.Contains(tc.addr, "::1") {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			defer ln.Close()
			host, _, _ := net.SplitHostPort(ln.Addr().String())
			if got := isLoopback(host); got != tc.loopback {
				t.Errorf("listening on %s: loopback %v, want %v", ln.Addr(), got, tc.loopback)
			}
			warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "metrics endpoint reachable from the network")
			if warned == tc.loopback {
				t.Errorf("warned %v for %s; log: %q", warned, ln.Addr(), logs.String())
			}
		})
	}
	if _, err := listenLocal("metrics", "9464", slog.New(slog.DiscardHandler)); err == nil {
		t.Error("an address without a port was accepted")
	}
}

// PRESCIENT_PPROF=:PORT serves the profiles on loopback, on their own mux.
func TestServePprofLoopback(t *testing.T) {
	var logs bytes.Buffer
	url, stop, err := servePprof(":0", slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if !strings.HasPrefix(url, "http://127.0.0.1:") || strings.Contains(logs.String(), "WARN") {
		t.Errorf("pprof at %s; log: %q", url, logs.String())
	}
	resp, err := http.Get(url + "goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Errorf("goroutine profile: %s %.200s", resp.Status, body)
	}
}
