package analytics

import (
	"fmt"
	"math"
	"testing"
)

// benchEngine pushes b.N rows of 100 devices (1 ms of ROWTIME apart)
// through an application and reports rows per second.
func benchEngine(b *testing.B, code string) {
	e, err := compile(code, []sourceDef{{name: "SOURCE_SQL_STREAM_001", cols: []column{
		{"DEVICE", sqlType{decl: "VARCHAR(8)", kind: kString, size: 8}}, {"TEMP", sqlType{decl: "DOUBLE", kind: kFloat}},
		{"LOAD", sqlType{decl: "DOUBLE", kind: kFloat}}}}}, func() int64 { return 0 })
	if err != nil {
		b.Fatal(err)
	}
	src, _ := e.stream("SOURCE_SQL_STREAM_001")
	out, _ := e.stream("DESTINATION_SQL_STREAM")
	rows := 0
	out.readers = append(out.readers, func(*row) { rows++ })
	devices := make([]string, 100)
	for i := range devices {
		devices[i] = fmt.Sprintf("d%03d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		src.insert(&row{rowtime: int64(i), vals: []any{devices[i%100], 20 + math.Sin(float64(i)/50), float64(i % 7)}})
	}
	e.advance(math.MaxInt64 / 4)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// A tumbling GROUP BY over 100 devices (the engine alone, no log).
func BenchmarkTumblingWindow(b *testing.B) {
	benchEngine(b, `CREATE STREAM "DESTINATION_SQL_STREAM" (d VARCHAR(8), a DOUBLE, m DOUBLE, n BIGINT);
		CREATE PUMP p AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM device, AVG(temp), MAX(temp), COUNT(*)
		FROM "SOURCE_SQL_STREAM_001" GROUP BY device, STEP(ROWTIME BY INTERVAL '10' SECOND);`)
}

// A sliding window of one minute per device: about 600 rows in each
// device's window, aggregated for every row.
func BenchmarkSlidingWindow(b *testing.B) {
	benchEngine(b, `CREATE STREAM "DESTINATION_SQL_STREAM" (d VARCHAR(8), a DOUBLE, m DOUBLE);
		CREATE PUMP p AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM device, AVG(temp) OVER w, MAX(temp) OVER w
		FROM "SOURCE_SQL_STREAM_001" WINDOW w AS (PARTITION BY device RANGE INTERVAL '1' MINUTE PRECEDING);`)
}

// RANDOM_CUT_FOREST with KDA's defaults (100 trees, 256 points each) over
// two numeric columns.
func BenchmarkRandomCutForest(b *testing.B) {
	benchEngine(b, `CREATE STREAM "DESTINATION_SQL_STREAM" (d VARCHAR(8), s DOUBLE);
		CREATE PUMP p AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM device, ANOMALY_SCORE
		FROM TABLE(RANDOM_CUT_FOREST(CURSOR(SELECT STREAM device, temp, load FROM "SOURCE_SQL_STREAM_001")));`)
}
