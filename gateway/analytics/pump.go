package analytics

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/streamgate/streamgate/gateway/sql"
)

// Indexes of the special columns in a rowEnv's index.
const (
	idxRowtime = -1
	idxArrival = -2
)

// rowEnv is what a pump's expressions see: one row's columns (and, when a
// window emits, the aggregates' results after them).
type rowEnv struct {
	index   map[string]int
	vals    []any
	rowtime int64
	arrival int64
	e       *engine
}

func (r *rowEnv) Lookup(name string) any {
	i, ok := r.index[name]
	switch {
	case !ok:
		return sql.Undefined
	case i == idxRowtime:
		return sql.Timestamp(r.rowtime)
	case i == idxArrival:
		if r.arrival == 0 {
			return nil
		}
		return sql.Timestamp(r.arrival)
	}
	return r.vals[i]
}

func (r *rowEnv) Call(name string, args []any) (any, bool, error) {
	if f, ok := functions[name]; ok {
		v, err := f(r, args)
		return v, true, err
	}
	return nil, false, nil
}

// pump is a compiled CREATE PUMP: it reads rows of one stream and inserts
// rows into another, each row at once (a filter or projection) or once
// per tumbling window and group (GROUP BY over a ROWTIME window).
type pump struct {
	name  string
	e     *engine
	from  *inAppStream
	into  *inAppStream
	where *sql.Expr
	items []*sql.Expr
	// target is, for each item, the column of into it fills.
	target []int
	env    rowEnv
	agg    *tumbling
	// slide is set for a query whose aggregates are over sliding windows.
	slide []*sliding
	aggs  []*aggregate
	// stagger is set for a query WINDOWED BY STAGGER.
	stagger *stagger
}

