package stacindex

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Index is the persistent index: listings (the IDs of a collection, a day
// or a search, in order), item documents, the names hashed IDs got, and
// the layout auto chose, on disk so that memory stays bounded and a
// remount lists at once. It is a cache: deleting it at any time loses
// nothing but speed.
//
// It is a go.etcd.io/bbolt file: pure Go (no cgo, one static binary), a
// single file per catalog and search, ACID transactions with copy-on-write
// pages (a mount killed in the middle of a write leaves the last committed
// state, never a half-written listing: a listing becomes visible only in
// the transaction that completes it), and an flock that keeps two
// processes from writing one file. A second mount of the same catalog
// waits IndexLockTimeout for that lock and then runs without an index (a
// read-only open needs the same lock, so it would not help).
type Index struct {
	db   *bolt.DB
	log  *slog.Logger
	path string
	// broken: the file proved damaged while open; the index is no longer
	// used (and the file is gone: the next mount builds a new one).
	broken atomic.Bool
}

// IndexLockTimeout is how long OpenIndex waits for another mount's lock.
const IndexLockTimeout = time.Second

// ErrIndexLocked: another process holds the index.
var ErrIndexLocked = errors.New("the index is in use by another mount")

const indexVersion = "3"

var (
	bktMeta     = []byte("meta")
	bktListings = []byte("listings") // key -> listingMeta
	bktItems    = []byte("items")    // coll\x00id -> fetched (8 bytes), listed (1), CRC-32C of raw (4), raw JSON
	bktNames    = []byte("names")    // coll\x00name -> id (hashed names only)
	bktModes    = []byte("modes")    // coll\x00maxListing -> "flat" | "date"
	genPrefix   = []byte("gen\x00")  // top-level buckets of listing entries
)

// IndexPath is the index file for a catalog URL and search (nil: the
// whole catalog) in dir: dir/<16 hex digits of sha256(url, search)>.db.
func IndexPath(dir, catalogURL string, s *Search) string {
	sum := sha256.Sum256([]byte(catalogURL + "\x00" + s.Key()))
	return filepath.Join(dir, hex.EncodeToString(sum[:8])+".db")
}

// OpenIndex opens or creates the index at path. A file that is not a
// valid index (damaged, truncated, another version) is replaced by an
// empty one. ErrIndexLocked when another mount holds it.
func OpenIndex(path string, log *slog.Logger) (*Index, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	ix, err := openIndex(path, log)
	if err == nil || errors.Is(err, ErrIndexLocked) {
		return ix, err
	}
	log.Warn("index damaged or from another version; rebuilding it", "path", path, "err", err)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return openIndex(path, log)
}

func openIndex(path string, log *slog.Logger) (ix *Index, err error) {
	defer func() {
		// bbolt panics on some kinds of damaged pages: a damaged file. (Not
		// NoFreelistSync: its freelist rebuild at open walks the file on a
		// goroutine of its own, where such a panic kills the process.)
		if r := recover(); r != nil {
			err = fmt.Errorf("damaged index: %v", r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: IndexLockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, ErrIndexLocked)
	}
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		m, err := tx.CreateBucketIfNotExists(bktMeta)
		if err != nil {
			return err
		}
		if v := m.Get([]byte("version")); v != nil && string(v) != indexVersion {
			return fmt.Errorf("index version %q", v)
		}
		if err := m.Put([]byte("version"), []byte(indexVersion)); err != nil {
			return err
		}
		for _, b := range [][]byte{bktListings, bktItems, bktNames, bktModes} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// Entries of listings a killed mount did not complete.
		live := map[string]bool{}
		err = tx.Bucket(bktListings).ForEach(func(k, v []byte) error {
			if m, ok := parseListingMeta(v); ok {
				live[string(genName(k, m.gen))] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		var dead [][]byte
		err = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if bytes.HasPrefix(name, genPrefix) && !live[string(name)] {
				dead = append(dead, bytes.Clone(name))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, name := range dead {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close() // the error that matters is err
		return nil, err
	}
	ix = &Index{db: db, log: log, path: path}
	if st, err := os.Stat(path); err == nil && st.Size() <= maxCheckedSize {
		go ix.check()
	}
	return ix, nil
}

// maxCheckedSize bounds the files check walks: its read transaction holds
// back writes that grow the file until it ends.
const maxCheckedSize = 512 << 20

// check walks the whole file once, in the background: damage that opening
// does not see (a page overwritten in the middle) retires the index.
func (ix *Index) check() {
	defer func() {
		if r := recover(); r != nil {
			ix.retire(fmt.Errorf("%v", r))
		}
	}()
	// Not tx.Check: it walks on a goroutine of its own, where bbolt's
	// assertions on a damaged page panic beyond any recover.
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					return walk(nb)
				}
			}
			return nil
		})
	}
	err := ix.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
	})
	if err != nil {
		ix.retire(err)
	}
}

