package objread

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// Stats counts what the read path does. All fields are updated atomically
// and can be read at any time; Snapshot copies them for logging.
type Stats struct {
	Requests       atomic.Int64 // ranged GETs sent (retries included)
	BytesFetched   atomic.Int64 // body bytes received from the store
	BytesServed    atomic.Int64 // bytes returned by ReadAt
	CacheHits      atomic.Int64 // blocks found in the block cache
	CacheMisses    atomic.Int64 // blocks loaded (or joined while loading)
	Retries        atomic.Int64 // GETs retried (failed, broken or short), resuming where they broke
	Parts          atomic.Int64 // prefetch parts started
	FarStreams     atomic.Int64 // streams started in the far store's shape (Config.FarLatency)
	DirectReads    atomic.Int64 // reads sent straight to the store (budget exhausted)
	BudgetDenials  atomic.Int64 // prefetch parts the memory budget refused
	Predicted      atomic.Int64 // runs loaded ahead of a jumping reader (next row of tiles)
	TiledObjects   atomic.Int64 // tile layouts parsed (tiled TIFFs)
	TilePrefetches atomic.Int64 // predicted tile ranges loaded ahead of GDAL
	TileBytes      atomic.Int64 // bytes of those ranges

	// The on-disk cache (--cache-dir), for blocks that missed in memory.
	DiskHits         atomic.Int64 // blocks read from disk
	DiskMisses       atomic.Int64 // blocks looked up on disk and not found (or invalid)
	DiskBytesRead    atomic.Int64 // bytes of the disk hits
	DiskBytesWritten atomic.Int64 // bytes of blocks written to disk
	DiskWriteDrops   atomic.Int64 // blocks not written because the writer was behind
	DiskWriteErrors  atomic.Int64 // blocks whose write failed (disk full, permissions)

	firstByte firstByte // the store's time to answer a GET
}

// FirstByte returns the store's latency: the least time from a GET's
// request to its response headers among the last 64 answers (0 before
// the first).
func (s *Stats) FirstByte() time.Duration { return s.firstByte.get() }

// StatsSnapshot is a copy of Stats at one moment.
type StatsSnapshot struct {
	Requests       int64 `json:"requests"`
	BytesFetched   int64 `json:"bytes_fetched"`
	BytesServed    int64 `json:"bytes_served"`
	CacheHits      int64 `json:"cache_hits"`
	CacheMisses    int64 `json:"cache_misses"`
	Retries        int64 `json:"retries"`
	Parts          int64 `json:"parts"`
	FarStreams     int64 `json:"far_streams"`
	FirstByteUS    int64 `json:"first_byte_us"` // Stats.FirstByte in microseconds
	DirectReads    int64 `json:"direct_reads"`
	BudgetDenials  int64 `json:"budget_denials"`
	Predicted      int64 `json:"predicted_runs"`
	TiledObjects   int64 `json:"tiled_objects"`
	TilePrefetches int64 `json:"tile_prefetches"`
	TileBytes      int64 `json:"tile_bytes"`

	DiskHits         int64 `json:"disk_hits"`
	DiskMisses       int64 `json:"disk_misses"`
	DiskBytesRead    int64 `json:"disk_bytes_read"`
	DiskBytesWritten int64 `json:"disk_bytes_written"`
	DiskWriteDrops   int64 `json:"disk_write_drops"`
	DiskWriteErrors  int64 `json:"disk_write_errors"`
}

// Snapshot copies the counters.
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		Requests:       s.Requests.Load(),
		BytesFetched:   s.BytesFetched.Load(),
		BytesServed:    s.BytesServed.Load(),
		CacheHits:      s.CacheHits.Load(),
		CacheMisses:    s.CacheMisses.Load(),
		Retries:        s.Retries.Load(),
		Parts:          s.Parts.Load(),
		FarStreams:     s.FarStreams.Load(),
		FirstByteUS:    s.FirstByte().Microseconds(),
		DirectReads:    s.DirectReads.Load(),
		BudgetDenials:  s.BudgetDenials.Load(),
		Predicted:      s.Predicted.Load(),
		TiledObjects:   s.TiledObjects.Load(),
		TilePrefetches: s.TilePrefetches.Load(),
		TileBytes:      s.TileBytes.Load(),

		DiskHits:         s.DiskHits.Load(),
		DiskMisses:       s.DiskMisses.Load(),
		DiskBytesRead:    s.DiskBytesRead.Load(),
		DiskBytesWritten: s.DiskBytesWritten.Load(),
		DiskWriteDrops:   s.DiskWriteDrops.Load(),
		DiskWriteErrors:  s.DiskWriteErrors.Load(),
	}
}

// LogValue implements slog.LogValuer.
func (s StatsSnapshot) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("requests", s.Requests),
		slog.Int64("bytes_fetched", s.BytesFetched),
		slog.Int64("bytes_served", s.BytesServed),
		slog.Int64("cache_hits", s.CacheHits),
		slog.Int64("cache_misses", s.CacheMisses),
		slog.Int64("retries", s.Retries),
		slog.Int64("parts", s.Parts),
		slog.Int64("far_streams", s.FarStreams),
		slog.Int64("first_byte_us", s.FirstByteUS),
		slog.Int64("direct_reads", s.DirectReads),
		slog.Int64("budget_denials", s.BudgetDenials),
		slog.Int64("predicted_runs", s.Predicted),
		slog.Int64("tiled_objects", s.TiledObjects),
		slog.Int64("tile_prefetches", s.TilePrefetches),
		slog.Int64("tile_bytes", s.TileBytes),
		slog.Int64("disk_hits", s.DiskHits),
		slog.Int64("disk_misses", s.DiskMisses),
		slog.Int64("disk_bytes_read", s.DiskBytesRead),
		slog.Int64("disk_bytes_written", s.DiskBytesWritten),
		slog.Int64("disk_write_drops", s.DiskWriteDrops),
		slog.Int64("disk_write_errors", s.DiskWriteErrors),
	)
}