// compilePump resolves a pump's SELECT against the stream it reads.
func (e *engine) compilePump(cp *sql.CreatePump, line, col int) (*pump, error) {
	sel := cp.Select
	p := &pump{name: string(cp.Name), e: e}
	into, ok := e.stream(string(cp.Into))
	if !ok {
		return nil, codeErrorf(line, col, "pump %q inserts into stream %q, which does not exist", cp.Name, cp.Into)
	}
	if into.source {
		return nil, codeErrorf(line, col, "pump %q cannot insert into input stream %q", cp.Name, into.name)
	}
	p.into = into
	if (len(sel.OrderBy) > 0 || sel.Limit != nil) && !e.bounded {
		return nil, codeErrorf(sel.Pos.Line, sel.Pos.Column, "ORDER BY and LIMIT are for queries over a range (streamgate query), not for a pump's endless stream")
	}
	if !sel.Stream && !e.bounded {
		return nil, codeErrorf(sel.Pos.Line, sel.Pos.Column, "a pump's query must be SELECT STREAM")
	}
	var from *inAppStream
	switch {
	case sel.From.Table != nil:
		var err error
		if from, err = e.tableFunction(p.name, sel.From.Table); err != nil {
			return nil, err
		}
	case sel.From.Topic != nil || sel.From.Stream == "":
		return nil, codeErrorf(sel.From.Pos.Line, sel.From.Pos.Column, "FROM names an in-application stream")
	default:
		if from, ok = e.stream(string(sel.From.Stream)); !ok {
			return nil, codeErrorf(sel.From.Pos.Line, sel.From.Pos.Column, "stream %q does not exist", sel.From.Stream)
		}
	}
	var join *joinStage
	if len(sel.Joins) > 0 {
		var err error
		if join, err = e.joinStage(p.name, from, sel.Joins); err != nil {
			return nil, err
		}
		from = join.out
	}
	p.from = from
	p.env = rowEnv{index: map[string]int{"ROWTIME": idxRowtime}, e: e}
	if from.source || (join != nil && join.in.source) {
		p.env.index["APPROXIMATE_ARRIVAL_TIME"] = idxArrival
	}
	for i, c := range from.cols {
		if _, dup := p.env.index[c.name]; !dup { // a stream's column hides a table's of the same name
			p.env.index[c.name] = i
		}
	}
	r := &resolver{pump: p, qualifiers: []string{string(sel.From.Stream), string(sel.From.Alias)}, windows: sel.Windows,
		sliding: map[*sql.WindowSpec]*sliding{}}
	if join != nil {
		r.tables = join.qualifiers
		for _, t := range join.tables {
			for i, c := range t.table.cols {
				p.env.index[t.alias+"."+c.name] = t.offset + i
			}
		}
		if err := join.resolve(r, &p.env); err != nil {
			return nil, err
		}
	}

	for _, it := range sel.Items {
		if it.Star {
			for _, c := range from.cols {
				x, _ := sql.ParseExpr(strconv.Quote(c.name))
				p.items = append(p.items, x)
			}
			continue
		}
		p.items = append(p.items, it.Expr)
	}
	targets := into.cols
	if len(cp.Columns) > 0 {
		targets = nil
		for _, name := range cp.Columns {
			i, ok := into.column(string(name))
			if !ok {
				return nil, codeErrorf(cp.Pos.Line, cp.Pos.Column, "stream %q has no column %q", into.name, name)
			}
			targets = append(targets, into.cols[i])
			p.target = append(p.target, i)
		}
	} else {
		for i := range into.cols {
			p.target = append(p.target, i)
		}
	}
	if len(p.items) != len(targets) {
		return nil, codeErrorf(sel.Pos.Line, sel.Pos.Column, "the query selects %d columns but %q takes %d", len(p.items), into.name, len(targets))
	}

	if sel.Where != nil {
		if err := r.resolve(sel.Where, false); err != nil {
			return nil, err
		}
		p.where = sel.Where
	}
	grouped := len(sel.Group) > 0
	for _, x := range p.items {
		if err := r.resolve(x, true); err != nil {
			return nil, err
		}
	}
	if sel.Having != nil {
		if err := r.resolve(sel.Having, true); err != nil {
			return nil, err
		}
	}
	if sel.Stagger != nil {
		if grouped || len(r.sliding) > 0 {
			return nil, codeErrorf(sel.Pos.Line, sel.Pos.Column, "WINDOWED BY STAGGER replaces GROUP BY and OVER")
		}
		spec := sel.Stagger
		if spec.Range == nil || spec.Preceding || len(spec.Partition) == 0 {
			return nil, codeErrorf(spec.Pos.Line, spec.Pos.Column, "a stagger window is (PARTITION BY ... RANGE INTERVAL ...)")
		}
		v, err := spec.Range.Eval(&rowEnv{})
		n, ok := v.(int64)
		if err != nil || !ok || n <= 0 {
			return nil, codeErrorf(spec.Pos.Line, spec.Pos.Column, "RANGE takes a positive INTERVAL")
		}
		for _, x := range spec.Partition {
			if err := r.resolve(x, false); err != nil {
				return nil, err
			}
		}
		for name, i := range r.aggIndex {
			p.env.index[name] = len(from.cols) + i
		}
		p.stagger = &stagger{pump: p, partition: spec.Partition, rangeMs: n, aggs: r.aggs, having: sel.Having, open: map[string]*staggerWindow{}}
		return p, nil
	}
	if sel.Having != nil && !grouped {
		return nil, codeErrorf(sel.Pos.Line, sel.Pos.Column, "HAVING needs a GROUP BY or a stagger window")
	}
	if len(r.sliding) > 0 {
		if grouped {
			return nil, codeErrorf(sel.Pos.Line, sel.Pos.Column, "a query has either sliding windows (OVER) or a GROUP BY, not both")
		}
		for i, a := range r.aggs {
			if a.over == nil {
				return nil, codeErrorf(sel.Pos.Line, sel.Pos.Column, "%s needs OVER like the query's other aggregates", strings.ToUpper(a.name))
			}
			a.over.aggs = append(a.over.aggs, i)
		}
		for _, w := range r.sliding {
			p.slide = append(p.slide, w)
		}
		sort.Slice(p.slide, func(i, j int) bool { return p.slide[i].aggs[0] < p.slide[j].aggs[0] })
		p.aggs = r.aggs
		for name, i := range r.aggIndex {
			p.env.index[name] = len(from.cols) + i
		}
		return p, nil
	}
	if !grouped && (len(r.aggs) == 0 || !e.bounded) {
		if len(r.aggs) > 0 {
			return nil, codeErrorf(sel.Pos.Line, sel.Pos.Column, "an aggregate over a stream needs a window: GROUP BY STEP(ROWTIME BY INTERVAL ...) or OVER (RANGE INTERVAL ... PRECEDING)")
		}
		return p, nil
	}
	t := &tumbling{pump: p, having: sel.Having, aggs: r.aggs, groups: map[string]int{}}
	for _, g := range sel.Group {
		if err := r.resolve(g, false); err != nil {
			return nil, err
		}
		size, isWindow, err := rowtimeWindow(g)
		if err != nil {
			return nil, codeErrorf(sel.Pos.Line, sel.Pos.Column, "GROUP BY: %v", err)
		}
		if isWindow {
			if t.size == 0 || size < t.size {
				t.size = size
			}
			continue // every row of a window has the same value
		}
		t.keys = append(t.keys, g)
	}
	if t.size == 0 && e.bounded {
		t.size = wholeScan // a bounded query groups over its whole range
	}
	if t.size == 0 {
		return nil, codeErrorf(sel.Pos.Line, sel.Pos.Column,
			"a streaming GROUP BY needs a ROWTIME window: STEP(ROWTIME BY INTERVAL '1' MINUTE) or FLOOR(ROWTIME TO MINUTE)")
	}
	for name, i := range r.aggIndex {
		p.env.index[name] = len(from.cols) + i
	}
	p.agg = t
	return p, nil
}

