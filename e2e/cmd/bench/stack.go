package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/prescient/prescientfs/e2e/internal/fixtures"
	"github.com/prescient/prescientfs/e2e/internal/minio"
	"github.com/prescient/prescientfs/e2e/internal/stacserver"
)

const (
	bucket     = "prescient-bench"
	benchColl  = fixtures.BenchCollection // "bench"
	benchItem  = "big"
	treeColl   = "tree"
	coldItem   = "cold"   // item of the bench collection with the small objects
	scenesColl = "scenes" // collection of the scene COGs, one item each
	coldSize   = 4 << 20  // bytes of each small object
	treeObject = 1 << 10  // bytes of each object in the tree collection
)

// object is one S3 object and where it appears below a prescientfs mount.
type object struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
	SHA  string `json:"sha256"`
	Rel  string `json:"path"` // below the prescientfs mountpoint
}

// stack is the running MinIO, STAC server, counting proxy and the data.
type stack struct {
	minio *minio.Server
	stac  *stacserver.Server
	proxy *countingProxy
	s3    *s3.Client // tuned for the direct baselines
	// proxyS3 is the same client through proxy: the baseline of a
	// loopback workload whose mount side goes through it to be counted.
	proxyS3 *s3.Client
	objs    []object // the random objects
	cog     object
	cold    []object // small objects for the first-64-KiB reads
	// scenes are the scene COGs of the gdalinfo workload (the same bytes
	// under a key each).
	scenes []object
}

func startStack(ctx context.Context, c config, log *slog.Logger, cl *cleaner) (*stack, error) {
	st := &stack{}
	dataDir := filepath.Join(c.dir, "minio-data")
	_ = os.RemoveAll(dataDir) // per run: the root credentials are new every time
	var minioLog io.Writer
	if c.verbose {
		minioLog = os.Stderr
	}
	m, err := minio.Start(ctx, minio.Options{Dir: dataDir, Logger: minioLog})
	if err != nil {
		return nil, err
	}
	cl.add("stop MinIO", func() { m.Stop(); _ = os.RemoveAll(dataDir) })
	st.minio = m
	log.Info("minio ready", "endpoint", m.Endpoint)

	quiet := log
	if !c.verbose {
		quiet = slog.New(slog.DiscardHandler)
	}
	s, err := stacserver.New(stacserver.Options{Logger: quiet})
	if err != nil {
		return nil, err
	}
	cl.add("stop STAC server", s.Close)
	st.stac = s

	p, err := newCountingProxy(m.Endpoint, shape{name: "loopback"})
	if err != nil {
		return nil, err
	}
	cl.add("stop proxy", p.close)
	st.proxy = p
	st.s3 = directClient(m, m.Endpoint)
	st.proxyS3 = directClient(m, p.URL)

	if err := st.makeData(ctx, c, log); err != nil {
		return nil, err
	}
	return st, nil
}

// directClient is an aws-sdk-go-v2 client with a transport sized for
// parallel streams and no response checksum work beyond what S3 requires:
// the fastest plain SDK reader, which is the baseline.
func directClient(m *minio.Server, endpoint string) *s3.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 64
	tr.DisableCompression = true
	tr.ReadBufferSize = 256 << 10
	return s3.New(s3.Options{
		Region:                     minio.Region,
		BaseEndpoint:               aws.String(endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
		HTTPClient:                 &http.Client{Transport: tr},
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
	})
}

