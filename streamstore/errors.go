package streamstore

import "errors"

// Sentinel errors. Protocol packages translate them to their own error forms
// (an AWS __type, an RTSP status, an MQTT reason code) at the edge.
var (
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("already exists")
	ErrInvalid      = errors.New("invalid argument")
	ErrShardClosed  = errors.New("shard is closed")
	ErrNoSpace      = errors.New("no space left: disk full or disk budget reached")
	ErrFaulted      = errors.New("shard is faulted after a failed write or fsync; restart to recover")
	ErrClosed       = errors.New("store is closed")
	ErrTrimmed      = errors.New("position is older than the trim horizon")
	ErrLimit        = errors.New("limit exceeded")
	ErrRecordTooBig = errors.New("record too large")
)
