package analytics

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/streamgate/streamgate/streamstore"
)

// shardReader follows one shard of an input's source stream.
type shardReader struct {
	input  *inputRun
	shard  string
	next   uint64
	buf    []streamstore.Record
	atTip  bool
	closed bool // read to its end after a reshard
}

// inputRun is one application input: its source stream and the
// in-application streams its shards feed.
type inputRun struct {
	in      *Input
	stream  string
	parser  *recordParser
	targets []*inAppStream // NamePrefix_001 ... by InputParallelism
	// preprocessor is the URL of the input's preprocessing function.
	preprocessor string
}

// outputRun buffers the records of one application output until the round
// of processing that made them ends.
type outputRun struct {
	out     *Output
	stream  string // the store stream records are appended to
	csv     bool
	pending []streamstore.Entry
	url     string // a function output (LambdaOutput): its URL
	// deliveryStream names a Firehose output's delivery stream.
	deliveryStream string
	sent           int64 // rows emitted since the application was created
	written        int64 // rows of those durable in the destination
	// sentBefore is sent before the current record was taken in (after
	// the windows it closes emitted): what a mark taken for it records.
	sentBefore int64
	prefix     string
}

// runner runs one application on one goroutine: it reads its inputs,
// pushes rows through the engine, and writes what reaches the outputs.
type runner struct {
	s       *Service
	app     string
	arn     string
	eng     *engine
	inputs  []*inputRun
	readers []*shardReader
	outputs []*outputRun
	rowtime int64 // ROWTIME of the last row (ms): never goes back
	// cur is the shard whose record is being processed, rowtimeBefore the
	// ROWTIME before it: what a window opening now marks.
	cur           *shardReader
	curIndex      uint64
	rowtimeBefore int64
	serial        int64
	checkpointed  time.Time
	marks         []*mark // periodic marks, oldest first (sliding windows)
	lastMark      time.Time
	cancel        context.CancelFunc
	started       chan struct{} // closed once the inputs were read
	startOnce     sync.Once
	done          chan struct{}
}

func (r *runner) hasStarted() bool {
	select {
	case <-r.started:
		return true
	default:
		return false
	}
}

// run is the application's loop.
func (r *runner) run(ctx context.Context) {
	defer close(r.done)
	defer r.checkpoint()
	for ctx.Err() == nil {
		waits := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
		allAtTip := true
		// Every record that arrived before the watermark is read once each
		// shard is read to its tip: the store's watermark, taken before the
		// reads, covers records whose fsync was still running.
		watermark := time.Now().UnixNano()
		for _, sr := range r.readers {
			if sr.closed {
				continue
			}
			ch, err := r.s.store.Changed(sr.input.stream, sr.shard)
			if err == nil {
				var w int64
				w, err = r.s.store.Watermark(sr.input.stream, sr.shard)
				watermark = min(watermark, w)
			}
			if err != nil {
				r.stopWith(fmt.Errorf("input stream %s: %w", sr.input.stream, err))
				return
			}
			waits = append(waits, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
			if err := r.fill(ctx, sr); err != nil {
				r.stopWith(err)
				return
			}
			allAtTip = allAtTip && sr.atTip
		}
		r.startOnce.Do(func() { close(r.started) })
		errs := r.eng.errorCount
		n := r.process()
		if n > 0 {
			r.s.m.records.WithLabelValues(r.app).Add(float64(n))
		}
		if d := r.eng.errorCount - errs; d > 0 {
			r.s.m.errors.WithLabelValues(r.app).Add(float64(d))
		}
		if allAtTip {
			// Idle inputs: ROWTIME follows the log's watermark (the clock,
			// unless a record's fsync is running), so windows close on time
			// and never before a record that belongs in them is read: a
			// replay after a restart cuts the same windows.
			wm := time.Unix(0, watermark).UnixMilli()
			if wm > r.rowtime {
				r.rowtime = wm
			}
			r.eng.advance(r.rowtime)
		}
		if err := r.flush(ctx); err != nil {
			r.s.log.Warn("analytics output failed; retrying", "application", r.app, "err", err)
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		if time.Since(r.checkpointed) >= checkpointEvery {
			r.checkpoint()
		}
		if n > 0 || r.refreshShards() {
			continue // more may be waiting
		}
		r.checkpoint()
		wait := time.Hour
		if end, ok := r.eng.nextClose(); ok {
			wait = time.Until(time.UnixMilli(end)) + time.Millisecond
		}
		timer := time.NewTimer(max(wait, time.Millisecond))
		waits = append(waits, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)})
		reflect.Select(waits)
		timer.Stop()
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// checkpointEvery bounds how much a restart replays while records flow.
const checkpointEvery = time.Second

// readBatch bounds one read of a shard.
const readBatch = 2000

// fill reads the next records of a shard when its buffer is empty.
func (r *runner) fill(ctx context.Context, sr *shardReader) error {
	if len(sr.buf) > 0 {
		return nil
	}
	res, err := r.s.store.Read(sr.input.stream, sr.shard, sr.next, readBatch, 4<<20)
	if errors.Is(err, streamstore.ErrTrimmed) {
		r.s.log.Error("analytics input fell behind retention; skipping to the oldest record", "application", r.app, "shard", sr.shard)
		sr.next, err = r.s.store.Seek(sr.input.stream, sr.shard, streamstore.Position{Type: streamstore.TrimHorizon})
		if err != nil {
			return err
		}
		return r.fill(ctx, sr)
	}
	if err != nil {
		return fmt.Errorf("input stream %s: %w", sr.input.stream, err)
	}
	sr.buf, sr.next = res.Records, res.Next
	if sr.input.preprocessor != "" && len(sr.buf) > 0 {
		sr.buf = r.preprocess(ctx, sr, sr.buf)
	}
	sr.atTip = len(res.Records) < readBatch && res.Behind == 0
	sr.closed = res.EndOfShard && len(res.Records) == 0
	return nil
}

// process pushes buffered records through the engine, oldest arrival
// first across shards, as long as every shard that is not at its tip has
// records buffered (so the merge never runs ahead of an unread shard), and
// returns how many it took.
func (r *runner) process() int {
	n := 0
	for {
		var pick *shardReader
		for _, sr := range r.readers {
			if len(sr.buf) == 0 && !sr.atTip && !sr.closed {
				return n // its next records may be older than the others': read them first
			}
			if len(sr.buf) > 0 && (pick == nil || sr.buf[0].Arrival < pick.buf[0].Arrival) {
				pick = sr
			}
		}
		if pick == nil {
			return n
		}
		rec := pick.buf[0]
		pick.buf = pick.buf[1:]
		n++
		r.cur, r.curIndex, r.rowtimeBefore = pick, rec.Seq.Index, r.rowtime
		r.push(pick, rec)
		r.cur = nil
	}
}

// push parses one record into rows of its source stream.
func (r *runner) push(sr *shardReader, rec streamstore.Record) {
	arrival := rec.Arrival / 1e6
	if arrival > r.rowtime {
		r.rowtime = arrival
		// Close the windows this record's ROWTIME ends before it is taken
		// in, so a window it opens marks a point after every emission that
		// replaying from it does not repeat.
		r.eng.advance(r.rowtime)
	}
	for _, o := range r.outputs {
		o.sentBefore = o.sent
	}
	r.takePeriodicMark()
	in := sr.input
	target := in.targets[0]
	if len(in.targets) > 1 {
		target = in.targets[shardIndex(sr.shard)%len(in.targets)]
	}
	err := in.parser.parse(rec.Data, func(vals []any) {
		target.insert(&row{rowtime: r.rowtime, arrival: arrival, vals: vals})
	})
	if err != nil {
		r.eng.fail("ParseError", "", err.Error(), string(rec.Data), r.rowtime)
	}
}

// shardIndex is the number of a "shardId-000000000003".
func shardIndex(id string) int {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] < '0' || id[i] > '9' {
			n, _ := strconv.Atoi(id[i+1:])
			return n
		}
	}
	n, _ := strconv.Atoi(id)
	return n
}

