package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// The mount helper calling convention, for /etc/fstab and
// `mount -t fuse.prescientfs`:
//
//	prescientfs SOURCE MOUNTPOINT [-o opt,opt=value] [-n] [-s] [-v] [-f] [-t type]
//
// mount(8) runs /sbin/mount.fuse.prescientfs when it exists, else the FUSE
// helper mount.fuse3, which execs `prescientfs SOURCE MOUNTPOINT -o OPTS`
// through the shell (so prescientfs must be on mount's PATH). Both land
// here: fstabArgs rewrites the arguments into `prescientfs mount ...`, so
// the mount is made (and daemonized) by the same code as from a shell.
//
// SOURCE is a STAC URL (--stac-url), a saved profile's name
// (--auth-profile), or "prescientfs" / "none" for the settings' defaults.
// Each -o option is a mount flag with underscores for dashes
// (metadata_ttl=5m, layout=date, allow_other, env_file=/etc/...). The
// options meant for mount(8), systemd or the kernel are accepted and
// ignored: the mount is always read-only, nodev and nosuid.

// helperNames are the names under which prescientfs is always a mount
// helper (symlinks in /sbin).
var helperNames = []string{"mount.prescientfs", "mount.fuse.prescientfs"}

// ignoredOptions are fstab options that are not ours: mount(8)'s own,
// systemd's, the kernel's generic mount flags, and FUSE flags that the
// mount sets itself.
var ignoredOptions = []string{
	"_netdev", "nofail", "auto", "noauto", "user", "nouser", "users", "owner", "group", "defaults",
	"rw", "ro", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "async", "sync", "dirsync",
	"atime", "noatime", "relatime", "norelatime", "strictatime", "nodiratime", "diratime", "lazytime",
	"nolazytime", "silent", "loud", "default_permissions",
}

// isIgnoredOption reports whether an -o option is one mount(8), systemd or
// the kernel consume (x-systemd.*, x-gvfs-*, comment=...).
func isIgnoredOption(opt string) bool {
	key, _, _ := strings.Cut(opt, "=")
	return slices.Contains(ignoredOptions, key) || strings.HasPrefix(key, "x-") || key == "comment"
}

// fstabArgs recognises the mount helper convention in args (os.Args) and
// returns the equivalent `prescientfs mount` arguments. ok is false when
// args are an ordinary command line. fake is true for mount -f (do
// everything but mount).
func fstabArgs(args []string, commands []*cli.Command, flags []cli.Flag) (out []string, ok, fake bool, err error) {
	if len(args) < 2 {
		return nil, false, false, nil
	}
	helper := slices.Contains(helperNames, filepath.Base(args[0]))
	if !helper && (len(args) < 3 || strings.HasPrefix(args[1], "-") || isCommand(args[1], commands)) {
		return nil, false, false, nil
	}
	var pos, opts []string
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" || a == "-t" || a == "-N":
			if i+1 >= len(args) {
				return nil, true, false, fmt.Errorf("%s needs a value", a)
			}
			i++
			switch a {
			case "-o":
				opts = append(opts, args[i])
			case "-N":
				return nil, true, false, fmt.Errorf("-N (mount namespaces) is not supported")
			}
		case strings.HasPrefix(a, "-o"):
			opts = append(opts, a[2:])
		case a == "-f":
			fake = true
		case a == "-n" || a == "-s" || a == "-v" || strings.HasPrefix(a, "-t"):
			// no mtab to write; sloppy and verbose change nothing here
		case strings.HasPrefix(a, "-") && a != "-":
			return nil, true, false, fmt.Errorf("unknown mount helper option %s (usage: prescientfs SOURCE MOUNTPOINT -o opt,opt=value)", a)
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return nil, true, false, fmt.Errorf("usage: prescientfs SOURCE MOUNTPOINT [-o opt,opt=value] (SOURCE: a saved profile or a STAC URL)")
	}
	source, dir := pos[0], pos[1]
	out = []string{args[0], "mount"}
	switch {
	case strings.Contains(source, "://"):
		out = append(out, "--stac-url="+source)
	case source == "" || source == "prescientfs" || source == "none":
	default:
		out = append(out, "--auth-profile="+source)
	}
	for _, o := range opts {
		for _, opt := range strings.Split(o, ",") {
			if opt == "" || isIgnoredOption(opt) {
				continue
			}
			flag, err := optionFlag(opt, flags)
			if err != nil {
				return nil, true, false, err
			}
			out = append(out, flag)
		}
	}
	return append(out, "--", dir), true, fake, nil
}

// optionFlag turns one -o option (metadata_ttl=5m, allow_other) into the
// mount flag it names (--metadata-ttl=5m, --allow-other).
func optionFlag(opt string, flags []cli.Flag) (string, error) {
	key, value, hasValue := strings.Cut(opt, "=")
	name := strings.ReplaceAll(key, "_", "-")
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) || len(name) == 1 {
			continue
		}
		_, isBool := f.(*cli.BoolFlag)
		switch {
		case hasValue:
			return "--" + name + "=" + value, nil
		case isBool:
			return "--" + name, nil
		default:
			return "", fmt.Errorf("mount option %s needs a value (%s=...)", key, key)
		}
	}
	return "", fmt.Errorf("unknown mount option %q: the options are the flags of `prescientfs mount --help` with underscores (e.g. metadata_ttl=5m, layout=date, allow_other)", key)
}

func isCommand(name string, commands []*cli.Command) bool {
	if name == "help" || name == "h" {
		return true
	}
	for _, c := range commands {
		if slices.Contains(c.Names(), name) {
			return true
		}
	}
	return false
}