// resolver rewrites a query's names to the columns of the stream it reads
// and its aggregate calls to references to their results.
type resolver struct {
	pump       *pump
	windows    []*sql.NamedWindow // the query's WINDOW clause
	sliding    map[*sql.WindowSpec]*sliding
	qualifiers []string                // the stream's name and alias, which may prefix a column
	tables     map[string]*joinedTable // reference tables by upper-case name or alias
	aggs       []*aggregate
	aggIndex   map[string]int
}

func (r *resolver) resolve(x *sql.Expr, aggsAllowed bool) error {
	var err error
	x.Walk(func(u *sql.Unary) bool {
		if err != nil {
			return false
		}
		p := u.Primary
		if p.Name != "" && len(u.Suffix) > 0 && u.Suffix[0].Field != "" {
			if t := r.tables[strings.ToUpper(string(p.Name))]; t != nil {
				i, ok := t.table.column(string(u.Suffix[0].Field))
				if !ok {
					err = codeErrorf(p.Pos.Line, p.Pos.Column, "column %q not found in table %q", u.Suffix[0].Field, t.table.name)
					return false
				}
				p.Name, u.Suffix = sql.Name(t.alias+"."+t.table.cols[i].name), u.Suffix[1:]
				return true
			}
			if r.qualifies(string(p.Name)) {
				p.Name, u.Suffix = u.Suffix[0].Field, u.Suffix[1:]
			}
		}
		switch {
		case p.Name != "":
			name := string(p.Name)
			switch {
			case strings.EqualFold(name, "ROWTIME"):
				p.Name = "ROWTIME"
			case strings.EqualFold(name, "APPROXIMATE_ARRIVAL_TIME") && r.pump.from.source:
				p.Name = "APPROXIMATE_ARRIVAL_TIME"
			default:
				i, ok := r.pump.from.column(name)
				if !ok {
					err = codeErrorf(p.Pos.Line, p.Pos.Column, "column %q not found in stream %q", name, r.pump.from.name)
					return false
				}
				p.Name = sql.Name(r.pump.from.cols[i].name)
			}
		case p.Call != nil:
			name := strings.ToLower(p.Call.Name)
			mk, isAgg := aggregates[name]
			if !isAgg {
				if _, ok := functions[name]; !ok && !sql.IsBuiltin(name) {
					err = codeErrorf(p.Call.Pos.Line, p.Call.Pos.Column, "no function %s", strings.ToUpper(name))
					return false
				}
				return true
			}
			if !aggsAllowed {
				err = codeErrorf(p.Call.Pos.Line, p.Call.Pos.Column, "aggregate %s is not allowed here", strings.ToUpper(name))
				return false
			}
			a := &aggregate{name: name, make: mk}
			for _, arg := range p.Call.Args {
				if arg.Star {
					if name != "count" {
						err = codeErrorf(p.Call.Pos.Line, p.Call.Pos.Column, "%s(*): only COUNT takes *", strings.ToUpper(name))
						return false
					}
					continue
				}
				if err = r.resolve(arg.Expr, false); err != nil {
					return false
				}
				a.args = append(a.args, arg.Expr)
			}
			switch {
			case name == "lag" && (len(a.args) < 1 || len(a.args) > 3):
				err = codeErrorf(p.Call.Pos.Line, p.Call.Pos.Column, "LAG takes an expression, an optional offset and an optional default")
				return false
			case name == "lag" && p.Call.Over == nil:
				err = codeErrorf(p.Call.Pos.Line, p.Call.Pos.Column, "LAG needs OVER (a window of the rows before)")
				return false
			case mk.arity >= 0 && len(a.args) != mk.arity && !(name == "count" && len(p.Call.Args) == 1):
				err = codeErrorf(p.Call.Pos.Line, p.Call.Pos.Column, "%s takes %d argument(s)", strings.ToUpper(name), mk.arity)
				return false
			}
			if p.Call.Over != nil {
				if a.over, err = r.window(p.Call.Over, p.Call.Pos.Line, p.Call.Pos.Column); err != nil {
					return false
				}
			}
			if r.aggIndex == nil {
				r.aggIndex = map[string]int{}
			}
			ref := fmt.Sprintf("$agg%d", len(r.aggs))
			r.aggIndex[ref] = len(r.aggs)
			r.aggs = append(r.aggs, a)
			*p = sql.Primary{Pos: p.Pos, Name: sql.Name(ref)}
			return false
		}
		return true
	})
	return err
}

