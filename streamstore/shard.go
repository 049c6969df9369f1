package streamstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/streamgate/streamgate/streamstore/vfs"
)

// shardLog is the on-disk log of one shard: a run of segments, the last of
// which is active (appended to). Appends hold mu only while writing to the
// page cache; fsyncs happen outside it (group commit), and readers take it
// only to snapshot segment bounds, so readers never block writers.
type shardLog struct {
	fs   vfs.FS
	dir  string
	gen  uint32
	num  uint32
	opts *Options

	// tail is held by every append while it writes, and by a RecordWriter
	// from Begin to Commit or Abort: the open record owns the bytes after
	// the last frame. Lock order: tail before syncMu before mu.
	tail sync.Mutex

	mu          sync.RWMutex
	open        bool       // a RecordWriter holds the tail: the active segment must not roll
	segments    []*segment // replaced, never mutated in place (copy on write)
	next        uint64     // index the next record gets
	lastArrival int64
	// unreadable holds, per append whose records are not all visible yet,
	// its end index and first arrival, oldest first (see watermark).
	unreadable []appendMark
	fault      error  // set by a failed write or fsync; sticky
	closed     bool   // closed by a split or merge: no more appends
	sealedUpTo uint64 // every index below it is in a sealed (fsynced) segment
	buf        []byte
	rollBytes  int64
	rollAge    time.Duration // set with rollBytes: segments older than this roll

	// Lock order: syncMu before mu. Code holding mu never takes syncMu.
	syncMu sync.Mutex
	synced uint64 // every index below it is durable

	visible  atomic.Uint64 // every index below it may be read
	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced when visible advances

	diskBytes atomic.Int64
	onBytes   func(delta int64) // store-wide disk accounting
}

// openShardLog opens (or creates) the shard directory and recovers it: the
// tail segment is scanned and a torn last record truncated; every other
// segment is described by its index file, rebuilt from the segment if missing
// or damaged. Appends always go to a fresh segment after a restart. When gap
// is set (fsync policies that show records before they are durable), the new
// segment starts past a gap so that no index a reader may have seen is reused.
func openShardLog(opts *Options, dir string, gen, num uint32, gap bool, onBytes func(int64)) (*shardLog, error) {
	fs := opts.FS
	sh := &shardLog{fs: fs, dir: dir, gen: gen, num: num, opts: opts, notify: make(chan struct{}), onBytes: onBytes, rollBytes: opts.SegmentBytes, rollAge: opts.SegmentMaxAge}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bases, err := listSegments(fs, dir)
	if err != nil {
		return nil, err
	}
	for i, base := range bases {
		g, err := sh.openSegment(base, i == len(bases)-1)
		if err != nil {
			sh.closeFiles()
			return nil, fmt.Errorf("segment %s: %w", filepath.Join(dir, segmentName(base)), err)
		}
		sh.segments = append(sh.segments, g)
	}
	// Index 0 is never a record: its sequence number (the shard's starting
	// sequence number) means "before the first record", so a reader caught up
	// at an empty shard still has a position to resume after.
	next := uint64(1)
	if n := len(sh.segments); n > 0 {
		tail := sh.segments[n-1]
		next = tail.base + tail.count
		sh.lastArrival = tail.lastTime
		if tail.count == 0 {
			// An empty tail (a roll that saw no record) becomes the active segment again.
			tail.sealed = false
		} else if err := sh.seal(tail); err != nil {
			sh.closeFiles()
			return nil, err
		}
	}
	if len(sh.segments) == 0 || sh.segments[len(sh.segments)-1].sealed {
		if gap && len(sh.segments) > 0 {
			next += 1 << 20
		}
		g, err := sh.createSegment(next)
		if err != nil {
			sh.closeFiles()
			return nil, err
		}
		sh.segments = append(sh.segments, g)
	}
	sh.next = next
	sh.synced = next
	sh.visible.Store(next)
	var total int64
	for _, g := range sh.segments {
		total += g.size + int64(len(g.index)*24+indexHeader)
	}
	sh.diskBytes.Store(total)
	return sh, nil
}

