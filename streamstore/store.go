package streamstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Store is the shard log of every stream in one data directory.
type Store struct {
	opts Options
	meta *metaDB

	mu      sync.RWMutex
	streams map[string]*stream
	closed  bool

	totalBytes atomic.Int64
	full       atomic.Bool // the disk budget is reached and nothing can be deleted
	budgetMu   sync.Mutex

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type stream struct {
	info   StreamInfo // guarded by Store.mu
	dir    string
	logs   map[string]*shardLog
	routes []route // open shards by hash key; replaced on reshard
	bytes  atomic.Int64
}

type route struct {
	start, end HashKey
	id         string
	log        *shardLog
}

// Open opens or creates the store in opts.Dir and recovers every shard.
func Open(opts Options) (*Store, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := opts.FS.MkdirAll(filepath.Join(opts.Dir, "streams"), 0o755); err != nil {
		return nil, err
	}
	meta, err := openMeta(filepath.Join(opts.Dir, "meta.db"))
	if err != nil {
		return nil, fmt.Errorf("streamstore: metadata: %w", err)
	}
	s := &Store{opts: opts, meta: meta, streams: map[string]*stream{}}
	infos, err := meta.streams()
	if err != nil {
		meta.db.Close()
		return nil, fmt.Errorf("streamstore: metadata: %w", err)
	}
	for _, info := range infos {
		st, err := s.openStream(info)
		if err != nil {
			s.closeLogs()
			meta.db.Close()
			return nil, fmt.Errorf("streamstore: stream %s: %w", info.Name, err)
		}
		s.streams[info.Name] = st
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.retentionLoop(ctx)
	if opts.Fsync == FsyncInterval {
		s.wg.Add(1)
		go s.syncLoop(ctx)
	}
	return s, nil
}

func (s *Store) openStream(info StreamInfo) (*stream, error) {
	st := &stream{info: info, dir: filepath.Join(s.opts.Dir, "streams", info.Dir), logs: map[string]*shardLog{}}
	for _, sh := range info.Shards {
		if err := s.openShard(st, sh); err != nil {
			return nil, err
		}
	}
	st.rebuildRoutes()
	return st, nil
}

func (s *Store) openShard(st *stream, sh ShardInfo) error {
	onBytes := func(d int64) {
		st.bytes.Add(d)
		s.totalBytes.Add(d)
	}
	log, err := openShardLog(&s.opts, filepath.Join(st.dir, sh.ID), sh.Gen, sh.Num, s.opts.Fsync != FsyncAlways, onBytes)
	if err != nil {
		return err
	}
	if sh.Closed {
		log.closed = true
	}
	log.rollBytes, log.rollAge = s.rollBytes(&st.info), s.rollAge(&st.info)
	onBytes(log.diskBytes.Load())
	st.logs[sh.ID] = log
	return nil
}

// rollBytes sizes segments so a disk budget can be met by deleting whole
// segments: a budget holds at least a few segments per shard.
func (s *Store) rollBytes(info *StreamInfo) int64 {
	n := s.opts.SegmentBytes
	open := int64(len(info.OpenShards()))
	if open == 0 {
		open = 1
	}
	if info.DiskBudget > 0 {
		n = min(n, max(info.DiskBudget/(4*open), 64<<10))
	}
	if s.opts.DiskBudget > 0 {
		n = min(n, max(s.opts.DiskBudget/16, 64<<10))
	}
	return n
}

// rollAge bounds a segment's age so retention, which deletes whole segments,
// keeps roughly what it promises even for short (live-only) retention.
func (s *Store) rollAge(info *StreamInfo) time.Duration {
	return min(s.opts.SegmentMaxAge, max(info.Retention()/4, time.Second))
}

func (st *stream) rebuildRoutes() {
	open := st.info.OpenShards()
	routes := make([]route, len(open))
	for i, sh := range open {
		routes[i] = route{sh.HashStart, sh.HashEnd, sh.ID, st.logs[sh.ID]}
	}
	st.routes = routes
}

func sortByHash(shards []ShardInfo) {
	sort.Slice(shards, func(i, j int) bool { return shards[i].HashStart.Cmp(shards[j].HashStart) < 0 })
}

// Close stops background work, makes every written record durable and closes
// all files.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	var errs []error
	for _, st := range s.streams {
		for _, log := range st.logs {
			if err := log.flush(); err != nil && !errors.Is(err, ErrFaulted) {
				errs = append(errs, err)
			}
			log.wakeAll()
		}
	}
	s.closeLogs()
	errs = append(errs, s.meta.db.Close())
	return errors.Join(errs...)
}

func (s *Store) closeLogs() {
	for _, st := range s.streams {
		for _, log := range st.logs {
			log.closeFiles()
		}
	}
}

// StreamConfig is what CreateStream needs.
type StreamConfig struct {
	Name           string
	Shards         int
	RetentionHours int  // default 24
	LiveOnly       bool // keep only LiveRetention of data (RetentionHours is then 0)
	OnDemand       bool
	MaxRecordKiB   int   // default 1024
	DiskBudget     int64 // 0: none
	Tags           map[string]string
	Labels         map[string]string
}

// A stream name may carry a namespace ("video/cam1"): video streams live apart
// from data streams, so the two may share a name as on AWS.
var validName = regexp.MustCompile(`^(?:[a-z]+/)?[a-zA-Z0-9_.-]{1,256}$`)

// Namespace returns the namespace part of a stream name ("" for data streams).
func Namespace(name string) string {
	if i := strings.IndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}

// LiveRetention is how long a LiveOnly stream keeps data: enough for live
// readers that fall behind, like AWS's host buffer for unpersisted video.
const LiveRetention = 5 * time.Minute

// Limits the store enforces; protocol layers validate earlier with their own messages.
const (
	MinRetentionHours = 24
	MaxRetentionHours = 8760
	MaxShards         = 10000
)

// CreateStream creates a stream whose shards split the hash-key space evenly.
func (s *Store) CreateStream(cfg StreamConfig) (StreamInfo, error) {
	if !validName.MatchString(cfg.Name) {
		return StreamInfo{}, fmt.Errorf("stream name %q: %w", cfg.Name, ErrInvalid)
	}
	if cfg.Shards < 1 || cfg.Shards > MaxShards {
		return StreamInfo{}, fmt.Errorf("shard count %d: %w", cfg.Shards, ErrInvalid)
	}
	if cfg.LiveOnly {
		cfg.RetentionHours = 0
	} else if cfg.RetentionHours == 0 {
		cfg.RetentionHours = MinRetentionHours
	}
	if cfg.MaxRecordKiB == 0 {
		cfg.MaxRecordKiB = 1024
	}
	if cfg.MaxRecordKiB < 0 || cfg.MaxRecordKiB > MaxRecordBytes>>10 {
		return StreamInfo{}, fmt.Errorf("record limit %d KiB: %w", cfg.MaxRecordKiB, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return StreamInfo{}, ErrClosed
	}
	if _, ok := s.streams[cfg.Name]; ok {
		return StreamInfo{}, fmt.Errorf("stream %s: %w", cfg.Name, ErrExists)
	}
	now := s.opts.Now().UTC()
	info := StreamInfo{
		Name: cfg.Name, Created: now, RetentionHours: cfg.RetentionHours, OnDemand: cfg.OnDemand,
		MaxRecordKiB: cfg.MaxRecordKiB, DiskBudget: cfg.DiskBudget, Tags: cloneMap(cfg.Tags), Labels: cloneMap(cfg.Labels),
		// A new directory per incarnation: a re-created stream never sees old files.
		Dir: fmt.Sprintf("%s@%d", strings.ReplaceAll(cfg.Name, "/", "~"), now.UnixNano()),
	}
	starts := splitSpace(HashKey{}, MaxHashKey, cfg.Shards)
	for i := range cfg.Shards {
		end := MaxHashKey
		if i+1 < cfg.Shards {
			end = starts[i+1].Sub1()
		}
		info.Shards = append(info.Shards, ShardInfo{ID: ShardID(uint32(i)), Num: uint32(i), HashStart: starts[i], HashEnd: end, Created: now})
	}
	info.NextShard = uint32(cfg.Shards)
	if err := s.meta.putStream(&info); err != nil {
		return StreamInfo{}, err
	}
	st, err := s.openStream(info)
	if err != nil {
		s.meta.deleteStream(info.Name)
		return StreamInfo{}, err
	}
	s.streams[info.Name] = st
	return info.clone(), nil
}

// ShardID names shard number n the way Kinesis does.
func ShardID(n uint32) string { return fmt.Sprintf("shardId-%012d", n) }

// DeleteStream removes a stream, its data and its checkpoints.
func (s *Store) DeleteStream(name string) error {
	s.mu.Lock()
	st, ok := s.streams[name]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("stream %s: %w", name, ErrNotFound)
	}
	delete(s.streams, name)
	s.mu.Unlock()
	if err := s.meta.deleteStream(name); err != nil {
		return err
	}
	for _, log := range st.logs {
		log.mu.Lock()
		log.closed = true
		log.mu.Unlock()
		log.wakeAll()
		log.closeFiles()
	}
	s.totalBytes.Add(-st.bytes.Load())
	return s.opts.FS.RemoveAll(st.dir)
}

// Stream returns a stream's description.
func (s *Store) Stream(name string) (StreamInfo, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.streams[name]
	if !ok {
		return StreamInfo{}, fmt.Errorf("stream %s: %w", name, ErrNotFound)
	}
	return st.info.clone(), nil
}

// Streams lists every stream, by name.
func (s *Store) Streams() []StreamInfo {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]StreamInfo, 0, len(s.streams))
	for _, st := range s.streams {
		out = append(out, st.info.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// UpdateStream changes a stream's settings, tags, labels or consumers under
// the store's lock and persists them. fn may not change shards.
func (s *Store) UpdateStream(name string, fn func(*StreamInfo) error) (StreamInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[name]
	if !ok {
		return StreamInfo{}, fmt.Errorf("stream %s: %w", name, ErrNotFound)
	}
	info := st.info.clone()
	if err := fn(&info); err != nil {
		return StreamInfo{}, err
	}
	info.Name, info.Created, info.Shards, info.NextShard, info.Dir = st.info.Name, st.info.Created, st.info.Shards, st.info.NextShard, st.info.Dir
	if err := s.meta.putStream(&info); err != nil {
		return StreamInfo{}, err
	}
	st.info = info
	for _, log := range st.logs {
		log.mu.Lock()
		log.rollBytes, log.rollAge = s.rollBytes(&info), s.rollAge(&info)
		log.mu.Unlock()
	}
	return info.clone(), nil
}

// Entry is a record to append.
type Entry struct {
	PartitionKey    string
	ExplicitHashKey *HashKey // overrides the MD5 of the partition key
	Data            []byte
	Producer        int64 // producer timestamp, Unix ns (0: none)
	Arrival         int64 // server timestamp, Unix ns (0: now); never later than now
}

// Appended is the outcome of appending one Entry.
type Appended struct {
	ShardID string
	Seq     Seq
	Arrival int64 // Unix ns
	Err     error // ErrNoSpace, ErrFaulted, ErrRecordTooBig...
}

// Append routes each entry to its shard, writes it and waits until it is
// durable under the fsync policy. Entries to one shard keep their order.
// A failure of one entry does not fail the others.
func (s *Store) Append(name string, entries []Entry) ([]Appended, error) {
	out := make([]Appended, len(entries))
	todo := make([]int, len(entries))
	for i := range todo {
		todo[i] = i
	}
	type group struct {
		log   *shardLog
		id    string
		idx   []int
		recs  []pending
		first uint64
	}
	var written []*group
	for attempt := 0; len(todo) > 0; attempt++ {
		s.mu.RLock()
		st, ok := s.streams[name]
		if !ok || s.closed {
			s.mu.RUnlock()
			if !ok {
				return nil, fmt.Errorf("stream %s: %w", name, ErrNotFound)
			}
			return nil, ErrClosed
		}
		routes, maxRec, budget := st.routes, st.info.MaxRecordKiB<<10, st.info.DiskBudget
		s.mu.RUnlock()
		if err := s.checkBudget(st, budget); err != nil {
			for _, i := range todo {
				out[i].Err = err
			}
			break
		}
		groups := map[string]*group{}
		var order []*group
		for _, i := range todo {
			e := &entries[i]
			if len(e.Data) > maxRec {
				out[i].Err = ErrRecordTooBig
				continue
			}
			h := HashPartitionKey(e.PartitionKey)
			if e.ExplicitHashKey != nil {
				h = *e.ExplicitHashKey
			}
			r := routes[sort.Search(len(routes), func(k int) bool { return routes[k].end.Cmp(h) >= 0 })]
			g := groups[r.id]
			if g == nil {
				g = &group{log: r.log, id: r.id}
				groups[r.id] = g
				order = append(order, g)
			}
			g.idx = append(g.idx, i)
			g.recs = append(g.recs, pending{e.PartitionKey, e.Data, e.Producer, e.Arrival})
		}
		todo = todo[:0]
		for _, g := range order {
			first, err := g.log.append(g.recs, s.opts.Now)
			if errors.Is(err, ErrShardClosed) && attempt < 3 {
				todo = append(todo, g.idx...) // resharded meanwhile: route again
				continue
			}
			for k, i := range g.idx {
				out[i] = Appended{ShardID: g.id, Seq: Seq{g.log.gen, g.log.num, first + uint64(k)}, Arrival: g.recs[k].arrival, Err: err}
			}
			if err == nil {
				g.first = first
				written = append(written, g)
			}
		}
	}
	if s.opts.Fsync != FsyncAlways || len(written) == 0 {
		return out, nil
	}
	// Wait for durability; shards fsync in parallel.
	errs := make([]error, len(written))
	var wg sync.WaitGroup
	for k, g := range written[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k+1] = g.log.waitDurable(g.first + uint64(len(g.recs)))
		}()
	}
	errs[0] = written[0].log.waitDurable(written[0].first + uint64(len(written[0].recs)))
	wg.Wait()
	for k, g := range written {
		if errs[k] != nil {
			for _, i := range g.idx {
				out[i].Err = errs[k]
			}
		}
	}
	return out, nil
}

