package analytics

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/streamgate/streamgate/gateway/sql"
)

// functions are the analytics dialect's scalar functions (names in lower
// case); they run before the functions every dialect has, so SUBSTRING
// here is SQL's (1-based start, length), not IoT's.
var functions = map[string]func(r *rowEnv, a []any) (any, error){
	"regex_log_parse":           regexLogParse,
	"fast_regex_log_parser":     regexLogParse, // Go's regexp is already linear-time
	"variable_column_log_parse": variableColumnLogParse,
	"fixed_column_log_parse":    fixedColumnLogParse,
	"sys_log_parse":             sysLogParse,
	"w3c_log_parse":             w3cLogParse,
	"current_row_timestamp":     func(r *rowEnv, a []any) (any, error) { return sql.Timestamp(r.e.now()), nil },
	"tsdiff": func(r *rowEnv, a []any) (any, error) {
		if len(a) != 2 {
			return nil, errors.New("takes two timestamps")
		}
		x, ok1 := a[0].(sql.Timestamp)
		y, ok2 := a[1].(sql.Timestamp)
		if !ok1 || !ok2 {
			return nil, nil
		}
		return int64(x - y), nil
	},
	"unix_timestamp": func(r *rowEnv, a []any) (any, error) {
		if len(a) != 1 {
			return nil, errors.New("takes a timestamp")
		}
		if t, ok := a[0].(sql.Timestamp); ok {
			return int64(t), nil
		}
		return nil, nil
	},
	"to_timestamp": func(r *rowEnv, a []any) (any, error) {
		if len(a) != 1 {
			return nil, errors.New("takes milliseconds since the epoch")
		}
		if n, ok := toFloat(a[0]); ok {
			return sql.Timestamp(int64(n)), nil
		}
		return nil, nil
	},
	"char_to_timestamp": func(r *rowEnv, a []any) (any, error) {
		if len(a) != 2 {
			return nil, errors.New("takes a format and a string")
		}
		f, ok1 := a[0].(string)
		s, ok2 := a[1].(string)
		if !ok1 || !ok2 {
			return nil, nil
		}
		t, err := time.Parse(goLayout(f), s)
		if err != nil {
			return nil, fmt.Errorf("%q does not match the format %q", s, f)
		}
		return sql.Timestamp(t.UnixMilli()), nil
	},
	"timestamp_to_char": func(r *rowEnv, a []any) (any, error) {
		if len(a) != 2 {
			return nil, errors.New("takes a format and a timestamp")
		}
		f, ok1 := a[0].(string)
		t, ok2 := a[1].(sql.Timestamp)
		if !ok1 || !ok2 {
			return nil, nil
		}
		return t.Time().Format(goLayout(f)), nil
	},
	"substring": func(r *rowEnv, a []any) (any, error) {
		if len(a) < 2 || len(a) > 3 {
			return nil, errors.New("takes a string, a start (from 1) and an optional length")
		}
		s, ok1 := a[0].(string)
		start, ok2 := a[1].(int64)
		if !ok1 || !ok2 {
			return nil, nil
		}
		rs := []rune(s)
		from := max(start-1, 0)
		to := int64(len(rs))
		if len(a) == 3 {
			n, ok := a[2].(int64)
			if !ok || n < 0 {
				return nil, errors.New("the length must be a non-negative integer")
			}
			to = min(start-1+n, to)
		}
		if from >= to {
			return "", nil
		}
		return string(rs[from:to]), nil
	},
	"initcap": func(r *rowEnv, a []any) (any, error) {
		if len(a) != 1 {
			return nil, errors.New("takes a string")
		}
		s, ok := a[0].(string)
		if !ok {
			return nil, nil
		}
		b := []rune(strings.ToLower(s))
		for i := range b {
			if i == 0 || !isWordRune(b[i-1]) {
				b[i] = []rune(strings.ToUpper(string(b[i])))[0]
			}
		}
		return string(b), nil
	},
	"regex_replace": func(r *rowEnv, a []any) (any, error) {
		// REGEX_REPLACE(original, regex, replacement[, startPosition[, occurrence]]):
		// occurrence 0 (the default) replaces every match.
		if len(a) < 3 || len(a) > 5 {
			return nil, errors.New("takes a string, a regex, a replacement, and optionally a start position and an occurrence")
		}
		s, ok1 := a[0].(string)
		pat, ok2 := a[1].(string)
		repl, ok3 := a[2].(string)
		if !ok1 || !ok2 || !ok3 {
			return nil, nil
		}
		re, err := cachedRegexp(pat)
		if err != nil {
			return nil, err
		}
		start, occurrence := int64(1), int64(0)
		if len(a) >= 4 {
			start, _ = a[3].(int64)
		}
		if len(a) == 5 {
			occurrence, _ = a[4].(int64)
		}
		rs := []rune(s)
		if start < 1 || start > int64(len(rs))+1 {
			return nil, errors.New("the start position is outside the string")
		}
		head, tail := string(rs[:start-1]), string(rs[start-1:])
		repl = javaReplacement(repl)
		if occurrence == 0 {
			return head + re.ReplaceAllString(tail, repl), nil
		}
		n := int64(0)
		return head + re.ReplaceAllStringFunc(tail, func(m string) string {
			n++
			if n != occurrence {
				return m
			}
			return re.ReplaceAllString(m, repl)
		}), nil
	},
}

func isWordRune(r rune) bool {
	return r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 127
}

// javaReplacement turns Java's $1 group references into Go's ${1}.
func javaReplacement(s string) string {
	return javaGroup.ReplaceAllString(s, "$${$1}")
}

var javaGroup = regexp.MustCompile(`\$(\d+)`)

var regexps sync.Map // pattern -> *regexp.Regexp

func cachedRegexp(p string) (*regexp.Regexp, error) {
	if re, ok := regexps.Load(p); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %v", p, err)
	}
	regexps.Store(p, re)
	return re, nil
}

// goLayout translates a Java SimpleDateFormat pattern, as KDA's time
// functions take, into a Go time layout.
func goLayout(java string) string {
	var b strings.Builder
	rs := []rune(java)
	for i := 0; i < len(rs); {
		c := rs[i]
		if c == '\'' { // quoted literal text; '' is a quote
			j := i + 1
			for j < len(rs) && rs[j] != '\'' {
				b.WriteRune(rs[j])
				j++
			}
			if j == i+1 {
				b.WriteRune('\'')
			}
			i = j + 1
			continue
		}
		n := 1
		for i+n < len(rs) && rs[i+n] == c {
			n++
		}
		i += n
		// pick chooses a layout element by the pattern letter's count.
		pick := func(forms ...string) string { return forms[min(n, len(forms))-1] }
		switch c {
		case 'y':
			b.WriteString(pick("2006", "06", "2006"))
		case 'M':
			b.WriteString(pick("1", "01", "Jan", "January"))
		case 'd':
			b.WriteString(pick("2", "02"))
		case 'H':
			b.WriteString("15")
		case 'h':
			b.WriteString(pick("3", "03"))
		case 'm':
			b.WriteString(pick("4", "04"))
		case 's':
			b.WriteString(pick("5", "05"))
		case 'S':
			b.WriteString(strings.Repeat("0", n))
		case 'a':
			b.WriteString("PM")
		case 'E':
			b.WriteString(pick("Mon", "Mon", "Mon", "Monday"))
		case 'Z':
			b.WriteString("-0700")
		case 'X':
			b.WriteString(pick("-07", "-0700", "-07:00"))
		default:
			b.WriteString(strings.Repeat(string(c), n))
		}
	}
	return b.String()
}
