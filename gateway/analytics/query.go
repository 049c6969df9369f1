package analytics

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/gateway/sql"
	"github.com/streamgate/streamgate/streamstore"
)

// wholeScan is the window of a bounded query's GROUP BY: longer than any
// range, so every row is in one.
const wholeScan = math.MaxInt64 / 4

// QueryResult is what an ad hoc query returns.
type QueryResult struct {
	Columns   []string
	Rows      [][]any
	Scanned   int64 // records read
	Truncated bool  // the limit cut the result
}

// Query runs a SELECT over the records of a stream that arrived in
// [from, to): a bounded scan through the same engine as applications.
// FROM names the Kinesis stream; its columns are inferred from the
// records (as DiscoverInputSchema does), JSON fields upper-cased. A GROUP
// BY needs no window: the range is one.
func (s *Service) Query(src string, from, to time.Time, limit int) (*QueryResult, error) {
	sel, err := sql.ParseQuery(src)
	if err != nil {
		var se *sql.Error
		if errors.As(err, &se) {
			return nil, &CodeError{Line: se.Line, Column: se.Column, Msg: se.Msg}
		}
		return nil, err
	}
	if sel.From.Stream == "" {
		return nil, &CodeError{Line: sel.From.Pos.Line, Column: sel.From.Pos.Column, Msg: "FROM names a stream"}
	}
	stream := string(sel.From.Stream)
	info, err := s.store.Stream(stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	scan := newScan(s.store, stream, info, from, to)
	sample, err := scan.sample(discoverSample)
	if err != nil {
		return nil, err
	}
	res := &QueryResult{Columns: []string{}, Rows: [][]any{}}
	if len(sample) == 0 {
		return res, nil
	}
	schema, _, err := inferSchema(sample)
	if err != nil {
		return nil, err
	}
	parser, cols, err := newRecordParser(schema)
	if err != nil {
		return nil, err
	}
	e := &engine{streams: map[string]*inAppStream{}, now: func() int64 { return time.Now().UnixMilli() }, bounded: true, tables: map[string]*refTable{}}
	e.errs = newErrorStream()
	e.add(e.errs)
	source := &inAppStream{name: stream, cols: cols, source: true}
	e.add(source)
	result := &inAppStream{name: "$RESULT", cols: selectColumns(sel, source)}
	e.add(result)
	p, err := e.compilePump(&sql.CreatePump{Name: "QUERY", Into: "$RESULT", Select: sel}, sel.Pos.Line, sel.Pos.Column)
	if err != nil {
		return nil, err
	}
	e.pumps = append(e.pumps, p)
	for _, q := range e.pumps {
		q.from.readers = append(q.from.readers, q.push)
	}
	for _, c := range result.cols {
		res.Columns = append(res.Columns, c.name)
	}
	order, err := orderKeys(sel, result)
	if err != nil {
		return nil, err
	}
	if sel.Limit != nil {
		n, err := strconv.Atoi(*sel.Limit)
		if err != nil || n < 0 {
			return nil, &CodeError{Line: sel.Pos.Line, Column: sel.Pos.Column, Msg: "LIMIT takes a whole number"}
		}
		if order == nil {
			limit = min(limit, n) // without ORDER BY the scan can stop early
		} else {
			defer func() { res.Rows = res.Rows[:min(len(res.Rows), n)] }()
		}
	}
	keep := limit
	if order != nil {
		keep = math.MaxInt // every row, to sort
	}
	result.readers = append(result.readers, func(r *row) {
		if len(res.Rows) >= keep {
			res.Truncated = true
			return
		}
		res.Rows = append(res.Rows, r.vals)
	})
	var rowtime int64
	err = scan.each(func(rec streamstore.Record) bool {
		res.Scanned++
		arrival := rec.Arrival / 1e6
		if arrival > rowtime {
			rowtime = arrival
			e.advance(rowtime)
		}
		if err := parser.parse(rec.Data, func(vals []any) {
			source.insert(&row{rowtime: rowtime, arrival: arrival, vals: vals})
		}); err != nil {
			e.errorCount++
		}
		return !res.Truncated
	})
	if err != nil {
		return nil, err
	}
	e.advance(math.MaxInt64) // the range is over: every window closes
	if order != nil {
		order.sort(res.Rows)
		if len(res.Rows) > limit {
			res.Rows, res.Truncated = res.Rows[:limit], true
		}
	}
	return res, nil
}

// ordering is a compiled ORDER BY over result rows.
type ordering struct {
	keys []orderKey
	env  rowEnv
}

type orderKey struct {
	expr *sql.Expr
	col  int // a position (ORDER BY 2), or -1
	desc bool
}

// orderKeys compiles ORDER BY against the result's columns: an output
// column's name or alias, an expression of them, or a position from 1.
func orderKeys(sel *sql.Select, result *inAppStream) (*ordering, error) {
	if len(sel.OrderBy) == 0 {
		return nil, nil
	}
	o := &ordering{env: rowEnv{index: map[string]int{}}}
	for i, c := range result.cols {
		o.env.index[c.name] = i
	}
	for _, it := range sel.OrderBy {
		k := orderKey{expr: it.Expr, col: -1, desc: it.Desc}
		if u := it.Expr.Unary(); u != nil && u.Primary.Number != nil && len(u.Suffix) == 0 {
			n, err := strconv.Atoi(*u.Primary.Number)
			if err != nil || n < 1 || n > len(result.cols) {
				return nil, &CodeError{Line: u.Primary.Pos.Line, Column: u.Primary.Pos.Column, Msg: fmt.Sprintf("ORDER BY %s: the result has %d columns", *u.Primary.Number, len(result.cols))}
			}
			k.col = n - 1
		} else {
			var err error
			it.Expr.Walk(func(u *sql.Unary) bool {
				if p := u.Primary; p.Name != "" && err == nil {
					i, ok := result.column(string(p.Name))
					if !ok {
						err = &CodeError{Line: p.Pos.Line, Column: p.Pos.Column, Msg: fmt.Sprintf("ORDER BY %s: not a column of the result", p.Name)}
						return false
					}
					p.Name = sql.Name(result.cols[i].name)
				}
				return true
			})
			if err != nil {
				return nil, err
			}
		}
		o.keys = append(o.keys, k)
	}
	return o, nil
}

// sort orders rows by the keys; NULLs and values that do not compare sort
// last.
func (o *ordering) sort(rows [][]any) {
	keyed := make([][]any, len(rows))
	for i, r := range rows {
		o.env.vals = r
		ks := make([]any, len(o.keys))
		for j, k := range o.keys {
			if k.col >= 0 {
				ks[j] = r[k.col]
				continue
			}
			v, err := k.expr.Eval(&o.env)
			if err != nil || sql.IsUndefined(v) {
				v = nil
			}
			ks[j] = v
		}
		keyed[i] = ks
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		for j, k := range o.keys {
			x, y := keyed[idx[a]][j], keyed[idx[b]][j]
			if x == nil || y == nil {
				if (x == nil) != (y == nil) {
					return y == nil // NULLs last
				}
				continue
			}
			c, ok := sql.Compare(x, y)
			if !ok || c == 0 {
				continue
			}
			return (c < 0) != k.desc
		}
		return false
	})
	sorted := make([][]any, len(rows))
	for i, k := range idx {
		sorted[i] = rows[k]
	}
	copy(rows, sorted)
}

