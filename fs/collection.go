package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/prescient/prescientfs/stacindex"
)

// collectionDir holds collection.json and one directory per item.
type collectionDir struct {
	fusefs.Inode
	readOnly
	fs *fsys
	id string // collection ID
}

var (
	_ fusefs.NodeLookuper  = (*collectionDir)(nil)
	_ fusefs.NodeReaddirer = (*collectionDir)(nil)
	_ fusefs.NodeGetattrer = (*collectionDir)(nil)
)

func (d *collectionDir) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = dirMode
	d.fs.setOwner(&out.Attr)
	return 0
}

func (d *collectionDir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	items, err := d.fs.Tree.Items(ctx, d.id)
	if err != nil {
		return nil, d.fs.fail("readdir", d.Path(nil), err)
	}
	entries := make([]fuse.DirEntry, 0, len(items)+1)
	entries = append(entries, fuse.DirEntry{Name: stacindex.CollectionJSON, Mode: syscall.S_IFREG, Ino: ino(d.id, stacindex.CollectionJSON)})
	for _, it := range items {
		entries = append(entries, fuse.DirEntry{Name: it.Name, Mode: syscall.S_IFDIR, Ino: ino(d.id, it.ID)})
	}
	return fusefs.NewListDirStream(entries), 0
}

func (d *collectionDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if name == stacindex.CollectionJSON {
		node := &jsonFile{fs: d.fs, load: d.collectionJSON}
		return d.lookupJSON(ctx, node, out, ino(d.id, name))
	}
	it, err := d.fs.Tree.Item(ctx, d.id, name)
	if err != nil {
		return nil, d.fs.fail("lookup", d.Path(nil)+"/"+name, err)
	}
	out.Mode = dirMode
	setTime(&out.Attr, it.Time)
	d.fs.setOwner(&out.Attr)
	node := &itemDir{fs: d.fs, collection: d.id, name: name, id: it.ID}
	return d.NewInode(ctx, node, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(d.id, it.ID)}), 0
}

func (d *collectionDir) collectionJSON(ctx context.Context) ([]byte, error) {
	colls, err := d.fs.Tree.Collections(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range colls {
		if c.ID == d.id {
			return c.Raw, nil
		}
	}
	return nil, stacindex.ErrNotFound
}

// lookupJSON answers a lookup of a JSON document node.
func (d *collectionDir) lookupJSON(ctx context.Context, node *jsonFile, out *fuse.EntryOut, n uint64) (*fusefs.Inode, syscall.Errno) {
	return lookupJSON(ctx, &d.Inode, d.fs, node, out, n)
}
