package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// rootDir lists the catalog's collections.
type rootDir struct {
	fusefs.Inode
	readOnly
	fs *fsys
}

var (
	_ fusefs.NodeLookuper  = (*rootDir)(nil)
	_ fusefs.NodeReaddirer = (*rootDir)(nil)
	_ fusefs.NodeGetattrer = (*rootDir)(nil)
)

func (r *rootDir) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = dirMode
	r.fs.setOwner(&out.Attr)
	return 0
}

func (r *rootDir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	colls, err := r.fs.Tree.Collections(ctx)
	if err != nil {
		return nil, r.fs.fail("readdir", "/", err)
	}
	entries := make([]fuse.DirEntry, len(colls))
	for i, c := range colls {
		entries[i] = fuse.DirEntry{Name: c.Name, Mode: syscall.S_IFDIR, Ino: ino(c.ID)}
	}
	return fusefs.NewListDirStream(entries), 0
}

func (r *rootDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if name == StatsFile && r.fs.Stats != nil {
		node := &jsonFile{fs: r.fs, live: true, load: func(context.Context) ([]byte, error) { return r.fs.statsJSON(), nil }}
		return lookupJSON(ctx, &r.Inode, r.fs, node, out, ino(StatsFile))
	}
	c, err := r.fs.Tree.Collection(ctx, name)
	if err != nil {
		return nil, r.fs.fail("lookup", "/"+name, err)
	}
	out.Mode = dirMode
	r.fs.setOwner(&out.Attr)
	node := &collectionDir{fs: r.fs, id: c.ID}
	return r.NewInode(ctx, node, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino(c.ID)}), 0
}