// selectColumns are the columns a SELECT's result has: the star's, the
// aliases, the names of plain column references, else EXPR$n.
func selectColumns(sel *sql.Select, src *inAppStream) []column {
	var cols []column
	for i, it := range sel.Items {
		switch {
		case it.Star:
			cols = append(cols, src.cols...)
		case it.Alias != "":
			cols = append(cols, column{strings.ToUpper(string(it.Alias)), sqlType{decl: "ANY", kind: kAny}})
		default:
			if u := it.Expr.Unary(); u != nil && u.Primary.Name != "" && len(u.Suffix) == 0 {
				if j, ok := src.column(string(u.Primary.Name)); ok {
					cols = append(cols, src.cols[j])
					continue
				}
			}
			cols = append(cols, column{fmt.Sprintf("EXPR$%d", i), sqlType{decl: "ANY", kind: kAny}})
		}
	}
	return cols
}

// scan reads a stream's records in a time range, merged across shards in
// arrival order.
type scan struct {
	store    *streamstore.Store
	stream   string
	shards   []string
	from, to time.Time
}

func newScan(store *streamstore.Store, stream string, info streamstore.StreamInfo, from, to time.Time) *scan {
	sc := &scan{store: store, stream: stream, from: from, to: to}
	for _, sh := range info.Shards {
		sc.shards = append(sc.shards, sh.ID)
	}
	return sc
}