// checkBudget enforces disk budgets before a write: it deletes the oldest
// segments when over, and refuses the write when nothing can go.
func (s *Store) checkBudget(st *stream, streamBudget int64) error {
	over := (s.opts.DiskBudget > 0 && s.totalBytes.Load() > s.opts.DiskBudget) ||
		(streamBudget > 0 && st.bytes.Load() > streamBudget)
	if !over {
		s.full.Store(false)
		return nil
	}
	s.enforceBudgets()
	if (s.opts.DiskBudget > 0 && s.totalBytes.Load() > s.opts.DiskBudget) ||
		(streamBudget > 0 && st.bytes.Load() > streamBudget) {
		return ErrNoSpace
	}
	return nil
}

func (s *Store) lookup(name, shardID string) (*stream, *shardLog, ShardInfo, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.streams[name]
	if !ok {
		return nil, nil, ShardInfo{}, fmt.Errorf("stream %s: %w", name, ErrNotFound)
	}
	info, ok := st.info.Shard(shardID)
	if !ok {
		return nil, nil, ShardInfo{}, fmt.Errorf("shard %s in stream %s: %w", shardID, name, ErrNotFound)
	}
	return st, st.logs[shardID], info, nil
}

// ReadResult is one batch read from a shard.
type ReadResult struct {
	Records []Record
	// Next is the index to continue from.
	Next uint64
	// EndOfShard reports a closed shard read to its end: continue in its children.
	EndOfShard bool
	// Behind is how far the last record returned is behind the shard's tip.
	Behind time.Duration
}

