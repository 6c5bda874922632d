package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/e2e/internal/minio"
	"github.com/prescient/prescientfs/e2e/internal/proc"
	"github.com/prescient/prescientfs/fs/mountinfo"
	"github.com/prescient/prescientfs/stacindex"
)

// csiPlugin is a running `prescientfs csi` and a gRPC client of it.
type csiPlugin struct {
	t    *testing.T
	dir  string
	env  []string
	cmd  *exec.Cmd
	node csipb.NodeClient
	conn *grpc.ClientConn
}

// startCSIPlugin runs the plugin with the stack's S3 endpoint but no
// credentials of its own: every volume brings its own in its Secret.
func startCSIPlugin(t *testing.T, st *stack, dir string) *csiPlugin {
	t.Helper()
	return startCSIPluginEnv(t, dir, append(baseEnv(t), "AWS_ENDPOINT_URL_S3="+st.minio.Endpoint, "AWS_REGION="+minio.Region))
}

func startCSIPluginEnv(t *testing.T, dir string, env []string) *csiPlugin {
	t.Helper()
	p := &csiPlugin{t: t, dir: dir, env: env}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *csiPlugin) sock() string { return filepath.Join(p.dir, "csi.sock") }

func (p *csiPlugin) start() {
	t := p.t
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(p.dir, "plugin.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	p.cmd = exec.Command(binPath, "csi", "--endpoint", "unix://"+p.sock(), "--node-id", "e2e-node",
		"--state-dir", filepath.Join(p.dir, "state"), "--debug")
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = p.env, logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if p.conn, err = grpc.NewClient("unix://"+p.sock(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	p.node = csipb.NewNodeClient(p.conn)
	id := csipb.NewIdentityClient(p.conn)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r, err := id.Probe(ctx, &csipb.ProbeRequest{})
		cancel()
		if err == nil && r.GetReady().GetValue() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin not ready: %v\n%s", err, p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops the plugin as a crash or an OOM kill would.
func (p *csiPlugin) kill() {
	if p.cmd == nil {
		return
	}
	p.conn.Close()
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.cmd = nil
}

func (p *csiPlugin) stop() {
	if strings.Contains(readFile(filepath.Join(p.dir, "plugin.log")), "DATA RACE") {
		p.t.Error("the race detector fired in the plugin")
	}
	if p.t.Failed() {
		p.t.Logf("plugin log:\n%s", p.log())
	}
	if p.cmd != nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
		if !proc.WaitExit(p.cmd.Process.Pid, 10*time.Second) {
			p.cmd.Process.Kill()
		}
		p.cmd.Wait()
		p.conn.Close()
		p.cmd = nil
	}
}

func (p *csiPlugin) log() string { return tail(readFile(filepath.Join(p.dir, "plugin.log")), 20000) }

func (p *csiPlugin) publish(volumeID, target string, attrs, secrets map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := p.node.NodePublishVolume(ctx, &csipb.NodePublishVolumeRequest{
		VolumeId:   volumeID,
		TargetPath: target,
		VolumeCapability: &csipb.VolumeCapability{
			AccessType: &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{}},
			AccessMode: &csipb.VolumeCapability_AccessMode{Mode: csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY},
		},
		Readonly:      true,
		VolumeContext: attrs,
		Secrets:       secrets,
	})
	return err
}

func (p *csiPlugin) mustPublish(volumeID, target string, attrs, secrets map[string]string) {
	p.t.Helper()
	if err := p.publish(volumeID, target, attrs, secrets); err != nil {
		p.t.Fatalf("NodePublishVolume %s at %s: %v", volumeID, target, err)
	}
}

func (p *csiPlugin) mustUnpublish(volumeID, target string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := p.node.NodeUnpublishVolume(ctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: volumeID, TargetPath: target}); err != nil {
		p.t.Fatalf("NodeUnpublishVolume %s at %s: %v", volumeID, target, err)
	}
}