// openSegment opens an existing segment. The tail is always scanned and
// repaired; others trust their index file and are scanned only without one.
func (sh *shardLog) openSegment(base uint64, tail bool) (*segment, error) {
	path := filepath.Join(sh.dir, segmentName(base))
	flag := os.O_RDONLY
	if tail {
		flag = os.O_RDWR
	}
	f, err := sh.fs.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	g := &segment{base: base, path: path, file: f, sealed: true}
	if !tail {
		if b, err := readFileAll(sh.fs, filepath.Join(sh.dir, indexName(base))); err == nil {
			if res, err := decodeIndex(b, base); err == nil {
				if size, err := f.Size(); err == nil && size >= res.size {
					g.apply(res)
					return g, nil
				}
			}
		}
	}
	res, err := scanSegment(f, base)
	if err != nil {
		f.Close()
		return nil, err
	}
	g.apply(res)
	if res.torn {
		if !tail {
			// A sealed segment was fsynced before the next one began, so damage
			// here is media corruption: keep the good prefix, read-only.
			sh.opts.Logger.Warn("segment damaged; keeping its valid prefix", "segment", path, "valid_bytes", res.size)
		} else {
			sh.opts.Logger.Info("recovery: truncating torn tail", "segment", path, "valid_bytes", res.size)
			if err := f.Truncate(res.size); err != nil {
				f.Close()
				return nil, err
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return nil, err
			}
		}
	}
	if !tail {
		if err := writeIndexFile(sh.fs, sh.dir, g); err != nil {
			sh.opts.Logger.Warn("could not rewrite segment index", "segment", path, "err", err)
		}
	}
	return g, nil
}

func (g *segment) apply(res scanResult) {
	g.size, g.count, g.firstTime, g.lastTime, g.producers, g.index = res.size, res.count, res.firstTime, res.lastTime, res.producers, res.index
}

func (sh *shardLog) createSegment(base uint64) (*segment, error) {
	path := filepath.Join(sh.dir, segmentName(base))
	f, err := sh.fs.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	if err := sh.fs.SyncDir(sh.dir); err != nil {
		f.Close()
		return nil, err
	}
	return &segment{base: base, path: path, file: f}, nil
}

// seal fsyncs a segment and writes its index file.
func (sh *shardLog) seal(g *segment) error {
	if err := g.file.Sync(); err != nil {
		return err
	}
	g.sealed = true
	if err := writeIndexFile(sh.fs, sh.dir, g); err != nil {
		// The index is rebuilt from the segment when missing: not fatal.
		sh.opts.Logger.Warn("could not write segment index", "segment", g.path, "err", err)
	}
	return sh.fs.SyncDir(sh.dir)
}

// rollLocked seals the active segment and starts a new one. Caller holds mu.
func (sh *shardLog) rollLocked() error {
	active := sh.segments[len(sh.segments)-1]
	if err := sh.seal(active); err != nil {
		sh.fault = fmt.Errorf("sealing %s: %w", active.path, err)
		return sh.fault
	}
	g, err := sh.createSegment(sh.next)
	if err != nil {
		return err
	}
	segs := make([]*segment, len(sh.segments), len(sh.segments)+1)
	copy(segs, sh.segments)
	sh.segments = append(segs, g)
	// The sealed segment is durable now; waitDurable learns it from sealedUpTo.
	sh.sealedUpTo = g.base
	if sh.opts.Fsync == FsyncAlways {
		sh.publish(g.base)
	}
	return nil
}

// bigRecord is the size from which a record's data is written from the
// caller's slice rather than copied into the shard's write buffer.
const bigRecord = 64 << 10

// bigData is a record's data to write after buf[:at].
type bigData struct {
	at   int
	data []byte
}

// writePieces writes buf with each big record's data spliced in after its
// frame head, from off, in one vectored write.
func writePieces(f vfs.File, off int64, buf []byte, big []bigData) error {
	if len(big) == 0 {
		_, err := f.WriteAt(buf, off)
		return err
	}
	bufs := make([][]byte, 0, 2*len(big)+1)
	prev := 0
	for _, b := range big {
		bufs = append(bufs, buf[prev:b.at], b.data)
		prev = b.at
	}
	if prev < len(buf) {
		bufs = append(bufs, buf[prev:])
	}
	_, err := f.WriteVAt(bufs, off)
	return err
}

// pending is one record waiting to be appended.
type pending struct {
	key      string
	data     []byte
	producer int64
	arrival  int64 // requested arrival (0: now); append sets the one it used
}

// appendMark is an append not yet visible in full: see watermark.
type appendMark struct {
	end     uint64
	arrival int64
}