// Read returns records of a shard from index from on, up to maxRecords
// records and about maxBytes of data (at least one record when any is there).
func (s *Store) Read(name, shardID string, from uint64, maxRecords, maxBytes int) (ReadResult, error) {
	_, log, info, err := s.lookup(name, shardID)
	if err != nil {
		return ReadResult{}, err
	}
	recs, next, err := log.read(from, maxRecords, maxBytes)
	if err != nil {
		return ReadResult{}, err
	}
	res := ReadResult{Records: recs, Next: next}
	tipNext, tipArrival := log.tip()
	if info.Closed {
		tipNext = info.End
		res.EndOfShard = next >= info.End
	}
	if n := len(recs); n > 0 && next < tipNext {
		res.Behind = time.Duration(tipArrival - recs[n-1].Arrival)
	}
	return res, nil
}

// Watermark returns a time (Unix nanoseconds) before which every record of
// the shard is readable, and was already when Watermark was called: a
// reader that takes the watermark, then reads to the tip, has seen every
// record that arrived before it, and no record appended later arrives
// before it (except one appended with an earlier requested arrival, as
// video fragments are). Consumers that close time windows wait for it
// instead of guessing how long an fsync takes.
func (s *Store) Watermark(name, shardID string) (int64, error) {
	_, log, _, err := s.lookup(name, shardID)
	if err != nil {
		return 0, err
	}
	return log.watermark(s.opts.Now), nil
}

