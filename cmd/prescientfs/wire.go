package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/urfave/cli/v2"

	"github.com/prescient/prescientfs/creds"
	"github.com/prescient/prescientfs/fs"
	"github.com/prescient/prescientfs/fs/objread"
	"github.com/prescient/prescientfs/stacindex"
)

// wiring is everything a mount is made of.
type wiring struct {
	client    *stacindex.Client
	resolver  stacindex.Resolver
	store     objread.Store
	opener    objread.Opener
	close     func()
	logStats  func(*slog.Logger)
	statsJSON func() []byte
	metrics   *mountMetrics // served with --metrics-addr
	// versionAtOpen: --cache-dir is on, whose blocks are keyed by the
	// object's version (see fs.Config.VersionAtOpen).
	versionAtOpen bool
}

// catalogAuth is how the catalog and buckets are reached: anonymous or
// AWS-chain by default, Prescient sign-in when configured.
type catalogAuth struct {
	stacURL        string
	header         func(context.Context) (http.Header, error)
	onUnauthorized func()
	s3Creds        aws.CredentialsProvider // nil: the AWS default chain
	region         string
	close          func()
	logStats       func(*slog.Logger)
	// credStats and credExpiry feed the metrics (nil: no renewals).
	credStats  func() creds.Stats
	credExpiry func() time.Time
}

func wire(ctx context.Context, c *cli.Context, log *slog.Logger) (*wiring, error) {
	auth, err := resolveAuth(ctx, c, log)
	if err != nil {
		return nil, err
	}
	return wireAuth(ctx, c, log, auth)
}

