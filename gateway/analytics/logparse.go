package analytics

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/streamgate/streamgate/gateway/sql"
)

// The log parsers of KDA's SQL return a structured value (sql.Row) whose
// fields are read as (REGEX_LOG_PARSE(line, '...')).COLUMN1: COLUMN1, ...
// unless a column list names and types them.

// logColumn is a column of a parser's result.
type logColumn struct {
	name       string
	typ        sqlType
	format     string // a TIMESTAMP's Java date pattern
	start, len int    // FIXED_COLUMN_LOG_PARSE: 0-based start and width (0: to the end)
}

var logSpecs sync.Map // column list text -> []logColumn

// parseColumns reads '<name> TYPE <type> [NOT NULL] [START n [FOR m]], ...',
// or a number of VARCHAR columns COLUMN1...
func parseColumns(spec any, fixed bool) ([]logColumn, error) {
	if n, ok := spec.(int64); ok {
		if n < 1 || n > 1000 {
			return nil, errors.New("the number of columns must be from 1 to 1000")
		}
		cols := make([]logColumn, n)
		for i := range cols {
			cols[i] = logColumn{name: "COLUMN" + strconv.Itoa(i+1), typ: sqlType{decl: "VARCHAR", kind: kString}}
		}
		return cols, nil
	}
	text, ok := spec.(string)
	if !ok {
		return nil, errors.New("the columns are a number or a 'name TYPE type, ...' list")
	}
	if c, ok := logSpecs.Load(text); ok {
		return c.([]logColumn), nil
	}
	var cols []logColumn
	for _, part := range splitTopLevel(text) {
		f := strings.Fields(part)
		if len(f) < 3 || !strings.EqualFold(f[1], "TYPE") {
			return nil, fmt.Errorf("column %q: want <name> TYPE <type>", strings.TrimSpace(part))
		}
		c := logColumn{name: strings.ToUpper(strings.Trim(f[0], `"`))}
		typ, rest := f[2], f[3:]
		// A type's size may be written apart: VARCHAR (20), DECIMAL(8, 2).
		for len(rest) > 0 && (strings.HasPrefix(rest[0], "(") || strings.Count(typ, "(") > strings.Count(typ, ")")) {
			typ, rest = typ+rest[0], rest[1:]
		}
		if len(rest) > 0 && strings.HasPrefix(rest[0], "'") { // a timestamp format
			q := strings.Join(rest, " ")
			end := strings.Index(q[1:], "'")
			if end < 0 {
				return nil, fmt.Errorf("column %s: unclosed format", c.name)
			}
			c.format, rest = q[1:end+1], strings.Fields(q[end+2:])
		}
		t, err := parseType(typ)
		if err != nil {
			return nil, fmt.Errorf("column %s: %v", c.name, err)
		}
		c.typ = t
		for i := 0; i < len(rest); i++ {
			switch strings.ToUpper(rest[i]) {
			case "NOT", "NULL":
			case "START", "FOR":
				if i+1 >= len(rest) {
					return nil, fmt.Errorf("column %s: %s needs a number", c.name, rest[i])
				}
				n, err := strconv.Atoi(rest[i+1])
				if err != nil || n < 0 {
					return nil, fmt.Errorf("column %s: %s %q is not a number", c.name, rest[i], rest[i+1])
				}
				if strings.EqualFold(rest[i], "START") {
					c.start = n
				} else {
					c.len = n
				}
				i++
			default:
				return nil, fmt.Errorf("column %s: unexpected %q", c.name, rest[i])
			}
		}
		if fixed && c.len == 0 && c.start == 0 && len(cols) > 0 {
			return nil, fmt.Errorf("column %s: FIXED_COLUMN_LOG_PARSE needs START", c.name)
		}
		cols = append(cols, c)
	}
	if len(cols) == 0 {
		return nil, errors.New("no columns")
	}
	logSpecs.Store(text, cols)
	return cols, nil
}

