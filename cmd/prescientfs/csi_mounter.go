package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/urfave/cli/v2"

	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi/mounter"
	"github.com/prescient/prescientfs/cmd/prescientfs/internal/csi/volumecontext"
	"github.com/prescient/prescientfs/creds"
	"github.com/prescient/prescientfs/fs"
)

// csiMounter serves each volume's FUSE file system inside the plugin
// process, wired as `prescientfs mount` wires one (wireAuth, newFSConfig),
// with the volume's own credentials and memory budget.
type csiMounter struct {
	stateDir string
	log      *slog.Logger

	mu      sync.Mutex
	budgets map[*csiVolume]int64 // guarded by mu: each live volume's read-path memory
}

var _ mounter.Mounter = (*csiMounter)(nil)

// volumeDir keeps a target's state (its index): a republish after a
// plugin restart finds it again.
func (m *csiMounter) volumeDir(target string) string {
	sum := sha256.Sum256([]byte(target))
	return filepath.Join(m.stateDir, "volumes", hex.EncodeToString(sum[:12]))
}

// Forget implements mounter.Mounter.
func (m *csiMounter) Forget(target string) {
	if err := os.RemoveAll(m.volumeDir(target)); err != nil {
		m.log.Warn("removing a volume's state", "target", target, "err", err)
	}
}

// Mount implements mounter.Mounter.
func (m *csiMounter) Mount(ctx context.Context, volumeID, target string, v *volumecontext.Volume) (mounter.Mount, error) {
	dir := m.volumeDir(target)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c, err := volumeFlags(v.Flags, filepath.Join(dir, "index"))
	if err != nil {
		return nil, err
	}
	budget, err := checkVolumeFlags(c)
	if err != nil {
		return nil, err
	}
	log := m.log.With("volume", volumeID)
	vctx, cancel := context.WithCancel(context.Background())
	vol := &csiVolume{m: m, dir: dir, cancel: cancel, done: make(chan struct{}), log: log}
	ok := false
	defer func() {
		if !ok {
			vol.release()
		}
	}()
	auth, err := vol.newAuth(vctx, c, v)
	if err != nil {
		return nil, err
	}
	w, err := wireAuth(vctx, c, log, auth)
	if err != nil {
		auth.close()
		return nil, err
	}
	vol.closers = append(vol.closers, w.close)
	cfg, closeFS, err := newFSConfig(vctx, c, w, log)
	if err != nil {
		return nil, err
	}
	vol.closers = append(vol.closers, closeFS)
	srv, err := fs.Mount(target, cfg, fs.MountOptions{AllowOther: true, Debug: c.Bool("debug"), FsName: "prescientfs"})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", target, err)
	}
	vol.srv = srv
	go func() {
		srv.Wait()
		close(vol.done)
	}()
	m.setBudget(vol, budget)
	ok = true
	log.Info("mounted", "target", target, "catalog", w.client.URL(), "memory", budget)
	return vol, nil
}

// setBudget keeps the Go runtime's soft memory limit at the sum of the
// live volumes' read-path budgets (wireAuth sets it for one mount).
func (m *csiMounter) setBudget(v *csiVolume, budget int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.budgets == nil {
		m.budgets = map[*csiVolume]int64{}
	}
	if budget < 0 {
		delete(m.budgets, v)
	} else {
		m.budgets[v] = budget
	}
	var total int64
	for _, b := range m.budgets {
		total += b
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(total + 64<<20)
	}
}

// volumeFlags parses a volume's flags as the mount command's, ignoring
// the plugin's own environment (a volume is configured by its attributes
// alone). The index lives in the volume's state directory.
func volumeFlags(flags map[string]string, indexDir string) (*cli.Context, error) {
	set := flag.NewFlagSet("volume", flag.ContinueOnError)
	set.SetOutput(io.Discard)
	for _, f := range mountFlags() {
		if err := withoutEnv(f).Apply(set); err != nil {
			return nil, err
		}
	}
	if err := set.Set("index-dir", indexDir); err != nil {
		return nil, err
	}
	for k, val := range flags {
		if err := set.Set(k, val); err != nil {
			return nil, fmt.Errorf("%w: attribute %s=%q: %v", volumecontext.ErrInvalid, k, val, err)
		}
	}
	return cli.NewContext(&cli.App{Name: "prescientfs"}, set, nil), nil
}

