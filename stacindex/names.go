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
	s := sanitize(raw)
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

// Entry names of collections and items are decided from the ID alone, so a
// lookup by name needs no listing and every mount gives the same names:
//
//   - an ID that is a safe name (SafeName(id) == id), is not reserved in
//     its directory and does not look like a hashed name is its own name;
//   - any other ID is SafeName(id), cut to fit, plus "~" and 16 lowercase
//     hex digits of the SHA-256 of the ID (a hashed name).
//
// A hashed name cannot be turned back into its ID: it resolves through
// the listings that produced it (kept in memory and in the index).
// Distinct IDs get distinct names (a plain name never looks hashed, and
// two hashed names share a suffix only on a 64-bit hash collision), so a
// directory never needs disambiguation.
const hashedSuffixLen = 1 + 16

// ItemName is the directory name of an item in its collection directory:
// collection.json and year names (four digits, the date layout's) are
// reserved there.
func ItemName(id string) string { return entryName(id, reservedInCollection) }

// CollectionName is the directory name of a collection at the root.
func CollectionName(id string) string { return entryName(id, func(string) bool { return false }) }

func entryName(id string, reserved func(string) bool) string {
	if s := SafeName(id); s == id && !reserved(id) && !IsHashedName(id) {
		return id
	}
	s := sanitize(id)
	sum := sha256.Sum256([]byte(id))
	return truncateUTF8(s, MaxNameLen-hashedSuffixLen) + "~" + hex.EncodeToString(sum[:8])
}

// IsHashedName reports whether name has the form of a hashed name: it
// ends in "~" and 16 lowercase hex digits.
func IsHashedName(name string) bool {
	if len(name) < hashedSuffixLen || name[len(name)-hashedSuffixLen] != '~' {
		return false
	}
	for _, c := range name[len(name)-16:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// reservedInCollection: the names a collection directory gives to other
// things than items.
func reservedInCollection(name string) bool {
	return name == CollectionJSON || IsYearName(name)
}

// IsYearName: four ASCII digits, a year directory of the date layout.
func IsYearName(name string) bool {
	if len(name) != 4 {
		return false
	}
	for i := 0; i < 4; i++ {
		if name[i] < '0' || name[i] > '9' {
			return false
		}
	}
	return true
}

// sanitize is SafeName without the length bound.
func sanitize(raw string) string {
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
	return s
}