// retire stops using a damaged index and removes its file.
func (ix *Index) retire(err error) {
	if ix.broken.Swap(true) {
		return
	}
	ix.log.Warn("index damaged; running without it, the next mount rebuilds it", "path", ix.path, "err", err)
	if err := os.Remove(ix.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		ix.log.Warn("could not remove the damaged index; delete it by hand", "path", ix.path, "err", err)
	}
}

// Close closes the file.
func (ix *Index) Close() error { return ix.db.Close() }

type listingMeta struct {
	gen     uint64
	fetched time.Time
	count   int
	crc     uint32 // CRC-32C of the IDs, each followed by NUL
}

func (m listingMeta) bytes() []byte {
	return fmt.Appendf(nil, "%d %d %d %d", m.gen, m.fetched.UnixNano(), m.count, m.crc)
}

func parseListingMeta(v []byte) (listingMeta, bool) {
	var m listingMeta
	var ns int64
	if _, err := fmt.Sscanf(string(v), "%d %d %d %d", &m.gen, &ns, &m.count, &m.crc); err != nil {
		return m, false
	}
	m.fetched = time.Unix(0, ns)
	return m, true
}

// castagnoli is the CRC-32C table: bbolt checksums only its meta pages,
// so the index checks its own values (a damaged page must not serve a
// wrong name or document).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errDamaged = errors.New("index value fails its checksum")

func idsCRC(crc uint32, id []byte) uint32 {
	return crc32.Update(crc32.Update(crc, castagnoli, id), castagnoli, []byte{0})
}

func genName(key []byte, gen uint64) []byte {
	return []byte(string(genPrefix) + string(key) + "\x00" + strconv.FormatUint(gen, 10))
}

// Listing returns a complete listing's IDs (in the order served) and when
// it was fetched; ok false when the index has none.
func (ix *Index) Listing(key string) (ids []string, fetched time.Time, ok bool) {
	ix.view(func(tx *bolt.Tx) error {
		m, found := parseListingMeta(tx.Bucket(bktListings).Get([]byte(key)))
		if !found {
			return nil
		}
		b := tx.Bucket(genName([]byte(key), m.gen))
		if b == nil {
			return nil
		}
		ids = make([]string, 0, m.count)
		var crc uint32
		err := b.ForEach(func(_, v []byte) error {
			ids = append(ids, string(v))
			crc = idsCRC(crc, v)
			return nil
		})
		if err != nil {
			ids = nil
			return err
		}
		if crc != m.crc || len(ids) != m.count {
			ids = nil
			return errDamaged
		}
		fetched, ok = m.fetched, true
		return nil
	})
	return ids, fetched, ok
}

// listingWriter writes one new generation of a listing, page by page; it
// replaces the old one only when complete.
type listingWriter struct {
	ix  *Index
	key []byte
	gen uint64
	n   uint64
	crc uint32
}

func (ix *Index) newListing(key string) *listingWriter {
	return &listingWriter{ix: ix, key: []byte(key), gen: uint64(time.Now().UnixNano())}
}

// page adds a page of entries and their item documents.
func (w *listingWriter) page(coll string, items []Item, names []string, now time.Time) {
	w.ix.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(genName(w.key, w.gen))
		if err != nil {
			return err
		}
		// Keys arrive mostly in order (sequence numbers; a listing's IDs):
		// full pages, not bbolt's half-full splits.
		b.FillPercent = 1
		tx.Bucket(bktItems).FillPercent = 0.9
		for i, it := range items {
			w.n++
			w.crc = idsCRC(w.crc, []byte(it.ID))
			if err := b.Put(binary.BigEndian.AppendUint64(nil, w.n), []byte(it.ID)); err != nil {
				return err
			}
			if err := putItem(tx, coll, it.ID, it.Raw, now, true); err != nil {
				return err
			}
			if names[i] != it.ID {
				if err := tx.Bucket(bktNames).Put([]byte(coll+"\x00"+names[i]), []byte(it.ID)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// complete makes the new generation the listing, and drops the old one.
func (w *listingWriter) complete(fetched time.Time) {
	w.ix.update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(genName(w.key, w.gen)); err != nil {
			return err
		}
		lb := tx.Bucket(bktListings)
		if old, ok := parseListingMeta(lb.Get(w.key)); ok && old.gen != w.gen {
			if err := tx.DeleteBucket(genName(w.key, old.gen)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
		}
		return lb.Put(w.key, listingMeta{gen: w.gen, fetched: fetched, count: int(w.n), crc: w.crc}.bytes()) // #nosec G115 -- w.n counts the entries this mount wrote, far below MaxInt
	})
}

// abandon drops an incomplete generation.
func (w *listingWriter) abandon() {
	w.ix.update(func(tx *bolt.Tx) error {
		err := tx.DeleteBucket(genName(w.key, w.gen))
		if errors.Is(err, berrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

func putItem(tx *bolt.Tx, coll, id string, raw []byte, fetched time.Time, listed bool) error {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 13+len(raw)), uint64(fetched.UnixNano()))
	flag := byte(0)
	if listed {
		flag = 1
	}
	v = binary.BigEndian.AppendUint32(append(v, flag), crc32.Checksum(raw, castagnoli))
	return tx.Bucket(bktItems).Put([]byte(coll+"\x00"+id), append(v, raw...))
}

// PutItem keeps one item document fetched by its ID.
func (ix *Index) PutItem(coll, id string, raw []byte, fetched time.Time) {
	ix.update(func(tx *bolt.Tx) error { return putItem(tx, coll, id, raw, fetched, false) })
}

// Item returns an item document, when it was fetched, and whether it came
// with a listing (which refreshes it).
func (ix *Index) Item(coll, id string) (raw []byte, fetched time.Time, listed, ok bool) {
	ix.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktItems).Get([]byte(coll + "\x00" + id))
		if v == nil {
			return nil
		}
		if len(v) < 13 || binary.BigEndian.Uint32(v[9:]) != crc32.Checksum(v[13:], castagnoli) {
			return errDamaged
		}
		ns := binary.BigEndian.Uint64(v)
		if ns > math.MaxInt64 {
			return errDamaged
		}
		fetched = time.Unix(0, int64(ns))
		listed = v[8] == 1
		raw, ok = bytes.Clone(v[13:]), true
		return nil
	})
	return raw, fetched, listed, ok
}

// NameID resolves a hashed name some listing gave out.
func (ix *Index) NameID(coll, name string) (id string, ok bool) {
	ix.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bktNames).Get([]byte(coll + "\x00" + name)); v != nil {
			id, ok = string(v), true
		}
		return nil
	})
	return id, ok
}

