package csi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi/mounter"
	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi/volumecontext"
)

// fakeMounter records mounts without touching the kernel.
type fakeMounter struct {
	mounts    []*fakeMount
	fail      error
	forgotten int
}

func (f *fakeMounter) Mount(_ context.Context, _, _ string, v *volumecontext.Volume) (mounter.Mount, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	m := &fakeMount{done: make(chan struct{}), secret: v.SecretDigest}
	f.mounts = append(f.mounts, m)
	return m, nil
}

func (f *fakeMounter) Forget(string) { f.forgotten++ }

type fakeMount struct {
	done      chan struct{}
	secret    string
	rotations int
	rotateErr error
	closed    bool
}

func (m *fakeMount) UpdateSecrets(_ context.Context, v *volumecontext.Volume) error {
	if m.rotateErr != nil {
		return m.rotateErr
	}
	m.secret = v.SecretDigest
	m.rotations++
	return nil
}
func (m *fakeMount) Done() <-chan struct{} { return m.done }
func (m *fakeMount) Close()                { m.closed = true }

func publishReq(id, target string, attrs, secrets map[string]string) *csipb.NodePublishVolumeRequest {
	return &csipb.NodePublishVolumeRequest{
		VolumeId: id, TargetPath: target, VolumeContext: attrs, Secrets: secrets,
		VolumeCapability: &csipb.VolumeCapability{AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}}},
	}
}

func code(err error) codes.Code { return status.Code(err) }

func TestNodePublishRepublishUnpublish(t *testing.T) {
	fm := &fakeMounter{}
	n := &Node{NodeID: "n", Mounter: fm, AllowedFlags: []string{"stac-url"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	target := filepath.Join(t.TempDir(), "pods", "p", "mount")
	attrs := map[string]string{"stac-url": "http://x/stac"}
	s1 := map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "one"}
	s2 := map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "two"}

	if _, err := n.NodePublishVolume(ctx, publishReq("v", target, attrs, s1)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		t.Fatalf("target not created: %v", err)
	}
	// Same request: nothing happens.
	if _, err := n.NodePublishVolume(ctx, publishReq("v", target, attrs, s1)); err != nil || len(fm.mounts) != 1 || fm.mounts[0].rotations != 0 {
		t.Fatalf("idempotent publish: %v, %d mounts", err, len(fm.mounts))
	}
	// Rotated Secret: the live mount's credentials change.
	if _, err := n.NodePublishVolume(ctx, publishReq("v", target, attrs, s2)); err != nil || fm.mounts[0].rotations != 1 {
		t.Fatalf("rotation: %v, %d rotations", err, fm.mounts[0].rotations)
	}
	// A failed rotation is reported and retried at the next republish.
	fm.mounts[0].rotateErr = errors.New("sign-in refused")
	if _, err := n.NodePublishVolume(ctx, publishReq("v", target, attrs, s1)); code(err) != codes.Internal {
		t.Fatalf("failed rotation: %v", err)
	}
	fm.mounts[0].rotateErr = nil
	if _, err := n.NodePublishVolume(ctx, publishReq("v", target, attrs, s1)); err != nil || fm.mounts[0].rotations != 2 {
		t.Fatalf("retried rotation: %v, %d rotations", err, fm.mounts[0].rotations)
	}
	// Another volume, or other attributes, at the same target.
	if _, err := n.NodePublishVolume(ctx, publishReq("w", target, attrs, s1)); code(err) != codes.AlreadyExists {
		t.Fatalf("other volume at the target: %v", err)
	}
	if _, err := n.NodePublishVolume(ctx, publishReq("v", target, map[string]string{"stac-url": "http://y/stac"}, s1)); code(err) != codes.AlreadyExists {
		t.Fatalf("other attributes at the target: %v", err)
	}
	// The server died: the republish mounts afresh.
	close(fm.mounts[0].done)
	if _, err := n.NodePublishVolume(ctx, publishReq("v", target, attrs, s1)); err != nil || len(fm.mounts) != 2 || !fm.mounts[0].closed {
		t.Fatalf("republish of a dead mount: %v, %d mounts", err, len(fm.mounts))
	}
	// Unpublish, twice.
	for range 2 {
		if _, err := n.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: "v", TargetPath: target}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) || !fm.mounts[1].closed || fm.forgotten == 0 {
		t.Fatalf("after unpublish: %v, closed %v, forgotten %d", err, fm.mounts[1].closed, fm.forgotten)
	}
}

func TestNodePublishRefuses(t *testing.T) {
	fm := &fakeMounter{}
	n := &Node{NodeID: "n", Mounter: fm, AllowedFlags: []string{"stac-url"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	target := filepath.Join(t.TempDir(), "mount")
	block := publishReq("v", target, nil, nil)
	block.VolumeCapability = &csipb.VolumeCapability{AccessType: &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}}}
	for name, req := range map[string]*csipb.NodePublishVolumeRequest{
		"unknown attribute": publishReq("v", target, map[string]string{"stac_url": "u"}, nil),
		"relative target":   publishReq("v", "mount", nil, nil),
		"block":             block,
	} {
		if _, err := n.NodePublishVolume(context.Background(), req); code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	fm.fail = volumecontext.ErrInvalid
	if _, err := n.NodePublishVolume(context.Background(), publishReq("v", target, nil, nil)); code(err) != codes.InvalidArgument {
		t.Errorf("mounter's invalid volume: %v, want InvalidArgument", err)
	}
	if len(fm.mounts) != 0 {
		t.Errorf("%d mounts made by refused requests", len(fm.mounts))
	}
}