// Changed returns a channel that is closed when the shard gets new readable
// records, is closed by a reshard, or is deleted. Take it before reading so
// no record slips between the read and the wait.
func (s *Store) Changed(name, shardID string) (<-chan struct{}, error) {
	_, log, _, err := s.lookup(name, shardID)
	if err != nil {
		return nil, err
	}
	return log.changed(), nil
}

// PositionType says where a reader starts.
type PositionType int

const (
	TrimHorizon PositionType = iota
	Latest
	AtSequence
	AfterSequence
	AtTimestamp
)

// Position is a starting point in a shard.
type Position struct {
	Type PositionType
	Seq  Seq       // for AtSequence and AfterSequence
	Time time.Time // for AtTimestamp
}

// Seek turns a position into the record index a reader starts at.
func (s *Store) Seek(name, shardID string, pos Position) (uint64, error) {
	_, log, info, err := s.lookup(name, shardID)
	if err != nil {
		return 0, err
	}
	next, _ := log.tip()
	if info.Closed {
		next = info.End
	}
	switch pos.Type {
	case TrimHorizon:
		return log.trimHorizon(), nil
	case Latest:
		return max(next, log.trimHorizon()), nil
	case AtSequence, AfterSequence:
		if pos.Seq.Gen != info.Gen || pos.Seq.Shard != info.Num {
			return 0, fmt.Errorf("sequence number %s does not belong to %s: %w", pos.Seq, shardID, ErrInvalid)
		}
		i := pos.Seq.Index
		if pos.Type == AfterSequence {
			i++
		}
		if i > next {
			return 0, fmt.Errorf("sequence number %s is past the end of %s: %w", pos.Seq, shardID, ErrInvalid)
		}
		if th := log.trimHorizon(); i < th {
			if pos.Seq.Index == 0 {
				return th, nil // the shard's starting sequence number: before everything
			}
			return 0, fmt.Errorf("sequence number %s: %w", pos.Seq, ErrTrimmed)
		}
		return i, nil
	case AtTimestamp:
		i, err := log.seekTime(pos.Time.UnixNano())
		if err != nil {
			return 0, err
		}
		return min(i, next), nil
	}
	return 0, fmt.Errorf("position type %d: %w", pos.Type, ErrInvalid)
}

