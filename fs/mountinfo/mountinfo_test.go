package mountinfo

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	const text = `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:39 / /mnt/my\040data rw,nosuid,nodev,relatime shared:2 - fuse.prescientfs prescientfs ro,user_id=0,group_id=0
garbage line
41 22 0:40 / /mnt/my\040data ro,relatime - fuse.other other rw
`
	ms := Parse(text)
	if len(ms) != 3 {
		t.Fatalf("parsed %d mounts, want 3: %+v", len(ms), ms)
	}
	m := ms[1]
	if m.Dir != "/mnt/my data" || m.FSType != "fuse.prescientfs" {
		t.Errorf("mount %+v, want /mnt/my data, fuse.prescientfs", m)
	}
	if got, _ := lookup(ms, "/mnt/my data"); got.FSType != "fuse.other" {
		t.Errorf("lookup found %+v, want the last mount there (fuse.other)", got)
	}
	for _, o := range []string{"nosuid", "ro", "user_id=0"} {
		if !slices.Contains(m.Options, o) {
			t.Errorf("options %v lack %q", m.Options, o)
		}
	}
}

func TestFindRoot(t *testing.T) {
	if m, ok := Find("/"); !ok || m.FSType == "" {
		t.Errorf("Find(/) = %+v, %v; want the root mount", m, ok)
	}
	if _, ok := Find("/no/such/mount/point"); ok {
		t.Error("found a mount that does not exist")
	}
}
