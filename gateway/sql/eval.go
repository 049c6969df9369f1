package sql

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Values are JSON-like: nil (NULL), Undefined, bool, int64, float64,
// string, []byte (a payload that is not JSON), map[string]any and []any.

type undefinedValue struct{}

func (undefinedValue) String() string { return "undefined" }

// Undefined is the value of a field that is not there (as in AWS IoT SQL):
// arithmetic on it stays Undefined, comparisons with it are false, and an
// Undefined result is left out of the output.
var Undefined any = undefinedValue{}

// IsUndefined reports whether v is Undefined.
func IsUndefined(v any) bool { _, ok := v.(undefinedValue); return ok }

// Env resolves the names and functions of a dialect.
type Env interface {
	// Lookup returns a top-level name's value, or Undefined.
	Lookup(name string) any
	// Call runs a dialect function (name in lower case); ok is false for a
	// name it does not know, which then goes to the built-in functions.
	Call(name string, args []any) (v any, ok bool, err error)
}

// ErrUnknownFunction is returned for a call to a function nobody knows.
var ErrUnknownFunction = errors.New("unknown function")

// Eval evaluates the expression.
func (e *Expr) Eval(env Env) (any, error) {
	v, err := e.Left.eval(env)
	if err != nil || len(e.Right) == 0 {
		return v, err
	}
	for _, r := range e.Right {
		if truth(v) == tTrue {
			return true, nil
		}
		w, err := r.eval(env)
		if err != nil {
			return nil, err
		}
		v = or(v, w)
	}
	return v, nil
}

// three-valued logic
const (
	tFalse = iota
	tTrue
	tUnknown
)

func truth(v any) int {
	switch v := v.(type) {
	case bool:
		if v {
			return tTrue
		}
		return tFalse
	case nil, undefinedValue:
		return tUnknown
	}
	return tFalse
}

func or(a, b any) any {
	ta, tb := truth(a), truth(b)
	switch {
	case ta == tTrue || tb == tTrue:
		return true
	case ta == tUnknown || tb == tUnknown:
		return nil
	}
	return false
}

// True reports whether a WHERE condition holds (NULL and Undefined do not).
func True(v any) bool { return truth(v) == tTrue }

func (a *AndExpr) eval(env Env) (any, error) {
	v, err := a.Left.eval(env)
	if err != nil {
		return nil, err
	}
	for _, r := range a.Right {
		if truth(v) == tFalse {
			return false, nil
		}
		w, err := r.eval(env)
		if err != nil {
			return nil, err
		}
		switch tv, tw := truth(v), truth(w); {
		case tw == tFalse:
			v = false
		case tv == tUnknown || tw == tUnknown:
			v = nil
		default:
			v = true
		}
	}
	return v, nil
}

func (n *NotExpr) eval(env Env) (any, error) {
	v, err := n.Cmp.eval(env)
	if err != nil || !n.Not {
		return v, err
	}
	switch truth(v) {
	case tTrue:
		return false, nil
	case tFalse:
		return true, nil
	}
	return nil, nil
}

func (c *CmpExpr) eval(env Env) (any, error) {
	left, err := c.Left.eval(env)
	if err != nil || c.Op == nil {
		return left, err
	}
	op := c.Op
	switch {
	case op.Op != "":
		right, err := op.Right.eval(env)
		if err != nil {
			return nil, err
		}
		return compareOp(op.Op, left, right), nil
	case op.Is != nil:
		isNull := left == nil || IsUndefined(left)
		return isNull != op.Is.Not, nil
	case op.In != nil:
		if left == nil || IsUndefined(left) {
			return nil, nil
		}
		found := false
		for _, e := range op.In {
			v, err := e.Eval(env)
			if err != nil {
				return nil, err
			}
			if cmp, ok := compare(left, v); ok && cmp == 0 {
				found = true
				break
			}
		}
		return found != op.Not, nil
	case op.Like != nil:
		pat, err := op.Like.eval(env)
		if err != nil {
			return nil, err
		}
		s, ok1 := left.(string)
		p, ok2 := pat.(string)
		if !ok1 || !ok2 {
			return nil, nil
		}
		re, err := likePattern(p)
		if err != nil {
			return nil, err
		}
		return re.MatchString(s) != op.Not, nil
	case op.Between != nil:
		lo, err := op.Between.Low.eval(env)
		if err != nil {
			return nil, err
		}
		hi, err := op.Between.High.eval(env)
		if err != nil {
			return nil, err
		}
		a, ok1 := compare(left, lo)
		b, ok2 := compare(left, hi)
		if !ok1 || !ok2 {
			return nil, nil
		}
		return (a >= 0 && b <= 0) != op.Not, nil
	}
	return left, nil
}