// SplitShard closes a shard and creates two children that divide its hash-key
// range at newStart (the first key of the second child).
func (s *Store) SplitShard(name, shardID string, newStart HashKey) ([]ShardInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, parent, err := s.openShardFor(name, shardID)
	if err != nil {
		return nil, err
	}
	if newStart.Cmp(parent.HashStart) <= 0 || newStart.Cmp(parent.HashEnd) > 0 {
		return nil, fmt.Errorf("new starting hash key %s is not inside %s's range [%s, %s]: %w",
			newStart, shardID, parent.HashStart, parent.HashEnd, ErrInvalid)
	}
	now := s.opts.Now().UTC()
	a := ShardInfo{Parent: parent.ID, HashStart: parent.HashStart, HashEnd: newStart.Sub1(), Gen: parent.Gen + 1, Created: now}
	b := ShardInfo{Parent: parent.ID, HashStart: newStart, HashEnd: parent.HashEnd, Gen: parent.Gen + 1, Created: now}
	return s.reshard(st, []string{parent.ID}, []ShardInfo{a, b})
}

// MergeShards closes two adjacent shards and creates one child over both ranges.
func (s *Store) MergeShards(name, shardID, adjacentID string) (ShardInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, a, err := s.openShardFor(name, shardID)
	if err != nil {
		return ShardInfo{}, err
	}
	_, b, err := s.openShardFor(name, adjacentID)
	if err != nil {
		return ShardInfo{}, err
	}
	lo, hi := a, b
	if lo.HashStart.Cmp(hi.HashStart) > 0 {
		lo, hi = hi, lo
	}
	if lo.HashEnd.Add1() != hi.HashStart || a.ID == b.ID {
		return ShardInfo{}, fmt.Errorf("shards %s and %s are not adjacent: %w", a.ID, b.ID, ErrInvalid)
	}
	child := ShardInfo{Parent: a.ID, AdjacentParent: b.ID, HashStart: lo.HashStart, HashEnd: hi.HashEnd,
		Gen: max(a.Gen, b.Gen) + 1, Created: s.opts.Now().UTC()}
	out, err := s.reshard(st, []string{a.ID, b.ID}, []ShardInfo{child})
	if err != nil {
		return ShardInfo{}, err
	}
	return out[0], nil
}

