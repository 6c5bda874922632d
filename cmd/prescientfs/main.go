// Command prescientfs mounts a STAC catalog as a read-only file system:
// collections and items become directories, assets become files read with
// ranged S3 (or HTTP) GETs.
package main

import (
	"fmt"
	"os"
	"os/user"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	app := newApp()
	// fstab and `mount -t fuse.prescientfs` (see fstab.go).
	if args, ok, fake, err := fstabArgs(os.Args, app.Commands, mountFlags()); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, "prescientfs:", err)
			os.Exit(1)
		}
		if fake {
			os.Exit(0)
		}
		os.Args = args
		// mount(8) runs its helpers without HOME; the session store and
		// the caches live under the user's home directory.
		if os.Getenv("HOME") == "" {
			if u, err := user.Current(); err == nil {
				_ = os.Setenv("HOME", u.HomeDir) // fails only for a name or value with NUL
			}
		}
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "prescientfs:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:                 "prescientfs",
		Usage:                "mount a STAC catalog (Prescient or any STAC API) as read-only files",
		Version:              fullVersion(),
		EnableBashCompletion: true,
		HideVersion:          true,
		Commands: []*cli.Command{
			mountCommand(),
			unmountCommand(),
			statsCommand(),
			versionCommand(),
			authCommand(), configCommand(),
			csiCommand(),
		},
	}
}

func fullVersion() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		v += " (" + bi.GoVersion + ")"
	}
	return v
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *cli.Context) error {
			fmt.Println("prescientfs", fullVersion())
			return nil
		},
	}
}
