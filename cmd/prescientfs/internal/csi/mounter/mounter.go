// Package mounter is the node plugin's side of a target path: what a
// volume's mount must offer (Mounter, Mount), and the checks and
// unmounting that do not depend on how the file system is served.
//
// In this version every volume's FUSE server runs inside the plugin
// process (the Mounter the prescientfs command provides). A mounter that
// starts one process per volume and hands it the /dev/fuse descriptor
// would implement the same interfaces. That mounter must mount with
// DirectMount off (or mount itself and pass the fd): go-fuse tries a
// direct mount(2) at the mountpoint before it recognises a /dev/fd/N
// mountpoint as an already opened /dev/fuse.
package mounter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	mountutils "k8s.io/mount-utils"

	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi/volumecontext"
)

// Mounter mounts volumes.
type Mounter interface {
	// Mount mounts v read-only at target (an existing directory, or a
	// dead mount to cover) and returns once the mount is live.
	Mount(ctx context.Context, volumeID, target string, v *volumecontext.Volume) (Mount, error)
	// Forget removes what was kept on disk for target (its index), once
	// the target is unpublished for good.
	Forget(target string)
}

// Mount is one live volume.
type Mount interface {
	// UpdateSecrets gives the live mount the credentials of v (a
	// republish with a rotated Secret); on error the old ones stay.
	UpdateSecrets(ctx context.Context, v *volumecontext.Volume) error
	// Done is closed once the FUSE server has stopped serving.
	Done() <-chan struct{}
	// Close stops serving (the kernel's mount is left to UnmountAll, or
	// is covered by a fresh mount) and releases the mount's resources;
	// safe to call more than once and after the server died.
	Close()
}

// Layers counts the mounts stacked on target.
func Layers(target string) (int, error) {
	mis, err := mountutils.ParseMountInfo("/proc/self/mountinfo")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, mi := range mis {
		if mi.MountPoint == target {
			n++
		}
	}
	return n, nil
}

// Dead reports whether target is a mount whose server is gone (ENOTCONN,
// ECONNABORTED, …): it must be covered or unmounted. It asks statfs,
// which always reaches the server: a stat may be answered from the
// kernel's attribute cache for minutes after the server died.
func Dead(target string) bool {
	var st unix.Statfs_t
	err := unix.Statfs(target, &st)
	return err != nil && mountutils.IsCorruptedMnt(err)
}

// Prepare makes target ready for a mount: it creates the directory, or
// leaves a dead mount in place to be mounted over.
func Prepare(target string) error {
	if Dead(target) {
		return nil
	}
	if err := os.MkdirAll(target, 0o750); err != nil {
		return fmt.Errorf("create target %s: %w", target, err)
	}
	return nil
}

// UnmountAll unmounts every layer at target, live or dead, and removes
// the directory. A target that does not exist is fine.
func UnmountAll(target string) error {
	for i := 0; ; i++ {
		n, err := Layers(target)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if i > 64 {
			return fmt.Errorf("unmount %s: %d layers left after %d attempts", target, n, i)
		}
		err = syscall.Unmount(target, 0)
		if errors.Is(err, syscall.EBUSY) {
			// kubelet unpublishes after the pod's containers are gone;
			// what still holds it is detached rather than kept forever.
			err = syscall.Unmount(target, syscall.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
		if errors.Is(err, syscall.EINVAL) {
			// Listed but not a mount point here: mountinfo changed under us.
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove target %s: %w", target, err)
	}
	return nil
}