// cleanupMounts unmounts (lazily) whatever a failed test left below dir.
func cleanupMounts(t *testing.T, dir string) {
	t.Cleanup(func() {
		for range 64 {
			ms, err := mountinfo.Read()
			if err != nil {
				return
			}
			found := false
			for i := len(ms) - 1; i >= 0; i-- {
				if ms[i].Dir == dir || strings.HasPrefix(ms[i].Dir, dir+"/") {
					found = true
					syscall.Unmount(ms[i].Dir, syscall.MNT_DETACH)
				}
			}
			if !found {
				return
			}
		}
	})
}

// mountsBelow lists the mount points at or below dir.
func mountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	ms, err := mountinfo.Read()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		if m.Dir == dir || strings.HasPrefix(m.Dir, dir+"/") {
			out = append(out, m.Dir)
		}
	}
	return out
}

// assetsToRead hands out servable assets of the fixture, each once, so
// that every read after a change goes to the bucket (not a cache).
type assetsToRead struct {
	t    *testing.T
	list []struct {
		rel string
		a   fixtures.AssetFixture
	}
}

func newAssetsToRead(t *testing.T, cat *fixtures.Catalog) *assetsToRead {
	r := &assetsToRead{t: t}
	for _, id := range plainCollections {
		coll := cat.Collection(id)
		for _, it := range coll.Items {
			for _, a := range it.Assets {
				if a.Servable && a.Bucket != "" {
					r.list = append(r.list, struct {
						rel string
						a   fixtures.AssetFixture
					}{filepath.Join(id, it.ID, stacindex.AssetFileName(a.Key, a.Href, assetType(t, it, a.Key))), a})
				}
			}
		}
	}
	return r
}

func (r *assetsToRead) next() (string, fixtures.AssetFixture) {
	r.t.Helper()
	if len(r.list) == 0 {
		r.t.Fatal("out of fixture assets")
	}
	n := r.list[0]
	r.list = r.list[1:]
	return n.rel, n.a
}

// checkRead reads one unread S3 asset below root and compares its bytes.
func (r *assetsToRead) checkRead(root string) {
	r.t.Helper()
	rel, a := r.next()
	sum, err := sha256Of(filepath.Join(root, rel))
	if err != nil {
		r.t.Fatalf("read %s: %v", rel, err)
	}
	if sum != a.SHA256 {
		r.t.Fatalf("%s: sha256 %s, want %s", rel, sum, a.SHA256)
	}
}

// readErr reads one unread S3 asset below root and returns the error.
func (r *assetsToRead) readErr(root string) error {
	rel, _ := r.next()
	_, err := sha256Of(filepath.Join(root, rel))
	return err
}

func sha256Of(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func devOf(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return st.Dev
}

// stsSession mints temporary MinIO credentials (STS AssumeRole as root).
func stsSession(t *testing.T, st *stack) map[string]string {
	t.Helper()
	c := sts.New(sts.Options{
		Region: minio.Region, BaseEndpoint: aws.String(st.minio.Endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(st.minio.AccessKey, st.minio.SecretKey, ""),
	})
	out, err := c.AssumeRole(context.Background(), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:xxx:xxx:xxx:xxxx"), RoleSessionName: aws.String("csi-e2e"),
	})
	if err != nil {
		t.Fatalf("STS AssumeRole: %v", err)
	}
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     aws.ToString(out.Credentials.AccessKeyId),
		"AWS_SECRET_ACCESS_KEY": aws.ToString(out.Credentials.SecretAccessKey),
		"AWS_SESSION_TOKEN":     aws.ToString(out.Credentials.SessionToken),
	}
}

var bogusKeys = map[string]string{"AWS_ACCESS_KEY_ID": "NOTAKEY0000000000000", "AWS_SECRET_ACCESS_KEY": "not-a-secret-not-a-secret-not-a-secre"}

