package analytics

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/streamgate/streamgate/gateway/sql"
)

// sqlType is a column's declared type, normalized: the kind the value is
// converted to and, for character types, the maximum length.
type sqlType struct {
	decl string // as declared, upper case: VARCHAR(8)
	kind kind
	size int // VARCHAR/CHAR length; 0 means unbounded
}

type kind int

const (
	kString kind = iota
	kInt
	kFloat
	kBool
	kTimestamp
	kAny // a cursor's computed column: the value as it is
)

// parseType reads a KDA SQL type: VARCHAR(n), CHAR(n), INTEGER, BIGINT,
// SMALLINT, TINYINT, DOUBLE, REAL, FLOAT, DECIMAL(p,s), NUMERIC, BOOLEAN,
// TIMESTAMP, DATE, TIME.
func parseType(s string) (sqlType, error) {
	decl := strings.ToUpper(strings.Join(strings.Fields(s), " "))
	name, args := decl, ""
	if i := strings.IndexByte(decl, '('); i >= 0 {
		name, args = strings.TrimSpace(decl[:i]), strings.TrimSuffix(decl[i+1:], ")")
	}
	t := sqlType{decl: decl}
	switch name {
	case "VARCHAR", "CHAR", "CHARACTER", "CHARACTER VARYING", "VARBINARY", "BINARY":
		t.kind = kString
		if args != "" {
			n, err := strconv.Atoi(strings.TrimSpace(args))
			if err != nil || n <= 0 {
				return t, fmt.Errorf("type %s: the length must be a positive integer", decl)
			}
			t.size = n
		}
	case "INTEGER", "INT", "BIGINT", "SMALLINT", "TINYINT":
		t.kind = kInt
	case "DOUBLE", "DOUBLE PRECISION", "REAL", "FLOAT", "DECIMAL", "NUMERIC":
		t.kind = kFloat
	case "BOOLEAN":
		t.kind = kBool
	case "TIMESTAMP", "DATE", "TIME":
		t.kind = kTimestamp
	default:
		return t, fmt.Errorf("unknown SQL type %s", decl)
	}
	return t, nil
}

func typeOf(n *sql.TypeName) string {
	if len(n.Args) == 0 {
		return n.Name
	}
	return n.Name + "(" + strings.Join(n.Args, ",") + ")"
}

var kindNames = map[kind]string{kString: "VARCHAR", kInt: "BIGINT", kFloat: "DOUBLE", kBool: "BOOLEAN", kTimestamp: "TIMESTAMP"}

// convert casts a value to the type; ok is false when it cannot be, so the
// row goes to the error stream. NULL stays NULL.
func (t sqlType) convert(v any) (any, bool) {
	if v == nil || sql.IsUndefined(v) {
		return nil, true
	}
	switch t.kind {
	case kAny:
		return v, true
	case kString:
		s, ok := v.(string)
		if !ok {
			s = sql.String(v)
		}
		if t.size > 0 && len(s) > t.size {
			s = truncateRunes(s, t.size)
		}
		return s, true
	case kInt:
		switch x := v.(type) {
		case int64:
			return x, true
		case float64:
			return int64(x), true
		case string:
			if i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
				return i, true
			}
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return int64(f), true
			}
			return nil, false
		}
	case kFloat:
		switch x := v.(type) {
		case float64:
			return x, true
		case int64:
			return float64(x), true
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			return f, err == nil
		}
	case kTimestamp:
		switch x := v.(type) {
		case sql.Timestamp:
			return x, true
		case int64:
			return sql.Timestamp(x), true
		case float64:
			return sql.Timestamp(int64(x)), true
		case string:
			ts, ok := sql.ParseTimestamp(x)
			return ts, ok
		}
	}
	w, err := sql.Convert(v, kindNames[t.kind])
	if err != nil || sql.IsUndefined(w) {
		return nil, false
	}
	return w, true
}

// truncateRunes cuts s to at most n characters (VARCHAR(n) keeps the
// first n, as KDA does when a value is too long).
func truncateRunes(s string, n int) string {
	i := 0
	for k := range s {
		if i == n {
			return s[:k]
		}
		i++
	}
	return s
}
