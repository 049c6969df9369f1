package analytics

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/streamgate/streamgate/gateway/sql"
)

// refTable is a reference table: rows loaded from an object when the
// application starts, joined to streams.
type refTable struct {
	name string
	cols []column
	rows [][]any
}

func (t *refTable) column(name string) (int, bool) {
	s := inAppStream{cols: t.cols}
	return s.column(name)
}

// loadTable parses a reference object with its schema: CSV rows, or JSON
// records one per line (or an array when the row path selects its
// elements).
func loadTable(name string, schema *SourceSchema, data []byte) (*refTable, error) {
	p, cols, err := newRecordParser(schema)
	if err != nil {
		return nil, err
	}
	t := &refTable{name: name, cols: cols}
	emit := func(vals []any) { t.rows = append(t.rows, vals) }
	if p.csv || (len(p.rowPath) > 0 && p.rowPath[len(p.rowPath)-1].all) {
		if err := p.parse(data, emit); err != nil {
			return nil, fmt.Errorf("reference table %s: %v", name, err)
		}
		return t, nil
	}
	for n, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := p.parse(line, emit); err != nil {
			return nil, fmt.Errorf("reference table %s, line %d: %v", name, n+1, err)
		}
	}
	return t, nil
}

// joinedTable is a reference table in a query's FROM, its columns placed
// after the stream's (and earlier tables') in the joined row.
type joinedTable struct {
	table  *refTable
	alias  string // upper case
	offset int
	join   *sql.Join
	left   bool
	// index, for an equality ON (table column = stream expression), maps
	// the column's values to its rows.
	index   map[string][]int
	keyCol  int
	probe   *sql.Expr
	scratch []byte
}

// joinStage joins each row of a stream to reference tables, writing the
// combined rows (stream columns, then each table's) to a hidden stream.
type joinStage struct {
	in         *inAppStream
	out        *inAppStream
	tables     []*joinedTable
	qualifiers map[string]*joinedTable
	env        rowEnv
	e          *engine
	pump       string
}

func (e *engine) joinStage(pumpName string, from *inAppStream, joins []*sql.Join) (*joinStage, error) {
	j := &joinStage{in: from, out: &inAppStream{name: pumpName + "$JOIN", cols: append([]column(nil), from.cols...)},
		qualifiers: map[string]*joinedTable{}, e: e, pump: pumpName}
	for _, jn := range joins {
		t := e.tables[strings.ToUpper(string(jn.Table))]
		if t == nil {
			return nil, codeErrorf(jn.Pos.Line, jn.Pos.Column, "no reference table %q (ReferenceDataSources names them)", jn.Table)
		}
		alias := strings.ToUpper(string(jn.Alias))
		if alias == "" {
			alias = strings.ToUpper(t.name)
		}
		jt := &joinedTable{table: t, alias: alias, offset: len(j.out.cols), join: jn, left: jn.Left, keyCol: -1}
		j.out.cols = append(j.out.cols, t.cols...)
		j.tables = append(j.tables, jt)
		j.qualifiers[alias] = jt
		j.qualifiers[strings.ToUpper(t.name)] = jt
	}
	e.streams[j.out.name] = j.out
	from.readers = append(from.readers, j.push)
	return j, nil
}

// resolve resolves the ON conditions against the joined row and builds a
// hash index for each that is an equality of a table column and an
// expression of what comes before it.
func (j *joinStage) resolve(r *resolver, env *rowEnv) error {
	j.env = rowEnv{index: env.index, e: j.e}
	for _, jt := range j.tables {
		if err := r.resolve(jt.join.On, false); err != nil {
			return err
		}
		c := jt.join.On.Left.Left.Cmp
		if len(jt.join.On.Right) > 0 || len(jt.join.On.Left.Right) > 0 || c.Op == nil || c.Op.Op != "=" {
			continue
		}
		left, right := (&sql.Expr{Left: &sql.AndExpr{Left: &sql.NotExpr{Cmp: &sql.CmpExpr{Left: c.Left}}}}),
			(&sql.Expr{Left: &sql.AndExpr{Left: &sql.NotExpr{Cmp: &sql.CmpExpr{Left: c.Op.Right}}}})
		for _, side := range [][2]*sql.Expr{{left, right}, {right, left}} {
			col, ok := jt.columnOf(side[0], env.index)
			if ok && !jt.mentions(side[1], env.index) {
				jt.keyCol, jt.probe = col, side[1]
				break
			}
		}
		if jt.keyCol >= 0 {
			jt.index = map[string][]int{}
			for i, row := range jt.table.rows {
				k := string(appendKey(nil, row[jt.keyCol]))
				jt.index[k] = append(jt.index[k], i)
			}
		}
	}
	return nil
}

// columnOf reports whether x is just a column of this table, and which.
func (jt *joinedTable) columnOf(x *sql.Expr, index map[string]int) (int, bool) {
	u := x.Unary()
	if u == nil || u.Primary.Name == "" || len(u.Suffix) > 0 || u.Neg != "" {
		return 0, false
	}
	i, ok := index[string(u.Primary.Name)]
	if !ok || i < jt.offset || i >= jt.offset+len(jt.table.cols) {
		return 0, false
	}
	return i - jt.offset, true
}

// mentions reports whether x uses a column of this table (or a later one).
func (jt *joinedTable) mentions(x *sql.Expr, index map[string]int) bool {
	found := false
	x.Walk(func(u *sql.Unary) bool {
		if i, ok := index[string(u.Primary.Name)]; ok && u.Primary.Name != "" && i >= jt.offset {
			found = true
		}
		return !found
	})
	return found
}

func (j *joinStage) push(r *row) {
	vals := make([]any, len(j.out.cols))
	copy(vals, r.vals)
	j.join(r, vals, 0)
}

// join extends the joined row with the matches of table k and on.
func (j *joinStage) join(r *row, vals []any, k int) {
	if k == len(j.tables) {
		j.out.insert(&row{rowtime: r.rowtime, arrival: r.arrival, vals: append([]any(nil), vals...), mark: r.mark})
		return
	}
	jt := j.tables[k]
	env := &j.env
	env.vals, env.rowtime, env.arrival = vals, r.rowtime, r.arrival
	candidates := func(yield func(int) bool) {
		for i := range jt.table.rows {
			if !yield(i) {
				return
			}
		}
	}
	if jt.index != nil {
		v, err := jt.probe.Eval(env)
		if err != nil {
			j.e.fail("PumpError", j.pump, err.Error(), "", r.rowtime)
			return
		}
		jt.scratch = appendKey(jt.scratch[:0], v)
		matches := jt.index[string(jt.scratch)]
		candidates = func(yield func(int) bool) {
			for _, i := range matches {
				if !yield(i) {
					return
				}
			}
		}
	}
	matched := false
	for i := range candidates {
		copy(vals[jt.offset:], jt.table.rows[i])
		env.vals = vals
		ok, err := jt.join.On.Eval(env)
		if err != nil {
			j.e.fail("PumpError", j.pump, err.Error(), "", r.rowtime)
			return
		}
		if sql.True(ok) {
			matched = true
			j.join(r, vals, k+1)
		}
	}
	if !matched && jt.left {
		clear(vals[jt.offset : jt.offset+len(jt.table.cols)])
		j.join(r, vals, k+1)
	}
}