// append writes records to the active segment and returns the index of the
// first; each record's arrival is set to the one it got. The records are not
// durable yet: see waitDurable. The clock is read under the shard's lock,
// so an append never gets an arrival time before a watermark taken earlier.
func (sh *shardLog) append(recs []pending, clock func() time.Time) (uint64, error) {
	sh.tail.Lock()
	defer sh.tail.Unlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	g, now, err := sh.activeLocked(clock)
	if err != nil {
		return 0, err
	}
	t := sh.lastArrival
	for i := range recs {
		t = arrivalAt(t, recs[i].arrival, now)
		recs[i].arrival = t
	}
	first := sh.next
	buf := sh.buf[:0]
	lastIndexed := g.lastIndexed()
	var newIndex []indexEntry
	var big []bigData // data written in place, not copied into buf
	size := int64(0)  // bytes of the write: buf and the big data
	for i, r := range recs {
		off := g.size + size
		if off-lastIndexed >= indexEvery {
			newIndex = append(newIndex, indexEntry{first + uint64(i), off, r.arrival})
			lastIndexed = off
		}
		n := len(buf)
		if len(r.data) >= bigRecord {
			buf = appendFrameHead(buf, first+uint64(i), r.arrival, r.producer, r.key, r.data)
			big = append(big, bigData{len(buf), r.data})
			size += int64(len(r.data))
		} else {
			buf = appendFrame(buf, first+uint64(i), r.arrival, r.producer, r.key, r.data)
		}
		size += int64(len(buf) - n)
	}
	producers := g.producers
	for _, r := range recs {
		producers.add(r.producer)
	}
	if cap(buf) <= 8<<20 {
		sh.buf = buf
	}
	if err := writePieces(g.file, g.size, buf, big); err != nil {
		// Cut whatever part of the write landed, so the file ends at the last
		// good frame again. If even that fails, the tail is unknown: fault.
		if terr := g.file.Truncate(g.size); terr != nil {
			sh.fault = fmt.Errorf("write: %v; truncate: %v", err, terr)
			return 0, fmt.Errorf("%w: %v", ErrFaulted, sh.fault)
		}
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return 0, fmt.Errorf("%w: %v", ErrNoSpace, err)
		}
		sh.fault = fmt.Errorf("write: %w", err)
		return 0, fmt.Errorf("%w: %v", ErrFaulted, sh.fault)
	}
	sh.addedLocked(g, uint64(len(recs)), size, size, newIndex, producers, recs[0].arrival, t)
	return first, nil
}

// lastIndexed is the offset of the segment's last index entry (-indexEvery
// when it has none), from which the next entry is due indexEvery bytes on.
func (g *segment) lastIndexed() int64 {
	if n := len(g.index); n > 0 {
		return g.index[n-1].offset
	}
	return -indexEvery
}

// addedLocked records count records of size bytes written to the end of the
// active segment g (unaccounted of them not yet in the disk accounting),
// with their index entries and the segment's producer span including them,
// arriving from first to last, and makes them readable (appendedLocked).
// The caller holds mu.
func (sh *shardLog) addedLocked(g *segment, count uint64, size, unaccounted int64, index []indexEntry, producers producerRange, first, last int64) {
	if g.count == 0 {
		g.firstTime = first
	}
	g.size += size
	g.count += count
	g.lastTime = last
	g.producers = producers
	g.index = append(g.index, index...)
	sh.next += count
	sh.lastArrival = last
	sh.addBytes(unaccounted + int64(24*len(index)))
	sh.appendedLocked(first)
}

// activeLocked returns the segment the next record goes to, rolling the
// active one when it is full or old, and the time an append reads its
// clock at (never before the last arrival). The caller holds mu.
func (sh *shardLog) activeLocked(clock func() time.Time) (*segment, int64, error) {
	now := clock().UnixNano()
	if sh.fault != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrFaulted, sh.fault)
	}
	if sh.closed {
		return nil, 0, ErrShardClosed
	}
	if now < sh.lastArrival {
		now = sh.lastArrival // arrival times never go backwards within a shard
	}
	g := sh.segments[len(sh.segments)-1]
	if g.count > 0 && (g.size >= sh.rollBytes || time.Duration(now-g.firstTime) >= sh.rollAge) {
		if err := sh.rollLocked(); err != nil {
			return nil, 0, err
		}
		g = sh.segments[len(sh.segments)-1]
	}
	return g, now, nil
}