// wireAuth builds a mount from its flags and an authentication already
// resolved: the CLI resolves it from the process's settings, the CSI
// plugin from a volume's attributes and Secret.
func wireAuth(ctx context.Context, c *cli.Context, log *slog.Logger, auth *catalogAuth) (*wiring, error) {
	ioTimeout := c.Duration("io-timeout")
	httpClient := &http.Client{Transport: newTransport(ioTimeout)}
	metrics := newMountMetrics()
	client, err := stacindex.NewClient(auth.stacURL, stacindex.Options{
		HTTPClient:     &http.Client{Transport: metrics.catalogTransport(httpClient.Transport)},
		RequestTimeout: ioTimeout,
		Header:         auth.header,
		OnUnauthorized: auth.onUnauthorized,
		PageSize:       c.Int("page-size"),
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	s3Store, s3Endpoint, err := newS3Store(ctx, c, auth, ioTimeout)
	if err != nil {
		return nil, err
	}
	// Every read is bounded by --io-timeout without progress, retried with
	// backoff inside it (objread.Retry); HEADs likewise (objread.Retrying).
	retry := objread.Retry{Timeout: ioTimeout}
	store := objread.Retrying{Store: metrics.objectStore(objread.Router{S3: s3Store, HTTP: &objread.HTTPStore{Client: httpClient}}), Retry: retry}
	memLimit, err := parseSize(c.String("memory-limit"))
	if err != nil {
		return nil, fmt.Errorf("--memory-limit: %w", err)
	}
	cacheSize, err := parseSize(c.String("cache-size"))
	if err != nil {
		return nil, fmt.Errorf("--cache-size: %w", err)
	}
	pcfg := objread.DefaultConfig()
	pcfg.Retry = retry
	setMemoryLimit(memLimit + cacheSize)
	blocks := objread.NewBlockCache(cacheSize, 0)
	disk, err := openDiskCache(c, log)
	if err != nil {
		return nil, err
	}
	if disk != nil {
		blocks.SetDisk(disk)
	}
	budget := objread.NewBudget(memLimit)
	pf := objread.NewPrefetcher(store, pcfg, budget, blocks)
	metrics.readPath(pf.Stats(), budget, blocks)
	if auth.credStats != nil {
		metrics.credentials(auth.credStats, auth.credExpiry)
	}
	w := &wiring{
		client:        client,
		resolver:      stacindex.Resolver{S3Endpoint: s3Endpoint},
		store:         store,
		opener:        pf,
		versionAtOpen: disk != nil,
		close: func() {
			if disk != nil {
				_ = disk.Close() // returns nil: it waits for its writer, then gives up
			}
			if auth.close != nil {
				auth.close()
			}
		},
		logStats: func(log *slog.Logger) {
			log.Info("read statistics", "stats", pf.Stats().Snapshot())
			if auth.logStats != nil {
				auth.logStats(log)
			}
		},
		statsJSON: func() []byte {
			b, _ := json.MarshalIndent(pf.Stats().Snapshot(), "", "  ")
			return append(b, '\n')
		},
		metrics: metrics,
	}
	return w, nil
}

// openDiskCache opens --cache-dir, or returns nil without it.
func openDiskCache(c *cli.Context, log *slog.Logger) (*objread.DiskCache, error) {
	dir := c.String("cache-dir")
	if dir == "" {
		return nil, nil
	}
	size, err := parseSize(c.String("cache-dir-size"))
	if err != nil {
		return nil, fmt.Errorf("--cache-dir-size: %w", err)
	}
	if size == 0 {
		return nil, fmt.Errorf("--cache-dir-size must be positive")
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("--cache-dir: %w", err)
	}
	d, err := objread.OpenDiskCache(dir, size, log)
	if err != nil {
		return nil, fmt.Errorf("--cache-dir %s: %w", dir, err)
	}
	return d, nil
}

// resolveAuth picks the mode. With Prescient settings (environment,
// config.env or a saved profile) the mount signs in as the SDK does; a
// --stac-url without them is read anonymously, with S3 signed by the AWS
// chain (or not at all with --no-sign-request).
func resolveAuth(ctx context.Context, c *cli.Context, log *slog.Logger) (*catalogAuth, error) {
	stacURL := c.String("stac-url")
	ma, err := prescientAuth(ctx, c, log)
	if err != nil {
		return nil, err
	}
	if ma == nil {
		if stacURL == "" {
			return nil, fmt.Errorf("no catalog configured: run `prescientfs auth login`, set PRESCIENT_ENDPOINT_URL, or pass --stac-url URL")
		}
		return &catalogAuth{stacURL: stacURL}, nil
	}
	return &catalogAuth{
		stacURL:        firstNonEmpty(stacURL, ma.STACURL),
		header:         ma.Header,
		onUnauthorized: ma.OnUnauthorized,
		s3Creds:        ma.S3Creds,
		region:         ma.Region,
		close:          ma.Close,
		credStats:      ma.Stats,
		credExpiry:     ma.CredentialsExpiry,
		logStats: func(log *slog.Logger) {
			st := ma.Stats()
			log.Info("credential statistics", "token_renewals", st.TokenRenewals, "token_failures", st.TokenFailures,
				"credential_renewals", st.CredentialRenewals, "credential_failures", st.CredentialFailures,
				"credential_wait_p50", st.CredentialWaitP50, "credential_wait_max", st.CredentialWaitMax)
		},
	}, nil
}

// newS3Store builds the S3 client: AWS's own configuration chain
// (AWS_ENDPOINT_URL_S3, profiles, env credentials), path-style addressing
// on custom endpoints, and a connection pool sized for parallel ranged GETs.
//
// The SDK's own retries are kept short (3 attempts, backoff up to 1 s, no
// client-side retry quota, which a long outage would drain for the rest of
// the mount's life): the read path retries within --io-timeout itself,
// resuming ranged GETs where they broke.
func newS3Store(ctx context.Context, c *cli.Context, auth *catalogAuth, ioTimeout time.Duration) (*objread.S3Store, *url.URL, error) {
	hc := awshttp.NewBuildableClient().
		WithTransportOptions(func(t *http.Transport) { tuneTransport(t, ioTimeout) }).
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = min(ioTimeout, 30*time.Second) })
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.MaxBackoff = time.Second
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	region := firstNonEmpty(c.String("region"), auth.region)
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if c.Bool("no-sign-request") {
		opts = append(opts, config.WithCredentialsProvider(aws.AnonymousCredentials{}))
	} else if auth.s3Creds != nil {
		opts = append(opts, config.WithCredentialsProvider(auth.s3Creds))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	var endpoint *url.URL
	if ep := firstNonEmpty(os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL")); ep != "" {
		if endpoint, err = url.Parse(ep); err != nil || endpoint.Host == "" {
			return nil, nil, fmt.Errorf("AWS_ENDPOINT_URL_S3 %q is not a URL", ep)
		}
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = endpoint != nil
		// Ranged GETs carry no whole-object checksum to validate.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	// PRESCIENT_SDK_GETS=1 sends every ranged GET through the SDK's
	// GetObject (see fs/objread/s3get.go), for telling the two apart.
	return &objread.S3Store{Client: client, Creds: cfg.Credentials, NoDirectGets: os.Getenv("PRESCIENT_SDK_GETS") == "1"}, endpoint, nil
}

// tuneTransport sizes the pool for parallel ranged GETs and bounds the
// wait for response headers by the I/O timeout.
func tuneTransport(t *http.Transport, ioTimeout time.Duration) {
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 128
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = ioTimeout
	t.TLSHandshakeTimeout = min(ioTimeout, 10*time.Second)
}

func newTransport(ioTimeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: min(ioTimeout, 30*time.Second), KeepAlive: 30 * time.Second}
	t.DialContext = d.DialContext
	tuneTransport(t, ioTimeout)
	return t
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// parseSize reads sizes like "128MiB", "1GiB", "512KiB", "64MB" or bytes.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 256MiB)", s)
	}
	return n * mult, nil
}

