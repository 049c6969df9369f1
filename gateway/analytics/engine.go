package analytics

import (
	"errors"
	"fmt"
	"strings"

	"github.com/streamgate/streamgate/gateway/sql"
)

// row is one row of an in-application stream. Times are milliseconds since
// the epoch.
type row struct {
	rowtime int64
	arrival int64 // APPROXIMATE_ARRIVAL_TIME, on the rows of source streams
	vals    []any
	// mark, on a row a window emitted, is where the inputs must be replayed
	// from to make it again (nil on rows made from the current record).
	mark *mark
}

type column struct {
	name string
	typ  sqlType
}

// inAppStream is an in-application stream: its columns, and the pumps and
// outputs that read it (KDA streams are publish/subscribe: a stream may
// have many readers and writers).
type inAppStream struct {
	name    string
	cols    []column
	source  bool // fed by an application input
	readers []func(*row)
}

func (s *inAppStream) insert(r *row) {
	for _, read := range s.readers {
		read(r)
	}
}

// column resolves a column name as KDA does, exactly, then (for names
// written without quotes, folded to upper case) ignoring case.
func (s *inAppStream) column(name string) (int, bool) {
	for i, c := range s.cols {
		if c.name == name {
			return i, true
		}
	}
	for i, c := range s.cols {
		if strings.EqualFold(c.name, name) {
			return i, true
		}
	}
	return 0, false
}

// errorStreamName is KDA's in-application error stream: rows that do not
// fit their schema and rows a pump fails on, readable by pumps and outputs.
const errorStreamName = "error_stream"

func newErrorStream() *inAppStream {
	s := &inAppStream{name: errorStreamName}
	for _, c := range []struct{ name, typ string }{{"ERROR_TIME", "TIMESTAMP"}, {"ERROR_LEVEL", "VARCHAR(10)"},
		{"ERROR_NAME", "VARCHAR(32)"}, {"MESSAGE", "VARCHAR(4096)"}, {"DATA_ROWTIME", "TIMESTAMP"},
		{"DATA_ROW", "VARCHAR(49152)"}, {"PUMP_NAME", "VARCHAR(128)"}} {
		t, _ := parseType(c.typ)
		s.cols = append(s.cols, column{c.name, t})
	}
	return s
}

// engine is a compiled application: its in-application streams and the
// pumps between them. It runs on one goroutine; rows are pushed through it.
type engine struct {
	streams map[string]*inAppStream
	order   []*inAppStream
	errs    *inAppStream
	pumps   []*pump
	// now is the time errors are stamped with.
	now func() int64
	// markFn returns the mark of the record being processed (set by the
	// runner; nil in unit tests).
	markFn func() *mark
	// errorCount counts rows sent to the error stream.
	errorCount int64
	hasSliding bool
	// stages are the windowed table functions (TOP_K_ITEMS_TUMBLING, ...).
	stages []windowStage
	// tables are the reference tables, by upper-case name.
	tables map[string]*refTable
	// bounded is set for an ad hoc query over a range of a stream: a GROUP
	// BY needs no window (the range is one).
	bounded bool
}

// CodeError is application code that does not compile, with its position
// when the parser or the compiler knows it.
type CodeError struct {
	Line, Column int
	Msg          string
}

