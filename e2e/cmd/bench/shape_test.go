package main

import (
	"testing"
	"time"
)

func TestParseShapes(t *testing.T) {
	got, err := parseShapes("loopback, 20ms/50MB,50ms/25MiB,5ms/0")
	if err != nil {
		t.Fatal(err)
	}
	want := []shape{
		{name: "loopback"},
		{name: "20ms/50MB", latency: 20 * time.Millisecond, rate: 50_000_000},
		{name: "50ms/25MiB", latency: 50 * time.Millisecond, rate: 25 << 20},
		{name: "5ms/0", latency: 5 * time.Millisecond},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("shape %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if !got[0].loopback() || got[3].loopback() {
		t.Error("loopback() is wrong")
	}
	for _, bad := range []string{"", "20ms", "20ms/50", "fast/50MB", "20ms/-1MB", "loopback,0/0", "20ms/50MB,20ms/50MB"} {
		if sh, err := parseShapes(bad); err == nil {
			t.Errorf("parseShapes(%q) = %+v, want an error", bad, sh)
		}
	}
}
