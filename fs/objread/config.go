package objread

import "time"

// Sizes used by the defaults.
const (
	KiB int64 = 1 << 10
	MiB int64 = 1 << 20
)

// Defaults of Config, of the Budget and of the BlockCache.
const (
	// DefaultMemoryLimit bounds all handles' prefetch buffers (and tile
	// prefetches in flight) together: one stream gets ~14 parts of 8 MiB
	// in flight (enough for ~300 MB/s from a store 50 ms away that sends
	// 25 MB/s per connection), four concurrent streams a 32 MiB window
	// each, and with the block cache and Go's runtime the process stays
	// near 200 MiB RSS.
	DefaultMemoryLimit = 128 * MiB
	// DefaultBlockSize is the block cache's unit and the rounding of random
	// reads: the size of a typical COG tile and of one kernel FUSE read
	// (128 KiB without max_pages), so a random read fetches at most two
	// blocks more than it asked for.
	DefaultBlockSize = 128 * KiB
	// DefaultCacheSize bounds the shared block cache (256 blocks): room for
	// the headers and hot tiles of the handful of files QGIS has open.
	DefaultCacheSize = 32 * MiB
)

// Config tunes the prefetching reader. Zero fields take the defaults of
// DefaultConfig.
type Config struct {
	// FirstRead is the least a handle's first read at the start of the
	// file fetches (through the block cache), in its one GET: 256 KiB, a
	// header and the kernel's first readahead after it (128 KiB for a
	// small read). A larger first read fetches what it asks for. More is
	// not free: on a near store the bytes nobody reads cost the CPU that
	// the next request waits for (1.125 MiB first loads: a cold 64 KiB
	// read from loopback MinIO took 3.7 ms against 1.6 ms with 256 KiB).
	FirstRead int64
	// SeqConfirm is how many contiguous bytes a run of reads must cover
	// before it counts as sequential and gets a prefetch stream. Kernel
	// readahead around one random read stays below it.
	SeqConfirm int64
	// InitialWindow is the least window of a stream the budget presses:
	// a refused part halves the window down to it; it doubles back each
	// time the reader enters a new part, up to MaxWindow.
	InitialWindow int64
	// MaxWindow caps how far ahead of the reader a stream fetches.
	MaxWindow int64
	// FirstPart is the size of a new stream's parts; they double up to
	// PartSize as the reader consumes them.
	FirstPart int64
	// PartSize is the size of one prefetch GET (the window is fetched as
	// parallel parts of this size).
	PartSize int64
	// Parallel bounds the concurrent part GETs of one handle.
	Parallel int
	// FarLatency, FarParallel and FarPartSize shape the streams of a far
	// store: once the store's recent GETs take FarLatency or longer to
	// answer (Stats.FirstByte), a new stream keeps FarParallel parts of
	// FarPartSize in flight instead of Parallel of PartSize. The window is
	// the same memory; with smaller parts less of it waits on latency, so
	// it carries more. Measured through the mount on 2 cores: at 50 ms and
	// 25 MB/s per connection 32 parts of 4 MiB carry 0.31 GiB/s where 16
	// of 8 MiB carry 0.27; at 20 ms and 50 MB/s the twice as many requests
	// cost more CPU than the latency they hide (0.30 against 0.39), hence
	// 40 ms. A near store keeps the fewer, larger requests.
	FarLatency  time.Duration
	FarParallel int
	FarPartSize int64
	// KeepBehind is how much already-read data a stream keeps behind the
	// reader, for the kernel's reordered async reads.
	KeepBehind int64
	// Slack is how far beyond the stream's fetched data (or the end of the
	// previous read) a read still counts as part of it: short forward
	// jumps wait for data in flight instead of resetting the stream.
	Slack int64
	// Readahead is the kernel's readahead on the mount (fs raises it to
	// 1 MiB): how far past the last tile GDAL reads the kernel's READ
	// goes, and so how far past its last tile a tile prefetch reaches.
	Readahead int64
	// RandomAfter is the number of consecutive reads outside a stream
	// after which the stream is dropped and its buffers released.
	RandomAfter int
	// Retry bounds every request: how long without progress before a
	// read fails (the mount's --io-timeout), attempts and backoff.
	Retry Retry
	// Tiles parses tiled TIFFs' layouts for tile prefetch (default
	// CogTiles); NoTiles turns tile prefetch off.
	Tiles   TileParser
	NoTiles bool
}

// DefaultConfig returns the defaults: first read at least 256 KiB, streams
// of 16 parallel GETs per handle from the start, parts from 1 MiB doubling
// to 8 MiB (32 growing to 4 MiB from a store 40 ms away or more), a window
// of at most 128 MiB (the budget's share).
func DefaultConfig() Config {
	return Config{
		FirstRead:     256 * KiB,
		SeqConfirm:    512 * KiB,
		InitialWindow: 2 * MiB,
		MaxWindow:     128 * MiB,
		FirstPart:     MiB,
		PartSize:      8 * MiB,
		Parallel:      16,
		FarLatency:    40 * time.Millisecond,
		FarParallel:   32,
		FarPartSize:   4 * MiB,
		KeepBehind:    MiB,
		Slack:         MiB,
		Readahead:     MiB,
		RandomAfter:   4,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	set := func(v *int64, def int64) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&c.FirstRead, d.FirstRead)
	set(&c.SeqConfirm, d.SeqConfirm)
	set(&c.InitialWindow, d.InitialWindow)
	set(&c.MaxWindow, d.MaxWindow)
	set(&c.PartSize, d.PartSize)
	set(&c.FirstPart, d.FirstPart)
	c.FirstPart = min(c.FirstPart, c.PartSize)
	set(&c.KeepBehind, d.KeepBehind)
	set(&c.Slack, d.Slack)
	set(&c.Readahead, d.Readahead)
	if c.Parallel <= 0 {
		c.Parallel = d.Parallel
	}
	if c.FarLatency <= 0 {
		c.FarLatency = d.FarLatency
	}
	if c.FarParallel <= 0 {
		c.FarParallel = d.FarParallel
	}
	set(&c.FarPartSize, d.FarPartSize)
	if c.RandomAfter <= 0 {
		c.RandomAfter = d.RandomAfter
	}
	c.Retry = c.Retry.withDefaults()
	switch {
	case c.NoTiles:
		c.Tiles = nil
	case c.Tiles == nil:
		c.Tiles = CogTiles
	}
	if c.MaxWindow < c.InitialWindow {
		c.MaxWindow = c.InitialWindow
	}
	return c
}