// makeData uploads the random objects, the big COG and the small tree
// objects, and serves a catalog of them.
func (st *stack) makeData(ctx context.Context, c config, log *slog.Logger) error {
	start := time.Now()
	up := st.minio.Client()
	if err := fixtures.EnsureBucket(ctx, up, bucket); err != nil {
		return err
	}

	// Random objects, two uploads at a time (BigObject keeps a few parts in
	// memory). BigObject's bytes are deterministic for the key, so a failed
	// upload is simply redone: its multipart upload can send a part whose
	// buffer is being refilled (XAmzContentSHA256Mismatch) when parts
	// finish out of order.
	// Only the concurrent streams and the batch need more than one.
	nobj := c.streams
	if only := splitList(c.only); len(only) > 0 && !slices.Contains(only, "conc") && !slices.Contains(only, "batch") && !slices.Contains(only, "rclone") {
		nobj = 1
	}
	st.objs = make([]object, nobj)
	errs := make([]error, nobj)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i := range st.objs {
		key := fmt.Sprintf("%s/%s/random%d.bin", benchColl, benchItem, i+1)
		st.objs[i] = object{Key: key, Size: int64(c.objectSize), Rel: filepath.Join(benchColl, benchItem, fmt.Sprintf("random%d.bin", i+1))}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			for attempt := 1; attempt <= 3; attempt++ {
				st.objs[i].SHA, errs[i] = fixtures.BigObject(ctx, up, bucket, key, int64(c.objectSize))
				if errs[i] == nil || ctx.Err() != nil {
					return
				}
				log.Warn("upload failed; retrying", "key", key, "attempt", attempt, "err", errs[i])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return fmt.Errorf("upload random objects: %w", err)
		}
	}
	log.Info("random objects uploaded", "count", nobj, "size", formatSize(int64(c.objectSize)), "elapsed", time.Since(start).Round(time.Millisecond))

	// The COG is made once and cached in -dir.
	cogStart := time.Now()
	log.Info("making (or reusing) the big COG", "side", c.cogSide, "cache", filepath.Join(c.dir, "cog"))
	path, err := fixtures.BigCOG(ctx, c.dir, c.cogSide)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%s/%s/visual.tif", benchColl, benchItem)
	size, sha, err := fixtures.UploadFile(ctx, up, bucket, key, path)
	if err != nil {
		return err
	}
	st.cog = object{Key: key, Size: size, SHA: sha, Rel: filepath.Join(benchColl, benchItem, "visual.tif")}
	log.Info("COG uploaded", "size", formatSize(size), "elapsed", time.Since(cogStart).Round(time.Millisecond))

	if err := st.uploadSmall(ctx, c, path, log); err != nil {
		return err
	}

	tree, err := st.uploadTree(ctx, up, c.treeItems)
	if err != nil {
		return err
	}
	cat, err := st.catalog(tree)
	if err != nil {
		return err
	}
	st.stac.SetCatalog(cat)
	log.Info("catalog ready", "stac", st.stac.URL(), "elapsed", time.Since(start).Round(time.Millisecond))
	return nil
}

// uploadTree puts two small objects per item of the tree collection and
// returns their keys by item.
func (st *stack) uploadTree(ctx context.Context, c *s3.Client, items int) ([][]string, error) {
	keys := make([][]string, items)
	work := make(chan string)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	body := make([]byte, treeObject)
	for i := range body {
		body[i] = byte(i * 7)
	}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				_, err := c.PutObject(ctx, &s3.PutObjectInput{
					Bucket: aws.String(bucket), Key: aws.String(k),
					Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
				}, func(o *s3.Options) { o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired })
				if err != nil {
					select {
					case errc <- fmt.Errorf("put %s: %w", k, err):
					default:
					}
				}
			}
		}()
	}
