package fs

import (
	"context"
	"errors"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/prescient/prescientfs/fs/objread"
	"github.com/prescient/prescientfs/stacindex"
)

// itemDir holds item.json and one file per asset.
type itemDir struct {
	fusefs.Inode
	readOnly
	fs         *fsys
	collection string // collection ID
	id         string // item ID
}

// newItemDir makes the node of an item directory. The directory by ID
// and the one under a day (dated) get different inode numbers: the
// kernel accepts no directory with two parents. Their files share theirs.
func newItemDir(ctx context.Context, parent *fusefs.Inode, f *fsys, coll string, it *stacindex.ItemEntry, dated bool, out *fuse.EntryOut) *fusefs.Inode {
	out.Mode = dirMode
	setTime(&out.Attr, it.Time)
	f.setOwner(&out.Attr)
	n := ino(coll, it.ID)
	if dated {
		n = ino(coll, "date", it.ID)
	}
	node := &itemDir{fs: f, collection: coll, id: it.ID}
	return parent.NewInode(ctx, node, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: n})
}

var (
	_ fusefs.NodeLookuper  = (*itemDir)(nil)
	_ fusefs.NodeReaddirer = (*itemDir)(nil)
	_ fusefs.NodeGetattrer = (*itemDir)(nil)
)

func (d *itemDir) entry(ctx context.Context) (*stacindex.ItemEntry, error) {
	return d.fs.Tree.Item(ctx, d.collection, d.id)
}

func (d *itemDir) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = dirMode
	if it, err := d.entry(ctx); err == nil {
		setTime(&out.Attr, it.Time)
	}
	d.fs.setOwner(&out.Attr)
	return 0
}

func (d *itemDir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	it, err := d.entry(ctx)
	if err != nil {
		return nil, d.fs.fail("readdir", d.Path(nil), err)
	}
	missing := d.statAll(ctx, it.Assets)
	entries := make([]fuse.DirEntry, 0, len(it.Assets)+1)
	entries = append(entries, fuse.DirEntry{Name: stacindex.ItemJSON, Mode: syscall.S_IFREG, Ino: ino(d.collection, d.id, stacindex.ItemJSON)})
	for i, a := range it.Assets {
		if missing[i] {
			continue
		}
		entries = append(entries, fuse.DirEntry{Name: a.Name, Mode: syscall.S_IFREG, Ino: ino(d.collection, d.id, "asset", a.Key)})
	}
	return fusefs.NewListDirStream(entries), 0
}

// statAll HEADs, concurrently, the assets whose size the catalog does not
// give, so that the `ls -l` after a listing finds them cached. It reports
// which assets do not exist: they are left out of the listing (a missing
// asset with a file:size still appears, and fails with ENOENT on open).
func (d *itemDir) statAll(ctx context.Context, assets []stacindex.AssetEntry) []bool {
	missing := make([]bool, len(assets))
	sem := make(chan struct{}, d.fs.StatConcurrency)
	var wg sync.WaitGroup
	for i, a := range assets {
		if a.Size >= 0 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, err := d.fs.stats.stat(ctx, a.Loc)
			if errors.Is(err, objread.ErrNotFound) {
				missing[i] = true
				d.fs.Log.Warn("asset object not found; left out of the listing", "path", d.Path(nil)+"/"+a.Name, "object", a.Loc.String())
			}
		}()
	}
	wg.Wait()
	return missing
}

func (d *itemDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	it, err := d.entry(ctx)
	if err != nil {
		return nil, d.fs.fail("lookup", d.Path(nil)+"/"+name, err)
	}
	if name == stacindex.ItemJSON {
		raw := it.Raw
		node := &jsonFile{fs: d.fs, load: func(ctx context.Context) ([]byte, error) {
			if it, err := d.entry(ctx); err == nil {
				return it.Raw, nil
			}
			return raw, nil
		}}
		return lookupJSON(ctx, &d.Inode, d.fs, node, out, ino(d.collection, d.id, name))
	}
	for _, a := range it.Assets {
		if a.Name != name {
			continue
		}
		node := &assetFile{fs: d.fs, asset: a, itemTime: it.Time}
		if errno := node.fillAttr(ctx, &out.Attr); errno != 0 {
			return nil, errno
		}
		return d.NewInode(ctx, node, fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: ino(d.collection, d.id, "asset", a.Key)}), 0
	}
	return nil, syscall.ENOENT
}