// setMemoryLimit gives the Go runtime a soft limit a little above the read
// path's own (buffers + cache), so that freed prefetch buffers are
// collected before the heap doubles. GOMEMLIMIT, when set, wins.
func setMemoryLimit(readPath int64) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(readPath + 64<<20)
}

// newFSConfig is what a mount serves once wired: the catalog checked, the
// tree with its index, and the file system's configuration. The returned
// function closes the index.
func newFSConfig(ctx context.Context, c *cli.Context, w *wiring, log *slog.Logger) (fs.Config, func(), error) {
	timeout := max(30*time.Second, 2*c.Duration("io-timeout"))
	vctx, cancel := context.WithTimeout(ctx, timeout)
	_, err := w.client.Landing(vctx)
	cancel()
	if err != nil {
		return fs.Config{}, nil, fmt.Errorf("catalog %s: %w", w.client.URL(), err)
	}
	topt, err := treeOptions(c, log)
	if err != nil {
		return fs.Config{}, nil, err
	}
	topt.Resolver = w.resolver
	if topt.Index, err = openIndex(c, w.client.URL(), topt.Search, log); err != nil {
		return fs.Config{}, nil, err
	}
	closeIndex := func() {
		if topt.Index != nil {
			if err := topt.Index.Close(); err != nil {
				log.Warn("closing the index", "err", err)
			}
		}
	}
	tree := stacindex.NewTreeOptions(w.client, topt)
	if topt.Search != nil {
		sctx, scancel := context.WithTimeout(ctx, timeout)
		err := tree.StartSearch(sctx)
		scancel()
		if err != nil {
			closeIndex()
			return fs.Config{}, nil, fmt.Errorf("search: %w", err)
		}
	}
	return fs.Config{
		Tree:          tree,
		Store:         w.store,
		Opener:        w.opener,
		TTL:           c.Duration("metadata-ttl"),
		Log:           log,
		UID:           uint32(os.Getuid()), // #nosec G115 -- the kernel's uid_t is 32 bits
		GID:           uint32(os.Getgid()), // #nosec G115 -- the kernel's gid_t is 32 bits
		Stats:         w.statsJSON,
		VersionAtOpen: w.versionAtOpen,
		TIFFPageCache: c.Bool("tiff-page-cache"),
	}, closeIndex, nil
}
