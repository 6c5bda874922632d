package fs

import (
	"context"
	"fmt"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/prescient/prescientfs/stacindex"
)

// collectionDir holds collection.json and, by the collection's layout,
// one directory per item (flat) or one per year (date). Every item is
// reachable by its name in any layout: a lookup asks the catalog for that
// item (GET .../items/{id}), never for a listing.
type collectionDir struct {
	fusefs.Inode
	readOnly
	fs *fsys
	id string // collection ID
}

var (
	_ fusefs.NodeLookuper       = (*collectionDir)(nil)
	_ fusefs.NodeOpendirHandler = (*collectionDir)(nil)
	_ fusefs.NodeGetattrer      = (*collectionDir)(nil)
)

func (d *collectionDir) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	return &listHandle{open: d.Readdir}, 0, 0
}

func (d *collectionDir) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = dirMode
	d.fs.setOwner(&out.Attr)
	return 0
}

func (d *collectionDir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	layout, err := d.fs.Tree.Layout(ctx, d.id)
	if err != nil {
		return nil, d.fs.fail("readdir", d.Path(nil), err)
	}
	fixed := []fuse.DirEntry{{Name: stacindex.CollectionJSON, Mode: syscall.S_IFREG, Ino: ino(d.id, stacindex.CollectionJSON)}}
	if layout == stacindex.LayoutDate {
		ext, err := d.fs.Tree.Extent(ctx, d.id)
		if err != nil {
			return nil, d.fs.fail("readdir", d.Path(nil), err)
		}
		first, last := ext.YearRange(d.fs.Tree.Now())
		for y := first; y <= last; y++ {
			fixed = append(fixed, fuse.DirEntry{Name: fmt.Sprintf("%04d", y), Mode: syscall.S_IFDIR, Ino: ino(d.id, "year", fmt.Sprint(y))})
		}
		return fusefs.NewListDirStream(fixed), 0
	}
	items, err := d.fs.Tree.Items(ctx, d.id)
	if err != nil {
		return nil, d.fs.fail("readdir", d.Path(nil), err)
	}
	path := d.Path(nil)
	return &listStream{fixed: fixed, listing: items,
		ino:     func(id string) uint64 { return ino(d.id, id) },
		onError: func(err error) syscall.Errno { return d.fs.fail("readdir", path, err) },
	}, 0
}

func (d *collectionDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if name == stacindex.CollectionJSON {
		node := &jsonFile{fs: d.fs, load: d.collectionJSON}
		return d.lookupJSON(ctx, node, out, ino(d.id, name))
	}
	if stacindex.IsYearName(name) {
		return d.lookupYear(ctx, name, out)
	}
	it, err := d.fs.Tree.ItemByName(ctx, d.id, name)
	if err != nil {
		return nil, d.fs.fail("lookup", d.Path(nil)+"/"+name, err)
	}
	return newItemDir(ctx, &d.Inode, d.fs, d.id, it, false, out), 0
}

// lookupYear: a year directory exists in the date layout, within the
// collection's temporal extent.
func (d *collectionDir) lookupYear(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	layout, err := d.fs.Tree.Layout(ctx, d.id)
	if err != nil {
		return nil, d.fs.fail("lookup", d.Path(nil)+"/"+name, err)
	}
	if layout != stacindex.LayoutDate {
		return nil, syscall.ENOENT
	}
	ext, err := d.fs.Tree.Extent(ctx, d.id)
	if err != nil {
		return nil, d.fs.fail("lookup", d.Path(nil)+"/"+name, err)
	}
	var y int
	if _, err := fmt.Sscanf(name, "%d", &y); err != nil {
		return nil, syscall.ENOENT
	}
	if first, last := ext.YearRange(d.fs.Tree.Now()); y < first || y > last {
		return nil, syscall.ENOENT
	}
	return newDateDir(ctx, &d.Inode, d.fs, &dateDir{coll: d.id, ext: ext, y: y}, out), 0
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
