package fs

import (
	"context"
	"fmt"
	"strconv"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/prescient/prescientfs/stacindex"
)

// dateDir is a directory of the date layout: a year (m == 0) lists its
// months, a month (d == 0) its days, both from the calendar and the
// collection's temporal extent, with no catalog request; a day lists its
// items (a datetime-filtered listing, streamed). Listing a day starts
// filling the next few days in the background, so that a walk over a
// date range (find) does not wait for each day in turn.
type dateDir struct {
	fusefs.Inode
	readOnly
	fs      *fsys
	coll    string
	ext     stacindex.Extent
	y, m, d int
}

var (
	_ fusefs.NodeLookuper       = (*dateDir)(nil)
	_ fusefs.NodeOpendirHandler = (*dateDir)(nil)
	_ fusefs.NodeGetattrer      = (*dateDir)(nil)
)

func (d *dateDir) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	return &listHandle{open: d.Readdir}, 0, 0
}

func newDateDir(ctx context.Context, parent *fusefs.Inode, f *fsys, node *dateDir, out *fuse.EntryOut) *fusefs.Inode {
	node.fs = f
	out.Mode = dirMode
	f.setOwner(&out.Attr)
	return parent.NewInode(ctx, node, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: node.ino()})
}

func (d *dateDir) ino() uint64 {
	switch {
	case d.m == 0:
		return ino(d.coll, "year", strconv.Itoa(d.y))
	case d.d == 0:
		return ino(d.coll, "month", strconv.Itoa(d.y), strconv.Itoa(d.m))
	}
	return ino(d.coll, "day", strconv.Itoa(d.y), strconv.Itoa(d.m), strconv.Itoa(d.d))
}

func (d *dateDir) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = dirMode
	t := time.Date(d.y, time.Month(max(d.m, 1)), max(d.d, 1), 0, 0, 0, 0, time.UTC)
	setTime(&out.Attr, t)
	d.fs.setOwner(&out.Attr)
	return 0
}

// children are the months of a year or the days of a month.
func (d *dateDir) children() []int {
	var out []int
	now := d.fs.Tree.Now()
	if d.m == 0 {
		for m := 1; m <= 12; m++ {
			if d.ext.Contains(now, d.y, m, 0) {
				out = append(out, m)
			}
		}
		return out
	}
	for day := 1; day <= stacindex.DaysIn(d.y, d.m); day++ {
		if d.ext.Contains(now, d.y, d.m, day) {
			out = append(out, day)
		}
	}
	return out
}

func (d *dateDir) child(n int) *dateDir {
	c := &dateDir{fs: d.fs, coll: d.coll, ext: d.ext, y: d.y, m: d.m, d: d.d}
	if d.m == 0 {
		c.m = n
	} else {
		c.d = n
	}
	return c
}

func (d *dateDir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	if d.d != 0 {
		path := d.Path(nil)
		day := d.fs.Tree.Day(ctx, d.coll, d.y, d.m, d.d)
		d.fs.Tree.PrefetchDays(ctx, d.coll, d.ext, time.Date(d.y, time.Month(d.m), d.d, 0, 0, 0, 0, time.UTC), day)
		return &listStream{listing: day,
			ino:     func(id string) uint64 { return ino(d.coll, "date", id) },
			onError: func(err error) syscall.Errno { return d.fs.fail("readdir", path, err) },
		}, 0
	}
	var entries []fuse.DirEntry
	for _, n := range d.children() {
		entries = append(entries, fuse.DirEntry{Name: fmt.Sprintf("%02d", n), Mode: syscall.S_IFDIR, Ino: d.child(n).ino()})
	}
	return fusefs.NewListDirStream(entries), 0
}

func (d *dateDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if d.d == 0 {
		n, err := strconv.Atoi(name)
		if err != nil || len(name) != 2 {
			return nil, syscall.ENOENT
		}
		for _, c := range d.children() {
			if c == n {
				return newDateDir(ctx, &d.Inode, d.fs, d.child(n), out), 0
			}
		}
		return nil, syscall.ENOENT
	}
	// An item of the day: found by its ID, kept if its datetime is on
	// this day (each item is listed under one day only).
	it, err := d.fs.Tree.ItemByName(ctx, d.coll, name)
	if err != nil {
		return nil, d.fs.fail("lookup", d.Path(nil)+"/"+name, err)
	}
	y, m, day := it.Datetime.Date()
	if it.Datetime.IsZero() || y != d.y || int(m) != d.m || day != d.d {
		return nil, syscall.ENOENT
	}
	return newItemDir(ctx, &d.Inode, d.fs, d.coll, it, true, out), 0
}
