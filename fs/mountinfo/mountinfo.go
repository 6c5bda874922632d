// Package mountinfo reads the kernel's table of mounts
// (/proc/self/mountinfo): the CLI checks mountpoints and unmounts with it,
// the tests and the benchmark find and sweep their mounts.
package mountinfo

import (
	"os"
	"strconv"
	"strings"
)

// Mount is one line of mountinfo.
type Mount struct {
	Dir     string   // the mount point, unescaped
	FSType  string   // e.g. "fuse.prescientfs"
	Options []string // per-mount options, then the superblock's
}

// Parse parses mountinfo text; malformed lines are skipped.
func Parse(text string) []Mount {
	var out []Mount
	for _, line := range strings.Split(text, "\n") {
		pre, post, found := strings.Cut(line, " - ")
		f, pf := strings.Fields(pre), strings.Fields(post)
		if !found || len(f) < 6 || len(pf) < 1 {
			continue
		}
		m := Mount{Dir: unescape(f[4]), FSType: pf[0], Options: strings.Split(f[5], ",")}
		if len(pf) >= 3 {
			m.Options = append(m.Options, strings.Split(pf[2], ",")...)
		}
		out = append(out, m)
	}
	return out
}

// Read returns this process's mounts.
func Read() ([]Mount, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return Parse(string(data)), nil
}

// Find returns the mount at dir that is visible (the last one), if any.
func Find(dir string) (Mount, bool) {
	ms, _ := Read()
	return lookup(ms, dir)
}

func lookup(ms []Mount, dir string) (Mount, bool) {
	var m Mount
	found := false
	for _, x := range ms {
		if x.Dir == dir {
			m, found = x, true
		}
	}
	return m, found
}

// unescape undoes mountinfo's octal escapes (\040 for space).
func unescape(s string) string {
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
