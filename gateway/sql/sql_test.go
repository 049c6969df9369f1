package sql

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// mapEnv resolves names from a JSON object and knows one dialect function.
type mapEnv map[string]any

func (m mapEnv) Lookup(name string) any {
	if v, ok := m[name]; ok {
		return v
	}
	return Undefined
}

func (m mapEnv) Call(name string, args []any) (any, bool, error) {
	if name == "twice" && len(args) == 1 {
		return arith("*", args[0], int64(2)), true, nil
	}
	return nil, false, nil
}

func env(t *testing.T, doc string) mapEnv {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(doc))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return FromJSON(m).(map[string]any)
}

func TestEvalExpressions(t *testing.T) {
	e := env(t, `{"temp": 31.5, "n": 7, "name": "Pump-3", "loc": {"room": "boiler", "floor": 2}, "tags": ["a", "b"], "ok": true, "nothing": null}`)
	for src, want := range map[string]any{
		"temp * 2":                     63.0,
		"n / 2":                        3.5,
		"n / 7":                        int64(1),
		"n % 4 + 1":                    int64(4),
		"-n":                           int64(-7),
		"loc.room":                     "boiler",
		"loc.floor * 10":               int64(20),
		"tags[1]":                      "b",
		"loc['room']":                  "boiler",
		"missing":                      Undefined,
		"missing + 1":                  Undefined,
		"nothing":                      nil,
		"temp > 30 AND ok":             true,
		"temp > 30 AND missing > 1":    nil,
		"temp < 30 OR name = 'Pump-3'": true,
		"NOT ok":                       false,
		"name LIKE 'Pump-%'":           true,
		"name NOT LIKE 'P_mp%'":        false,
		"n IN (1, 7, 9)":               true,
		"n NOT IN (1, 2)":              true,
		"n BETWEEN 5 AND 7":            true,
		"nothing IS NULL":              true,
		"missing IS NOT NULL":          false,
		"upper(name) || '!'":           "PUMP-3!",
		"concat(name, '/', loc.room)":  "Pump-3/boiler",
		"substring(name, 0, 4)":        "Pump",
		"CAST(temp AS Int)":            int64(31),
		"CAST('12.5' AS Decimal) + 1":  13.5,
		"CAST(n AS String)":            "7",
		"CASE WHEN temp > 40 THEN 'hot' WHEN temp > 30 THEN 'warm' ELSE 'cold' END": "warm",
		"CASE loc.floor WHEN 1 THEN 'one' WHEN 2 THEN 'two' END":                    "two",
		"twice(n)":                      int64(14),
		"coalesce(missing, nothing, n)": int64(7),
		"abs(-3)":                       int64(3),
		"round(2.6)":                    3.0,
		"power(2, 10)":                  1024.0,
		"length('héllo')":               int64(5),
		"indexof(name, '-')":            int64(4),
		"INTERVAL '2' MINUTE":           int64(120000),
		"1 / 0":                         nil,
		"'it''s'":                       "it's",
	} {
		x, err := ParseExpr(src)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		got, err := x.Eval(e)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", src, got, want)
		}
	}
	x, _ := ParseExpr("nosuch(1)")
	if _, err := x.Eval(e); !errors.Is(err, ErrUnknownFunction) {
		t.Errorf("unknown function: %v", err)
	}
}

func TestSyntaxErrorsHavePositions(t *testing.T) {
	for src, want := range map[string]string{
		"SELECT FROM 'x'":           "line 1, column 8",
		"SELECT a,\n  b + FROM 'x'": "line 2, column 5",
		"SELECT a FROM 'x' WHERE":   "line 1, column 24",
	} {
		_, err := ParseSelect(src)
		var se *Error
		if !errors.As(err, &se) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: %v, want an error at %s", src, err, want)
		}
	}
}

// Whatever the text, parsing and evaluating never panic.
func FuzzParseAndEval(f *testing.F) {
	f.Add("SELECT *, topic(2) AS d FROM 'a/+/b' WHERE temp > 3 AND x.y[0] LIKE 'a%'")
	f.Add("SELECT CASE WHEN a THEN 1 END, CAST(b AS Int), -c || 'x' FROM \"s\" GROUP BY a")
	f.Add("SELECT (((1))) FROM 'x' WHERE a BETWEEN 1 AND 2 OR b NOT IN (1,2)")
	f.Fuzz(func(t *testing.T, src string) {
		s, err := ParseSelect(src)
		if err != nil {
			return
		}
		e := mapEnv{"a": int64(1), "b": "2", "x": map[string]any{"y": []any{"z"}}}
		for _, it := range s.Items {
			if it.Expr != nil {
				it.Expr.Eval(e)
			}
		}
		if s.Where != nil {
			s.Where.Eval(e)
		}
	})
}