// TestCSIPublishRotateUnpublish: a volume whose Secret holds AWS keys
// (the plugin has none) reads what the bucket holds, refuses writes, is
// published twice without harm; a second volume with other keys on the
// same node does not share the first's; a republish with a rotated Secret
// changes the keys the live mount signs with (no remount); unpublish
// leaves nothing mounted and no target.
func TestCSIPublishRotateUnpublish(t *testing.T) {
	st := sharedStack(t)
	dir := t.TempDir()
	cleanupMounts(t, dir)
	p := startCSIPlugin(t, st, dir)
	files := newAssetsToRead(t, st.cat)
	attrs := map[string]string{"stac-url": st.stac.URL(), "metadata-ttl": "1m", "memory-limit": "64MiB", "io-timeout": "20s"}
	target := filepath.Join(dir, "pods", "a", "volumes", "vol-a", "mount")

	// Publish: the target is created and mounted; bytes are the bucket's.
	secA := stsSession(t, st)
	p.mustPublish("vol-a", target, attrs, secA)
	files.checkRead(target)
	if err := os.WriteFile(filepath.Join(target, "new.txt"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write: %v, want EROFS", err)
	}
	dev := devOf(t, target)
	// Idempotent: the same publish again changes nothing.
	p.mustPublish("vol-a", target, attrs, secA)
	if got := len(mountsBelow(t, target)); got != 1 {
		t.Fatalf("after a second publish: %d mounts at the target, want 1", got)
	}
	files.checkRead(target)

	// Another volume with wrong keys on the same node: its reads are
	// refused, the first volume's go on.
	// (An inline ephemeral volume, with the pod info kubelet adds.)
	attrsB := map[string]string{"csi.storage.k8s.io/ephemeral": "true", "csi.storage.k8s.io/pod.name": "b",
		"csi.storage.k8s.io/pod.namespace": "default", "csi.storage.k8s.io/pod.uid": "b-uid"}
	for k, v := range attrs {
		attrsB[k] = v
	}
	targetB := filepath.Join(dir, "pods", "b", "volumes", "vol-b", "mount")
	p.mustPublish("vol-b", targetB, attrsB, bogusKeys)
	if err := files.readErr(targetB); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("read with wrong keys: %v, want EACCES", err)
	}
	files.checkRead(target)

	// Rotation in place: wrong keys make reads of the live mount fail,
	// good ones make them work again; the mount stays the same.
	p.mustPublish("vol-a", target, attrs, bogusKeys)
	if err := files.readErr(target); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("read after rotating to wrong keys: %v, want EACCES", err)
	}
	p.mustPublish("vol-a", target, attrs, stsSession(t, st))
	files.checkRead(target)
	if devOf(t, target) != dev {
		t.Fatal("the republish remounted the volume")
	}
	p.mustPublish("vol-b", targetB, attrsB, stsSession(t, st))
	files.checkRead(targetB)
	// What the example Job does: GDAL reads a COG through the volume.
	coll := st.cat.Collection("sentinel-demo")
	if a := coll.Items[0].Asset("visual"); a != nil && a.Path != "" {
		if got, want := gdalChecksums(t, filepath.Join(targetB, coll.ID, coll.Items[0].ID, "visual.tif")), gdalChecksums(t, a.Path); got == "" || got != want {
			t.Fatalf("gdalinfo -checksum through the volume: %q, local %q", got, want)
		}
	}

	// Unpublish (twice: idempotent): no mount and no target left.
	for _, tg := range []string{target, targetB} {
		id := "vol-a"
		if tg == targetB {
			id = "vol-b"
		}
		p.mustUnpublish(id, tg)
		p.mustUnpublish(id, tg)
		if _, err := os.Stat(tg); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("target %s after unpublish: %v", tg, err)
		}
	}
	if m := mountsBelow(t, dir); len(m) != 0 {
		t.Fatalf("still mounted after unpublish: %v", m)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "state", "volumes")); len(left) != 0 {
		t.Fatalf("volume state left after unpublish: %v", left)
	}
	if log := p.log(); strings.Contains(log, bogusKeys["AWS_SECRET_ACCESS_KEY"]) || strings.Contains(log, secA["AWS_SECRET_ACCESS_KEY"]) {
		t.Fatal("the plugin log holds a secret")
	}
}