// arrivalAt is the arrival time a record gets when it asks for requested
// (0: none) at now, after a record that arrived at prev: a requested one (a
// fragment's first packet) may be earlier than now, never later, and never
// before prev. Arrival times never go backwards within a shard.
func arrivalAt(prev, requested, now int64) int64 {
	if requested > 0 && requested < now {
		return max(prev, requested)
	}
	return now
}

// appendedLocked makes records up to sh.next readable, at once or (with
// FsyncAlways) once durable. The caller holds mu.
func (sh *shardLog) appendedLocked(firstArrival int64) {
	if sh.opts.Fsync != FsyncAlways {
		sh.publish(sh.next)
	} else {
		sh.trimUnreadable()
		sh.unreadable = append(sh.unreadable, appendMark{sh.next, firstArrival})
	}
}

// trimUnreadable drops the marks of appends that are visible now. The
// caller holds mu.
func (sh *shardLog) trimUnreadable() {
	vis := sh.visible.Load()
	k := 0
	for k < len(sh.unreadable) && sh.unreadable[k].end <= vis {
		k++
	}
	sh.unreadable = sh.unreadable[k:]
}

// watermark returns a time before which every record of the shard has been
// readable since before the call: the arrival of the oldest record written
// but not readable yet (arrivals never decrease), or, with none, now (read
// under the lock appends read their clock under, so no later append gets
// an earlier arrival, unless it asks for one, as video fragments do).
func (sh *shardLog) watermark(clock func() time.Time) int64 {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.trimUnreadable()
	if len(sh.unreadable) > 0 {
		return sh.unreadable[0].arrival
	}
	return max(clock().UnixNano(), sh.lastArrival)
}

func (sh *shardLog) addBytes(n int64) {
	sh.diskBytes.Add(n)
	if sh.onBytes != nil {
		sh.onBytes(n)
	}
}

// waitDurable returns once every index below upTo is on stable storage: group
// commit. The first waiter fsyncs everything written so far; waiters that
// queued behind it find their records covered and return without an fsync.
// A failed fsync faults the shard for good: after one, the kernel may have
// dropped the dirty pages, so retrying could report data durable that is not.
func (sh *shardLog) waitDurable(upTo uint64) error {
	sh.syncMu.Lock()
	defer sh.syncMu.Unlock()
	if sh.synced >= upTo {
		return nil
	}
	sh.mu.RLock()
	target, fault, sealed := sh.next, sh.fault, sh.sealedUpTo
	active := sh.segments[len(sh.segments)-1]
	sh.mu.RUnlock()
	if sealed >= upTo {
		// A segment roll fsynced these records already.
		sh.synced = max(sh.synced, sealed)
		return nil
	}
	if fault != nil {
		return fmt.Errorf("%w: %v", ErrFaulted, fault)
	}
	start := time.Now()
	err := active.file.Sync()
	if sh.opts.OnFsync != nil {
		sh.opts.OnFsync(time.Since(start))
	}
	if err != nil {
		sh.mu.Lock()
		sh.fault = fmt.Errorf("fsync %s: %w", active.path, err)
		sh.mu.Unlock()
		sh.opts.Logger.Error("fsync failed; shard stops acknowledging writes", "segment", active.path, "err", err)
		return fmt.Errorf("%w: %v", ErrFaulted, err)
	}
	if target > sh.synced {
		sh.synced = target
	}
	sh.publish(target)
	return nil
}

// publish makes records below n readable and wakes waiting readers.
func (sh *shardLog) publish(n uint64) {
	sh.notifyMu.Lock()
	if n > sh.visible.Load() {
		sh.visible.Store(n)
		close(sh.notify)
		sh.notify = make(chan struct{})
	}
	sh.notifyMu.Unlock()
}

// changed returns a channel closed when new records become visible (or the
// shard closes).
func (sh *shardLog) changed() <-chan struct{} {
	sh.notifyMu.Lock()
	defer sh.notifyMu.Unlock()
	return sh.notify
}

func (sh *shardLog) wakeAll() {
	sh.notifyMu.Lock()
	close(sh.notify)
	sh.notify = make(chan struct{})
	sh.notifyMu.Unlock()
}

// segView is a reader's snapshot of a segment's bounds.
type segView struct {
	base  uint64
	file  vfs.File
	size  int64
	count uint64
	index []indexEntry
	first int64
	last  int64

	producers producerRange

	seg    *segment // for its header cache
	sealed bool
}