// likePattern turns a SQL LIKE pattern (% and _) into a regexp.
func likePattern(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("(?s)^")
	for _, r := range p {
		switch r {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

func compareOp(op string, a, b any) any {
	if IsUndefined(a) || IsUndefined(b) || a == nil || b == nil {
		return nil
	}
	c, ok := compare(a, b)
	if !ok {
		if op == "<>" || op == "!=" {
			return true // values of different kinds are not equal
		}
		return false
	}
	switch op {
	case "=":
		return c == 0
	case "<>", "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return nil
}

// compare orders two values of comparable kinds.
func compare(a, b any) (int, bool) {
	if x, ok := number(a); ok {
		if y, ok := number(b); ok {
			switch {
			case x < y:
				return -1, true
			case x > y:
				return 1, true
			}
			return 0, true
		}
		return 0, false
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), true
		}
	case Timestamp:
		if y, ok := b.(Timestamp); ok {
			return cmpInt(int64(x), int64(y)), true
		}
	case bool:
		if y, ok := b.(bool); ok {
			if x == y {
				return 0, true
			}
			if !x {
				return -1, true
			}
			return 1, true
		}
	}
	return 0, false
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func (a *AddExpr) eval(env Env) (any, error) {
	v, err := a.Left.eval(env)
	if err != nil {
		return nil, err
	}
	for _, r := range a.Right {
		w, err := r.Right.eval(env)
		if err != nil {
			return nil, err
		}
		if r.Op == "||" {
			v = concat(v, w)
			continue
		}
		v = arith(r.Op, v, w)
	}
	return v, nil
}

func (m *MulExpr) eval(env Env) (any, error) {
	v, err := m.Left.eval(env)
	if err != nil {
		return nil, err
	}
	for _, r := range m.Right {
		w, err := r.Right.eval(env)
		if err != nil {
			return nil, err
		}
		v = arith(r.Op, v, w)
	}
	return v, nil
}

// arith applies an arithmetic operator: integers stay integers (but for a
// division that does not come out even), anything not a number gives
// Undefined, and division by zero gives NULL.
func arith(op string, a, b any) any {
	if IsUndefined(a) || IsUndefined(b) {
		return Undefined
	}
	if a == nil || b == nil {
		return nil
	}
	if t, ok := a.(Timestamp); ok {
		return timeArith(op, t, b)
	}
	x, ok1 := a.(int64)
	y, ok2 := b.(int64)
	if ok1 && ok2 {
		switch op {
		case "+":
			return x + y
		case "-":
			return x - y
		case "*":
			return x * y
		case "/":
			if y == 0 {
				return nil
			}
			if x%y == 0 {
				return x / y
			}
			return float64(x) / float64(y)
		case "%":
			if y == 0 {
				return nil
			}
			return x % y
		}
	}
	f, ok1 := number(a)
	g, ok2 := number(b)
	if !ok1 || !ok2 {
		return Undefined
	}
	switch op {
	case "+":
		return f + g
	case "-":
		return f - g
	case "*":
		return f * g
	case "/":
		if g == 0 {
			return nil
		}
		return f / g
	case "%":
		if g == 0 {
			return nil
		}
		return math.Mod(f, g)
	}
	return Undefined
}

func concat(vals ...any) any {
	var b strings.Builder
	for _, v := range vals {
		if IsUndefined(v) {
			return Undefined
		}
		b.WriteString(String(v))
	}
	return b.String()
}

// String renders a value as text (JSON for objects and arrays).
func String(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case []byte:
		return string(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case undefinedValue:
		return ""
	case Timestamp:
		return x.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func (u *Unary) eval(env Env) (any, error) {
	v, err := u.Primary.eval(env)
	if err != nil {
		return nil, err
	}
	for _, s := range u.Suffix {
		if s.Index != nil {
			idx, err := s.Index.Eval(env)
			if err != nil {
				return nil, err
			}
			v = index(v, idx)
			continue
		}
		v = field(v, string(s.Field))
	}
	if u.Neg == "-" {
		return arith("-", int64(0), v), nil
	}
	return v, nil
}

func field(v any, name string) any {
	switch m := v.(type) {
	case map[string]any:
		if f, ok := m[name]; ok {
			return f
		}
	case Row:
		if f, ok := m[strings.ToUpper(name)]; ok {
			return f
		}
	}
	return Undefined
}

// Row is a structured value of the analytics dialect (a log parser's
// result): its fields have upper-case names, and SQL names them in any
// case, as it does columns.
type Row map[string]any

func index(v, idx any) any {
	switch x := v.(type) {
	case []any:
		if i, ok := idx.(int64); ok && i >= 0 && i < int64(len(x)) {
			return x[i]
		}
	case map[string]any:
		if k, ok := idx.(string); ok {
			if f, ok := x[k]; ok {
				return f
			}
		}
	}
	return Undefined
}

func (p *Primary) eval(env Env) (any, error) {
	switch {
	case p.Number != nil:
		return ParseNumber(*p.Number), nil
	case p.String != nil:
		return string(*p.String), nil
	case p.True:
		return true, nil
	case p.False:
		return false, nil
	case p.Null:
		return nil, nil
	case p.Case != nil:
		return p.Case.eval(env)
	case p.Cast != nil:
		v, err := p.Cast.Value.Eval(env)
		if err != nil {
			return nil, err
		}
		return Convert(v, p.Cast.Type.Name)
	case p.Interval != nil:
		return p.Interval.millis()
	case p.Special != nil:
		return p.Special.eval(env)
	case p.Call != nil:
		return p.Call.eval(env)
	case p.Sub != nil:
		return p.Sub.Eval(env)
	}
	return env.Lookup(string(p.Name)), nil
}

// ParseNumber reads a numeric literal: int64 when it is whole, else float64.
func ParseNumber(s string) any {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

func (c *Case) eval(env Env) (any, error) {
	var subject any
	if c.Subject != nil {
		v, err := c.Subject.Eval(env)
		if err != nil {
			return nil, err
		}
		subject = v
	}
	for _, w := range c.Whens {
		v, err := w.Cond.Eval(env)
		if err != nil {
			return nil, err
		}
		match := True(v)
		if c.Subject != nil {
			cmp, ok := compare(subject, v)
			match = ok && cmp == 0
		}
		if match {
			return w.Then.Eval(env)
		}
	}
	if c.Else != nil {
		return c.Else.Eval(env)
	}
	return nil, nil
}

func (i *Interval) millis() (any, error) {
	n, err := strconv.ParseFloat(strings.TrimSpace(string(i.Amount)), 64)
	if err != nil {
		return nil, fmt.Errorf("INTERVAL '%s': not a number", i.Amount)
	}
	unit := map[string]float64{"millisecond": 1, "second": 1e3, "minute": 60e3, "hour": 3600e3, "day": 86400e3}[strings.TrimSuffix(strings.ToLower(i.Unit), "s")]
	if unit == 0 {
		return nil, fmt.Errorf("INTERVAL unit %s: want SECOND, MINUTE, HOUR or DAY", i.Unit)
	}
	return int64(n * unit), nil
}

// Convert casts a value to a SQL type (Int, Decimal, String, Boolean and
// their synonyms); a value that does not convert is Undefined.
func Convert(v any, typ string) (any, error) {
	if IsUndefined(v) || v == nil {
		return v, nil
	}
	switch strings.ToLower(typ) {
	case "int", "integer", "bigint", "long", "smallint", "tinyint":
		switch x := v.(type) {
		case int64:
			return x, nil
		case float64:
			return int64(x), nil
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil {
				return Undefined, nil
			}
			return int64(f), nil
		case bool:
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case "decimal", "double", "float", "real", "numeric":
		switch x := v.(type) {
		case int64:
			return float64(x), nil
		case float64:
			return x, nil
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil {
				return Undefined, nil
			}
			return f, nil
		case bool:
			if x {
				return 1.0, nil
			}
			return 0.0, nil
		}
	case "string", "varchar", "char", "text":
		return String(v), nil
	case "timestamp":
		switch x := v.(type) {
		case Timestamp:
			return x, nil
		case int64:
			return Timestamp(x), nil
		case float64:
			return Timestamp(int64(x)), nil
		case string:
			if t, ok := ParseTimestamp(x); ok {
				return t, nil
			}
		}
	case "boolean", "bool":
		switch x := v.(type) {
		case bool:
			return x, nil
		case int64:
			return x != 0, nil
		case float64:
			return x != 0, nil
		case string:
			b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(x)))
			if err != nil {
				return Undefined, nil
			}
			return b, nil
		}
	default:
		return nil, fmt.Errorf("CAST to %s: unknown type", typ)
	}
	return Undefined, nil
}

func (c *Call) eval(env Env) (any, error) {
	name := strings.ToLower(c.Name)
	args := make([]any, 0, len(c.Args))
	for _, a := range c.Args {
		if a.Star {
			args = append(args, Star{})
			continue
		}
		v, err := a.Expr.Eval(env)
		if err != nil {
			return nil, err
		}
		args = append(args, v)
	}
	if c.By != nil {
		v, err := c.By.Eval(env)
		if err != nil {
			return nil, err
		}
		args = append(args, v)
	}
	if c.To != "" {
		args = append(args, TimeUnit(strings.ToLower(c.To)))
	}
	if v, ok, err := env.Call(name, args); ok || err != nil {
		if err != nil {
			return nil, fmt.Errorf("%s(): %w", name, err)
		}
		return v, nil
	}
	f, ok := builtins[name]
	if !ok {
		return nil, fmt.Errorf("%w %s()", ErrUnknownFunction, c.Name)
	}
	v, err := f(args)
	if err != nil {
		return nil, fmt.Errorf("%s(): %w", name, err)
	}
	return v, nil
}

// Star is a * argument: COUNT(*), encode(*, 'base64').
type Star struct{}

// FromJSON converts a value decoded with json.Decoder.UseNumber into the
// evaluator's values (json.Number to int64 or float64).
func FromJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = FromJSON(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = FromJSON(e)
		}
		return x
	}
	return v
}

// eval runs a keyword-syntax function as the function of its name.
func (sp *Special) eval(env Env) (any, error) {
	var name string
	var args []any
	add := func(x interface{ eval(Env) (any, error) }) error {
		v, err := x.eval(env)
		args = append(args, v)
		return err
	}
	var err error
	switch {
	case sp.From != nil:
		name = "extract"
		args = append(args, TimeUnit(strings.ToLower(sp.Extract)))
		err = add(exprEval{sp.From})
	case sp.Position != nil:
		name = "position"
		if err = add(sp.Position); err == nil {
			err = add(sp.In)
		}
	default:
		name = "substring"
		for _, x := range []*Expr{sp.Substring, sp.Start, sp.Length} {
			if x != nil && err == nil {
				err = add(exprEval{x})
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if v, ok, err := env.Call(name, args); ok || err != nil {
		return v, err
	}
	return builtins[name](args)
}

// exprEval adapts an Expr to the eval method the other nodes have.
type exprEval struct{ x *Expr }

func (e exprEval) eval(env Env) (any, error) { return e.x.Eval(env) }