func (r *resolver) qualifies(name string) bool {
	for _, q := range r.qualifiers {
		if q != "" && strings.EqualFold(q, name) {
			return true
		}
	}
	return false
}

// rowtimeWindow reports whether a GROUP BY expression is a tumbling window
// over ROWTIME, STEP(ROWTIME BY interval) or FLOOR(ROWTIME TO unit), and
// its length in milliseconds.
func rowtimeWindow(g *sql.Expr) (int64, bool, error) {
	u := g.Unary()
	if u == nil || u.Primary.Call == nil || len(u.Suffix) > 0 || u.Neg != "" {
		return 0, false, nil
	}
	c := u.Primary.Call
	name := strings.ToLower(c.Name)
	if len(c.Args) != 1 || c.Args[0].Expr == nil {
		return 0, false, nil
	}
	arg := c.Args[0].Expr.Unary()
	if arg == nil || arg.Primary.Name != "ROWTIME" || len(arg.Suffix) > 0 {
		return 0, false, nil
	}
	switch {
	case name == "step" && c.By != nil:
		v, err := c.By.Eval(&rowEnv{})
		n, ok := v.(int64)
		if err != nil || !ok || n <= 0 {
			return 0, false, fmt.Errorf("STEP(ROWTIME BY ...) needs a positive INTERVAL")
		}
		return n, true, nil
	case (name == "floor" || name == "ceil") && c.To != "":
		n, ok := sql.UnitMillis(c.To)
		if !ok {
			return 0, false, fmt.Errorf("FLOOR(ROWTIME TO %s): a window is a SECOND, MINUTE, HOUR or DAY", strings.ToUpper(c.To))
		}
		return n, true, nil
	}
	return 0, false, nil
}

// push runs the pump on one row of the stream it reads.
func (p *pump) push(r *row) {
	env := &p.env
	env.vals, env.rowtime, env.arrival = r.vals, r.rowtime, r.arrival
	if p.where != nil {
		v, err := p.where.Eval(env)
		if err != nil {
			p.fail(err, r)
			return
		}
		if !sql.True(v) {
			return
		}
	}
	if p.agg != nil {
		p.agg.add(r)
		return
	}
	if p.slide != nil {
		p.slideRow(r)
		return
	}
	if p.stagger != nil {
		p.stagger.add(r)
		return
	}
	p.emit(r.rowtime, r, r.mark)
}

// emit evaluates the items on the env as it stands and inserts the result.
func (p *pump) emit(rowtime int64, src *row, m *mark) {
	out := make([]any, len(p.into.cols))
	for i, x := range p.items {
		v, err := x.Eval(&p.env)
		if err != nil {
			p.fail(err, src)
			return
		}
		c := p.into.cols[p.target[i]]
		w, ok := c.typ.convert(v)
		if !ok {
			p.fail(fmt.Errorf("column %s: %s is not a %s", c.name, sql.String(v), c.typ.decl), src)
			return
		}
		out[p.target[i]] = w
	}
	p.into.insert(&row{rowtime: rowtime, vals: out, mark: m})
}

func (p *pump) fail(err error, r *row) {
	p.e.fail("PumpError", p.name, err.Error(), rowText(p.from, r), r.rowtime)
}

// rowText renders a row for the error stream's DATA_ROW.
func rowText(s *inAppStream, r *row) string {
	var b strings.Builder
	for i, c := range s.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.name)
		b.WriteString("=")
		if i < len(r.vals) {
			b.WriteString(sql.String(r.vals[i]))
		}
	}
	return b.String()
}
