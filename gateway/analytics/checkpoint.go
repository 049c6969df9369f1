package analytics

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/streamgate/streamgate/streamstore"
)

// A mark is a point in an application's inputs from which its state can be
// rebuilt: each shard's next record, ROWTIME just before it, and how many
// rows each output had emitted. An open window remembers the mark of its
// first row; the checkpoint is the oldest open window's mark (or the
// current position when no window is open), so a restart replays exactly
// the records still inside open windows. Replay is deterministic (ROWTIME
// comes from the log's arrival times, shards merge in arrival order), so
// the replayed rows are the same rows; each output counts them and skips
// those it had already written. The result: no window lost, none emitted
// twice.
type mark struct {
	Serial  int64
	Next    map[string]uint64 // "inputID/shardID" -> index of the next record
	Rowtime int64
	Sent    map[string]int64 // outputID -> rows emitted before the mark
}

// periodicMark is how often a mark is taken for sliding windows, whose
// rows go back further than any open window's first row.
const periodicMark = time.Second

// takePeriodicMark keeps a mark of the current record now and then (when
// the application has sliding windows).
func (r *runner) takePeriodicMark() {
	if !r.eng.hasSliding || time.Since(r.lastMark) < periodicMark {
		return
	}
	r.lastMark = time.Now()
	r.marks = append(r.marks, r.currentMark())
}

// checkpointDoc is what the store keeps per application.
type checkpointDoc struct {
	Mark    *mark
	Written map[string]int64 // outputID -> rows durable in the destination
	At      time.Time
}

const checkpointKind = "analytics-checkpoint"

func readerKey(in *inputRun, shard string) string { return in.in.InputID + "/" + shard }

// currentMark is the mark of the record being processed (r.cur), or of the
// position after everything processed when there is none.
func (r *runner) currentMark() *mark {
	r.serial++
	m := &mark{Serial: r.serial, Next: map[string]uint64{}, Rowtime: r.rowtimeBefore, Sent: map[string]int64{}}
	for _, sr := range r.readers {
		next := sr.next
		switch {
		case sr == r.cur:
			next = r.curIndex // the record being processed is part of the state
		case len(sr.buf) > 0:
			next = sr.buf[0].Seq.Index // (preprocessing may have dropped records)
		}
		m.Next[readerKey(sr.input, sr.shard)] = next
	}
	if r.cur == nil {
		m.Rowtime = r.rowtime
	}
	for _, o := range r.outputs {
		if r.cur != nil {
			m.Sent[o.out.OutputID] = o.sentBefore
		} else {
			m.Sent[o.out.OutputID] = o.sent
		}
	}
	return m
}

// checkpoint saves the oldest open window's mark and what the outputs
// wrote (after the outputs were flushed).
func (r *runner) checkpoint() {
	m := r.eng.oldestMark()
	if m == nil {
		r.cur = nil
		m = r.currentMark()
	}
	if oldest, ok := r.eng.oldestSlidingRow(); ok {
		// Sliding windows need their rows back: the newest periodic mark
		// before the oldest of them.
		keep := -1
		for i, pm := range r.marks {
			if pm.Rowtime < oldest {
				keep = i
			}
		}
		if keep >= 0 {
			r.marks = r.marks[keep:]
			if r.marks[0].Serial < m.Serial {
				m = r.marks[0]
			}
		}
	} else if len(r.marks) > 1 {
		r.marks = r.marks[len(r.marks)-1:]
	}
	doc := checkpointDoc{Mark: m, Written: map[string]int64{}, At: time.Now()}
	for _, o := range r.outputs {
		doc.Written[o.out.OutputID] = o.written
	}
	b, _ := json.Marshal(doc)
	if err := r.s.store.PutDocument(checkpointKind, r.app, b); err != nil {
		r.s.log.Warn("analytics checkpoint not saved", "application", r.app, "err", err)
	}
	r.checkpointed = time.Now()
}

func (s *Service) loadCheckpoint(app string) (*checkpointDoc, bool) {
	b, err := s.store.Document(checkpointKind, app)
	if err != nil {
		return nil, false
	}
	var doc checkpointDoc
	if json.Unmarshal(b, &doc) != nil || doc.Mark == nil {
		return nil, false
	}
	return &doc, true
}

// writtenSince finds the highest row number an output wrote to its
// destination since t (a crash may come between a write and the checkpoint
// that records it), from the partition keys it writes: "<app>/<output>/<n>".
func (s *Service) writtenSince(stream, prefix string, t time.Time) int64 {
	info, err := s.store.Stream(stream)
	if err != nil {
		return 0
	}
	var top int64
	for _, sh := range info.Shards {
		next, err := s.store.Seek(stream, sh.ID, streamstore.Position{Type: streamstore.AtTimestamp, Time: t.Add(-time.Second)})
		if err != nil {
			continue
		}
		for {
			res, err := s.store.Read(stream, sh.ID, next, 10000, 8<<20)
			if err != nil || len(res.Records) == 0 {
				break
			}
			for _, rec := range res.Records {
				if n, ok := strings.CutPrefix(rec.PartitionKey, prefix); ok {
					if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > top {
						top = v
					}
				}
			}
			next = res.Next
		}
	}
	return top
}
