package main

import (
	"errors"
	"slices"
	"testing"

	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi/volumecontext"
)

// TestCSIFlagsClassified: every mount flag is either settable by a CSI
// volume or refused, by decision; a new flag must be put in one list.
func TestCSIFlagsClassified(t *testing.T) {
	for _, f := range mountFlags() {
		n := f.Names()[0]
		in, out := slices.Contains(csiVolumeFlags, n), slices.Contains(csiDeniedFlags, n)
		if in == out {
			t.Errorf("mount flag --%s: put it in csiVolumeFlags or csiDeniedFlags (cmd/prescientfs/csi.go): may a pod author set it in a privileged plugin?", n)
		}
	}
	for _, n := range csiVolumeFlags {
		if !slices.Contains(csiAllowedFlags(), n) {
			t.Errorf("csiVolumeFlags names %q, which is no mount flag", n)
		}
	}
}

func TestCSIVolumeFlagsRefused(t *testing.T) {
	for name, flags := range map[string]map[string]string{
		"search from a file": {"search": "@/etc/shadow"},
		"bad size":           {"memory-limit": "lots"},
		"bad duration":       {"metadata-ttl": "soon"},
		"bad layout":         {"layout": "spiral"},
		"zero io-timeout":    {"io-timeout": "0s"},
	} {
		c, err := volumeFlags(flags, t.TempDir())
		if err == nil {
			_, err = checkVolumeFlags(c)
		}
		if !errors.Is(err, volumecontext.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	t.Setenv("PRESCIENT_MEMORY_LIMIT", "999GiB")
	c, err := volumeFlags(map[string]string{"cache-size": "16MiB"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if budget, err := checkVolumeFlags(c); err != nil || budget != 128<<20+16<<20 {
		t.Fatalf("budget %d, %v: want the default memory-limit (the plugin's environment ignored) + 16MiB", budget, err)
	}
}
