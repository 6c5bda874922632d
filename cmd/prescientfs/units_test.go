package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// The example units in deploy/systemd run a mount the way notify.go
// expects (Type=notify, --foreground), with flags that exist.
func TestSystemdUnits(t *testing.T) {
	units, _ := filepath.Glob("../../deploy/systemd/*.service")
	if len(units) < 2 {
		t.Fatalf("example units missing: %v", units)
	}
	for _, u := range units {
		t.Run(filepath.Base(u), func(t *testing.T) {
			b, err := os.ReadFile(u)
			if err != nil {
				t.Fatal(err)
			}
			text := string(b)
			if !strings.Contains(text, "\nType=notify\n") {
				t.Error("not Type=notify")
			}
			var start []string
			for _, line := range strings.Split(text, "\n") {
				if cmd, ok := strings.CutPrefix(line, "ExecStart="); ok {
					start = strings.Fields(cmd)
				}
			}
			if len(start) < 3 || filepath.Base(start[0]) != "prescientfs" || start[1] != "mount" {
				t.Fatalf("ExecStart is not a prescientfs mount: %q", start)
			}
			app := newApp()
			ran := false
			for _, c := range app.Commands {
				if c.Name == "mount" {
					c.Action = func(c *cli.Context) error {
						ran = true
						if !c.Bool("foreground") {
							t.Error("ExecStart without --foreground: the process systemd watches would exit")
						}
						if c.NArg() != 1 {
							t.Errorf("ExecStart has %d mountpoints", c.NArg())
						}
						return nil
					}
				}
			}
			if err := app.Run(start); err != nil || !ran {
				t.Fatalf("ExecStart does not parse: %v", err)
			}
		})
	}
}
