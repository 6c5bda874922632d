package csi

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi/mounter"
	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi/volumecontext"
)

// Node is the CSI Node service.
type Node struct {
	csipb.UnimplementedNodeServer
	NodeID  string
	Mounter mounter.Mounter
	// AllowedFlags are the mount flags a volume's attributes may set.
	AllowedFlags []string
	Log          *slog.Logger

	mu    sync.Mutex             // guards vols and locks
	vols  map[string]*published  // by target path
	locks map[string]*targetLock // by target path
}

var _ csipb.NodeServer = (*Node)(nil)

// published is one target's mount.
type published struct {
	volumeID     string
	configDigest string
	secretDigest string // guarded by the target's lock
	m            mounter.Mount
}

type targetLock struct {
	mu   sync.Mutex
	refs int // guarded by Node.mu
}

// lock serialises the calls on one target path; calls on others run on.
func (n *Node) lock(target string) (unlock func()) {
	n.mu.Lock()
	if n.locks == nil {
		n.locks = map[string]*targetLock{}
	}
	l := n.locks[target]
	if l == nil {
		l = &targetLock{}
		n.locks[target] = l
	}
	l.refs++
	n.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		n.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(n.locks, target)
		}
		n.mu.Unlock()
	}
}

func (n *Node) get(target string) *published {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.vols[target]
}

func (n *Node) set(target string, p *published) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.vols == nil {
		n.vols = map[string]*published{}
	}
	if p == nil {
		delete(n.vols, target)
	} else {
		n.vols[target] = p
	}
}

// NodePublishVolume mounts the volume at the target path, read-only.
// Idempotent: a republish of a live mount only rotates its credentials
// when the Secret changed; a republish that finds the mount dead mounts
// afresh over it.
func (n *Node) NodePublishVolume(ctx context.Context, req *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID missing")
	case target == "":
		return nil, status.Error(codes.InvalidArgument, "target path missing")
	case req.GetVolumeCapability() == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability missing")
	case req.GetVolumeCapability().GetBlock() != nil:
		return nil, status.Error(codes.InvalidArgument, "block access is not supported: prescientfs volumes are file systems")
	case req.GetVolumeCapability().GetMount() == nil:
		return nil, status.Error(codes.InvalidArgument, "volume capability has no access type")
	case !filepath.IsAbs(target):
		return nil, status.Errorf(codes.InvalidArgument, "target path %q is not absolute", target)
	}
	target = filepath.Clean(target)
	v, err := volumecontext.Parse(req.GetVolumeContext(), req.GetSecrets(), n.AllowedFlags)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	log := n.Log.With("volume", id, "target", target)
	if v.Pod != "" {
		log = log.With("pod", v.Pod)
	}
	unlock := n.lock(target)
	defer unlock()

	if p := n.get(target); p != nil {
		if p.volumeID != id {
			return nil, status.Errorf(codes.AlreadyExists, "target %s already has volume %s", target, p.volumeID)
		}
		if p.configDigest != v.ConfigDigest {
			return nil, status.Errorf(codes.AlreadyExists, "volume %s is already published at %s with other attributes", id, target)
		}
		if alive(p.m, target) {
			if p.secretDigest != v.SecretDigest {
				if err := p.m.UpdateSecrets(ctx, v); err != nil {
					log.Warn("rotating credentials failed; the mount keeps the old ones", "err", err)
					return nil, toStatus(err)
				}
				p.secretDigest = v.SecretDigest
				log.Info("credentials rotated")
			}
			return &csipb.NodePublishVolumeResponse{}, nil
		}
		log.Warn("the mount is dead (its FUSE server stopped); mounting afresh over it")
		p.m.Close()
		n.set(target, nil)
	}
	if err := mounter.Prepare(target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if mounter.Dead(target) {
		log.Info("target is a dead mount; mounting over it")
	}
	m, err := n.Mounter.Mount(ctx, id, target, v)
	if err != nil {
		return nil, toStatus(err)
	}
	n.set(target, &published{volumeID: id, configDigest: v.ConfigDigest, secretDigest: v.SecretDigest, m: m})
	log.Info("published", "ephemeral", v.Ephemeral)
	return &csipb.NodePublishVolumeResponse{}, nil
}

// alive reports whether m still serves at target.
func alive(m mounter.Mount, target string) bool {
	select {
	case <-m.Done():
		return false
	default:
	}
	return !mounter.Dead(target)
}

// NodeUnpublishVolume unmounts every layer at the target (live or dead)
// and removes it. Idempotent.
func (n *Node) NodeUnpublishVolume(ctx context.Context, req *csipb.NodeUnpublishVolumeRequest) (*csipb.NodeUnpublishVolumeResponse, error) {
	id, target := req.GetVolumeId(), req.GetTargetPath()
	switch {
	case id == "":
		return nil, status.Error(codes.InvalidArgument, "volume ID missing")
	case target == "":
		return nil, status.Error(codes.InvalidArgument, "target path missing")
	}
	target = filepath.Clean(target)
	unlock := n.lock(target)
	defer unlock()
	err := mounter.UnmountAll(target)
	if p := n.get(target); p != nil {
		p.m.Close()
		n.set(target, nil)
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	n.Mounter.Forget(target)
	n.Log.Info("unpublished", "volume", id, "target", target)
	return &csipb.NodeUnpublishVolumeResponse{}, nil
}

// NodeGetCapabilities: no staging, no stats, no expansion.
func (n *Node) NodeGetCapabilities(context.Context, *csipb.NodeGetCapabilitiesRequest) (*csipb.NodeGetCapabilitiesResponse, error) {
	return &csipb.NodeGetCapabilitiesResponse{}, nil
}

// NodeGetInfo names the node; volumes are not limited per node.
func (n *Node) NodeGetInfo(context.Context, *csipb.NodeGetInfoRequest) (*csipb.NodeGetInfoResponse, error) {
	return &csipb.NodeGetInfoResponse{NodeId: n.NodeID}, nil
}

// toStatus maps a mount error: an invalid volume is InvalidArgument, a
// status error is kept, anything else is Internal.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, volumecontext.ErrInvalid) {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