// withoutEnv copies a flag without its environment variables.
func withoutEnv(f cli.Flag) cli.Flag {
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return f
	}
	cp := reflect.New(v.Elem().Type())
	cp.Elem().Set(v.Elem())
	if ev := cp.Elem().FieldByName("EnvVars"); ev.IsValid() && ev.CanSet() {
		ev.Set(reflect.Zero(ev.Type()))
	}
	return cp.Interface().(cli.Flag)
}

// checkVolumeFlags refuses what `mount` refuses before mounting, as
// InvalidArgument, and returns the read path's memory budget.
func checkVolumeFlags(c *cli.Context) (int64, error) {
	invalid := func(format string, a ...any) (int64, error) {
		return 0, fmt.Errorf("%w: "+format, append([]any{volumecontext.ErrInvalid}, a...)...)
	}
	if c.Duration("io-timeout") <= 0 {
		return invalid("io-timeout must be positive")
	}
	if strings.HasPrefix(c.String("search"), "@") {
		// @FILE would read a file of the plugin's container.
		return invalid("search: give the query (collections=…&bbox=…), not @FILE")
	}
	if _, err := treeOptions(c, nil); err != nil {
		return invalid("%v", err)
	}
	mem, err := parseSize(c.String("memory-limit"))
	if err != nil {
		return invalid("memory-limit: %v", err)
	}
	cache, err := parseSize(c.String("cache-size"))
	if err != nil {
		return invalid("cache-size: %v", err)
	}
	return mem + cache, nil
}

// csiVolume is one published volume served by this process.
type csiVolume struct {
	m       *csiMounter
	dir     string
	log     *slog.Logger
	cancel  context.CancelFunc
	srv     *fuse.Server
	done    chan struct{}
	creds   *rotatingCreds
	closers []func() // run in reverse by release

	once sync.Once
}

var _ mounter.Mount = (*csiVolume)(nil)

// Done implements mounter.Mount.
func (v *csiVolume) Done() <-chan struct{} { return v.done }

// Close implements mounter.Mount: it waits for the server to stop (the
// kernel mount is gone or dead by now) and releases the volume.
func (v *csiVolume) Close() {
	v.once.Do(func() {
		select {
		case <-v.done:
		case <-time.After(30 * time.Second):
			v.log.Warn("the FUSE server did not stop 30 s after its mount went; releasing it anyway")
		}
		v.m.setBudget(v, -1)
		v.release()
		v.log.Info("released")
	})
}

func (v *csiVolume) release() {
	for i := len(v.closers) - 1; i >= 0; i-- {
		v.closers[i]()
	}
	v.closers = nil
	v.cancel()
}

// UpdateSecrets implements mounter.Mount: the new Secret's credentials
// are checked (a token and bucket credentials obtained) before they
// replace the old ones; the mount itself is untouched.
func (v *csiVolume) UpdateSecrets(ctx context.Context, vc *volumecontext.Volume) error {
	switch {
	case v.creds.prescient() != vc.Prescient():
		return fmt.Errorf("%w: a rotated Secret must keep the kind of credentials (Prescient or AWS keys)", volumecontext.ErrInvalid)
	case vc.Prescient():
		ma, err := v.signIn(ctx, vc)
		if err != nil {
			return err
		}
		v.creds.setPrescient(ma)
	case vc.AWS != nil:
		v.creds.setStatic(vc.AWS)
	default:
		return fmt.Errorf("%w: the Secret lost its credentials", volumecontext.ErrInvalid)
	}
	return nil
}

// newAuth resolves the volume's authentication from its attributes and
// Secret only: never from the plugin's environment, files or another
// volume. A volume without credentials must read public buckets
// (no-sign-request), so that the node's own AWS identity is never lent.
func (v *csiVolume) newAuth(ctx context.Context, c *cli.Context, vc *volumecontext.Volume) (*catalogAuth, error) {
	v.creds = &rotatingCreds{}
	v.creds.outer = aws.NewCredentialsCache(v.creds)
	switch {
	case vc.Prescient():
		ma, err := v.signIn(ctx, vc)
		if err != nil {
			return nil, err
		}
		v.creds.setPrescient(ma)
		return &catalogAuth{
			stacURL:        firstNonEmpty(c.String("stac-url"), ma.STACURL),
			header:         v.creds.header,
			onUnauthorized: v.creds.onUnauthorized,
			s3Creds:        v.creds.outer,
			region:         ma.Region,
			close:          v.creds.close,
		}, nil
	case c.String("stac-url") == "":
		return nil, fmt.Errorf("%w: no catalog: set the stac-url attribute, or PRESCIENT_ENDPOINT_URL with credentials in the Secret", volumecontext.ErrInvalid)
	case vc.AWS != nil:
		v.creds.setStatic(vc.AWS)
		return &catalogAuth{stacURL: c.String("stac-url"), s3Creds: v.creds.outer, close: func() {}}, nil
	case c.Bool("no-sign-request"):
		return &catalogAuth{stacURL: c.String("stac-url"), close: func() {}}, nil
	}
	return nil, fmt.Errorf("%w: no credentials: name a Secret (nodePublishSecretRef) with AWS keys or Prescient credentials, or set no-sign-request: \"true\" for public buckets", volumecontext.ErrInvalid)
}

