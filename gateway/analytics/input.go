package analytics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/gateway/sql"
)

// recordParser turns an input record into rows of its source stream, as
// the input's schema says: JSON with a JSONPath per column (and a row path
// that may select an array of rows), or CSV with row and column delimiters.
type recordParser struct {
	cols []column
	csv  bool
	// JSON
	rowPath  jsonPath
	paths    []jsonPath
	topLevel map[string]int // when every mapping is "$.name" and rows are "$"
	// CSV
	rowDelim, colDelim string
}

func newRecordParser(s *SourceSchema) (*recordParser, []column, error) {
	if s == nil || s.RecordFormat == nil {
		return nil, nil, fmt.Errorf("InputSchema.RecordFormat is required")
	}
	p := &recordParser{}
	for _, c := range s.RecordColumns {
		t, err := parseType(c.SqlType)
		if err != nil {
			return nil, nil, fmt.Errorf("column %s: %v", c.Name, err)
		}
		p.cols = append(p.cols, column{c.Name, t})
	}
	mp := s.RecordFormat.MappingParameters
	switch s.RecordFormat.RecordFormatType {
	case "CSV":
		p.csv, p.rowDelim, p.colDelim = true, "\n", ","
		if mp != nil && mp.CSVMappingParameters != nil {
			p.rowDelim, p.colDelim = mp.CSVMappingParameters.RecordRowDelimiter, mp.CSVMappingParameters.RecordColumnDelimiter
		}
		if p.rowDelim == "" || p.colDelim == "" {
			return nil, nil, fmt.Errorf("CSV needs a RecordRowDelimiter and a RecordColumnDelimiter")
		}
	case "JSON":
		rowPath := "$"
		if mp != nil && mp.JSONMappingParameters != nil && mp.JSONMappingParameters.RecordRowPath != "" {
			rowPath = mp.JSONMappingParameters.RecordRowPath
		}
		var err error
		if p.rowPath, err = parsePath(rowPath); err != nil {
			return nil, nil, fmt.Errorf("RecordRowPath: %v", err)
		}
		simple := len(p.rowPath) == 0
		for _, c := range s.RecordColumns {
			m := c.Mapping
			if m == "" {
				m = "$." + c.Name
			}
			path, err := parsePath(m)
			if err != nil {
				return nil, nil, fmt.Errorf("column %s: Mapping: %v", c.Name, err)
			}
			if len(path) != 1 || path[0].field == "" {
				simple = false
			}
			p.paths = append(p.paths, path)
		}
		if simple {
			p.topLevel = map[string]int{}
			for i, path := range p.paths {
				p.topLevel[path[0].field] = i
			}
		}
	default:
		return nil, nil, fmt.Errorf("RecordFormatType %q: want JSON or CSV", s.RecordFormat.RecordFormatType)
	}
	return p, p.cols, nil
}

// parse calls emit with the values of every row in the record; an error
// names what does not fit (the record then goes to the error stream).
func (p *recordParser) parse(data []byte, emit func([]any)) error {
	if p.csv {
		return p.parseCSV(data, emit)
	}
	if p.topLevel != nil {
		if vals, ok := p.scanTopLevel(data); ok {
			return p.typed(vals, emit)
		}
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var doc any
	if err := d.Decode(&doc); err != nil || d.More() {
		return fmt.Errorf("the record is not one JSON value")
	}
	doc = sql.FromJSON(doc)
	rows, err := p.rowPath.rows(doc)
	if err != nil {
		return err
	}
	for _, r := range rows {
		vals := make([]any, len(p.paths))
		for i, path := range p.paths {
			v := path.get(r)
			if sql.IsUndefined(v) {
				v = nil
			}
			vals[i] = v
		}
		if err := p.typed(vals, emit); err != nil {
			return err
		}
	}
	return nil
}

// typed converts a row's values to their columns' types.
func (p *recordParser) typed(vals []any, emit func([]any)) error {
	for i, c := range p.cols {
		v, ok := c.typ.convert(vals[i])
		if !ok {
			return fmt.Errorf("column %s: %s is not a %s", c.name, sql.String(vals[i]), c.typ.decl)
		}
		vals[i] = v
	}
	emit(vals)
	return nil
}

// scanTopLevel reads the mapped fields of a flat JSON object in one pass
// without building it; false sends the record to the general decoder.
func (p *recordParser) scanTopLevel(data []byte) ([]any, bool) {
	s := awsapi.Scanner{B: data}
	s.WS()
	if !s.Eat('{') {
		return nil, false
	}
	vals := make([]any, len(p.cols))
	s.WS()
	if s.Eat('}') {
		return vals, s.End()
	}
	for {
		s.WS()
		key, ok := s.Str()
		if !ok {
			return nil, false
		}
		s.WS()
		if !s.Eat(':') {
			return nil, false
		}
		s.WS()
		i, wanted := p.topLevel[string(key)]
		start := s.I
		if !s.Skip() {
			return nil, false
		}
		if wanted {
			v, ok := scalar(data[start:s.I])
			if !ok {
				return nil, false
			}
			vals[i] = v
		}
		s.WS()
		if s.Eat('}') {
			return vals, s.End()
		}
		if !s.Eat(',') {
			return nil, false
		}
	}
}

// scalar reads one JSON value the scanner skipped: strings without
// escapes, numbers, booleans and null (objects and arrays go to the
// general decoder).
func scalar(v []byte) (any, bool) {
	switch c := v[0]; {
	case c == '"':
		if bytes.IndexByte(v[1:len(v)-1], '\\') >= 0 {
			return nil, false
		}
		return string(v[1 : len(v)-1]), true
	case c == 't':
		return true, true
	case c == 'f':
		return false, true
	case c == 'n':
		return nil, true
	case c == '{' || c == '[':
		return nil, false // as JSON text, the way the general decoder writes it
	}
	if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
		return i, true
	}
	f, err := strconv.ParseFloat(string(v), 64)
	return f, err == nil
}

