package stacindex

import (
	"crypto/sha256"
	"encoding/hex"
	"mime"
	"path"
	"sort"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest file name most Linux file systems (and the
// kernel's FUSE layer) accept, in bytes.
const MaxNameLen = 255

// hashSuffix marks a name shortened or disambiguated by a hash.
func hashSuffix(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return "~" + hex.EncodeToString(sum[:4])
}

// SafeName turns an ID or asset key into one path component: no "/", NUL or
// control characters, valid UTF-8, no leading dot (so no ".", ".." or
// hidden files), non-empty, at most MaxNameLen bytes (long names are cut
// and get a hash suffix of the full ID, so they stay distinct).
func SafeName(raw string) string { return safeNameExt(raw, "") }

// safeNameExt is SafeName for a name that will carry ext, keeping ext whole
// when the name must be shortened.
func safeNameExt(raw, ext string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(raw, "\uFFFD") {
		switch {
		case r == '/' || r == '\\' || r < 0x20 || r == 0x7f:
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	s := b.String()
	if s == "" {
		s = "_"
	}
	if s[0] == '.' {
		s = "_" + s[1:]
	}
	if len(s)+len(ext) > MaxNameLen {
		suffix := hashSuffix(raw)
		s = truncateUTF8(s, MaxNameLen-len(ext)-len(suffix)) + suffix
	}
	return s + ext
}

func truncateUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// AssetFileName is the file name of an asset: its key made safe, plus an
// extension from the href path, else from the media type, unless the key
// already ends with it.
func AssetFileName(key, href, mediaType string) string {
	ext := extFromHref(href)
	if ext == "" {
		ext = extFromMediaType(mediaType)
	}
	if ext != "" && strings.HasSuffix(strings.ToLower(key), strings.ToLower(ext)) {
		ext = ""
	}
	return safeNameExt(key, ext)
}

func extFromHref(href string) string {
	if i := strings.IndexAny(href, "?#"); i >= 0 {
		href = href[:i]
	}
	ext := path.Ext(path.Base(href))
	if len(ext) < 2 || len(ext) > 10 {
		return ""
	}
	for _, r := range ext[1:] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return ""
		}
	}
	return ext
}

var mediaExts = map[string]string{
	"image/tiff":                           ".tif",
	"image/png":                            ".png",
	"image/jpeg":                           ".jpg",
	"image/jp2":                            ".jp2",
	"image/webp":                           ".webp",
	"application/json":                     ".json",
	"application/geo+json":                 ".geojson",
	"application/xml":                      ".xml",
	"text/xml":                             ".xml",
	"text/html":                            ".html",
	"text/plain":                           ".txt",
	"text/csv":                             ".csv",
	"application/pdf":                      ".pdf",
	"application/x-hdf5":                   ".h5",
	"application/x-hdf":                    ".hdf",
	"application/x-netcdf":                 ".nc",
	"application/netcdf":                   ".nc",
	"application/vnd.laszip":               ".laz",
	"application/vnd.apache.parquet":       ".parquet",
	"application/x-parquet":                ".parquet",
	"application/zip":                      ".zip",
	"application/vnd+zarr":                 ".zarr",
	"application/x-zarr":                   ".zarr",
	"application/octet-stream":             "",
	"application/vnd.google-earth.kml+xml": ".kml",
}

func extFromMediaType(mt string) string {
	base, _, err := mime.ParseMediaType(mt)
	if err != nil {
		return ""
	}
	return mediaExts[strings.ToLower(base)]
}

// Named is one entry to be named in a directory: the raw ID it comes from
// and its preferred safe name.
type Named struct {
	Raw  string
	Name string
}

// Disambiguate resolves collisions among names in one directory, in place,
// deterministically: whatever order the catalog served them in, the same
// set of raw IDs gets the same names. Among entries wanting one name, the
// one whose raw ID equals the name keeps it (else the smallest raw ID);
// the others get a hash suffix of their raw ID. Names in reserved are
// never given out.
func Disambiguate(entries []Named, reserved ...string) {
	taken := make(map[string]bool, len(entries)+len(reserved))
	for _, r := range reserved {
		taken[r] = true
	}
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ea, eb := entries[order[a]], entries[order[b]]
		// Exact (unchanged) names first, then by raw ID.
		xa, xb := ea.Raw == ea.Name, eb.Raw == eb.Name
		if xa != xb {
			return xa
		}
		return ea.Raw < eb.Raw
	})
	for _, i := range order {
		e := &entries[i]
		name := e.Name
		for n := 0; taken[name]; n++ {
			name = withSuffix(e.Name, hashSuffix(e.Raw+strings.Repeat("\x00", n)))
		}
		taken[name] = true
		e.Name = name
	}
}

// withSuffix inserts suffix before the extension, keeping within MaxNameLen.
func withSuffix(name, suffix string) string {
	ext := path.Ext(name)
	if len(ext) > 11 || ext == name {
		ext = ""
	}
	stem := strings.TrimSuffix(name, ext)
	stem = truncateUTF8(stem, MaxNameLen-len(ext)-len(suffix))
	return stem + suffix + ext
}

func sortAssets(a []Asset) { sort.Slice(a, func(i, j int) bool { return a[i].Key < a[j].Key }) }
