package stacindex

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeName(t *testing.T) {
	tests := map[string]string{
		"S2A_20240101": "S2A_20240101",
		"a/b":          "a_b",
		"..":           "_.",
		".":            "_",
		".hidden":      "_hidden",
		"":             "_",
		"with\x00nul":  "with_nul",
		"line\nbreak":  "line_break",
		"back\\slash":  "back_slash",
		"café":         "café",
		"bad\xffutf8":  "bad\uFFFDutf8",
	}
	for in, want := range tests {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSafeNameLong(t *testing.T) {
	for _, n := range []int{256, 300, 10 << 10} {
		long := strings.Repeat("é", n)
		got := SafeName(long)
		if len(got) > MaxNameLen || !utf8.ValidString(got) {
			t.Fatalf("len %d valid %v", len(got), utf8.ValidString(got))
		}
		if SafeName(long+"x") == got {
			t.Fatalf("two long IDs share a name")
		}
		if SafeName(long) != got {
			t.Fatalf("not deterministic")
		}
	}
	name := AssetFileName(strings.Repeat("k", 400), "s3://b/x.tif", "")
	if len(name) > MaxNameLen || !strings.HasSuffix(name, ".tif") {
		t.Fatalf("long asset name %q (%d bytes)", name, len(name))
	}
}

func TestAssetFileName(t *testing.T) {
	tests := []struct{ key, href, mt, want string }{
		{"visual", "s3://b/S2/visual.tif", "image/tiff; application=geotiff", "visual.tif"},
		{"B04", "https://x/y/B04.TIF?sig=1", "", "B04.TIF"},
		{"metadata", "s3://b/k/metadata", "application/xml", "metadata.xml"},
		{"thumbnail", "s3://b/k/thumb", "image/png", "thumbnail.png"},
		{"metadata.xml", "s3://b/metadata.xml", "", "metadata.xml"},
		{"data", "s3://b/noext", "", "data"},
		{"a/b", "s3://b/x.tif", "", "a_b.tif"},
	}
	for _, tt := range tests {
		if got := AssetFileName(tt.key, tt.href, tt.mt); got != tt.want {
			t.Errorf("AssetFileName(%q,%q,%q) = %q, want %q", tt.key, tt.href, tt.mt, got, tt.want)
		}
	}
}

func TestDisambiguateDeterministic(t *testing.T) {
	mk := func(raws ...string) []Named {
		var out []Named
		for _, r := range raws {
			out = append(out, Named{Raw: r, Name: SafeName(r)})
		}
		return out
	}
	a := mk("a/b", "a_b", "a\x00b", "item.json")
	b := mk("item.json", "a\x00b", "a_b", "a/b")
	Disambiguate(a, "item.json")
	Disambiguate(b, "item.json")
	got := map[string]string{}
	seen := map[string]bool{}
	for _, e := range a {
		got[e.Raw] = e.Name
		if seen[e.Name] {
			t.Fatalf("duplicate name %q", e.Name)
		}
		seen[e.Name] = true
	}
	for _, e := range b {
		if got[e.Raw] != e.Name {
			t.Fatalf("order-dependent: %q -> %q vs %q", e.Raw, got[e.Raw], e.Name)
		}
	}
	if got["a_b"] != "a_b" {
		t.Fatalf("exact name lost to a sanitized one: %v", got)
	}
	if got["item.json"] == "item.json" {
		t.Fatalf("reserved name given out")
	}
}
