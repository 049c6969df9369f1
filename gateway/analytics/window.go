package analytics

import (
	"math"
	"strconv"

	"github.com/streamgate/streamgate/gateway/sql"
)

// aggregate is one aggregate call of a query: its function and arguments.
type aggregate struct {
	name string
	make aggKind
	args []*sql.Expr
	over *sliding // the sliding window of an aggregate with OVER
}

// accumulator folds the values of one group's rows.
type accumulator interface {
	add(v any, rowtime int64)
	result() any
}

type aggKind struct {
	arity int
	new   func(args []any) accumulator // args: constant extra arguments (EXP_AVG's interval)
}

// aggregates are KDA's windowed aggregate functions.
var aggregates = map[string]aggKind{
	"count":       {1, func([]any) accumulator { return &count{} }},
	"sum":         {1, func([]any) accumulator { return &sum{} }},
	"avg":         {1, func([]any) accumulator { return &avg{} }},
	"min":         {1, func([]any) accumulator { return &extreme{sign: -1} }},
	"max":         {1, func([]any) accumulator { return &extreme{sign: 1} }},
	"first_value": {1, func([]any) accumulator { return &first{} }},
	"last_value":  {1, func([]any) accumulator { return &last{} }},
	"lag": {-1, func(extra []any) accumulator {
		l := &lag{n: 1}
		if len(extra) > 0 {
			if n, ok := extra[0].(int64); ok && n >= 0 {
				l.n = int(n)
			}
		}
		if len(extra) > 1 {
			l.def = extra[1]
		}
		return l
	}},
	"exp_avg": {2, func(extra []any) accumulator {
		e := &expAvg{}
		if len(extra) == 1 {
			if h, ok := extra[0].(int64); ok {
				e.halfLife = float64(h)
			}
		}
		return e
	}},
}

type count struct{ n int64 }

func (c *count) add(v any, _ int64) {
	if v != nil && !sql.IsUndefined(v) {
		c.n++
	}
}
func (c *count) result() any { return c.n }

// sum keeps integers exact while every value is an integer.
type sum struct {
	i     int64
	f     float64
	float bool
	any   bool
}

func (s *sum) add(v any, _ int64) {
	switch x := v.(type) {
	case int64:
		s.i += x
		s.any = true
	case float64:
		s.f += x
		s.float, s.any = true, true
	}
}

func (s *sum) result() any {
	switch {
	case !s.any:
		return nil
	case s.float:
		return s.f + float64(s.i)
	}
	return s.i
}

type avg struct {
	sum float64
	n   int64
}

func (a *avg) add(v any, _ int64) {
	switch x := v.(type) {
	case int64:
		a.sum += float64(x)
		a.n++
	case float64:
		a.sum += x
		a.n++
	}
}

func (a *avg) result() any {
	if a.n == 0 {
		return nil
	}
	return a.sum / float64(a.n)
}

// extreme is MIN (sign -1) or MAX (sign 1) of comparable values.
type extreme struct {
	v    any
	sign int
}

func (e *extreme) add(v any, _ int64) {
	if v == nil || sql.IsUndefined(v) {
		return
	}
	if e.v == nil {
		e.v = v
		return
	}
	if c, ok := sql.Compare(v, e.v); ok && c*e.sign > 0 {
		e.v = v
	}
}
func (e *extreme) result() any { return e.v }

type first struct {
	v   any
	set bool
}

func (f *first) add(v any, _ int64) {
	if !f.set {
		f.v, f.set = v, true
	}
}
func (f *first) result() any { return f.v }

type last struct{ v any }

func (l *last) add(v any, _ int64) { l.v = v }
func (l *last) result() any        { return l.v }

// lag is LAG(x[, n[, default]]) OVER a window: the value n rows before
// the current one (the last row added), or the default.
type lag struct {
	vals []any
	n    int
	def  any
}

func (l *lag) add(v any, _ int64) { l.vals = append(l.vals, v) }

func (l *lag) result() any {
	if i := len(l.vals) - 1 - l.n; i >= 0 {
		return l.vals[i]
	}
	return l.def
}

// expAvg is EXP_AVG(x, halfLife): an average in which a row's weight halves
// with every half-life (an interval) it is older than the newest row.
type expAvg struct {
	num, den float64
	t0       int64
	halfLife float64
}

func (e *expAvg) add(v any, rowtime int64) {
	x, ok := toFloat(v)
	if !ok || e.halfLife <= 0 {
		return
	}
	if e.den == 0 {
		e.t0 = rowtime
	}
	w := math.Exp2(float64(rowtime-e.t0) / e.halfLife) // grows with time; ratios are what matter
	if math.IsInf(w, 0) || w > 1e200 {
		e.num, e.den, e.t0, w = e.num/w, e.den/w, rowtime, 1
	}
	e.num += w * x
	e.den += w
}