// TestCSIRepublishHealsDeadMount: a pod reads the volume through a bind
// mount of the target with slave propagation (as HostToContainer gives
// it). The volume's FUSE server dies twice, once alone (its connection
// aborted) and once with the whole plugin (killed, then restarted); each
// time the next republish mounts afresh over the dead mount and the pod's
// path reads again. Unpublish removes every layer.
func TestCSIRepublishHealsDeadMount(t *testing.T) {
	st := sharedStack(t)
	dir := t.TempDir()
	cleanupMounts(t, dir)
	p := startCSIPlugin(t, st, dir)
	files := newAssetsToRead(t, st.cat)
	attrs := map[string]string{"stac-url": st.stac.URL(), "io-timeout": "20s"}
	secret := stsSession(t, st)

	// The kubelet directory is shared (the DaemonSet mounts it
	// Bidirectional); the pod's path is a slave bind of the target.
	kubelet := filepath.Join(dir, "kubelet")
	if err := os.MkdirAll(kubelet, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(kubelet, kubelet, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind kubelet dir: %v", err)
	}
	if err := syscall.Mount("", kubelet, "", syscall.MS_SHARED, ""); err != nil {
		t.Fatalf("make kubelet dir shared: %v", err)
	}
	target := filepath.Join(kubelet, "pods", "uid", "volumes", "kubernetes.io~csi", "pv", "mount")
	p.mustPublish("vol-heal", target, attrs, secret)
	pod := filepath.Join(dir, "pod", "data")
	if err := os.MkdirAll(pod, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(target, pod, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind the pod's path: %v", err)
	}
	if err := syscall.Mount("", pod, "", syscall.MS_SLAVE, ""); err != nil {
		t.Fatalf("make the pod's path a slave: %v", err)
	}
	files.checkRead(pod)

	// 1. The FUSE server alone dies: abort its connection.
	conns := fuseConnections(t)
	conn := filepath.Join(conns, strconv.FormatUint(uint64(unix.Minor(devOf(t, target))), 10), "abort")
	if err := os.WriteFile(conn, []byte("1"), 0o200); err != nil {
		t.Fatalf("abort the FUSE connection: %v", err)
	}
	if err := files.readErr(pod); !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
		t.Fatalf("read through a dead mount: %v, want ENOTCONN", err)
	}
	p.mustPublish("vol-heal", target, attrs, secret)
	files.checkRead(target)
	files.checkRead(pod)

	// 2. The plugin dies with every server in it, and restarts.
	p.kill()
	if err := files.readErr(pod); !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
		t.Fatalf("read after the plugin died: %v, want ENOTCONN", err)
	}
	p.start()
	p.mustPublish("vol-heal", target, attrs, secret)
	files.checkRead(target)
	files.checkRead(pod)
	if n := countMounts(t, target); n != 3 {
		t.Fatalf("%d layers at the target, want 3 (two dead, one live)", n)
	}

	// The pod goes (its runtime unmounts its path), then unpublish.
	for countMounts(t, pod) > 0 {
		if err := syscall.Unmount(pod, syscall.MNT_DETACH); err != nil {
			t.Fatalf("unmount the pod's path: %v", err)
		}
	}
	p.mustUnpublish("vol-heal", target)
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("target after unpublish: %v", err)
	}
	if m := mountsBelow(t, dir); len(m) != 1 || m[0] != kubelet {
		t.Fatalf("mounts left below the test directory: %v, want only the kubelet dir's bind", m)
	}
}