func (sh *shardLog) snapshot() []segView {
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	views := make([]segView, len(sh.segments))
	for i, g := range sh.segments {
		views[i] = segView{g.base, g.file, g.size, g.count, g.index, g.firstTime, g.lastTime, g.producers, g, g.sealed}
	}
	return views
}

// trimHorizon is the index of the oldest record still kept.
func (sh *shardLog) trimHorizon() uint64 {
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.segments[0].base
}

// read returns up to maxRecords records (and about maxBytes of data) starting
// at index from, never past what is visible. next is where the following read
// continues. Reading below the trim horizon starts at the trim horizon.
func (sh *shardLog) read(from uint64, maxRecords, maxBytes int) (recs []Record, next uint64, err error) {
	for attempt := 0; ; attempt++ {
		recs, next, err = sh.readOnce(from, maxRecords, maxBytes)
		if err == nil || attempt == 2 {
			return recs, next, err
		}
		// A segment deleted by retention under our feet: retry from what is left.
	}
}

func (sh *shardLog) readOnce(from uint64, maxRecords, maxBytes int) ([]Record, uint64, error) {
	vis := sh.visible.Load()
	views := sh.snapshot()
	if from < views[0].base {
		from = views[0].base
	}
	if from >= vis || maxRecords <= 0 {
		return nil, from, nil
	}
	k := sort.Search(len(views), func(k int) bool { return views[k].base+views[k].count > from })
	var recs []Record
	bytes := 0
	next := from
	for ; k < len(views); k++ {
		v := views[k]
		if next < v.base {
			next = v.base // skip a gap left by a restart
		}
		if next >= vis {
			break
		}
		off := offsetOf(v.index, next)
		var err error
		var done bool
		recs, bytes, next, done, err = readSegment(v, off, next, vis, recs, bytes, maxRecords, maxBytes)
		if err != nil {
			return nil, from, err
		}
		if done {
			break
		}
	}
	for i := range recs {
		recs[i].Seq.Gen, recs[i].Seq.Shard = sh.gen, sh.num
	}
	return recs, next, nil
}

// scanFrames calls fn for each frame of a segment from offset off on, until
// fn returns true or the segment's valid bytes end. It reads in chunks and
// grows a chunk to hold a frame larger than it. Frames alias the chunk.
func scanFrames(v segView, off int64, fn func(f decodedFrame) bool) error {
	chunk := int64(256 << 10)
	var carry []byte // the start of a frame the last chunk cut, already read
	for off < v.size {
		n := min(chunk, v.size-off)
		buf := make([]byte, n)
		copy(buf, carry)
		if rest := int64(len(carry)); rest < n {
			m, err := v.file.ReadAt(buf[rest:], off+rest)
			if err != nil && !(errors.Is(err, io.EOF) && int64(m) == n-rest) {
				return err
			}
		}
		carry = nil
		p := buf
		for len(p) > 0 {
			f, err := decodeFrame(p)
			if err == errShortFrame {
				if len(p) < len(buf) {
					carry = p // a frame the chunk's end cut: keep what was read
				}
				break
			}
			if err != nil {
				return fmt.Errorf("segment %d offset %d: %w", v.base, off, errBadFrame)
			}
			if fn(f) {
				return nil
			}
			off += int64(f.size)
			p = p[f.size:]
		}
		if len(p) == len(buf) {
			// Not one whole frame in the chunk: read the frame whole next time.
			if len(p) < frameHeader {
				return fmt.Errorf("segment %d offset %d: %w", v.base, off, errBadFrame)
			}
			chunk = int64(frameHeader) + int64(binary.BigEndian.Uint32(p))
			if chunk > maxFrame+frameHeader {
				return fmt.Errorf("segment %d offset %d: %w", v.base, off, errBadFrame)
			}
			carry = p // read the rest of the frame, not the whole of it again
		}
	}
	return nil
}

// readSegment appends records with index in [next, vis) from one segment,
// scanning from offset off. done reports that a limit was reached.
func readSegment(v segView, off int64, next, vis uint64, recs []Record, bytes, maxRecords, maxBytes int) ([]Record, int, uint64, bool, error) {
	done := false
	err := scanFrames(v, off, func(f decodedFrame) bool {
		if f.index < next {
			return false
		}
		if f.index >= vis || (len(recs) > 0 && (len(recs) >= maxRecords || bytes+len(f.data) > maxBytes)) {
			done = true
			return true
		}
		recs = append(recs, Record{Seq: Seq{Index: f.index}, PartitionKey: string(f.key), Data: f.data, Arrival: f.arrival, Producer: f.producer})
		bytes += len(f.data)
		next = f.index + 1
		// Stop as soon as a limit is reached: deciding at the next frame
		// would read (and checksum) a whole frame only to leave it.
		done = len(recs) >= maxRecords || bytes >= maxBytes || next >= vis
		return done
	})
	return recs, bytes, next, done, err
}

