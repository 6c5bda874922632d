package fs

import (
	"context"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/prescient/prescientfs/stacindex"
)

// itemDir holds item.json and one file per asset.
type itemDir struct {
	fusefs.Inode
	readOnly
	fs         *fsys
	collection string // collection ID
	name       string // this directory's name in the collection
	id         string // item ID
}

var (
	_ fusefs.NodeLookuper  = (*itemDir)(nil)
	_ fusefs.NodeReaddirer = (*itemDir)(nil)
	_ fusefs.NodeGetattrer = (*itemDir)(nil)
)

func (d *itemDir) entry(ctx context.Context) (*stacindex.ItemEntry, error) {
	return d.fs.Tree.Item(ctx, d.collection, d.name)
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
	d.statAll(ctx, it.Assets)
	entries := make([]fuse.DirEntry, 0, len(it.Assets)+1)
	entries = append(entries, fuse.DirEntry{Name: stacindex.ItemJSON, Mode: syscall.S_IFREG, Ino: ino(d.collection, d.id, stacindex.ItemJSON)})
	for _, a := range it.Assets {
		entries = append(entries, fuse.DirEntry{Name: a.Name, Mode: syscall.S_IFREG, Ino: ino(d.collection, d.id, "asset", a.Key)})
	}
	return fusefs.NewListDirStream(entries), 0
}

// statAll HEADs, concurrently, the assets whose size the catalog does not
// give, so that the `ls -l` after a listing finds them cached.
func (d *itemDir) statAll(ctx context.Context, assets []stacindex.AssetEntry) {
	sem := make(chan struct{}, d.fs.StatConcurrency)
	var wg sync.WaitGroup
	for _, a := range assets {
		if a.Size >= 0 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			d.fs.stats.stat(ctx, a.Loc) // errors surface on lookup
		}()
	}
	wg.Wait()
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
