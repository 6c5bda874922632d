package minio

import (
	"context"
	"testing"
)

// StartT starts a server for a test, fails the test if it cannot, and stops
// it in t.Cleanup. When the test fails, the server's last output is logged.
func StartT(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("minio output (tail):\n%s", s.Output())
		}
		s.Stop()
	})
	return s
}
