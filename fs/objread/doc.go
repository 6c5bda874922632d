// Package objread is the read path of prescientfs: it turns reads at byte
// offsets of an open file into ranged requests against an object store.
// The FUSE layer only copies the bytes a Reader hands back, which is what
// makes this package testable without a kernel.
//
// # The way of one read
//
// A read enters once at each step, in this order:
//
//  1. handle.go: ReadAt (or ReadSlices) → handle.read. On the handle's
//     first read, handle.version pins the object's version: an Object
//     opened without ETag (the catalog gave its size, so open sent
//     nothing) gets it from the answer to this read's own GET, which is
//     sent unconditionally and also corrects the size (Content-Range);
//     every later GET carries If-Match, and a changed object fails with
//     ErrChanged.
//  2. pattern.go: pattern.observe decides what the read is (a first read,
//     a random read, a jump predicting the next run, a stream read) and
//     returns a decision; handle.decideLocked carries it out.
//  3. The sources the read's bytes come from, each in its file:
//     stream.go (a sequential reader's window of parallel parts, part.go
//     being one part), blockcache.go (random reads, headers, predicted
//     runs; its disk tier is diskcache.go), tiles.go (for tiled TIFFs,
//     the tiles GDAL will read next, loaded into the block cache).
//     stream.segments splits the read into pieces from parts and gaps
//     served by the block cache (or, inside a stream the budget starved,
//     straight from the store); handle.exec copies or lends them.
//  4. fetch.go: every byte comes from fetchRange, the one ranged GET
//     (resumed after a break, retried with backoff, bounded by the I/O
//     timeout), or, for the pinning GET, openRange and fetchRangeFrom.
//
// A Store (s3store.go, httpstore.go, routed by router.go) sends the
// requests: S3's ranged GETs after a bucket's first as requests of its own
// (s3get.go). Budget bounds the memory of stream parts and tile
// prefetches together; the block cache's memory is its own, reused
// (blockmem.go). Stats counts what happened.
package objread