func (e *expAvg) result() any {
	if e.den == 0 {
		return nil
	}
	return e.num / e.den
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// tumbling is a GROUP BY over a ROWTIME window: rows fold into their
// group's accumulators, and when ROWTIME passes the window's end every
// group emits one row (with the window's end as its ROWTIME).
type tumbling struct {
	pump   *pump
	size   int64 // milliseconds
	keys   []*sql.Expr
	aggs   []*aggregate
	having *sql.Expr

	start  int64 // of the open window
	open   bool
	mark   *mark // where the open window's first row can be replayed from
	groups map[string]int
	order  []*group
	key    []byte
}

type group struct {
	last *row // the group's latest row: the values of its key columns
	accs []accumulator
}

func (t *tumbling) add(r *row) {
	start := sql.FloorDiv(r.rowtime, t.size) * t.size
	env := &t.pump.env
	if t.open && start != t.start {
		t.flush()
		env.vals, env.rowtime, env.arrival = r.vals, r.rowtime, r.arrival
	}
	if !t.open {
		t.mark = r.mark
		if t.mark == nil && t.pump.e.markFn != nil {
			t.mark = t.pump.e.markFn()
		}
	}
	t.start, t.open = start, true
	key := t.key[:0]
	for _, k := range t.keys {
		v, err := k.Eval(env)
		if err != nil {
			t.pump.fail(err, r)
			return
		}
		key = appendKey(key, v)
	}
	t.key = key
	gi, ok := t.groups[string(key)]
	if !ok {
		g := &group{accs: newAccumulators(t.aggs, env)}
		gi = len(t.order)
		t.groups[string(key)] = gi
		t.order = append(t.order, g)
	}
	g := t.order[gi]
	g.last = r
	if err := accumulate(t.aggs, g.accs, env, r.rowtime); err != nil {
		t.pump.fail(err, r)
	}
}

// advance closes the open window once ROWTIME (the watermark) reaches its end.
func (t *tumbling) advance(watermark int64) {
	if t.open && watermark >= t.start+t.size {
		t.flush()
	}
}

// flush emits a row per group of the open window and starts afresh.
func (t *tumbling) flush() {
	for _, g := range t.order {
		emitGroup(t.pump, g.last, g.accs, t.having, t.start+t.size, t.mark)
	}
	clear(t.groups)
	t.order = t.order[:0]
	t.open, t.mark = false, nil
}

// newAccumulators starts the aggregates of a group; constant extra
// arguments (EXP_AVG's half-life) are evaluated on its first row.
func newAccumulators(aggs []*aggregate, env sql.Env) []accumulator {
	accs := make([]accumulator, len(aggs))
	for i, a := range aggs {
		var extra []any
		for _, x := range a.args[min(1, len(a.args)):] {
			v, _ := x.Eval(env)
			extra = append(extra, v)
		}
		accs[i] = a.make.new(extra)
	}
	return accs
}

// accumulate folds the current row into a group's aggregates.
func accumulate(aggs []*aggregate, accs []accumulator, env sql.Env, rowtime int64) error {
	for i, a := range aggs {
		var v any = int64(1) // COUNT(*)
		if len(a.args) > 0 {
			var err error
			if v, err = a.args[0].Eval(env); err != nil {
				return err
			}
		}
		accs[i].add(v, rowtime)
	}
	return nil
}

// emitGroup emits one group's row: its last row's columns and its
// aggregates, when HAVING holds.
func emitGroup(p *pump, last *row, accs []accumulator, having *sql.Expr, rowtime int64, m *mark) {
	n := len(p.from.cols)
	vals := make([]any, n+len(accs))
	copy(vals, last.vals)
	for i, a := range accs {
		vals[n+i] = a.result()
	}
	env := &p.env
	env.vals, env.rowtime, env.arrival = vals, last.rowtime, last.arrival
	if having != nil {
		v, err := having.Eval(env)
		if err != nil {
			p.fail(err, last)
			return
		}
		if !sql.True(v) {
			return
		}
	}
	p.emit(rowtime, last, m)
}

// appendKey appends a value to a group key, typed so 1 and '1' differ.
func appendKey(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		b = append(b, 's')
		b = append(b, x...)
	case int64:
		b = append(b, 'i')
		b = strconv.AppendInt(b, x, 10)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			b = append(b, 'i') // 3.0 joins and groups with 3
			b = strconv.AppendInt(b, int64(x), 10)
			break
		}
		b = append(b, 'f')
		b = strconv.AppendFloat(b, x, 'g', -1, 64)
	case nil:
		b = append(b, 'n')
	default:
		b = append(b, 'o')
		b = append(b, sql.String(x)...)
	}
	return append(b, 0)
}
