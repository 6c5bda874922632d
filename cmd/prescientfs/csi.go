package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi"
)

// Every mount flag is classified for volumes: csiVolumeFlags may be set
// by a volume's attributes; csiDeniedFlags may not (host paths and ports a
// pod author must not choose in a privileged plugin, and the shell's
// process management). A new mount flag fails TestCSIFlagsClassified
// until it is put in one list.
var (
	csiVolumeFlags = []string{"stac-url", "no-sign-request", "region", "metadata-ttl", "io-timeout", "page-size",
		"debug", "memory-limit", "cache-size", "tiff-page-cache", "layout", "max-listing", "search", "max-items", "no-index"}
	csiDeniedFlags = []string{"env-file", "auth-profile", "foreground", "log-file", "cache-dir", "cache-dir-size",
		"index-dir", "allow-other", "metrics-addr"}
)

// csiAllowedFlags are the mount flags that volume attributes may set.
func csiAllowedFlags() []string {
	var names []string
	for _, f := range mountFlags() {
		if n := f.Names()[0]; slices.Contains(csiVolumeFlags, n) {
			names = append(names, n)
		}
	}
	return names
}

func csiCommand() *cli.Command {
	return &cli.Command{
		Name:  "csi",
		Usage: "run the Kubernetes CSI node plugin (Identity and Node services; every volume is a read-only mount served by this process)",
		Description: "Volume attributes are the mount command's flags by long name (stac-url, metadata-ttl, memory-limit, …)\n" +
			"and the PRESCIENT_* settings; the volume's Secret (nodePublishSecretRef) holds PRESCIENT_API_KEY, or\n" +
			"PRESCIENT_CLIENT_SECRET with a service principal's settings, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.\n" +
			"See deploy/ for the Helm chart.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "endpoint", Value: "unix:///csi/csi.sock", EnvVars: []string{"CSI_ENDPOINT"},
				Usage: "the CSI socket kubelet talks to"},
			&cli.StringFlag{Name: "node-id", EnvVars: []string{"CSI_NODE_ID", "KUBE_NODE_NAME"}, Required: true,
				Usage: "this node's name"},
			&cli.StringFlag{Name: "driver-name", Value: csi.DefaultDriverName, Usage: "the CSIDriver's name"},
			&cli.StringFlag{Name: "state-dir", Value: "/var/lib/prescientfs-csi", EnvVars: []string{"PRESCIENT_CSI_STATE_DIR"},
				Usage: "where each volume keeps its index of listings (one directory per target)"},
			&cli.BoolFlag{Name: "debug", Usage: "debug logs (every call, without secrets)"},
		},
		Action: runCSI,
	}
}

func runCSI(c *cli.Context) error {
	level := slog.LevelInfo
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	stateDir, err := filepath.Abs(c.String("state-dir"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return cli.Exit("prescientfs: state directory: "+err.Error(), 1)
	}
	node := &csi.Node{
		NodeID:       c.String("node-id"),
		Mounter:      &csiMounter{stateDir: stateDir, log: log},
		AllowedFlags: csiAllowedFlags(),
		Log:          log,
	}
	srv := csi.NewServer(&csi.Identity{Name: c.String("driver-name"), Version: version}, node, log)
	lis, err := csi.Listen(c.String("endpoint"))
	if err != nil {
		return cli.Exit("prescientfs: "+err.Error(), 1)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		s := <-sigs
		// Mounts die with this process (their FUSE servers are in it);
		// kubelet's next republish mounts them afresh over the dead ones.
		log.Info("stopping", "signal", s.String())
		srv.GracefulStop()
	}()
	log.Info("CSI node plugin serving", "endpoint", c.String("endpoint"), "node", node.NodeID, "driver", c.String("driver-name"), "version", version)
	if err := srv.Serve(lis); err != nil && !errors.Is(err, context.Canceled) {
		return cli.Exit("prescientfs: "+err.Error(), 1)
	}
	return nil
}