// Mode returns the layout auto chose for a collection at a max listing.
func (ix *Index) Mode(coll string, maxListing int) (Layout, bool) {
	var l Layout
	ix.view(func(tx *bolt.Tx) error {
		switch string(tx.Bucket(bktModes).Get([]byte(coll + "\x00" + strconv.Itoa(maxListing)))) {
		case "flat":
			l = LayoutFlat
		case "date":
			l = LayoutDate
		}
		return nil
	})
	return l, l != 0
}

// SetMode records the layout auto chose.
func (ix *Index) SetMode(coll string, maxListing int, l Layout) {
	ix.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bktModes).Put([]byte(coll+"\x00"+strconv.Itoa(maxListing)), []byte(l.String()))
	})
}

// view and update log errors instead of returning them: the index is a
// cache, and a failing one only costs catalog requests.
// bbolt panics on some damaged pages: that retires the index.
func (ix *Index) view(fn func(*bolt.Tx) error) {
	if ix.broken.Load() {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			ix.retire(fmt.Errorf("%v", r))
		}
	}()
	if err := ix.db.View(fn); errors.Is(err, errDamaged) {
		ix.retire(err)
	} else if err != nil {
		ix.log.Warn("index read failed", "err", err)
	}
}

func (ix *Index) update(fn func(*bolt.Tx) error) {
	if ix.broken.Load() {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			ix.retire(fmt.Errorf("%v", r))
		}
	}()
	if err := ix.db.Update(fn); err != nil {
		ix.log.Warn("index write failed", "err", err)
	}
}

// collectionsKey is the listing of collection IDs; their documents are
// kept as items of the collection named collectionsColl.
const (
	collectionsKey  = "collections"
	collectionsColl = "\x00collections"
)

func (ix *Index) putCollections(cs []Collection, now time.Time) {
	w := ix.newListing(collectionsKey)
	items := make([]Item, len(cs))
	names := make([]string, len(cs))
	for i, c := range cs {
		items[i], names[i] = Item{ID: c.ID, Raw: c.Raw}, c.ID
	}
	w.page(collectionsColl, items, names, now)
	w.complete(now)
}

func (ix *Index) collections() ([]CollectionEntry, time.Time, bool) {
	ids, fetched, ok := ix.Listing(collectionsKey)
	if !ok {
		return nil, time.Time{}, false
	}
	out := make([]CollectionEntry, 0, len(ids))
	for _, id := range ids {
		raw, _, _, ok := ix.Item(collectionsColl, id)
		if !ok {
			return nil, time.Time{}, false
		}
		out = append(out, CollectionEntry{ID: id, Name: CollectionName(id), Raw: raw, Extent: temporalExtent(raw)})
	}
	return out, fetched, true
}

// pageIDs adds entries without documents.
func (w *listingWriter) pageIDs(items []Item) {
	w.ix.update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(genName(w.key, w.gen))
		if err != nil {
			return err
		}
		for _, it := range items {
			w.n++
			w.crc = idsCRC(w.crc, []byte(it.ID))
			if err := b.Put(binary.BigEndian.AppendUint64(nil, w.n), []byte(it.ID)); err != nil {
				return err
			}
		}
		return nil
	})
}