func (s *Store) openShardFor(name, shardID string) (*stream, ShardInfo, error) {
	if s.closed {
		return nil, ShardInfo{}, ErrClosed
	}
	st, ok := s.streams[name]
	if !ok {
		return nil, ShardInfo{}, fmt.Errorf("stream %s: %w", name, ErrNotFound)
	}
	sh, ok := st.info.Shard(shardID)
	if !ok {
		return nil, ShardInfo{}, fmt.Errorf("shard %s in stream %s: %w", shardID, name, ErrNotFound)
	}
	if sh.Closed {
		return nil, ShardInfo{}, fmt.Errorf("shard %s: %w", shardID, ErrShardClosed)
	}
	return st, sh, nil
}

// reshard closes parents and opens children. Caller holds s.mu.
func (s *Store) reshard(st *stream, parents []string, children []ShardInfo) ([]ShardInfo, error) {
	if len(st.info.Shards)+len(children) > MaxShards {
		return nil, fmt.Errorf("stream %s would have more than %d shards: %w", st.info.Name, MaxShards, ErrLimit)
	}
	info := st.info.clone()
	for _, id := range parents {
		end, err := st.logs[id].closeForReshard()
		if err != nil {
			return nil, err
		}
		for i := range info.Shards {
			if info.Shards[i].ID == id {
				info.Shards[i].Closed, info.Shards[i].End, info.Shards[i].ClosedAt = true, end, s.opts.Now().UTC()
			}
		}
	}
	for i := range children {
		children[i].Num = info.NextShard
		children[i].ID = ShardID(info.NextShard)
		info.NextShard++
		info.Shards = append(info.Shards, children[i])
	}
	if err := s.meta.putStream(&info); err != nil {
		return nil, err
	}
	st.info = info
	for _, c := range children {
		if err := s.openShard(st, c); err != nil {
			return nil, err
		}
	}
	st.rebuildRoutes()
	return children, nil
}

