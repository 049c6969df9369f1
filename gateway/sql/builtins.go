package sql

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// builtins are the functions every dialect has (names in lower case).
var builtins = map[string]func([]any) (any, error){
	"abs":         math1(math.Abs),
	"ceil":        timeOr(math1(math.Ceil), true),
	"floor":       timeOr(math1(math.Floor), false),
	"step":        step,
	"round":       math1(math.Round),
	"sqrt":        math1(math.Sqrt),
	"ln":          math1(math.Log),
	"log":         math1(math.Log10),
	"exp":         math1(math.Exp),
	"power":       math2(math.Pow),
	"mod":         func(a []any) (any, error) { return arity(a, 2, func() any { return arith("%", a[0], a[1]) }) },
	"upper":       str1(strings.ToUpper),
	"lower":       str1(strings.ToLower),
	"trim":        str1(strings.TrimSpace),
	"ltrim":       str1(func(s string) string { return strings.TrimLeft(s, " \t\r\n") }),
	"rtrim":       str1(func(s string) string { return strings.TrimRight(s, " \t\r\n") }),
	"length":      length,
	"char_length": length,
	"concat":      func(a []any) (any, error) { return concat(a...), nil },
	"substring": func(a []any) (any, error) {
		if len(a) < 2 || len(a) > 3 {
			return nil, errors.New("takes a string, a start and an optional end")
		}
		s, ok := a[0].(string)
		start, ok2 := a[1].(int64)
		if !ok || !ok2 {
			return Undefined, nil
		}
		r := []rune(s)
		end := int64(len(r))
		if len(a) == 3 {
			e, ok := a[2].(int64)
			if !ok {
				return Undefined, nil
			}
			end = min(e, end)
		}
		start = max(start, 0)
		if start >= end {
			return "", nil
		}
		return string(r[start:end]), nil
	},
	"replace": func(a []any) (any, error) {
		return arity(a, 3, func() any {
			s, ok1 := a[0].(string)
			old, ok2 := a[1].(string)
			repl, ok3 := a[2].(string)
			if !ok1 || !ok2 || !ok3 {
				return Undefined
			}
			return strings.ReplaceAll(s, old, repl)
		})
	},
	"startswith": str2(func(s, p string) any { return strings.HasPrefix(s, p) }),
	"endswith":   str2(func(s, p string) any { return strings.HasSuffix(s, p) }),
	"indexof": str2(func(s, p string) any {
		i := strings.Index(s, p)
		if i < 0 {
			return int64(-1)
		}
		return int64(utf8.RuneCountInString(s[:i]))
	}),
	"coalesce": func(a []any) (any, error) {
		for _, v := range a {
			if v != nil && !IsUndefined(v) {
				return v, nil
			}
		}
		return nil, nil
	},
	"nullif": func(a []any) (any, error) {
		return arity(a, 2, func() any {
			if c, ok := compare(a[0], a[1]); ok && c == 0 {
				return nil
			}
			return a[0]
		})
	},
	"extract": extract,
	"position": str2(func(sub, s string) any { // 1-based; 0 when absent
		i := strings.Index(s, sub)
		if i < 0 {
			return int64(0)
		}
		return int64(utf8.RuneCountInString(s[:i]) + 1)
	}),
	"isundefined": func(a []any) (any, error) { return arity(a, 1, func() any { return IsUndefined(a[0]) }) },
	"isnull":      func(a []any) (any, error) { return arity(a, 1, func() any { return a[0] == nil }) },
}

// length counts characters.
func length(a []any) (any, error) {
	return arity(a, 1, func() any {
		if s, ok := a[0].(string); ok {
			return int64(utf8.RuneCountInString(s))
		}
		return Undefined
	})
}

func arity(a []any, n int, f func() any) (any, error) {
	if len(a) != n {
		return nil, fmt.Errorf("takes %d arguments, got %d", n, len(a))
	}
	return f(), nil
}

func math1(f func(float64) float64) func([]any) (any, error) {
	return func(a []any) (any, error) {
		return arity(a, 1, func() any {
			x, ok := number(a[0])
			if !ok {
				return Undefined
			}
			r := f(x)
			if _, isInt := a[0].(int64); isInt && r == math.Trunc(r) && math.Abs(r) < 1<<62 {
				return int64(r)
			}
			return r
		})
	}
}

func math2(f func(float64, float64) float64) func([]any) (any, error) {
	return func(a []any) (any, error) {
		return arity(a, 2, func() any {
			x, ok1 := number(a[0])
			y, ok2 := number(a[1])
			if !ok1 || !ok2 {
				return Undefined
			}
			return f(x, y)
		})
	}
}

func str1(f func(string) string) func([]any) (any, error) {
	return func(a []any) (any, error) {
		return arity(a, 1, func() any {
			if s, ok := a[0].(string); ok {
				return f(s)
			}
			return Undefined
		})
	}
}

func str2(f func(string, string) any) func([]any) (any, error) {
	return func(a []any) (any, error) {
		return arity(a, 2, func() any {
			s, ok1 := a[0].(string)
			p, ok2 := a[1].(string)
			if !ok1 || !ok2 {
				return Undefined
			}
			return f(s, p)
		})
	}
}
