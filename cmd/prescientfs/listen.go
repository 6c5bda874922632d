package main

import (
	"log/slog"
	"net"
)

// listenLocal listens for one of the mount's HTTP endpoints (what:
// "metrics", "pprof") on addr. An address without a host (":9464")
// listens on 127.0.0.1 only, not on every interface as net.Listen
// would: the counters and profiles are for this machine. An address
// the user gives on another interface ("0.0.0.0:9464", a LAN address or
// name) is used, and the log warns that the endpoint is reachable from
// the network.
func listenLocal(what, addr string, log *slog.Logger) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	if h, _, _ := net.SplitHostPort(ln.Addr().String()); !isLoopback(h) {
		log.Warn(what+" endpoint reachable from the network: not a loopback address, anyone who can connect to it can read it (give 127.0.0.1:PORT unless the network is trusted)",
			"addr", addr, "listening", ln.Addr().String())
	}
	return ln, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