// UpdateShardCount scales a stream to target open shards of equal ranges, by
// splitting and merging (so lineage stays a tree of splits and merges).
func (s *Store) UpdateShardCount(name string, target int) error {
	if target < 1 || target > MaxShards {
		return fmt.Errorf("target shard count %d: %w", target, ErrInvalid)
	}
	starts := splitSpace(HashKey{}, MaxHashKey, target)
	// Split every open shard that straddles a boundary of the target ranges.
	for {
		info, err := s.Stream(name)
		if err != nil {
			return err
		}
		done := true
		for _, sh := range info.OpenShards() {
			for _, b := range starts[1:] {
				if b.Cmp(sh.HashStart) > 0 && b.Cmp(sh.HashEnd) <= 0 {
					if _, err := s.SplitShard(name, sh.ID, b); err != nil {
						return err
					}
					done = false
					break
				}
			}
			if !done {
				break
			}
		}
		if done {
			break
		}
	}
	// Merge the pieces inside each target range.
	for i := range starts {
		for {
			info, err := s.Stream(name)
			if err != nil {
				return err
			}
			var in []ShardInfo
			for _, sh := range info.OpenShards() {
				if sh.HashStart.Cmp(starts[i]) >= 0 && (i+1 == len(starts) || sh.HashStart.Cmp(starts[i+1]) < 0) {
					in = append(in, sh)
				}
			}
			if len(in) < 2 {
				break
			}
			if _, err := s.MergeShards(name, in[0].ID, in[1].ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// SetCheckpoint records how far a named consumer group has read a shard.
func (s *Store) SetCheckpoint(group, name, shardID, seq string) error {
	if _, _, _, err := s.lookup(name, shardID); err != nil {
		return err
	}
	return s.meta.db.Update(func(tx txn) error {
		return tx.Bucket(bucketCheckpoints).Put(checkpointKey(group, name, shardID), []byte(seq))
	})
}

// Checkpoint returns a consumer group's checkpoint for a shard ("" when none).
func (s *Store) Checkpoint(group, name, shardID string) (string, error) {
	var seq string
	err := s.meta.db.View(func(tx txn) error {
		if v := tx.Bucket(bucketCheckpoints).Get(checkpointKey(group, name, shardID)); v != nil {
			seq = string(v)
		}
		return nil
	})
	return seq, err
}

// Usage reports disk bytes per stream and in total.
func (s *Store) Usage() (map[string]int64, int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	per := make(map[string]int64, len(s.streams))
	for name, st := range s.streams {
		per[name] = st.bytes.Load()
	}
	return per, s.totalBytes.Load()
}

func (s *Store) syncLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, log := range s.allLogs() {
				if err := log.flush(); err != nil && !errors.Is(err, ErrFaulted) {
					s.opts.Logger.Error("interval fsync", "dir", log.dir, "err", err)
				}
			}
		}
	}
}

func (s *Store) allLogs() []*shardLog {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var logs []*shardLog
	for _, st := range s.streams {
		for _, log := range st.logs {
			logs = append(logs, log)
		}
	}
	return logs
}

func (s *Store) retentionLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.EnforceRetention()
		}
	}
}

// EnforceRetention deletes segments past their stream's retention period and
// enforces disk budgets. It runs periodically; tests call it directly.
func (s *Store) EnforceRetention() {
	now := s.opts.Now()
	type item struct {
		name   string
		cutoff int64
		logs   []*shardLog
		closed []ShardInfo
	}
	var items []item
	s.mu.RLock()
	for name, st := range s.streams {
		it := item{name: name, cutoff: now.Add(-st.info.Retention()).UnixNano()}
		for _, sh := range st.info.Shards {
			it.logs = append(it.logs, st.logs[sh.ID])
			if sh.Closed {
				it.closed = append(it.closed, sh)
			}
		}
		items = append(items, it)
	}
	s.mu.RUnlock()
	for _, it := range items {
		for _, log := range it.logs {
			log.rollIfIdle(now.UnixNano())
			for {
				freed := log.dropOldest(func(_, last int64) bool { return last >= it.cutoff })
				if freed == 0 {
					break
				}
				s.retained(it.name, freed)
			}
		}
		for _, sh := range it.closed {
			s.expireClosedShard(it.name, sh, it.cutoff)
		}
	}
	s.enforceBudgets()
}

