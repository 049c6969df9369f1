package analytics

import (
	"github.com/streamgate/streamgate/gateway/sql"
)

// stagger is WINDOWED BY STAGGER (PARTITION BY ... RANGE ...): a window per
// partition key opens with the first row of that key and closes RANGE
// later (by ROWTIME), emitting one row; a later row of the key opens the
// next. Keys usually include an event-time bucket (FLOOR(EVENT_TIME TO
// MINUTE)), so rows that arrive late or out of order still land in their
// event-time window as long as it is open.
type stagger struct {
	pump      *pump
	partition []*sql.Expr
	rangeMs   int64
	aggs      []*aggregate
	having    *sql.Expr

	open  map[string]*staggerWindow
	queue []*staggerWindow // by opening time: the order they close in
	key   []byte
}

type staggerWindow struct {
	key    string
	opened int64
	last   *row
	accs   []accumulator
	mark   *mark
}

func (s *stagger) add(r *row) {
	s.advance(r.rowtime)
	env := &s.pump.env
	env.vals, env.rowtime, env.arrival = r.vals, r.rowtime, r.arrival
	key := s.key[:0]
	for _, x := range s.partition {
		v, err := x.Eval(env)
		if err != nil {
			s.pump.fail(err, r)
			return
		}
		key = appendKey(key, v)
	}
	s.key = key
	w := s.open[string(key)]
	if w == nil {
		w = &staggerWindow{key: string(key), opened: r.rowtime, accs: newAccumulators(s.aggs, env), mark: r.mark}
		if w.mark == nil && s.pump.e.markFn != nil {
			w.mark = s.pump.e.markFn()
		}
		s.open[w.key] = w
		s.queue = append(s.queue, w)
	}
	w.last = r
	if err := accumulate(s.aggs, w.accs, env, r.rowtime); err != nil {
		s.pump.fail(err, r)
	}
}

// advance closes the windows whose range has passed.
func (s *stagger) advance(watermark int64) {
	n := 0
	for n < len(s.queue) && s.queue[n].opened+s.rangeMs <= watermark {
		w := s.queue[n]
		delete(s.open, w.key)
		emitGroup(s.pump, w.last, w.accs, s.having, w.opened+s.rangeMs, w.mark)
		n++
	}
	if n > 0 {
		clear(s.queue[:n])
		s.queue = s.queue[n:]
	}
}

// oldestMark is the mark of the window that has been open longest.
func (s *stagger) oldestMark() *mark {
	if len(s.queue) == 0 {
		return nil
	}
	return s.queue[0].mark
}

// nextClose is when the oldest open window closes.
func (s *stagger) nextClose() (int64, bool) {
	if len(s.queue) == 0 {
		return 0, false
	}
	return s.queue[0].opened + s.rangeMs, true
}
