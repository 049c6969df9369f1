package analytics

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/streamgate/streamgate/gateway/sql"
)

func sourceOf(t *testing.T, cols ...string) []sourceDef {
	t.Helper()
	var def sourceDef
	def.name = "SOURCE_SQL_STREAM_001"
	for _, c := range cols {
		name, typ, _ := strings.Cut(c, " ")
		st, err := parseType(typ)
		if err != nil {
			t.Fatal(err)
		}
		def.cols = append(def.cols, column{name, st})
	}
	return []sourceDef{def}
}

// collect gathers the rows reaching a stream.
func collect(t *testing.T, e *engine, name string) *[]*row {
	t.Helper()
	s, ok := e.stream(name)
	if !ok {
		t.Fatalf("no stream %s", name)
	}
	var out []*row
	s.readers = append(s.readers, func(r *row) { out = append(out, r) })
	return &out
}

func TestTumblingWindow(t *testing.T) {
	e, err := compile(`
		CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (device VARCHAR(8), window_start TIMESTAMP, n INTEGER, avg_temp DOUBLE, max_temp DOUBLE);
		CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
		  SELECT STREAM device, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND), COUNT(*), AVG(temp), MAX(temp)
		  FROM "SOURCE_SQL_STREAM_001"
		  WHERE temp > 0
		  GROUP BY device, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND);`,
		sourceOf(t, "DEVICE VARCHAR(8)", "TEMP DOUBLE"), func() int64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	out := collect(t, e, "DESTINATION_SQL_STREAM")
	src, _ := e.stream("SOURCE_SQL_STREAM_001")
	for _, r := range []struct {
		at   int64
		dev  string
		temp float64
	}{{1000, "a", 10}, {2000, "b", 5}, {30000, "a", 20}, {40000, "a", -1}, {61000, "a", 7}, {125000, "b", 1}} {
		src.insert(&row{rowtime: r.at, vals: []any{r.dev, r.temp}})
	}
	got := fmt.Sprint(rowsText(*out))
	want := "[[a 1970-01-01 00:00:00.000 2 15 20]@60000 [b 1970-01-01 00:00:00.000 1 5 5]@60000 [a 1970-01-01 00:01:00.000 1 7 7]@120000]"
	if got != want {
		t.Fatalf("rows\n got %s\nwant %s", got, want)
	}
	e.advance(180000)
	if len(*out) != 4 {
		t.Fatalf("the clock did not close the last window: %d rows", len(*out))
	}
}

func rowsText(rows []*row) []string {
	var s []string
	for _, r := range rows {
		s = append(s, fmt.Sprintf("%v@%d", r.vals, r.rowtime))
	}
	return s
}

func TestFilterAndChainedStreams(t *testing.T) {
	e, err := compile(`
		CREATE STREAM hot (device VARCHAR(8), t DOUBLE, f DOUBLE);
		CREATE PUMP p1 AS INSERT INTO hot SELECT STREAM device, temp, temp * 9 / 5 + 32 FROM source_sql_stream_001 WHERE temp >= 30;
		CREATE STREAM "DESTINATION_SQL_STREAM" (device VARCHAR(8), hottest DOUBLE);
		CREATE PUMP p2 AS INSERT INTO "DESTINATION_SQL_STREAM"
		  SELECT STREAM device, MAX(f) FROM hot GROUP BY device, FLOOR(hot.ROWTIME TO MINUTE);`,
		sourceOf(t, "DEVICE VARCHAR(8)", "TEMP DOUBLE"), func() int64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	hot := collect(t, e, "HOT")
	out := collect(t, e, "DESTINATION_SQL_STREAM")
	src, _ := e.stream("SOURCE_SQL_STREAM_001")
	src.insert(&row{rowtime: 1000, vals: []any{"a", 35.0}})
	src.insert(&row{rowtime: 2000, vals: []any{"a", 20.0}})
	src.insert(&row{rowtime: 3000, vals: []any{"a", 40.0}})
	e.advance(60000)
	if got := fmt.Sprint(rowsText(*hot)); got != "[[a 35 95]@1000 [a 40 104]@3000]" {
		t.Fatalf("hot: %s", got)
	}
	if got := fmt.Sprint(rowsText(*out)); got != "[[a 104]@60000]" {
		t.Fatalf("out: %s", got)
	}
}

func TestCodeErrors(t *testing.T) {
	src := sourceOf(t, "DEVICE VARCHAR(8)", "TEMP DOUBLE")
	for code, want := range map[string]string{
		`CREATE STREAM s (a INTEGER) CREATE`: "line 1, column 35: unexpected token \"<EOF>\"",
		`CREATE STREAM s (a INTEGR);`:        "unknown SQL type INTEGR",
		`CREATE STREAM s (a INTEGER); CREATE PUMP p AS INSERT INTO s SELECT STREAM nope FROM source_sql_stream_001;`:                     `column "nope" not found`,
		`CREATE STREAM s (a INTEGER); CREATE PUMP p AS INSERT INTO s SELECT STREAM COUNT(*) FROM source_sql_stream_001;`:                 "needs a window",
		`CREATE STREAM s (a INTEGER); CREATE PUMP p AS INSERT INTO s SELECT STREAM COUNT(*) FROM source_sql_stream_001 GROUP BY device;`: "needs a ROWTIME window",
		`CREATE STREAM s (a INTEGER); CREATE PUMP p AS INSERT INTO t SELECT STREAM temp FROM source_sql_stream_001;`:                     `stream "T", which does not exist`,
		`CREATE STREAM s (a INTEGER, b INTEGER); CREATE PUMP p AS INSERT INTO s SELECT STREAM temp FROM source_sql_stream_001;`:          "selects 1 columns",
		`CREATE STREAM s (a INTEGER); CREATE PUMP p AS INSERT INTO s SELECT STREAM nosuch(temp) FROM source_sql_stream_001;`:             "no function NOSUCH",
	} {
		_, err := compile(code, src, func() int64 { return 0 })
		var ce *CodeError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s\n got %v\nwant a CodeError with %q", code, err, want)
		}
	}
}

func TestRecordParser(t *testing.T) {
	p, _, err := newRecordParser(&SourceSchema{RecordFormat: &RecordFormat{RecordFormatType: "JSON"}, RecordColumns: []*RecordColumn{
		{Name: "DEVICE", Mapping: "$.device", SqlType: "VARCHAR(4)"}, {Name: "TEMP", Mapping: "$.temp", SqlType: "DOUBLE"},
		{Name: "N", Mapping: "$.n", SqlType: "INTEGER"}}})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		`{"device":"pump-1","temp":21.5,"n":3,"extra":{"x":[1,2]}}`: "[pump 21.5 3]",
		`{"temp":"7","device":"a\u0062"}`:                           "[ab 7 <nil>]",
		`{"device":"a","n":"x"}`:                                    "error",
		`not json`:                                                  "error",
	} {
		var got string
		err := p.parse([]byte(in), func(v []any) { got = fmt.Sprint(v) })
		if err != nil {
			got = "error"
		}
		if got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
}

// Sliding windows, checked by hand: a RANGE window per partition and a ROWS
// window, one output row per input row.
func TestSlidingWindows(t *testing.T) {
	e, err := compile(`
		CREATE STREAM "DESTINATION_SQL_STREAM" (ticker VARCHAR(4), price DOUBLE, avg_1m DOUBLE, n_1m INTEGER, max_3rows DOUBLE);
		CREATE PUMP p AS INSERT INTO "DESTINATION_SQL_STREAM"
		  SELECT STREAM ticker_symbol, price, AVG(price) OVER w1, COUNT(*) OVER w1,
		         MAX(price) OVER (PARTITION BY ticker_symbol ROWS 2 PRECEDING)
		  FROM "SOURCE_SQL_STREAM_001"
		  WINDOW w1 AS (PARTITION BY ticker_symbol RANGE INTERVAL '1' MINUTE PRECEDING);`,
		sourceOf(t, "TICKER_SYMBOL VARCHAR(4)", "PRICE DOUBLE"), func() int64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	out := collect(t, e, "DESTINATION_SQL_STREAM")
	src, _ := e.stream("SOURCE_SQL_STREAM_001")
	for _, r := range []struct {
		at    int64
		sym   string
		price float64
	}{{0, "AMZN", 10}, {10000, "AMZN", 20}, {20000, "MSFT", 5}, {30000, "AMZN", 30}, {60000, "AMZN", 6}, {70001, "AMZN", 4}} {
		src.insert(&row{rowtime: r.at, vals: []any{r.sym, r.price}})
	}
	want := "[[AMZN 10 10 1 10]@0 [AMZN 20 15 2 20]@10000 [MSFT 5 5 1 5]@20000 [AMZN 30 20 3 30]@30000 " +
		"[AMZN 6 16.5 4 30]@60000 [AMZN 4 13.333333333333334 3 30]@70001]"
	if got := fmt.Sprint(rowsText(*out)); got != want {
		t.Fatalf("rows\n got %s\nwant %s", got, want)
	}
}

// A stagger window, as the KDA developer guide's example: a window per
// (event-time minute, ticker) opens with its first row and closes a minute
// later, so the late row of 11:00 still counts in the 11:00 window.
func TestStaggerWindow(t *testing.T) {
	e, err := compile(`
		CREATE STREAM "DESTINATION_SQL_STREAM" (event_minute TIMESTAMP, ticker VARCHAR(4), n INTEGER, avg_price DOUBLE);
		CREATE PUMP p AS INSERT INTO "DESTINATION_SQL_STREAM"
		  SELECT STREAM FLOOR(event_time TO MINUTE), ticker_symbol, COUNT(*), AVG(price)
		  FROM "SOURCE_SQL_STREAM_001"
		  WINDOWED BY STAGGER (PARTITION BY FLOOR(event_time TO MINUTE), ticker_symbol RANGE INTERVAL '1' MINUTE);`,
		sourceOf(t, "EVENT_TIME TIMESTAMP", "TICKER_SYMBOL VARCHAR(4)", "PRICE DOUBLE"), func() int64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	out := collect(t, e, "DESTINATION_SQL_STREAM")
	src, _ := e.stream("SOURCE_SQL_STREAM_001")
	at := func(hms string) int64 {
		ts, _ := sql.ParseTimestamp("2018-08-01 " + hms)
		return int64(ts)
	}
	for _, r := range []struct {
		rowtime, event, sym string
		price               float64
	}{
		{"11:00:20", "11:00:10", "AMZN", 10}, {"11:00:30", "11:00:20", "AMZN", 20}, {"11:00:40", "11:00:35", "MSFT", 5},
		{"11:01:05", "11:00:55", "AMZN", 30}, {"11:01:15", "11:01:05", "AMZN", 40},
	} {
		src.insert(&row{rowtime: at(r.rowtime), vals: []any{sql.Timestamp(at(r.event)), r.sym, r.price}})
	}
	e.advance(at("11:03:00"))
	want := "[[2018-08-01 11:00:00.000 AMZN 3 20]@" + fmt.Sprint(at("11:01:20")) +
		" [2018-08-01 11:00:00.000 MSFT 1 5]@" + fmt.Sprint(at("11:01:40")) +
		" [2018-08-01 11:01:00.000 AMZN 1 40]@" + fmt.Sprint(at("11:02:15")) + "]"
	if got := fmt.Sprint(rowsText(*out)); got != want {
		t.Fatalf("rows\n got %s\nwant %s", got, want)
	}
}

// RANDOM_CUT_FOREST in a pump: the spike gets the highest ANOMALY_SCORE,
// and the explanation blames its high temperature.
func TestRandomCutForestPump(t *testing.T) {
	e, err := compile(`
		CREATE STREAM "DESTINATION_SQL_STREAM" (device VARCHAR(8), temp DOUBLE, anomaly_score DOUBLE, why VARCHAR(2048));
		CREATE PUMP p AS INSERT INTO "DESTINATION_SQL_STREAM"
		  SELECT STREAM device, temp, ANOMALY_SCORE, ANOMALY_EXPLANATION
		  FROM TABLE(RANDOM_CUT_FOREST_WITH_EXPLANATION(
		    CURSOR(SELECT STREAM device, temp, humidity FROM "SOURCE_SQL_STREAM_001"), 40, 64, 100000, 1, true));`,
		sourceOf(t, "DEVICE VARCHAR(8)", "TEMP DOUBLE", "HUMIDITY DOUBLE"), func() int64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	out := collect(t, e, "DESTINATION_SQL_STREAM")
	src, _ := e.stream("SOURCE_SQL_STREAM_001")
	for i := range 400 {
		temp := 20 + float64(i%10)/10
		if i == 350 {
			temp = 80
		}
		src.insert(&row{rowtime: int64(i), vals: []any{"d1", temp, 40 + float64(i%7)/10}})
	}
	if len(*out) != 400 {
		t.Fatalf("%d rows, want one per input row", len(*out))
	}
	best := 0
	for i, r := range *out {
		if r.vals[2].(float64) > (*out)[best].vals[2].(float64) {
			best = i
		}
	}
	if best != 350 {
		t.Fatalf("highest score at row %d (%v), want the spike at 350 (%v)", best, (*out)[best].vals, (*out)[350].vals)
	}
	if why := (*out)[350].vals[3].(string); !strings.Contains(why, `"TEMP":{"DIRECTION":"HIGH"`) {
		t.Fatalf("explanation %s", why)
	}
}

// TOP_K_ITEMS_TUMBLING and COUNT_DISTINCT_ITEMS_TUMBLING per 10-second
// window; past 10,000 distinct values the count is estimated (HyperLogLog,
// within 2% here).
func TestItemsTumbling(t *testing.T) {
	e, err := compile(`
		CREATE STREAM top (ticker VARCHAR(4), most_frequent_values BIGINT);
		CREATE PUMP p1 AS INSERT INTO top SELECT STREAM * FROM TABLE(TOP_K_ITEMS_TUMBLING(
		  CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001"), 'TICKER_SYMBOL', 2, 10));
		CREATE STREAM distinct_count (n BIGINT);
		CREATE PUMP p2 AS INSERT INTO distinct_count SELECT STREAM NUMBER_OF_DISTINCT_ITEMS FROM TABLE(COUNT_DISTINCT_ITEMS_TUMBLING(
		  CURSOR(SELECT STREAM * FROM "SOURCE_SQL_STREAM_001"), 'TICKER_SYMBOL', 10));`,
		sourceOf(t, "TICKER_SYMBOL VARCHAR(8)", "PRICE DOUBLE"), func() int64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	top := collect(t, e, "TOP")
	distinct := collect(t, e, "DISTINCT_COUNT")
	src, _ := e.stream("SOURCE_SQL_STREAM_001")
	for i, sym := range []string{"AMZN", "MSFT", "AMZN", "NFLX", "MSFT", "AMZN"} {
		src.insert(&row{rowtime: int64(i * 1000), vals: []any{sym, 1.0}})
	}
	for i := range 50000 {
		src.insert(&row{rowtime: 10000 + int64(i/10), vals: []any{fmt.Sprintf("T%d", i%20000), 1.0}})
	}
	e.advance(30000)
	if got := fmt.Sprint(rowsText((*top)[:2])); got != "[[AMZN 3]@10000 [MSFT 2]@10000]" {
		t.Fatalf("top: %s", got)
	}
	if len(*distinct) != 2 || (*distinct)[0].vals[0] != int64(3) {
		t.Fatalf("distinct: %v", rowsText(*distinct))
	}
	if n := (*distinct)[1].vals[0].(int64); n < 19600 || n > 20400 {
		t.Fatalf("estimated %d distinct, want about 20000", n)
	}
}

// LAG over a partition: each row with the previous price of its ticker and
// the change.
func TestLag(t *testing.T) {
	e, err := compile(`
		CREATE STREAM "DESTINATION_SQL_STREAM" (ticker VARCHAR(4), price DOUBLE, prev DOUBLE, change DOUBLE);
		CREATE PUMP p AS INSERT INTO "DESTINATION_SQL_STREAM"
		  SELECT STREAM ticker_symbol, price, LAG(price, 1, 0) OVER w, price - LAG(price, 1) OVER w
		  FROM "SOURCE_SQL_STREAM_001"
		  WINDOW w AS (PARTITION BY ticker_symbol ROWS 1 PRECEDING);`,
		sourceOf(t, "TICKER_SYMBOL VARCHAR(4)", "PRICE DOUBLE"), func() int64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	out := collect(t, e, "DESTINATION_SQL_STREAM")
	src, _ := e.stream("SOURCE_SQL_STREAM_001")
	for i, r := range []struct {
		sym   string
		price float64
	}{{"A", 10}, {"B", 5}, {"A", 12}, {"A", 11}, {"B", 7}} {
		src.insert(&row{rowtime: int64(i), vals: []any{r.sym, r.price}})
	}
	want := "[[A 10 0 <nil>]@0 [B 5 0 <nil>]@1 [A 12 10 2]@2 [A 11 12 -1]@3 [B 7 5 2]@4]"
	if got := fmt.Sprint(rowsText(*out)); got != want {
		t.Fatalf("rows\n got %s\nwant %s", got, want)
	}
}

// A stream joined to a reference table (hash-indexed on the equality), and
// a LEFT OUTER JOIN that keeps rows without a match.
func TestReferenceJoin(t *testing.T) {
	companies, err := loadTable("companies", &SourceSchema{RecordFormat: &RecordFormat{RecordFormatType: "CSV",
		MappingParameters: &MappingParameters{CSVMappingParameters: &struct {
			RecordRowDelimiter    string
			RecordColumnDelimiter string
		}{"\n", ","}}}, RecordColumns: []*RecordColumn{{Name: "TICKER", SqlType: "VARCHAR(4)"}, {Name: "COMPANY", SqlType: "VARCHAR(32)"}}},
		[]byte("AMZN,Amazon\nMSFT,Microsoft\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := compile(`
		CREATE STREAM inner_join (ticker VARCHAR(4), company VARCHAR(32), price DOUBLE);
		CREATE PUMP p1 AS INSERT INTO inner_join
		  SELECT STREAM s.ticker_symbol, c.company, s.price
		  FROM "SOURCE_SQL_STREAM_001" AS s JOIN "companies" AS c ON s.ticker_symbol = c.ticker;
		CREATE STREAM outer_join (ticker VARCHAR(4), company VARCHAR(32));
		CREATE PUMP p2 AS INSERT INTO outer_join
		  SELECT STREAM ticker_symbol, COALESCE(company, 'unknown')
		  FROM "SOURCE_SQL_STREAM_001" LEFT OUTER JOIN "companies" ON ticker_symbol = "companies".ticker;`,
		sourceOf(t, "TICKER_SYMBOL VARCHAR(4)", "PRICE DOUBLE"), func() int64 { return 0 }, companies)
	if err != nil {
		t.Fatal(err)
	}
	inner := collect(t, e, "INNER_JOIN")
	outer := collect(t, e, "OUTER_JOIN")
	src, _ := e.stream("SOURCE_SQL_STREAM_001")
	for i, sym := range []string{"AMZN", "NFLX", "MSFT"} {
		src.insert(&row{rowtime: int64(i), vals: []any{sym, float64(i)}})
	}
	if got := fmt.Sprint(rowsText(*inner)); got != "[[AMZN Amazon 0]@0 [MSFT Microsoft 2]@2]" {
		t.Fatalf("inner: %s", got)
	}
	if got := fmt.Sprint(rowsText(*outer)); got != "[[AMZN Amazon]@0 [NFLX unknown]@1 [MSFT Microsoft]@2]" {
		t.Fatalf("outer: %s", got)
	}
}

// SQL's keyword-syntax functions and the time functions.
func TestFunctions(t *testing.T) {
	e, err := compile(`
		CREATE STREAM out (h INTEGER, p INTEGER, s1 VARCHAR(8), s2 VARCHAR(8), f VARCHAR(32), ts TIMESTAMP, d BIGINT, c TIMESTAMP, r VARCHAR(16), i VARCHAR(16));
		CREATE PUMP p AS INSERT INTO out SELECT STREAM
		  EXTRACT(HOUR FROM event_time), POSITION('-' IN device), SUBSTRING(device FROM 2 FOR 3), SUBSTRING(device, 6),
		  TIMESTAMP_TO_CHAR('yyyy-MM-dd HH:mm', event_time), CHAR_TO_TIMESTAMP('dd/MM/yyyy HH:mm:ss', '05/11/2026 10:11:12'),
		  TSDIFF(event_time, CAST('2026-11-05 10:00:00' AS TIMESTAMP)), CEIL(event_time TO HOUR),
		  REGEX_REPLACE(device, '([a-z]+)-(\d)', '$2:$1'), INITCAP(LOWER('PUMP station'))
		FROM "SOURCE_SQL_STREAM_001";`,
		sourceOf(t, "DEVICE VARCHAR(8)", "EVENT_TIME TIMESTAMP"), func() int64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	out := collect(t, e, "OUT")
	src, _ := e.stream("SOURCE_SQL_STREAM_001")
	ts, _ := sql.ParseTimestamp("2026-11-05 13:45:30.250")
	src.insert(&row{rowtime: 1, vals: []any{"pump-7", ts}})
	want := "[[13 5 ump 7 2026-11-05 13:45 2026-11-05 10:11:12.000 13530250 2026-11-05 14:00:00.000 7:pump Pump Station]@1]"
	if got := fmt.Sprint(rowsText(*out)); got != want {
		t.Fatalf("rows\n got %s\nwant %s", got, want)
	}
}

// The log parsers, read as structured values: (f(...)).COLUMN.
func TestLogParsers(t *testing.T) {
	e, err := compile(`
		CREATE STREAM out (host VARCHAR(32), at TIMESTAMP, request VARCHAR(64), status INTEGER, bytes BIGINT,
		  agent VARCHAR(32), k VARCHAR(8), v INTEGER, sys TIMESTAMP, code VARCHAR(4), qty INTEGER, csv2 VARCHAR(16));
		CREATE PUMP p AS INSERT INTO out SELECT STREAM
		  W3C_LOG_PARSE(line, 'COMMON').COLUMN1, (W3C_LOG_PARSE(line, 'COMMON')).column4,
		  W3C_LOG_PARSE(line, 'COMMON').COLUMN5, W3C_LOG_PARSE(line, 'COMMON').COLUMN6, W3C_LOG_PARSE(line, 'COMMON').COLUMN7,
		  W3C_LOG_PARSE(agentline, '%[User-agent]i').COLUMN1,
		  REGEX_LOG_PARSE(kv, '(\w+)=(\d+)', 'KEY TYPE VARCHAR(8), VAL TYPE INTEGER').KEY,
		  REGEX_LOG_PARSE(kv, '(\w+)=(\d+)', 'KEY TYPE VARCHAR(8), VAL TYPE INTEGER').val,
		  SYS_LOG_PARSE(sysline).COLUMN1,
		  FIXED_COLUMN_LOG_PARSE(fixed, 'CODE TYPE VARCHAR(4) START 0 FOR 4, QTY TYPE INTEGER START 4 FOR 3').CODE,
		  FIXED_COLUMN_LOG_PARSE(fixed, 'CODE TYPE VARCHAR(4) START 0 FOR 4, QTY TYPE INTEGER START 4 FOR 3').QTY,
		  VARIABLE_COLUMN_LOG_PARSE(csvline, 3, ',', '\', '"').COLUMN2
		FROM "SOURCE_SQL_STREAM_001";`,
		sourceOf(t, "LINE VARCHAR(256)", "AGENTLINE VARCHAR(64)", "KV VARCHAR(32)", "SYSLINE VARCHAR(64)", "FIXED VARCHAR(16)", "CSVLINE VARCHAR(64)"),
		func() int64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	out := collect(t, e, "OUT")
	src, _ := e.stream("SOURCE_SQL_STREAM_001")
	ts, _ := sql.ParseTimestamp("2026-11-26 00:00:00")
	src.insert(&row{rowtime: int64(ts), vals: []any{
		`127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326`,
		`Mozilla/5.0 (X11)`, `temp=42`, `Nov  5 14:02:03 pi4 sshd[123]: Accepted`, `AB12007xyz`, `a,"b,c",d`}})
	want := "[[127.0.0.1 2000-10-10 20:55:36.000 GET /apache_pb.gif HTTP/1.0 200 2326 Mozilla/5.0 (X11) temp 42 2026-11-05 14:02:03.000 AB12 7 b,c]"
	if got := fmt.Sprint(rowsText(*out)); !strings.HasPrefix(got, want) {
		t.Fatalf("rows\n got %s\nwant %s", got, want)
	}
}

// ORDER BY and LIMIT belong to queries over a range, not to pumps.
func TestOrderByOnlyInQueries(t *testing.T) {
	_, err := compile(`CREATE STREAM s (a VARCHAR(8)); CREATE PUMP p AS INSERT INTO s SELECT STREAM device FROM source_sql_stream_001 ORDER BY device;`,
		sourceOf(t, "DEVICE VARCHAR(8)"), func() int64 { return 0 })
	if err == nil || !strings.Contains(err.Error(), "ORDER BY and LIMIT are for queries over a range") {
		t.Fatalf("got %v", err)
	}
}
