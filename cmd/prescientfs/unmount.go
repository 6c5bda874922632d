package main

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/prescient/prescientfs/fs/mountinfo"
)

func unmountCommand() *cli.Command {
	return &cli.Command{
		Name:      "unmount",
		Aliases:   []string{"umount"},
		Usage:     "unmount a prescientfs mount, live or dead",
		ArgsUsage: "MOUNTPOINT",
		Description: "Unmounts MOUNTPOINT. Works for a live mount (the mount process then exits) and for a\n" +
			"dead one whose process was killed (\"transport endpoint is not connected\").",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "lazy", Aliases: []string{"z"}, Usage: "detach now even if files are open; the kernel finishes when they close"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return cli.Exit("usage: prescientfs unmount MOUNTPOINT", 2)
			}
			return unmount(c.Args().First(), c.Bool("lazy"))
		},
	}
}

// unmount detaches the FUSE mount at dir: with umount(2) when we may (root),
// else with fusermount3, which works for users and for dead mounts.
func unmount(dir string, lazy bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	fstype, ok := mountType(abs)
	if !ok {
		return fmt.Errorf("%s is not mounted", abs)
	}
	if fstype != "fuse" && fstype != "fuse.prescientfs" {
		return fmt.Errorf("%s is a %s mount, not prescientfs", abs, fstype)
	}
	flags := 0
	if lazy {
		flags = syscall.MNT_DETACH
	}
	err = syscall.Unmount(abs, flags)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("%s is busy: close the files and shells using it (see `fuser -vm %s`), or use --lazy", abs, abs)
	}
	fm, lookErr := exec.LookPath("fusermount3")
	if lookErr != nil {
		if fm, lookErr = exec.LookPath("fusermount"); lookErr != nil {
			return fmt.Errorf("unmount %s: %v (and fusermount3 is not installed)", abs, err)
		}
	}
	args := []string{"-u", abs}
	if lazy {
		args = []string{"-u", "-z", abs}
	}
	out, ferr := exec.Command(fm, args...).CombinedOutput() // #nosec G204 -- fusermount from PATH, the mountpoint one argument; no shell
	if ferr != nil {
		return fmt.Errorf("unmount %s: %s", abs, string(out))
	}
	return nil
}

// mountType finds dir in /proc/self/mountinfo and returns its fs type.
func mountType(dir string) (string, bool) {
	m, ok := mountinfo.Find(dir)
	return m.FSType, ok
}
