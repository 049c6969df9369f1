package streamstore

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/streamgate/streamgate/streamstore/vfs"
)

// FsyncPolicy says when an append is acknowledged.
type FsyncPolicy string

const (
	// FsyncAlways acknowledges a write after an fsync that covers it; concurrent
	// writers share fsyncs (group commit). Records become readable once durable.
	FsyncAlways FsyncPolicy = "always"
	// FsyncInterval acknowledges at once and fsyncs every SyncInterval.
	FsyncInterval FsyncPolicy = "interval"
	// FsyncNever leaves flushing to the kernel (and to segment rolls and Close).
	FsyncNever FsyncPolicy = "never"
)

// Options configure a Store. Zero values take the defaults below.
type Options struct {
	Dir   string
	FS    vfs.FS      // default vfs.OS
	Fsync FsyncPolicy // default FsyncAlways
	// SyncInterval is the fsync period of FsyncInterval (default 1s).
	SyncInterval time.Duration
	// SegmentBytes rolls a segment after this many bytes (default 64 MiB).
	SegmentBytes int64
	// SegmentMaxAge rolls a segment whose first record is this old (default
	// 1h), so time retention can delete whole segments of quiet shards.
	SegmentMaxAge time.Duration
	// DiskBudget caps the bytes of all segments together (0: no cap). Oldest
	// segments go first; when nothing can go, appends fail with ErrNoSpace.
	DiskBudget int64
	// RetentionInterval is how often retention and budgets are enforced (default 10s).
	RetentionInterval time.Duration
	Logger            *slog.Logger
	// Now is the clock (tests move it).
	Now func() time.Time
	// OnFsync observes each fsync's latency; OnRetention each deleted segment.
	OnFsync     func(time.Duration)
	OnRetention func(stream string, bytes int64)
}

func (o *Options) setDefaults() error {
	if o.Dir == "" {
		return fmt.Errorf("streamstore: Options.Dir is empty: %w", ErrInvalid)
	}
	if o.FS == nil {
		o.FS = vfs.OS
	}
	switch o.Fsync {
	case "":
		o.Fsync = FsyncAlways
	case FsyncAlways, FsyncInterval, FsyncNever:
	default:
		return fmt.Errorf("streamstore: fsync policy %q (want always, interval or never): %w", o.Fsync, ErrInvalid)
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = time.Second
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.SegmentMaxAge <= 0 {
		o.SegmentMaxAge = time.Hour
	}
	if o.RetentionInterval <= 0 {
		o.RetentionInterval = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}