// splitTopLevel splits at commas outside parentheses and quotes.
func splitTopLevel(s string) []string {
	var parts []string
	depth, quoted, start := 0, false, 0
	for i, r := range s {
		switch {
		case r == '\'':
			quoted = !quoted
		case quoted:
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == ',' && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// row makes the structured result from the fields, typed by the columns
// (a field that does not convert is NULL, as a parser's bad field is).
func logRow(cols []logColumn, fields []string) sql.Row {
	r := sql.Row{}
	for i, c := range cols {
		if i >= len(fields) {
			r[c.name] = nil
			continue
		}
		f := fields[i]
		var v any = f
		if c.typ.kind == kTimestamp && c.format != "" {
			if t, err := time.Parse(goLayout(c.format), strings.TrimSpace(f)); err == nil {
				v = sql.Timestamp(t.UnixMilli())
			}
		}
		if c.typ.kind != kString {
			if f == "-" || strings.TrimSpace(f) == "" {
				v = nil
			}
		}
		w, ok := c.typ.convert(v)
		if !ok {
			w = nil
		}
		r[c.name] = w
	}
	return r
}

func regexLogParse(_ *rowEnv, a []any) (any, error) {
	if len(a) < 2 || len(a) > 3 {
		return nil, errors.New("takes a string, a regular expression and optionally the columns")
	}
	s, ok1 := a[0].(string)
	pat, ok2 := a[1].(string)
	if !ok1 || !ok2 {
		return nil, nil
	}
	re, err := cachedRegexp(pat)
	if err != nil {
		return nil, err
	}
	m := re.FindStringSubmatch(s)
	if m == nil {
		return nil, nil
	}
	var cols []logColumn
	if len(a) == 3 {
		if cols, err = parseColumns(a[2], false); err != nil {
			return nil, err
		}
	} else if cols, err = parseColumns(int64(max(len(m)-1, 1)), false); err != nil {
		return nil, err
	}
	return logRow(cols, m[1:]), nil
}

func variableColumnLogParse(_ *rowEnv, a []any) (any, error) {
	if len(a) < 3 || len(a) > 5 {
		return nil, errors.New("takes a string, the columns, a delimiter, and optionally an escape and quotes")
	}
	s, ok1 := a[0].(string)
	delim, ok2 := a[2].(string)
	if !ok1 || !ok2 || delim == "" {
		return nil, nil
	}
	cols, err := parseColumns(a[1], false)
	if err != nil {
		return nil, err
	}
	var escape, openQ, closeQ string
	if len(a) >= 4 {
		escape, _ = a[3].(string)
	}
	if len(a) == 5 {
		q, _ := a[4].(string)
		if r := []rune(q); len(r) > 0 {
			openQ, closeQ = string(r[0]), string(r[len(r)-1])
		}
	}
	var fields []string
	var cur strings.Builder
	inQuote := false
	for i := 0; i < len(s); {
		switch {
		case escape != "" && strings.HasPrefix(s[i:], escape) && i+len(escape) < len(s):
			i += len(escape)
			cur.WriteByte(s[i])
			i++
		case openQ != "" && !inQuote && strings.HasPrefix(s[i:], openQ):
			inQuote = true
			i += len(openQ)
		case inQuote && strings.HasPrefix(s[i:], closeQ):
			inQuote = false
			i += len(closeQ)
		case !inQuote && strings.HasPrefix(s[i:], delim):
			fields = append(fields, cur.String())
			cur.Reset()
			i += len(delim)
		default:
			cur.WriteByte(s[i])
			i++
		}
	}
	fields = append(fields, cur.String())
	return logRow(cols, fields), nil
}

func fixedColumnLogParse(_ *rowEnv, a []any) (any, error) {
	if len(a) != 2 {
		return nil, errors.New("takes a string and the columns ('name TYPE type START n FOR m, ...')")
	}
	s, ok := a[0].(string)
	if !ok {
		return nil, nil
	}
	cols, err := parseColumns(a[1], true)
	if err != nil {
		return nil, err
	}
	rs := []rune(s)
	fields := make([]string, len(cols))
	for i, c := range cols {
		start := min(c.start, len(rs))
		end := len(rs)
		if c.len > 0 {
			end = min(start+c.len, len(rs))
		}
		fields[i] = strings.TrimSpace(string(rs[start:end]))
	}
	return logRow(cols, fields), nil
}

var sysLogLine = regexp.MustCompile(`^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (.*)$`)

// sysLogParse reads "Mon DD HH:MM:SS rest": COLUMN1 the timestamp (this
// year, UTC), COLUMN2 the rest.
func sysLogParse(r *rowEnv, a []any) (any, error) {
	if len(a) != 1 {
		return nil, errors.New("takes a string")
	}
	s, ok := a[0].(string)
	if !ok {
		return nil, nil
	}
	m := sysLogLine.FindStringSubmatch(s)
	if m == nil {
		return nil, nil
	}
	t, err := time.Parse("Jan _2 15:04:05", m[1])
	if err != nil {
		return nil, nil
	}
	year := time.UnixMilli(r.rowtime).UTC().Year()
	t = t.AddDate(year, 0, 0)
	return sql.Row{"COLUMN1": sql.Timestamp(t.UnixMilli()), "COLUMN2": m[2]}, nil
}

// w3cFormats are W3C_LOG_PARSE's predefined formats.
var w3cFormats = map[string]string{
	"COMMON":            `%h %l %u %t "%r" %>s %b`,
	"COMMON WITH VHOST": `%v %h %l %u %t "%r" %>s %b`,
	"NCSA EXTENDED":     `%h %l %u %t "%r" %>s %b "%[Referer]i" "%[User-agent]i"`,
	"REFERER":           `%[Referer]i ---> %U`,
	"AGENT":             `%[User-agent]i`,
}

type w3cParser struct {
	re   *regexp.Regexp
	cols []logColumn
}

var w3cParsers sync.Map

var w3cSpecifier = regexp.MustCompile(`%[<>]?(?:[\[{][^\]}]*[\]}])?[a-zA-Z%]`)

// compileW3C turns an Apache log format into a regular expression with a
// group per specifier: %t is a bracketed timestamp, sizes and statuses are
// numbers ('-' is NULL), anything else a field up to the next space (or
// quote, inside quotes; or the end of the line, for the last).
func compileW3C(format string) (*w3cParser, error) {
	if p, ok := w3cParsers.Load(format); ok {
		return p.(*w3cParser), nil
	}
	spec := format
	if f, ok := w3cFormats[strings.ToUpper(strings.Join(strings.Fields(format), " "))]; ok {
		spec = f
	}
	var b strings.Builder
	b.WriteString("^")
	p := &w3cParser{}
	last := 0
	bigint, _ := parseType("BIGINT")
	ts, _ := parseType("TIMESTAMP")
	text, _ := parseType("VARCHAR(4096)")
	for _, loc := range w3cSpecifier.FindAllStringIndex(spec, -1) {
		lit := spec[last:loc[0]]
		b.WriteString(regexp.QuoteMeta(lit))
		last = loc[1]
		sp := spec[loc[0]:loc[1]]
		if sp == "%%" {
			b.WriteString("%")
			continue
		}
		quoted := strings.HasSuffix(lit, `"`)
		col := logColumn{name: "COLUMN" + strconv.Itoa(len(p.cols)+1), typ: text}
		switch letter := sp[len(sp)-1]; {
		case letter == 't':
			b.WriteString(`\[([^\]]*)\]`) // Apache writes %t in brackets
			col.typ, col.format = ts, "dd/MMM/yyyy:HH:mm:ss Z"
		case quoted:
			b.WriteString(`((?:[^"\\]|\\.)*)`)
		case loc[1] == len(spec) && letter != 's' && letter != 'b':
			b.WriteString(`(.*)`) // the line's last field takes the rest
		case letter == 's' || letter == 'b' || letter == 'B' || letter == 'D' || letter == 'T' || letter == 'p' || letter == 'P' || letter == 'I' || letter == 'O':
			b.WriteString(`(-|\d+)`)
			col.typ = bigint
		default:
			b.WriteString(`(\S*)`)
		}
		p.cols = append(p.cols, col)
	}
	b.WriteString(regexp.QuoteMeta(spec[last:]))
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("log format %q: %v", format, err)
	}
	if len(p.cols) == 0 {
		return nil, fmt.Errorf("log format %q has no %% specifiers", format)
	}
	p.re = re
	w3cParsers.Store(format, p)
	return p, nil
}

func w3cLogParse(_ *rowEnv, a []any) (any, error) {
	if len(a) != 2 {
		return nil, errors.New("takes a string and a format ('COMMON', 'NCSA EXTENDED', ... or an Apache log format)")
	}
	s, ok1 := a[0].(string)
	format, ok2 := a[1].(string)
	if !ok1 || !ok2 {
		return nil, nil
	}
	p, err := compileW3C(format)
	if err != nil {
		return nil, err
	}
	m := p.re.FindStringSubmatch(s)
	if m == nil {
		return nil, nil
	}
	return logRow(p.cols, m[1:]), nil
}
