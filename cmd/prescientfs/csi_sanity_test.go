package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-test/v5/pkg/sanity"
	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	"google.golang.org/grpc"

	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi"
	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi/mounter"
)

// TestCSISanity runs csi-sanity against the node plugin on a unix socket,
// mounting for real (a catalog with no collections, public buckets). The
// plugin has no controller: its specs are skipped, and the node specs
// that need a volume get one from a fake controller on its own socket
// whose volumes carry the attributes a PV would.
func TestCSISanity(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting FUSE directly needs root")
	}
	if f := flag.Lookup("test.count"); f != nil && f.Value.String() != "1" {
		// Ginkgo fails a suite run under -count > 1.
		t.Skip("csi-sanity runs only with -count=1")
	}
	catalog := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/":
			io.WriteString(w, `{"type":"Catalog","id":"sanity","stac_version":"1.0.0","description":"","links":[]}`)
		case "/collections":
			io.WriteString(w, `{"collections":[],"links":[]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(catalog.Close)

	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	node := &csi.Node{NodeID: "sanity-node", Mounter: &csiMounter{stateDir: filepath.Join(dir, "state"), log: log}, AllowedFlags: csiAllowedFlags(), Log: log}
	sock := filepath.Join(dir, "csi.sock")
	id := &csi.Identity{Name: csi.DefaultDriverName, Version: "test"}
	serveGRPC(t, sock, csi.NewServer(id, node, log))
	// csi-sanity asks the identity of the controller's endpoint too.
	ctrlSock := filepath.Join(dir, "ctrl.sock")
	ctrl := grpc.NewServer()
	csipb.RegisterIdentityServer(ctrl, id)
	csipb.RegisterControllerServer(ctrl, &fakeController{attrs: map[string]string{"stac-url": catalog.URL, "no-sign-request": "true", "metadata-ttl": "1m"}})
	serveGRPC(t, ctrlSock, ctrl)

	cfg := sanity.NewTestConfig()
	cfg.Address = "unix://" + sock
	cfg.ControllerAddress = "unix://" + ctrlSock
	cfg.TargetPath = filepath.Join(dir, "mnt")
	cfg.StagingPath = filepath.Join(dir, "staging")
	t.Cleanup(func() {
		// Whatever a failed spec left mounted.
		mounter.UnmountAll(filepath.Join(cfg.TargetPath, "target"))
	})
	sanity.GinkgoTest(&cfg)
	gomega.RegisterFailHandler(ginkgo.Fail)
	suite, reporter := ginkgo.GinkgoConfiguration()
	suite.SkipStrings = []string{`\[Controller Server\]`, `\[GroupController`}
	ginkgo.RunSpecs(t, "CSI sanity (node plugin)", suite, reporter)
}

func serveGRPC(t *testing.T, sock string, srv *grpc.Server) {
	t.Helper()
	lis, err := csi.Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
}

// fakeController creates volumes that exist only as attributes, as a
// static PV does.
type fakeController struct {
	csipb.UnimplementedControllerServer
	attrs map[string]string
}

func (f *fakeController) CreateVolume(_ context.Context, req *csipb.CreateVolumeRequest) (*csipb.CreateVolumeResponse, error) {
	return &csipb.CreateVolumeResponse{Volume: &csipb.Volume{VolumeId: "vol-" + req.GetName(), VolumeContext: f.attrs}}, nil
}

func (f *fakeController) DeleteVolume(context.Context, *csipb.DeleteVolumeRequest) (*csipb.DeleteVolumeResponse, error) {
	return &csipb.DeleteVolumeResponse{}, nil
}

func (f *fakeController) ControllerGetCapabilities(context.Context, *csipb.ControllerGetCapabilitiesRequest) (*csipb.ControllerGetCapabilitiesResponse, error) {
	return &csipb.ControllerGetCapabilitiesResponse{Capabilities: []*csipb.ControllerServiceCapability{{
		Type: &csipb.ControllerServiceCapability_Rpc{Rpc: &csipb.ControllerServiceCapability_RPC{Type: csipb.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME}},
	}}}, nil
}