// fuseConnections is /sys/fs/fuse/connections, with fusectl mounted
// there for the test if it is not.
func fuseConnections(t *testing.T) string {
	t.Helper()
	const dir = "/sys/fs/fuse/connections"
	for _, m := range mustMounts(t) {
		if m.Dir == dir {
			return dir
		}
	}
	if err := syscall.Mount("fusectl", dir, "fusectl", 0, ""); err != nil {
		t.Skipf("cannot mount fusectl on %s: %v", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func mustMounts(t *testing.T) []mountinfo.Mount {
	t.Helper()
	ms, err := mountinfo.Read()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func countMounts(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	for _, m := range mustMounts(t) {
		if m.Dir == dir {
			n++
		}
	}
	return n
}

// TestCSIPrescientCredentials: volumes that sign in to Prescient with the
// credentials of their Secret (the plugin's own PRESCIENT_* environment
// is ignored). An API-key volume reads; a volume with a wrong key on the
// same node is refused while the first reads on; a republish with a wrong
// key is refused and the live mount keeps its credentials; a republish
// with a service principal's Secret switches the live mount to it (bearer
// tokens and STS) with no remount.
func TestCSIPrescientCredentials(t *testing.T) {
	a := newAuthStack(t, authStackOptions{})
	dir := t.TempDir()
	cleanupMounts(t, dir)
	p := startCSIPluginEnv(t, dir, a.env(t, t.TempDir(), "PRESCIENT_API_KEY=plugin-env-key-must-be-ignored"))
	assets := a.assets(t, "many-items")
	next := func() asset {
		t.Helper()
		if len(assets) == 0 {
			t.Fatal("out of fixture assets")
		}
		as := assets[0]
		assets = assets[1:]
		return as
	}
	read := func(root string) {
		t.Helper()
		as := next()
		sum, err := readAsset(filepath.Join(root, as.rel))
		if err != nil || sum != as.sha256 {
			t.Fatalf("read %s: sha256 %.12s, %v; want %.12s", as.rel, sum, err, as.sha256)
		}
	}
	attrs := map[string]string{"PRESCIENT_ENDPOINT_URL": a.endpointURL(), "metadata-ttl": "1s", "io-timeout": "20s"}
	target := filepath.Join(dir, "pods", "a", "mount")

	a.stac.ResetRequests()
	p.mustPublish("vol-key", target, attrs, map[string]string{"PRESCIENT_API_KEY": a.apiKey})
	read(target)
	for _, r := range a.stac.Requests() {
		if strings.HasPrefix(r.Path, "/stac") && r.Header.Get("api-key") != a.apiKey {
			t.Fatalf("%s %s sent without the volume's api-key", r.Method, r.Path)
		}
	}
	dev := devOf(t, target)

	// A wrong key: the publish fails, nothing is mounted, no secret shows.
	const wrong = "pk-wrong-key-0123456789"
	badTarget := filepath.Join(dir, "pods", "b", "mount")
	err := p.publish("vol-bad", badTarget, attrs, map[string]string{"PRESCIENT_API_KEY": wrong})
	if err == nil || strings.Contains(err.Error(), wrong) {
		t.Fatalf("publish with a wrong key: %v", err)
	}
	if len(mountsBelow(t, badTarget)) != 0 {
		t.Fatal("a volume with a wrong key was mounted")
	}
	read(target)

	// A rotation to a wrong key is refused; the mount keeps the old one.
	if err := p.publish("vol-key", target, attrs, map[string]string{"PRESCIENT_API_KEY": wrong}); err == nil {
		t.Fatal("republish with a wrong key succeeded")
	}
	read(target)

	// A rotation to a service principal: bearer tokens and STS from now on.
	sp := map[string]string{"PRESCIENT_CLIENT_SECRET": a.clientSecret}
	for _, kv := range a.settings() {
		k, v, _ := strings.Cut(kv, "=")
		if k != "PRESCIENT_ENDPOINT_URL" {
			sp[k] = v
		}
	}
	sts := a.stsCalls.Load()
	a.stac.ResetRequests()
	p.mustPublish("vol-key", target, attrs, sp)
	read(target)
	if a.stsCalls.Load() == sts {
		t.Error("no STS call after rotating to a service principal: the bucket credentials did not change")
	}
	bearer := 0
	for _, r := range a.stac.Requests() {
		if strings.HasPrefix(r.Path, "/stac") && strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			bearer++
		}
	}
	if bearer == 0 {
		t.Error("no catalog request with a bearer after rotating to a service principal")
	}
	if devOf(t, target) != dev {
		t.Fatal("the rotation remounted the volume")
	}

	p.mustUnpublish("vol-key", target)
	p.mustUnpublish("vol-bad", badTarget)
	if m := mountsBelow(t, dir); len(m) != 0 {
		t.Fatalf("still mounted after unpublish: %v", m)
	}
	if log := p.log(); strings.Contains(log, a.apiKey) || strings.Contains(log, a.clientSecret) || strings.Contains(log, wrong) {
		t.Fatal("the plugin log holds a secret")
	}
}
