package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFstabArgs(t *testing.T) {
	cmds := newApp().Commands
	tests := []struct {
		name string
		args []string
		want []string // nil: not the helper convention
		fake bool
		err  string
	}{
		{name: "ordinary command", args: []string{"prescientfs", "mount", "--foreground", "/mnt"}},
		{name: "help", args: []string{"prescientfs", "help", "mount"}},
		{name: "flag first", args: []string{"prescientfs", "--help"}},
		{name: "one unknown word", args: []string{"prescientfs", "mnt"}},
		{
			name: "profile and options",
			args: []string{"prescientfs", "work", "/mnt/p", "-o", "rw,nodev,nosuid,_netdev,nofail,noauto,user,x-systemd.automount,x-systemd.idle-timeout=60,metadata_ttl=5m,layout=date,allow_other"},
			want: []string{"prescientfs", "mount", "--auth-profile=work", "--metadata-ttl=5m", "--layout=date", "--allow-other", "--", "/mnt/p"},
		},
		{
			name: "URL source, options glued and split, mount(8) flags",
			args: []string{"prescientfs", "https://example.com/stac", "/mnt/p", "-n", "-s", "-v", "-oro,dev,suid", "-o", "no_sign_request,page_size=100", "-t", "fuse.prescientfs"},
			want: []string{"prescientfs", "mount", "--stac-url=https://example.com/stac", "--no-sign-request", "--page-size=100", "--", "/mnt/p"},
		},
		{
			name: "default settings, no options",
			args: []string{"prescientfs", "prescientfs", "/mnt/p"},
			want: []string{"prescientfs", "mount", "--", "/mnt/p"},
		},
		{
			name: "helper symlink with a command's name as source",
			args: []string{"/sbin/mount.fuse.prescientfs", "stats", "/mnt/p", "-o", "env_file=/etc/prescientfs/config.env,allow_other=true"},
			want: []string{"/sbin/mount.fuse.prescientfs", "mount", "--auth-profile=stats", "--env-file=/etc/prescientfs/config.env", "--allow-other=true", "--", "/mnt/p"},
		},
		{name: "fake", args: []string{"mount.prescientfs", "none", "/mnt/p", "-f"}, want: []string{"mount.prescientfs", "mount", "--", "/mnt/p"}, fake: true},
		{name: "unknown option", args: []string{"prescientfs", "work", "/mnt/p", "-o", "colour=blue"}, err: `unknown mount option "colour"`},
		{name: "value missing", args: []string{"prescientfs", "work", "/mnt/p", "-o", "layout"}, err: "needs a value"},
		{name: "-o without value", args: []string{"prescientfs", "work", "/mnt/p", "-o"}, err: "needs a value"},
		{name: "three positionals", args: []string{"prescientfs", "a", "b", "c"}, err: "usage"},
		{name: "unknown helper flag", args: []string{"prescientfs", "a", "/mnt", "-x"}, err: "unknown mount helper option"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, fake, err := fstabArgs(tc.args, cmds, mountFlags())
			if tc.want == nil && tc.err == "" {
				if ok {
					t.Fatalf("taken for the helper convention: %q", got)
				}
				return
			}
			if !ok {
				t.Fatal("not recognised as the helper convention")
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) || fake != tc.fake {
				t.Fatalf("got %q (fake %v)\nwant %q (fake %v)", got, fake, tc.want, tc.fake)
			}
		})
	}
}

// The rewritten arguments parse as a mount command line.
func TestFstabArgsParse(t *testing.T) {
	args, _, _, err := fstabArgs([]string{"prescientfs", "https://example.com/stac", "/nonexistent/p", "-o", "metadata_ttl=7m,layout=flat,allow_other,max_listing=5"}, newApp().Commands, mountFlags())
	if err != nil {
		t.Fatal(err)
	}
	app := newApp()
	for _, c := range app.Commands {
		if c.Name == "mount" {
			c.Action = func(c *cli.Context) error {
				if c.Duration("metadata-ttl").Minutes() != 7 || c.String("layout") != "flat" || !c.Bool("allow-other") ||
					c.Int("max-listing") != 5 || c.String("stac-url") != "https://example.com/stac" || c.Args().First() != "/nonexistent/p" {
					t.Errorf("parsed wrongly: %v", c.FlagNames())
				}
				return nil
			}
		}
	}
	if err := app.Run(args); err != nil {
		t.Fatal(err)
	}
}
