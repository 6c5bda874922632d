package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi/volumecontext"
)

// DefaultDriverName is the CSIDriver's name.
const DefaultDriverName = "csi.prescientfs.io"

// Listen opens a CSI endpoint: unix:///path/to.sock (a stale socket file
// is replaced) or a plain path.
func Listen(endpoint string) (net.Listener, error) {
	path := endpoint
	if u, err := url.Parse(endpoint); err == nil && u.Scheme != "" {
		if u.Scheme != "unix" {
			return nil, fmt.Errorf("endpoint %s: only unix:// sockets are supported", endpoint)
		}
		path = u.Path
		if path == "" {
			path = u.Opaque
		}
	}
	if path == "" {
		return nil, fmt.Errorf("endpoint %q names no socket", endpoint)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return net.Listen("unix", path)
}

// NewServer registers the Identity and Node services on a gRPC server
// that logs every call without secrets.
func NewServer(id *Identity, node *Node, log *slog.Logger) *grpc.Server {
	srv := grpc.NewServer(grpc.UnaryInterceptor(logCalls(log)))
	csipb.RegisterIdentityServer(srv, id)
	csipb.RegisterNodeServer(srv, node)
	return srv
}

// logCalls logs each call and its outcome. protosanitizer strips the
// fields the CSI spec marks secret (the Secret's contents); attribute
// values that are secrets put in the wrong place are masked too.
func logCalls(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		level := slog.LevelInfo
		switch info.FullMethod {
		case "/csi.v1.Identity/Probe", "/csi.v1.Identity/GetPluginInfo", "/csi.v1.Identity/GetPluginCapabilities",
			"/csi.v1.Node/NodeGetCapabilities", "/csi.v1.Node/NodeGetInfo":
			level = slog.LevelDebug
		}
		if log.Enabled(ctx, level) {
			log.Log(ctx, level, "call", "method", info.FullMethod, "request", protosanitizer.StripSecrets(maskAttributes(req)).String())
		}
		resp, err := handler(ctx, req)
		if err != nil {
			log.Warn("call failed", "method", info.FullMethod, "err", err, "took", time.Since(start))
		} else {
			log.Log(ctx, level, "call done", "method", info.FullMethod, "took", time.Since(start))
		}
		return resp, err
	}
}

func maskAttributes(req any) any {
	p, ok := req.(*csipb.NodePublishVolumeRequest)
	if !ok {
		return req
	}
	masked := false
	for k := range p.GetVolumeContext() {
		if volumecontext.IsSecretKey(k) {
			masked = true
		}
	}
	if !masked {
		return req
	}
	c := proto.Clone(p).(*csipb.NodePublishVolumeRequest)
	for k := range c.VolumeContext {
		if volumecontext.IsSecretKey(k) {
			c.VolumeContext[k] = "***stripped***"
		}
	}
	return c
}