feed:
	for i := range keys {
		for _, name := range []string{"data.bin", "meta.xml"} {
			k := fmt.Sprintf("%s/item-%04d/%s", treeColl, i, name)
			keys[i] = append(keys[i], k)
			select {
			case work <- k:
			case <-ctx.Done():
				break feed
			case err := <-errc:
				close(work)
				wg.Wait()
				return nil, err
			}
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return keys, nil
}

// catalog describes the objects: collection "bench" with one item holding
// the random objects and the COG, collection "tree" with many small items.
func (st *stack) catalog(tree [][]string) (*fixtures.Catalog, error) {
	stacURL := st.stac.URL()
	cat := &fixtures.Catalog{STACURL: stacURL, Bucket: bucket}

	var assets []fixtures.AssetFixture
	docs := map[string]any{}
	for i, o := range st.objs {
		k := fmt.Sprintf("random%d", i+1)
		assets = append(assets, assetFixture(k, o))
		docs[k] = assetDoc(o, "application/octet-stream", "data")
	}
	assets = append(assets, assetFixture("visual", st.cog))
	docs["visual"] = assetDoc(st.cog, fixtures.COGType, "visual")
	item, err := itemFixture(stacURL, benchColl, benchItem, assets, docs)
	if err != nil {
		return nil, err
	}
	benchItems := []fixtures.Item{item}
	assets, docs = nil, map[string]any{}
	for _, o := range st.cold {
		k := strings.TrimSuffix(filepath.Base(o.Key), ".bin")
		assets = append(assets, assetFixture(k, o))
		docs[k] = assetDoc(o, "application/octet-stream", "data")
	}
	if len(assets) > 0 {
		item, err := itemFixture(stacURL, benchColl, coldItem, assets, docs)
		if err != nil {
			return nil, err
		}
		benchItems = append(benchItems, item)
	}
	coll, err := collectionFixture(stacURL, benchColl, "Benchmark objects", benchItems)
	if err != nil {
		return nil, err
	}
	cat.Collections = append(cat.Collections, coll)

	if len(st.scenes) > 0 {
		var items []fixtures.Item
		for _, o := range st.scenes {
			id := filepath.Base(filepath.Dir(o.Key))
			it, err := itemFixture(stacURL, scenesColl, id, []fixtures.AssetFixture{assetFixture("visual", o)},
				map[string]any{"visual": assetDoc(o, fixtures.COGType, "visual")})
			if err != nil {
				return nil, err
			}
			items = append(items, it)
		}
		coll, err := collectionFixture(stacURL, scenesColl, "Scenes for gdalinfo", items)
		if err != nil {
			return nil, err
		}
		cat.Collections = append(cat.Collections, coll)
	}

	var items []fixtures.Item
	for i, keys := range tree {
		var assets []fixtures.AssetFixture
		docs := map[string]any{}
		for _, k := range keys {
			o := object{Key: k, Size: treeObject}
			name := strings.TrimSuffix(filepath.Base(k), filepath.Ext(k))
			assets = append(assets, assetFixture(name, o))
			docs[name] = assetDoc(o, "application/octet-stream", "data")
		}
		it, err := itemFixture(stacURL, treeColl, fmt.Sprintf("item-%04d", i), assets, docs)
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	coll, err = collectionFixture(stacURL, treeColl, "Many small items", items)
	if err != nil {
		return nil, err
	}
	cat.Collections = append(cat.Collections, coll)
	return cat, nil
}

func assetFixture(key string, o object) fixtures.AssetFixture {
	return fixtures.AssetFixture{Key: key, Href: "s3://" + bucket + "/" + o.Key, Servable: true,
		Size: o.Size, SHA256: o.SHA, HasFileSize: true, Bucket: bucket, ObjectKey: o.Key}
}

func assetDoc(o object, typ, role string) map[string]any {
	return map[string]any{"href": "s3://" + bucket + "/" + o.Key, "type": typ, "roles": []string{role}, "file:size": o.Size}
}

func itemFixture(stacURL, coll, id string, assets []fixtures.AssetFixture, docs map[string]any) (fixtures.Item, error) {
	self := fixtures.ItemURL(stacURL, coll, id)
	collURL := fixtures.CollectionURL(stacURL, coll)
	doc := map[string]any{
		"type":            "Feature",
		"stac_version":    fixtures.StacVersion,
		"stac_extensions": []string{"https://stac-extensions.github.io/file/v2.1.0/schema.json"},
		"id":              id,
		"collection":      coll,
		"geometry": map[string]any{"type": "Polygon",
			"coordinates": [][][]float64{{{12, 45}, {12.1, 45}, {12.1, 45.1}, {12, 45.1}, {12, 45}}}},
		"bbox":       []float64{12, 45, 12.1, 45.1},
		"properties": map[string]any{"datetime": "2024-09-01T00:00:00Z", "updated": "2024-09-01T01:00:00Z"},
		"links": []fixtures.Link{
			{Rel: "self", Href: self, Type: "application/geo+json"},
			{Rel: "parent", Href: collURL, Type: "application/json"},
			{Rel: "collection", Href: collURL, Type: "application/json"},
			{Rel: "root", Href: stacURL, Type: "application/json"},
		},
		"assets": docs,
	}
	data, err := json.Marshal(doc)
	return fixtures.Item{ID: id, JSON: data, Assets: assets}, err
}

func collectionFixture(stacURL, id, title string, items []fixtures.Item) (fixtures.Collection, error) {
	self := fixtures.CollectionURL(stacURL, id)
	doc := map[string]any{
		"type":            "Collection",
		"stac_version":    fixtures.StacVersion,
		"stac_extensions": []string{},
		"id":              id,
		"title":           title,
		"description":     title + " (prescientfs bench)",
		"license":         "proprietary",
		"extent": map[string]any{
			"spatial":  map[string]any{"bbox": [][]float64{{-180, -90, 180, 90}}},
			"temporal": map[string]any{"interval": [][]any{{"2024-01-01T00:00:00Z", nil}}},
		},
		"links": []fixtures.Link{
			{Rel: "self", Href: self, Type: "application/json"},
			{Rel: "root", Href: stacURL, Type: "application/json"},
			{Rel: "parent", Href: stacURL, Type: "application/json"},
			{Rel: "items", Href: self + "/items", Type: "application/geo+json"},
		},
	}
	data, err := json.Marshal(doc)
	return fixtures.Collection{ID: id, JSON: data, Items: items}, err
}

// uploadSmall uploads the small objects of the first-64-KiB workload and
// the scene COGs of the gdalinfo workload: one 2048×2048 COG cut from the
// big one (made once, cached in -dir), under -scenes keys.
func (st *stack) uploadSmall(ctx context.Context, c config, bigCOG string, log *slog.Logger) error {
	up := st.minio.Client()
	for i := range c.firstFiles {
		key := fmt.Sprintf("%s/%s/f%02d.bin", benchColl, coldItem, i+1)
		sha, err := fixtures.BigObject(ctx, up, bucket, key, coldSize)
		if err != nil {
			return fmt.Errorf("upload %s: %w", key, err)
		}
		st.cold = append(st.cold, object{Key: key, Size: coldSize, SHA: sha,
			Rel: filepath.Join(benchColl, coldItem, fmt.Sprintf("f%02d.bin", i+1))})
	}
	if c.scenes < 1 {
		return nil
	}
	side := min(2048, c.cogSide)
	path := filepath.Join(c.dir, fmt.Sprintf("scene-%d-from-%d.tif", side, c.cogSide))
	if _, err := os.Stat(path); err != nil {
		tmp := path + ".tmp.tif"
		cmd := exec.CommandContext(ctx, "gdal_translate", "-q", "-of", "COG", "-co", "BLOCKSIZE=512",
			"-srcwin", "0", "0", strconv.Itoa(side), strconv.Itoa(side), bigCOG, tmp)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("make the scene COG: %v: %s", err, bytes.TrimSpace(out))
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	for i := range c.scenes {
		id := fmt.Sprintf("scene-%02d", i+1)
		key := fmt.Sprintf("%s/%s/visual.tif", scenesColl, id)
		size, sha, err := fixtures.UploadFile(ctx, up, bucket, key, path)
		if err != nil {
			return err
		}
		st.scenes = append(st.scenes, object{Key: key, Size: size, SHA: sha, Rel: filepath.Join(scenesColl, id, "visual.tif")})
	}
	log.Info("small objects and scenes uploaded", "small", len(st.cold), "scenes", len(st.scenes))
	return nil
}