// expireClosedShard removes a closed shard whose every record is past retention.
func (s *Store) expireClosedShard(name string, sh ShardInfo, cutoff int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[name]
	if !ok {
		return
	}
	log := st.logs[sh.ID]
	if log == nil {
		return
	}
	_, last := log.tip()
	if last == 0 {
		last = sh.Created.UnixNano()
	}
	if last >= cutoff {
		return
	}
	// Children must not point at a parent that is gone from listings; AWS keeps
	// the parent ids on children, so do we: only the shard itself goes.
	info := st.info.clone()
	kept := info.Shards[:0]
	for _, x := range info.Shards {
		if x.ID != sh.ID {
			kept = append(kept, x)
		}
	}
	info.Shards = kept
	if err := s.meta.putStream(&info); err != nil {
		s.opts.Logger.Error("retention: removing closed shard", "stream", name, "shard", sh.ID, "err", err)
		return
	}
	st.info = info
	delete(st.logs, sh.ID)
	freed := log.diskBytes.Load()
	log.closeFiles()
	log.wakeAll()
	s.opts.FS.RemoveAll(log.dir)
	log.addBytes(-freed)
	s.retained(name, freed)
}

func (s *Store) retained(name string, bytes int64) {
	if s.opts.OnRetention != nil {
		s.opts.OnRetention(name, bytes)
	}
}

// enforceBudgets deletes the oldest segments of streams over their budget,
// then of the whole store while it is over the global budget.
func (s *Store) enforceBudgets() {
	s.budgetMu.Lock()
	defer s.budgetMu.Unlock()
	s.mu.RLock()
	streams := make(map[string]*stream, len(s.streams))
	for k, v := range s.streams {
		streams[k] = v
	}
	s.mu.RUnlock()
	dropOldestOf := func(cands map[string]*stream) bool {
		var best *shardLog
		var bestName string
		var bestT int64
		for name, st := range cands {
			s.mu.RLock()
			logs := make([]*shardLog, 0, len(st.logs))
			for _, l := range st.logs {
				logs = append(logs, l)
			}
			s.mu.RUnlock()
			for _, l := range logs {
				if t, ok := l.oldest(); ok && (best == nil || t < bestT) {
					best, bestName, bestT = l, name, t
				}
			}
		}
		if best == nil {
			return false
		}
		freed := best.dropOldest(func(_, _ int64) bool { return false })
		if freed > 0 {
			s.retained(bestName, freed)
		}
		return freed > 0
	}
	for name, st := range streams {
		s.mu.RLock()
		budget := st.info.DiskBudget
		s.mu.RUnlock()
		for budget > 0 && st.bytes.Load() > budget {
			if !dropOldestOf(map[string]*stream{name: st}) {
				break
			}
		}
	}
	if s.opts.DiskBudget > 0 {
		for s.totalBytes.Load() > s.opts.DiskBudget {
			if !dropOldestOf(streams) {
				break
			}
		}
		s.full.Store(s.totalBytes.Load() > s.opts.DiskBudget)
	}
}

// ShardFor returns the open shard a record with this key would go to.
func (s *Store) ShardFor(name, partitionKey string, explicit *HashKey) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.streams[name]
	if !ok {
		return "", fmt.Errorf("stream %s: %w", name, ErrNotFound)
	}
	h := HashPartitionKey(partitionKey)
	if explicit != nil {
		h = *explicit
	}
	routes := st.routes
	return routes[sort.Search(len(routes), func(k int) bool { return routes[k].end.Cmp(h) >= 0 })].id, nil
}

// Limits is what the data path needs of a stream, without copying its shards,
// tags and consumers as Stream does.
type Limits struct {
	Created      time.Time
	MaxRecordKiB int
}

// StreamLimits returns a stream's Limits.
func (s *Store) StreamLimits(name string) (Limits, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.streams[name]
	if !ok {
		return Limits{}, fmt.Errorf("stream %s: %w", name, ErrNotFound)
	}
	return Limits{Created: st.info.Created, MaxRecordKiB: st.info.MaxRecordKiB}, nil
}