// flush writes what the outputs collected.
func (r *runner) flush(ctx context.Context) error {
	for _, o := range r.outputs {
		if len(o.pending) == 0 {
			continue
		}
		if o.url != "" {
			if err := r.deliver(ctx, o); err != nil {
				return err
			}
			o.written += int64(len(o.pending))
			r.s.m.rows.WithLabelValues(r.app).Add(float64(len(o.pending)))
			clear(o.pending)
			o.pending = o.pending[:0]
			continue
		}
		res, err := r.s.store.Append(o.stream, o.pending)
		if err != nil {
			return fmt.Errorf("output %s: %w", o.out.Name, err)
		}
		for _, a := range res {
			if a.Err != nil {
				return fmt.Errorf("output %s: %w", o.out.Name, a.Err)
			}
		}
		o.written += int64(len(o.pending))
		r.s.m.rows.WithLabelValues(r.app).Add(float64(len(o.pending)))
		clear(o.pending)
		o.pending = o.pending[:0]
	}
	return nil
}

// refreshShards follows a reshard of a source stream: it adds the shards
// it does not read yet. It reports whether it found any.
func (r *runner) refreshShards() bool {
	added := false
	for _, in := range r.inputs {
		info, err := r.s.store.Stream(in.stream)
		if err != nil {
			continue
		}
		for _, sh := range info.Shards {
			if r.reading(in, sh.ID) {
				continue
			}
			next, err := r.s.store.Seek(in.stream, sh.ID, streamstore.Position{Type: streamstore.TrimHorizon})
			if err != nil {
				continue
			}
			r.readers = append(r.readers, &shardReader{input: in, shard: sh.ID, next: next})
			added = true
		}
	}
	return added
}

func (r *runner) reading(in *inputRun, shard string) bool {
	for _, sr := range r.readers {
		if sr.input == in && sr.shard == shard {
			return true
		}
	}
	return false
}

// stopWith ends the application on an error it cannot get past (an input
// stream deleted): it goes back to READY, as a stopped one.
func (r *runner) stopWith(err error) {
	r.s.log.Error("analytics application stopped", "application", r.app, "err", err)
	go r.s.ended(r)
}
