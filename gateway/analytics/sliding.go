package analytics

import (
	"strconv"
	"strings"

	"github.com/streamgate/streamgate/gateway/sql"
)

// sliding is a sliding window (OVER): per partition, the rows within RANGE
// of the current row's ROWTIME, or the current row and ROWS before it. A
// query over sliding windows emits one row per input row, its aggregates
// computed over the window that row closes.
type sliding struct {
	partition []*sql.Expr
	rangeMs   int64 // RANGE INTERVAL ... PRECEDING; 0 with ROWS
	rows      int   // ROWS n PRECEDING: n+1 rows with the current one
	aggs      []int // the query's aggregates over this window
	parts     map[string]*slidingRows
	key       []byte
	swept     int64 // watermark of the last sweep
}

type slidingRows struct {
	rowtimes []int64
	args     [][]any // per row, one value per aggregate of the window
	extra    [][]any // per aggregate: its constant arguments (EXP_AVG's interval)
}

// window resolves an OVER clause: a named window or an inline one.
func (r *resolver) window(o *sql.Over, line, col int) (*sliding, error) {
	spec := o.Spec
	if spec == nil {
		for _, w := range r.windows {
			if strings.EqualFold(string(w.Name), string(o.Name)) {
				spec = w.Spec
			}
		}
		if spec == nil {
			return nil, codeErrorf(line, col, "no WINDOW %s", o.Name)
		}
	}
	if w, ok := r.sliding[spec]; ok {
		return w, nil
	}
	if !spec.Preceding {
		return nil, codeErrorf(spec.Pos.Line, spec.Pos.Column, "a sliding window is RANGE ... PRECEDING or ROWS n PRECEDING")
	}
	w := &sliding{partition: spec.Partition, parts: map[string]*slidingRows{}}
	for _, x := range spec.Partition {
		if err := r.resolve(x, false); err != nil {
			return nil, err
		}
	}
	switch {
	case spec.Range != nil:
		v, err := spec.Range.Eval(&rowEnv{})
		n, ok := v.(int64)
		if err != nil || !ok || n <= 0 {
			return nil, codeErrorf(spec.Pos.Line, spec.Pos.Column, "RANGE takes a positive INTERVAL")
		}
		w.rangeMs = n
	default:
		n, err := strconv.Atoi(*spec.Rows)
		if err != nil || n < 0 {
			return nil, codeErrorf(spec.Pos.Line, spec.Pos.Column, "ROWS takes a whole number")
		}
		w.rows = n + 1
	}
	r.sliding[spec] = w
	return w, nil
}

// slideRow adds a row to the windows it belongs to and emits the row with
// the aggregates over them.
func (p *pump) slideRow(r *row) {
	env := &p.env
	n := len(p.from.cols)
	vals := make([]any, n+len(p.aggs))
	copy(vals, r.vals)
	for _, w := range p.slide {
		key := w.key[:0]
		for _, x := range w.partition {
			v, err := x.Eval(env)
			if err != nil {
				p.fail(err, r)
				return
			}
			key = appendKey(key, v)
		}
		w.key = key
		part := w.parts[string(key)]
		if part == nil {
			part = &slidingRows{}
			for _, i := range w.aggs {
				var extra []any
				for _, x := range p.aggs[i].args[min(1, len(p.aggs[i].args)):] {
					v, _ := x.Eval(env)
					extra = append(extra, v)
				}
				part.extra = append(part.extra, extra)
			}
			w.parts[string(key)] = part
		}
		args := make([]any, len(w.aggs))
		for k, i := range w.aggs {
			var v any = int64(1) // COUNT(*)
			if a := p.aggs[i]; len(a.args) > 0 {
				var err error
				if v, err = a.args[0].Eval(env); err != nil {
					p.fail(err, r)
					return
				}
			}
			args[k] = v
		}
		part.rowtimes = append(part.rowtimes, r.rowtime)
		part.args = append(part.args, args)
		drop := 0
		if w.rows > 0 {
			drop = max(len(part.rowtimes)-w.rows, 0)
		} else {
			for drop < len(part.rowtimes) && part.rowtimes[drop] < r.rowtime-w.rangeMs {
				drop++
			}
		}
		if drop > 0 {
			part.rowtimes = append(part.rowtimes[:0], part.rowtimes[drop:]...)
			part.args = append(part.args[:0], part.args[drop:]...)
		}
		for k, i := range w.aggs {
			acc := p.aggs[i].make.new(part.extra[k])
			for j, a := range part.args {
				acc.add(a[k], part.rowtimes[j])
			}
			vals[n+i] = acc.result()
		}
	}
	env.vals = vals
	p.emit(r.rowtime, r, r.mark)
}

// oldestRowtime is the ROWTIME of the oldest row any sliding window holds,
// which a restart must replay from; ok is false when they hold none.
func (p *pump) oldestRowtime() (int64, bool) {
	var oldest int64
	found := false
	for _, w := range p.slide {
		for _, part := range w.parts {
			if len(part.rowtimes) > 0 && (!found || part.rowtimes[0] < oldest) {
				oldest, found = part.rowtimes[0], true
			}
		}
	}
	return oldest, found
}

// sweep forgets the partitions of RANGE windows whose rows are all older
// than the range, so a key seen once does not stay forever.
func (w *sliding) sweep(watermark int64) {
	if w.rangeMs == 0 || watermark < w.swept+w.rangeMs {
		return
	}
	w.swept = watermark
	for k, part := range w.parts {
		if n := len(part.rowtimes); n == 0 || part.rowtimes[n-1] < watermark-w.rangeMs {
			delete(w.parts, k)
		}
	}
}