func (e *CodeError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

func codeErrorf(line, col int, format string, args ...any) *CodeError {
	return &CodeError{Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
}

// sourceDef is an in-application stream an input feeds.
type sourceDef struct {
	name string
	cols []column
}

// compile builds the engine of an application's code over its sources.
func compile(code string, sources []sourceDef, now func() int64, tables ...*refTable) (*engine, error) {
	e := &engine{streams: map[string]*inAppStream{}, now: now, tables: map[string]*refTable{}}
	for _, t := range tables {
		e.tables[strings.ToUpper(t.name)] = t
	}
	e.errs = newErrorStream()
	e.add(e.errs)
	for _, src := range sources {
		e.add(&inAppStream{name: src.name, cols: src.cols, source: true})
	}
	if strings.TrimSpace(code) == "" {
		return e, nil
	}
	prog, err := sql.ParseProgram(code)
	if err != nil {
		var se *sql.Error
		if errors.As(err, &se) {
			return nil, &CodeError{Line: se.Line, Column: se.Column, Msg: se.Msg}
		}
		return nil, err
	}
	for _, st := range prog.Statements {
		switch {
		case st.Stream != nil:
			name := string(st.Stream.Name)
			if old, ok := e.streams[name]; ok && (old.source || old == e.errs) {
				return nil, codeErrorf(st.Pos.Line, st.Pos.Column, "stream %q is an input or the error stream and cannot be replaced", name)
			}
			s := &inAppStream{name: name}
			seen := map[string]bool{}
			for _, c := range st.Stream.Columns {
				t, err := parseType(typeOf(c.Type))
				if err != nil {
					return nil, codeErrorf(c.Pos.Line, c.Pos.Column, "%v", err)
				}
				if seen[string(c.Name)] {
					return nil, codeErrorf(c.Pos.Line, c.Pos.Column, "column %q is declared twice", c.Name)
				}
				seen[string(c.Name)] = true
				s.cols = append(s.cols, column{string(c.Name), t})
			}
			e.add(s) // OR REPLACE: a later definition wins
		case st.Pump != nil:
			before := len(e.pumps)
			p, err := e.compilePump(st.Pump, st.Pos.Line, st.Pos.Column)
			if err != nil {
				return nil, err
			}
			var kept []*pump
			for _, old := range e.pumps[:before] {
				// A replaced pump goes, with the cursor pump of its table function.
				if old.name != p.name && !strings.HasPrefix(old.name, p.name+"$") {
					kept = append(kept, old)
				}
			}
			e.pumps = append(append(kept, e.pumps[before:]...), p)
		}
	}
	// Wire the pumps only now, so a pump replaced by a later statement
	// never runs.
	for _, p := range e.pumps {
		p.from.readers = append(p.from.readers, p.push)
		e.hasSliding = e.hasSliding || p.slide != nil
	}
	return e, nil
}

func (e *engine) add(s *inAppStream) {
	if _, ok := e.streams[s.name]; !ok {
		e.order = append(e.order, s)
	} else {
		for i, o := range e.order {
			if o.name == s.name {
				e.order[i] = s
			}
		}
	}
	e.streams[s.name] = s
}

// stream finds an in-application stream by name: exactly, then ignoring
// case.
func (e *engine) stream(name string) (*inAppStream, bool) {
	if s, ok := e.streams[name]; ok {
		return s, true
	}
	for _, s := range e.order {
		if strings.EqualFold(s.name, name) {
			return s, true
		}
	}
	return nil, false
}

// fail sends a row a pump could not process (or an input could not parse)
// to the error stream.
func (e *engine) fail(name, pumpName, msg string, data string, rowtime int64) {
	e.errorCount++
	ts := sql.Timestamp(e.now())
	var dataRowtime any
	if rowtime != 0 {
		dataRowtime = sql.Timestamp(rowtime)
	}
	e.errs.insert(&row{rowtime: rowtime, vals: []any{ts, "ERROR", name, truncateRunes(msg, 4096), dataRowtime, truncateRunes(data, 49152), pumpName}})
}

// advance tells the windows that ROWTIME has reached watermark, closing
// those that end at or before it (in declaration order, so rows a closing
// window emits reach the windows downstream before they close).
func (e *engine) advance(watermark int64) {
	for _, p := range e.pumps {
		if p.agg != nil {
			p.agg.advance(watermark)
		}
		for _, w := range p.slide {
			w.sweep(watermark)
		}
		if p.stagger != nil {
			p.stagger.advance(watermark)
		}
	}
	for _, st := range e.stages {
		st.advance(watermark)
	}
}

// windowStage is a table function with tumbling windows of its own.
type windowStage interface {
	advance(watermark int64)
	nextClose() (int64, bool)
	oldestMark() *mark
}

// oldestSlidingRow is the ROWTIME of the oldest row a sliding window holds.
func (e *engine) oldestSlidingRow() (int64, bool) {
	var oldest int64
	found := false
	for _, p := range e.pumps {
		if t, ok := p.oldestRowtime(); ok && (!found || t < oldest) {
			oldest, found = t, true
		}
	}
	return oldest, found
}

// nextClose is the end of the earliest open window.
func (e *engine) nextClose() (int64, bool) {
	var end int64
	found := false
	for _, p := range e.pumps {
		if t := p.agg; t != nil && t.open && (!found || t.start+t.size < end) {
			end, found = t.start+t.size, true
		}
		if p.stagger != nil {
			if e, ok := p.stagger.nextClose(); ok && (!found || e < end) {
				end, found = e, true
			}
		}
	}
	for _, st := range e.stages {
		if e, ok := st.nextClose(); ok && (!found || e < end) {
			end, found = e, true
		}
	}
	return end, found
}

// oldestMark is the mark of the earliest open window, nil when none is open.
func (e *engine) oldestMark() *mark {
	var m *mark
	for _, p := range e.pumps {
		if t := p.agg; t != nil && t.open && t.mark != nil && (m == nil || t.mark.Serial < m.Serial) {
			m = t.mark
		}
		if p.stagger != nil {
			if sm := p.stagger.oldestMark(); sm != nil && (m == nil || sm.Serial < m.Serial) {
				m = sm
			}
		}
	}
	for _, st := range e.stages {
		if sm := st.oldestMark(); sm != nil && (m == nil || sm.Serial < m.Serial) {
			m = sm
		}
	}
	return m
}