// signIn builds a Prescient authentication from the volume's settings
// alone, with a session store of its own.
func (v *csiVolume) signIn(ctx context.Context, vc *volumecontext.Volume) (*creds.MountAuth, error) {
	s, err := creds.Load(creds.LoadOptions{
		LookupEnv: func(k string) (string, bool) { val, ok := vc.Settings[k]; return val, ok },
		Dir:       v.dir,
		Home:      v.dir,
		Flags:     map[string]string{creds.VarConfigDir: filepath.Join(v.dir, "session"), creds.VarProfile: creds.DefaultProfile},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", volumecontext.ErrInvalid, err)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", volumecontext.ErrInvalid, err)
	}
	ma, err := creds.NewMountAuth(ctx, s, creds.Options{Log: v.log})
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	v.log.Info("signed in", "mode", string(ma.Mode), "catalog", ma.STACURL)
	return ma, nil
}

// rotatingCreds are a volume's credentials, replaced in place when a
// republish brings a rotated Secret: the catalog's headers and the
// bucket credentials both come from the current ones.
type rotatingCreds struct {
	outer *aws.CredentialsCache // what the S3 client signs with

	mu     sync.Mutex
	ma     *creds.MountAuth // guarded by mu; nil with static keys
	static aws.Credentials  // guarded by mu
	handed aws.Credentials  // guarded by mu: what Retrieve last returned
}

func (r *rotatingCreds) current() *creds.MountAuth {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ma
}

func (r *rotatingCreds) prescient() bool { return r.current() != nil }

func (r *rotatingCreds) setPrescient(ma *creds.MountAuth) {
	r.mu.Lock()
	old := r.ma
	r.ma, r.handed = ma, aws.Credentials{}
	r.mu.Unlock()
	r.outer.Invalidate()
	if old != nil {
		old.Close()
	}
}

func (r *rotatingCreds) setStatic(k *volumecontext.AWSKeys) {
	r.mu.Lock()
	r.static = aws.Credentials{AccessKeyID: k.AccessKeyID, SecretAccessKey: k.SecretAccessKey, SessionToken: k.SessionToken, Source: "CSI volume Secret"}
	r.handed = aws.Credentials{}
	r.mu.Unlock()
	r.outer.Invalidate()
}

// Retrieve implements aws.CredentialsProvider for the outer cache. That
// cache asks again before the credentials it holds expire only after
// Invalidate (the read path's retry after a stale-credential 403): the
// current source's own cache is invalidated too, so the retry renews.
func (r *rotatingCreds) Retrieve(ctx context.Context) (aws.Credentials, error) {
	r.mu.Lock()
	ma, static, handed := r.ma, r.static, r.handed
	r.mu.Unlock()
	if ma == nil {
		return static, nil
	}
	if handed.HasKeys() && (!handed.CanExpire || time.Now().Before(handed.Expires)) {
		if inv, ok := ma.S3Creds.(interface{ Invalidate() }); ok {
			inv.Invalidate()
		}
	}
	c, err := ma.S3Creds.Retrieve(ctx)
	if err == nil {
		r.mu.Lock()
		if r.ma == ma {
			r.handed = c
		}
		r.mu.Unlock()
	}
	return c, err
}

func (r *rotatingCreds) header(ctx context.Context) (http.Header, error) {
	return r.current().Header(ctx)
}

func (r *rotatingCreds) onUnauthorized() { r.current().OnUnauthorized() }

func (r *rotatingCreds) close() {
	if ma := r.current(); ma != nil {
		ma.Close()
	}
}