func (p *recordParser) parseCSV(data []byte, emit func([]any)) error {
	for _, line := range strings.Split(string(data), p.rowDelim) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		fields := strings.Split(line, p.colDelim)
		if len(fields) < len(p.cols) {
			return fmt.Errorf("the row has %d columns, the schema %d", len(fields), len(p.cols))
		}
		vals := make([]any, len(p.cols))
		for i := range p.cols {
			vals[i] = fields[i]
		}
		if err := p.typed(vals, emit); err != nil {
			return err
		}
	}
	return nil
}

// jsonPath is a JSONPath as KDA's mappings use it: $ followed by .name,
// ['name'], [n], and in a row path [*] or [0:] (every element is a row).
type jsonPath []pathElem

type pathElem struct {
	field string
	index int
	all   bool
}

func parsePath(s string) (jsonPath, error) {
	if !strings.HasPrefix(s, "$") {
		return nil, fmt.Errorf("%q: a path starts with $", s)
	}
	var path jsonPath
	rest := s[1:]
	for rest != "" {
		switch rest[0] {
		case '.':
			rest = rest[1:]
			n := strings.IndexAny(rest, ".[")
			if n < 0 {
				n = len(rest)
			}
			if n == 0 {
				return nil, fmt.Errorf("%q: empty name", s)
			}
			path = append(path, pathElem{field: rest[:n]})
			rest = rest[n:]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("%q: unclosed [", s)
			}
			in := strings.TrimSpace(rest[1:end])
			rest = rest[end+1:]
			switch {
			case in == "*" || in == "0:":
				path = append(path, pathElem{all: true})
			case len(in) >= 2 && (in[0] == '\'' || in[0] == '"') && in[len(in)-1] == in[0]:
				path = append(path, pathElem{field: in[1 : len(in)-1]})
			default:
				n, err := strconv.Atoi(in)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("%q: [%s] is not an index", s, in)
				}
				path = append(path, pathElem{index: n, field: ""})
			}
		default:
			return nil, fmt.Errorf("%q: unexpected %q", s, rest[:1])
		}
	}
	return path, nil
}

// get follows the path; a value that is not there is Undefined.
func (p jsonPath) get(v any) any {
	for _, e := range p {
		switch x := v.(type) {
		case map[string]any:
			f, ok := x[e.field]
			if e.field == "" || !ok {
				return sql.Undefined
			}
			v = f
		case []any:
			if e.field != "" || e.all || e.index >= len(x) {
				return sql.Undefined
			}
			v = x[e.index]
		default:
			return sql.Undefined
		}
	}
	switch v.(type) {
	case map[string]any, []any:
		return jsonText(v)
	}
	return v
}

// rows selects the rows of a document: the value at the path, or each
// element where the path says [*].
func (p jsonPath) rows(doc any) ([]any, error) {
	cur := []any{doc}
	for _, e := range p {
		var next []any
		for _, v := range cur {
			switch x := v.(type) {
			case map[string]any:
				if f, ok := x[e.field]; ok && e.field != "" {
					next = append(next, f)
				}
			case []any:
				if e.all {
					next = append(next, x...)
				} else if e.field == "" && e.index < len(x) {
					next = append(next, x[e.index])
				}
			}
		}
		cur = next
	}
	if len(cur) == 0 {
		return nil, fmt.Errorf("RecordRowPath selects nothing in the record")
	}
	return cur, nil
}

// jsonText writes a nested value as compact JSON (keys sorted, no HTML
// escaping): how a column mapped to an object or array sees it.
func jsonText(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}