// sample returns up to n records from the start of the range.
func (sc *scan) sample(n int) ([][]byte, error) {
	var out [][]byte
	err := sc.each(func(rec streamstore.Record) bool {
		out = append(out, rec.Data)
		return len(out) < n
	})
	return out, err
}

// each calls fn with the range's records, oldest arrival first, until fn
// returns false.
func (sc *scan) each(fn func(streamstore.Record) bool) error {
	type cursor struct {
		shard string
		next  uint64
		buf   []streamstore.Record
		done  bool
	}
	var cs []*cursor
	for _, sh := range sc.shards {
		next, err := sc.store.Seek(sc.stream, sh, streamstore.Position{Type: streamstore.AtTimestamp, Time: sc.from})
		if err != nil {
			return err
		}
		cs = append(cs, &cursor{shard: sh, next: next})
	}
	end := sc.to.UnixNano()
	for {
		var pick *cursor
		for _, c := range cs {
			if len(c.buf) == 0 && !c.done {
				res, err := sc.store.Read(sc.stream, c.shard, c.next, readBatch, 4<<20)
				if errors.Is(err, streamstore.ErrTrimmed) {
					c.next, err = sc.store.Seek(sc.stream, c.shard, streamstore.Position{Type: streamstore.TrimHorizon})
					if err != nil {
						return err
					}
					continue
				}
				if err != nil {
					return err
				}
				c.buf, c.next = res.Records, res.Next
				c.done = len(res.Records) == 0
			}
			if len(c.buf) > 0 && c.buf[0].Arrival >= end {
				c.buf, c.done = nil, true
			}
			if len(c.buf) > 0 && (pick == nil || c.buf[0].Arrival < pick.buf[0].Arrival) {
				pick = c
			}
		}
		if pick == nil {
			return nil
		}
		rec := pick.buf[0]
		pick.buf = pick.buf[1:]
		if !fn(rec) {
			return nil
		}
	}
}

// query is the ExecuteQuery operation, a streamgate extension of the KDA
// API: {"SQL": "...", "From": epoch seconds, "To": epoch seconds, "Limit": n}.
func (s *Service) query(r *awsapi.Request) (any, error) {
	var in struct {
		SQL      string
		From, To *float64
		Limit    int
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if err := r.Authorize("*"); err != nil {
		return nil, err
	}
	now := time.Now()
	from, to := now.Add(-time.Hour), now
	if in.From != nil {
		from = unixTime(*in.From)
	}
	if in.To != nil {
		to = unixTime(*in.To)
	}
	if in.Limit <= 0 {
		in.Limit = 10000
	}
	if in.Limit > 1000000 {
		return nil, invalid("Limit is at most 1000000.")
	}
	res, err := s.Query(in.SQL, from, to, in.Limit)
	var ce *CodeError
	switch {
	case errors.As(err, &ce):
		return nil, awsapi.Errorf("CodeValidationException", "%v", err)
	case errors.Is(err, streamstore.ErrNotFound):
		return nil, awsapi.Errorf(awsapi.CodeResourceNotFound, "%v", err)
	case err != nil:
		return nil, err
	}
	rows := make([][]any, len(res.Rows))
	for i, r := range res.Rows {
		rows[i] = make([]any, len(r))
		for j, v := range r {
			if t, ok := v.(sql.Timestamp); ok {
				v = t.String()
			}
			rows[i][j] = v
		}
	}
	return map[string]any{"Columns": res.Columns, "Rows": rows, "RecordsScanned": res.Scanned, "Truncated": res.Truncated}, nil
}
