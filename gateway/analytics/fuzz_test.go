package analytics

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/streamgate/streamgate/gateway/sql"
)

// Any application code compiles or fails with a CodeError, and a compiled
// application takes any rows without panicking.
func FuzzCompileAndRun(f *testing.F) {
	for _, seed := range []string{
		`CREATE STREAM d (a VARCHAR(8), n INTEGER); CREATE PUMP p AS INSERT INTO d SELECT STREAM device, COUNT(*) FROM source_sql_stream_001 GROUP BY device, STEP(ROWTIME BY INTERVAL '1' SECOND);`,
		`CREATE STREAM d (a DOUBLE); CREATE PUMP p AS INSERT INTO d SELECT STREAM AVG(temp) OVER (PARTITION BY device RANGE INTERVAL '1' MINUTE PRECEDING) FROM source_sql_stream_001;`,
		`CREATE STREAM d (a VARCHAR(8), n INTEGER); CREATE PUMP p AS INSERT INTO d SELECT STREAM device, COUNT(*) FROM source_sql_stream_001 WINDOWED BY STAGGER (PARTITION BY device RANGE INTERVAL '1' SECOND);`,
		`CREATE STREAM d (t DOUBLE, s DOUBLE); CREATE PUMP p AS INSERT INTO d SELECT STREAM temp, ANOMALY_SCORE FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM temp FROM source_sql_stream_001), 5, 8, 100, 2));`,
		`CREATE STREAM d (x VARCHAR(8), n BIGINT); CREATE PUMP p AS INSERT INTO d SELECT STREAM * FROM TABLE(TOP_K_ITEMS_TUMBLING(CURSOR(SELECT STREAM * FROM source_sql_stream_001), 'DEVICE', 2, 1));`,
		`CREATE STREAM d (a VARCHAR(8), p DOUBLE); CREATE PUMP p AS INSERT INTO d SELECT STREAM device, LAG(temp, 2, 0) OVER (PARTITION BY device ROWS 3 PRECEDING) FROM source_sql_stream_001;`,
		`CREATE STREAM "d" (x TIMESTAMP); CREATE PUMP "p" AS INSERT INTO "d" SELECT STREAM CHAR_TO_TIMESTAMP('yyyy-MM-dd', device) FROM source_sql_stream_001 WHERE REGEX_REPLACE(device, 'a(b)', '$1') <> '';`,
	} {
		f.Add(seed, "pump-1", 21.5)
	}
	src := []sourceDef{{name: "SOURCE_SQL_STREAM_001", cols: []column{
		{"DEVICE", sqlType{decl: "VARCHAR(8)", kind: kString, size: 8}}, {"TEMP", sqlType{decl: "DOUBLE", kind: kFloat}}}}}
	f.Fuzz(func(t *testing.T, code, device string, temp float64) {
		e, err := compile(code, src, func() int64 { return 0 })
		if err != nil {
			if _, ok := err.(*CodeError); !ok {
				t.Fatalf("%q: %T %v, want a CodeError", code, err, err)
			}
			return
		}
		s, _ := e.stream("SOURCE_SQL_STREAM_001")
		for i := range 20 {
			s.insert(&row{rowtime: int64(i * 700), vals: []any{device, temp + float64(i)}})
		}
		e.advance(math.MaxInt64 / 2)
	})
}

// Any record parses into typed rows or fails with an error; the one-pass
// scanner agrees with encoding/json on flat objects.
func FuzzRecordParser(f *testing.F) {
	for _, seed := range []string{`{"device":"a","temp":1.5,"n":3}`, `{"device":"a\"b","temp":"x"}`, `{"n":1e400}`, `[1,2]`, `a,b,c`, `{"device":null}`, `{"device":{"x":[1,2]}}`} {
		f.Add([]byte(seed))
	}
	schema := &SourceSchema{RecordFormat: &RecordFormat{RecordFormatType: "JSON"}, RecordColumns: []*RecordColumn{
		{Name: "DEVICE", Mapping: "$.device", SqlType: "VARCHAR(8)"}, {Name: "TEMP", Mapping: "$.temp", SqlType: "DOUBLE"}, {Name: "N", Mapping: "$.n", SqlType: "BIGINT"}}}
	p, _, err := newRecordParser(schema)
	if err != nil {
		f.Fatal(err)
	}
	slow := *p
	slow.topLevel = nil
	csvSchema := &SourceSchema{RecordFormat: &RecordFormat{RecordFormatType: "CSV"}, RecordColumns: schema.RecordColumns}
	csvParser, _, _ := newRecordParser(csvSchema)
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast, general []any
		errFast := p.parse(data, func(v []any) { fast = v })
		errSlow := slow.parse(data, func(v []any) { general = v })
		if (errFast == nil) != (errSlow == nil) {
			t.Fatalf("%q: scanner error %v, decoder error %v", data, errFast, errSlow)
		}
		a, _ := json.Marshal(fast)
		b, _ := json.Marshal(general)
		if string(a) != string(b) {
			t.Fatalf("%q: scanner %s, decoder %s", data, a, b)
		}
		csvParser.parse(data, func([]any) {})
	})
}

// Any JSONPath parses or fails; a parsed path follows any document.
func FuzzJSONPath(f *testing.F) {
	for _, seed := range []string{"$", "$.a.b", "$['a b'][0]", "$.records[0:]", "$[*]", "$.", "$[x]"} {
		f.Add(seed)
	}
	doc := sql.FromJSON(map[string]any{"a": map[string]any{"b": []any{1.0, "x"}}, "records": []any{map[string]any{"a": 1.0}}})
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePath(s)
		if err != nil {
			return
		}
		p.get(doc)
		p.rows(doc)
	})
}

// Any column list or log format parses or fails, and parsing a line with
// it never panics.
func FuzzLogParsers(f *testing.F) {
	f.Add("CODE TYPE VARCHAR(4) START 0 FOR 4, QTY TYPE DECIMAL(8, 2) START 4", `%h %l %u %t "%r" %>s %b`, "AB12 007 x")
	f.Add("T TYPE TIMESTAMP 'dd/MMM/yyyy' START 0", "COMMON WITH VHOST", `h 1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 -`)
	f.Fuzz(func(t *testing.T, cols, format, line string) {
		parseColumns(cols, true)
		fixedColumnLogParse(&rowEnv{}, []any{line, cols})
		variableColumnLogParse(&rowEnv{}, []any{line, cols, ",", `\`, `"`})
		regexLogParse(&rowEnv{}, []any{line, format, cols})
		w3cLogParse(&rowEnv{}, []any{line, format})
		sysLogParse(&rowEnv{}, []any{line})
	})
}