// segmentEndingAtOrAfter returns the first segment whose last arrival is at
// or after t. Only the active (tail) segment can be empty; it counts as
// ending after everything, which keeps the search predicate monotonic (an
// earlier version treated it as ending never, and after a restart, with an
// empty active segment, binary search skipped every sealed one).
func segmentEndingAtOrAfter(views []segView, t int64) int {
	return sort.Search(len(views), func(k int) bool { return views[k].count == 0 || views[k].last >= t })
}

// seekTime returns the index of the first record that arrived at or after t.
func (sh *shardLog) seekTime(t int64) (uint64, error) {
	vis := sh.visible.Load()
	views := sh.snapshot()
	k := segmentEndingAtOrAfter(views, t)
	for ; k < len(views); k++ {
		v := views[k]
		if v.count == 0 {
			continue
		}
		found, at := false, uint64(0)
		err := scanFrames(v, offsetBefore(v.index, t), func(f decodedFrame) bool {
			if f.arrival >= t || f.index >= vis {
				found, at = true, min(f.index, vis)
			}
			return found
		})
		if err != nil {
			return 0, err
		}
		if found {
			return at, nil
		}
	}
	return vis, nil
}

// dropOldest deletes the oldest sealed segment if keep reports false for it.
// It returns the bytes freed (0 when nothing was deleted).
func (sh *shardLog) dropOldest(keep func(first, last int64) bool) int64 {
	sh.mu.Lock()
	if len(sh.segments) < 2 {
		sh.mu.Unlock()
		return 0
	}
	g := sh.segments[0]
	if !g.sealed || keep(g.firstTime, g.lastTime) {
		sh.mu.Unlock()
		return 0
	}
	sh.segments = append([]*segment(nil), sh.segments[1:]...)
	sh.mu.Unlock()
	freed := g.size + int64(len(g.index)*24+indexHeader)
	g.file.Close()
	if err := sh.fs.Remove(g.path); err != nil && !os.IsNotExist(err) {
		sh.opts.Logger.Warn("retention: could not delete segment", "segment", g.path, "err", err)
	}
	sh.fs.Remove(filepath.Join(sh.dir, indexName(g.base)))
	sh.addBytes(-freed)
	return freed
}

// oldest returns the last arrival time of the oldest deletable segment.
func (sh *shardLog) oldest() (int64, bool) {
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if len(sh.segments) < 2 || !sh.segments[0].sealed {
		return 0, false
	}
	return sh.segments[0].lastTime, true
}

// rollIfIdle seals an active segment whose first record is older than maxAge,
// so time retention can delete it even when no new record arrives.
func (sh *shardLog) rollIfIdle(now int64) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	g := sh.segments[len(sh.segments)-1]
	if sh.fault != nil || sh.closed || sh.open || g.count == 0 || time.Duration(now-g.firstTime) < sh.rollAge {
		return
	}
	if err := sh.rollLocked(); err != nil {
		sh.opts.Logger.Error("rolling idle segment", "dir", sh.dir, "err", err)
	}
}

// closeForReshard stops appends and makes everything written durable; it
// returns the index after the last record.
func (sh *shardLog) closeForReshard() (uint64, error) {
	sh.mu.Lock()
	sh.closed = true
	end := sh.next
	sh.mu.Unlock()
	if sh.opts.Fsync != FsyncNever {
		if err := sh.waitDurable(end); err != nil {
			return end, err
		}
	}
	sh.publish(end)
	sh.wakeAll()
	return end, nil
}

// tip returns the next index and the arrival time of the last record.
func (sh *shardLog) tip() (uint64, int64) {
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.next, sh.lastArrival
}

// flush makes everything written durable (on shutdown and for the interval policy).
func (sh *shardLog) flush() error {
	sh.mu.RLock()
	next := sh.next
	sh.mu.RUnlock()
	return sh.waitDurable(next)
}

func (sh *shardLog) closeFiles() {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, g := range sh.segments {
		g.file.Close()
	}
}
