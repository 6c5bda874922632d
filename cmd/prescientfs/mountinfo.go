package main

import (
	"strconv"
	"strings"
)

// findMount parses mountinfo text and returns the fs type of the last
// mount at dir (the one visible).
func findMount(mountinfo, dir string) (fstype string, ok bool) {
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, found := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if !found || len(f) < 5 {
			continue
		}
		if unescapeMountPath(f[4]) != dir {
			continue
		}
		if pf := strings.Fields(post); len(pf) > 0 {
			fstype, ok = pf[0], true
		}
	}
	return fstype, ok
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
