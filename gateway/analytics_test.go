package gateway_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/streamgate/streamgate/gateway/sql"
	"github.com/streamgate/streamgate/streamstore"
)

const role = "arn:aws:iam::000000000000:role/analytics"

func streamARN(name string) string { return "arn:aws:kinesis:us-east-1:000000000000:stream/" + name }

// telemetryInput is an application input of JSON telemetry from stream.
func telemetryInput(stream string) map[string]any {
	return map[string]any{
		"NamePrefix":          "SOURCE_SQL_STREAM",
		"KinesisStreamsInput": map[string]string{"ResourceARN": streamARN(stream), "RoleARN": role},
		"InputSchema": map[string]any{
			"RecordFormat": map[string]any{"RecordFormatType": "JSON", "MappingParameters": map[string]any{"JSONMappingParameters": map[string]string{"RecordRowPath": "$"}}},
			"RecordColumns": []map[string]string{
				{"Name": "DEVICE", "Mapping": "$.device", "SqlType": "VARCHAR(16)"},
				{"Name": "TEMP", "Mapping": "$.temp", "SqlType": "DOUBLE"},
				{"Name": "LOAD", "Mapping": "$.load", "SqlType": "INTEGER"},
			},
		},
	}
}

func streamOutput(inApp, stream, format string) map[string]any {
	return map[string]any{"Name": inApp, "KinesisStreamsOutput": map[string]string{"ResourceARN": streamARN(stream), "RoleARN": role},
		"DestinationSchema": map[string]string{"RecordFormatType": format}}
}

func writeJSON(t *testing.T, path string, v any) string {
	t.Helper()
	if err := os.WriteFile(path, jsonBody(v), 0o600); err != nil {
		t.Fatal(err)
	}
	return "file://" + path
}

// waitRecords drains a stream until it holds n records (or fails after a
// while), returning them.
func waitRecords(t *testing.T, k *kinesis.Client, stream string, n int) []record {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		recs := drain(t, k, stream)
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s: %d records, want %d", stream, len(recs), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An application is created, inspected, started, updated, stopped and
// deleted with the `aws kinesisanalytics` CLI; records put with `aws
// kinesis put-records` come out of its output stream.
func TestAnalyticsWithAWSCLI(t *testing.T) {
	awsBin, err := exec.LookPath("aws")
	if err != nil {
		t.Fatal("the aws CLI is not installed: run `make test`, which installs it")
	}
	s := startServer(t, nil)
	run := awsCLI(t, awsBin, s)
	k := s.client()
	dir := t.TempDir()
	run("kinesis", "create-stream", "--stream-name", "telemetry", "--shard-count", "2")
	run("kinesis", "create-stream", "--stream-name", "hot", "--shard-count", "1")
	run("kinesis", "wait", "stream-exists", "--stream-name", "hot")

	put := func(recs ...string) {
		var entries []map[string]string
		for i, r := range recs {
			entries = append(entries, map[string]string{"Data": r, "PartitionKey": strconv.Itoa(i)})
		}
		args := append([]string{"kinesis", "put-records", "--stream-name", "telemetry", "--records", writeJSON(t, filepath.Join(dir, "records.json"), entries)}, rawBlobs(awsBin)...)
		if out := run(args...); out["FailedRecordCount"].(float64) != 0 {
			t.Fatalf("put-records: %v", out)
		}
	}
	put(`{"device":"pump-1","temp":21.5,"load":3}`, `{"device":"pump-2","temp":35,"load":7}`)

	schema := run("kinesisanalytics", "discover-input-schema", "--resource-arn", streamARN("telemetry"), "--role-arn", role,
		"--input-starting-position-configuration", "InputStartingPosition=TRIM_HORIZON")
	cols := fmt.Sprint(schema["InputSchema"].(map[string]any)["RecordColumns"])
	for _, want := range []string{"Name:DEVICE", "SqlType:VARCHAR(8)", "Name:TEMP", "SqlType:DOUBLE", "Name:LOAD", "SqlType:INTEGER", "Mapping:$.load"} {
		if !strings.Contains(cols, want) {
			t.Errorf("discovered columns %s lack %s", cols, want)
		}
	}

	code := `CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (device VARCHAR(16), temp DOUBLE);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM device, temp FROM "SOURCE_SQL_STREAM_001" WHERE temp > 30;`
	if err := os.WriteFile(filepath.Join(dir, "code.sql"), []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	created := run("kinesisanalytics", "create-application", "--application-name", "fleet",
		"--inputs", writeJSON(t, filepath.Join(dir, "inputs.json"), []any{telemetryInput("telemetry")}),
		"--outputs", writeJSON(t, filepath.Join(dir, "outputs.json"), []any{streamOutput("DESTINATION_SQL_STREAM", "hot", "JSON")}),
		"--application-code", "file://"+filepath.Join(dir, "code.sql"))
	if st := created["ApplicationSummary"].(map[string]any)["ApplicationStatus"]; st != "READY" {
		t.Fatalf("created: %v", created)
	}
	detail := run("kinesisanalytics", "describe-application", "--application-name", "fleet")["ApplicationDetail"].(map[string]any)
	input := detail["InputDescriptions"].([]any)[0].(map[string]any)
	if detail["ApplicationVersionId"].(float64) != 1 || input["InputId"] != "1.1" || fmt.Sprint(input["InAppStreamNames"]) != "[SOURCE_SQL_STREAM_001]" {
		t.Fatalf("describe: %v", detail)
	}

	// Statuses move as on AWS: STARTING, then RUNNING; STOPPING, then READY.
	status := func() string {
		return run("kinesisanalytics", "describe-application", "--application-name", "fleet")["ApplicationDetail"].(map[string]any)["ApplicationStatus"].(string)
	}
	run("kinesisanalytics", "start-application", "--application-name", "fleet",
		"--input-configurations", "Id=1.1,InputStartingPositionConfiguration={InputStartingPosition=TRIM_HORIZON}")
	waitFor(t, 10*time.Second, "RUNNING", func() bool { st := status(); return st == "RUNNING" || st != "STARTING" })
	if st := status(); st != "RUNNING" {
		t.Fatalf("status after start: %v", st)
	}
	put(`{"device":"pump-3","temp":31.25,"load":1}`, `{"device":"pump-4","temp":12,"load":1}`)
	got := waitRecords(t, k, "hot", 2)
	var rows []string
	for _, r := range got {
		rows = append(rows, r.data)
	}
	sort.Strings(rows)
	if want := `[{"DEVICE":"pump-2","TEMP":35} {"DEVICE":"pump-3","TEMP":31.25}]`; fmt.Sprint(rows) != want {
		t.Fatalf("output %v, want %s", rows, want)
	}

	// A code update (optimistic on the version) takes effect while running.
	newCode := strings.Replace(code, "WHERE temp > 30", "WHERE temp < 0", 1)
	update := writeJSON(t, filepath.Join(dir, "update.json"), map[string]any{"ApplicationCodeUpdate": newCode})
	run("kinesisanalytics", "update-application", "--application-name", "fleet", "--current-application-version-id", "1",
		"--application-update", update)
	cmd := exec.Command(awsBin, "--endpoint-url", s.endpoint, "kinesisanalytics", "update-application", "--application-name", "fleet",
		"--current-application-version-id", "1", "--application-update", update)
	cmd.Env = clientEnv(t, s)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "ConcurrentModificationException") {
		t.Fatalf("a stale version was accepted: %v %s", err, out)
	}
	put(`{"device":"pump-5","temp":-4,"load":1}`, `{"device":"pump-6","temp":50,"load":1}`)
	got = waitRecords(t, k, "hot", 3)
	if last := got[len(got)-1].data; last != `{"DEVICE":"pump-5","TEMP":-4}` || len(got) != 3 {
		t.Fatalf("after the update: %v", got)
	}

	// The error stream as an output (added with the CLI): a record that does
	// not fit the schema lands there, and is counted.
	run("kinesis", "create-stream", "--stream-name", "errors", "--shard-count", "1")
	run("kinesisanalytics", "add-application-output", "--application-name", "fleet", "--current-application-version-id", "2",
		"--application-output", writeJSON(t, filepath.Join(dir, "erroutput.json"), streamOutput("error_stream", "errors", "JSON")))
	put(`{"device":"pump-7","temp":"very hot","load":1}`)
	errRows := waitRecords(t, k, "errors", 1)
	if e := errRows[0].data; !strings.Contains(e, `"ERROR_NAME":"ParseError"`) || !strings.Contains(e, `very hot`) || !strings.Contains(e, `is not a DOUBLE`) {
		t.Fatalf("error stream row: %s", e)
	}
	if m := s.metrics(t); !strings.Contains(m, `streamgate_analytics_error_rows_total{application="fleet"} 1`) {
		t.Fatalf("error rows not counted:\n%s", m)
	}

	// Bad SQL is refused with its position.
	cmd = exec.Command(awsBin, "--endpoint-url", s.endpoint, "kinesisanalytics", "update-application", "--application-name", "fleet",
		"--current-application-version-id", "3", "--application-update", `ApplicationCodeUpdate=CREATE STREAM x (a INTEGER`)
	cmd.Env = clientEnv(t, s)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "CodeValidationException") || !strings.Contains(string(out), "line 1, column") {
		t.Fatalf("bad SQL: %v %s", err, out)
	}

	run("kinesisanalytics", "stop-application", "--application-name", "fleet")
	waitFor(t, 10*time.Second, "READY", func() bool { return status() == "READY" })
	detail = run("kinesisanalytics", "describe-application", "--application-name", "fleet")["ApplicationDetail"].(map[string]any)
	if detail["ApplicationStatus"] != "READY" || detail["ApplicationVersionId"].(float64) != 3 {
		t.Fatalf("after stop: %v", detail)
	}
	// Records put while it is stopped come out after a start at
	// LAST_STOPPED_POINT (and none of the earlier ones again).
	put(`{"device":"pump-8","temp":-9,"load":1}`)
	run("kinesisanalytics", "start-application", "--application-name", "fleet",
		"--input-configurations", "Id=1.1,InputStartingPositionConfiguration={InputStartingPosition=LAST_STOPPED_POINT}")
	waitRecords(t, k, "hot", 4)
	time.Sleep(300 * time.Millisecond) // and no more
	if got = drain(t, k, "hot"); len(got) != 4 || got[3].data != `{"DEVICE":"pump-8","TEMP":-9}` {
		t.Fatalf("after a restart at LAST_STOPPED_POINT: %v", got)
	}
	run("kinesisanalytics", "stop-application", "--application-name", "fleet")
	waitFor(t, 10*time.Second, "READY", func() bool { return status() == "READY" })

	run("kinesisanalytics", "tag-resource", "--resource-arn", detail["ApplicationARN"].(string), "--tags", "Key=site,Value=plant-7")
	if tags := run("kinesisanalytics", "list-tags-for-resource", "--resource-arn", detail["ApplicationARN"].(string)); fmt.Sprint(tags["Tags"]) != "[map[Key:site Value:plant-7]]" {
		t.Fatalf("tags: %v", tags)
	}
	run("kinesisanalytics", "delete-application", "--application-name", "fleet", "--create-timestamp", strconv.FormatFloat(detail["CreateTimestamp"].(float64), 'f', -1, 64))
	if apps := run("kinesisanalytics", "list-applications"); len(apps["ApplicationSummaries"].([]any)) != 0 {
		t.Fatalf("after delete: %v", apps)
	}
}

// telemetryRow is one synthetic reading, with the arrival time it is
// appended with.
type telemetryRow struct {
	device  string
	temp    float64
	load    int64
	arrival time.Time
}

// syntheticTelemetry makes n readings of devices spread over the span
// that ends with the last whole minute (so every window has ended), in
// arrival order.
func syntheticTelemetry(n, devices int, span time.Duration) []telemetryRow {
	start := time.Now().Truncate(time.Minute).Add(-span)
	rows := make([]telemetryRow, n)
	for i := range rows {
		rows[i] = telemetryRow{
			device:  fmt.Sprintf("d%03d", (i*7919)%devices),
			temp:    float64((i*37)%1000)/10 - 20 + float64(i%3)*0.125,
			load:    int64(i % 17),
			arrival: start.Add(time.Duration(i) * span / time.Duration(n)),
		}
	}
	return rows
}

func appendTelemetry(t *testing.T, st *streamstore.Store, stream string, rows []telemetryRow) {
	t.Helper()
	var entries []streamstore.Entry
	for _, r := range rows {
		entries = append(entries, streamstore.Entry{PartitionKey: r.device, Arrival: r.arrival.UnixNano(),
			Data: fmt.Appendf(nil, `{"device":%q,"temp":%s,"load":%d}`, r.device, strconv.FormatFloat(r.temp, 'f', -1, 64), r.load)})
	}
	for len(entries) > 0 {
		n := min(len(entries), 500)
		res, err := st.Append(stream, entries[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range res {
			if a.Err != nil {
				t.Fatal(a.Err)
			}
		}
		entries = entries[n:]
	}
}

// analyticsCall calls the KDA API and fails the test on an error.
func analyticsCall(t *testing.T, s *server, op string, in any) map[string]any {
	t.Helper()
	status, _, body := s.rawCallAs(t, "kinesisanalytics", "KinesisAnalytics_20150814."+op, "application/x-amz-json-1.1", jsonBody(in))
	if status != 200 {
		t.Fatalf("%s: %d %s", op, status, body)
	}
	var out map[string]any
	json.Unmarshal(body, &out)
	return out
}

// A tumbling-window application's output equals what sqlite3 computes
// with a plain GROUP BY over the same readings and computed window bounds.
// AVG may differ in the last bits (summation order): tolerance 1e-9
// relative; COUNT, SUM of integers, MIN and MAX must be equal.
func TestAnalyticsTumblingMatchesSQLite(t *testing.T) {
	sqlite, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatal("sqlite3 is not installed: run `make test`, which installs it")
	}
	s := startServer(t, nil)
	k := s.client()
	for name, shards := range map[string]int32{"telemetry": 2, "minutely": 1} {
		if _, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
			t.Fatal(err)
		}
	}
	rows := syntheticTelemetry(12000, 50, 10*time.Minute)
	appendTelemetry(t, s.gw.Store(), "telemetry", rows)

	code := `CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (device VARCHAR(16), window_start TIMESTAMP, readings BIGINT,
    avg_temp DOUBLE, min_temp DOUBLE, max_temp DOUBLE, total_load BIGINT);
CREATE OR REPLACE PUMP "STREAM_PUMP" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM device, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND),
         COUNT(*), AVG(temp), MIN(temp), MAX(temp), SUM(load)
  FROM "SOURCE_SQL_STREAM_001"
  WHERE temp > -15
  GROUP BY device, STEP("SOURCE_SQL_STREAM_001".ROWTIME BY INTERVAL '60' SECOND);`
	analyticsCall(t, s, "CreateApplication", map[string]any{"ApplicationName": "minutely", "ApplicationCode": code,
		"Inputs": []any{telemetryInput("telemetry")}, "Outputs": []any{streamOutput("DESTINATION_SQL_STREAM", "minutely", "JSON")}})
	analyticsCall(t, s, "StartApplication", map[string]any{"ApplicationName": "minutely",
		"InputConfigurations": []any{map[string]any{"Id": "1.1", "InputStartingPositionConfiguration": map[string]string{"InputStartingPosition": "TRIM_HORIZON"}}}})

	// The oracle.
	var csv strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&csv, "%s,%s,%d,%d\n", r.device, strconv.FormatFloat(r.temp, 'f', -1, 64), r.load, r.arrival.UnixMilli())
	}
	csvPath := filepath.Join(t.TempDir(), "telemetry.csv")
	os.WriteFile(csvPath, []byte(csv.String()), 0o600)
	out, err := exec.Command(sqlite, "-json", ":memory:",
		"CREATE TABLE t (device TEXT, temp REAL, load INTEGER, arrival INTEGER);",
		".mode csv", ".import "+csvPath+" t", ".mode json",
		`SELECT device, (arrival / 60000) * 60000 AS ws, COUNT(*) AS n, AVG(temp) AS avg, MIN(temp) AS mn, MAX(temp) AS mx, SUM(load) AS load
		 FROM t WHERE temp > -15 GROUP BY device, ws ORDER BY ws, device;`).Output()
	if err != nil {
		t.Fatalf("sqlite3: %v", err)
	}
	var want []struct {
		Device string
		WS     int64 `json:"ws"`
		N      int64 `json:"n"`
		Avg    float64
		Mn, Mx float64
		Load   int64
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("sqlite3 output: %v: %s", err, out)
	}

	got := waitRecords(t, k, "minutely", len(want))
	if len(got) != len(want) {
		t.Fatalf("%d rows, sqlite3 has %d", len(got), len(want))
	}
	type result struct {
		Device      string  `json:"DEVICE"`
		WindowStart string  `json:"WINDOW_START"`
		Readings    int64   `json:"READINGS"`
		AvgTemp     float64 `json:"AVG_TEMP"`
		MinTemp     float64 `json:"MIN_TEMP"`
		MaxTemp     float64 `json:"MAX_TEMP"`
		TotalLoad   int64   `json:"TOTAL_LOAD"`
	}
	byKey := map[string]result{}
	for _, r := range got {
		var res result
		if err := json.Unmarshal([]byte(r.data), &res); err != nil {
			t.Fatalf("%v: %s", err, r.data)
		}
		byKey[res.Device+"@"+res.WindowStart] = res
	}
	for _, w := range want {
		key := w.Device + "@" + sql.Timestamp(w.WS).String()
		g, ok := byKey[key]
		if !ok {
			t.Fatalf("no output row for %s", key)
		}
		if g.Readings != w.N || g.MinTemp != w.Mn || g.MaxTemp != w.Mx || g.TotalLoad != w.Load ||
			math.Abs(g.AvgTemp-w.Avg) > 1e-9*math.Max(1, math.Abs(w.Avg)) {
			t.Fatalf("%s: got %+v, sqlite3 %+v", key, g, w)
		}
	}
}

// An application reads a Firehose delivery stream, joins a reference
// table kept in a real S3-compatible server (versitygw), and writes CSV to
// another delivery stream, which delivers it to a directory bucket.
func TestAnalyticsFirehoseAndReferenceTable(t *testing.T) {
	vgw, s := startWithBucket(t, freeTCPAddr(t), t.TempDir(), "refs")
	if _, err := vgw.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("refs"), Key: aws.String("sites.csv"),
		Body: strings.NewReader("pump-1,Plant North\npump-2,Plant South\n")}); err != nil {
		t.Fatal(err)
	}
	f := s.firehose()
	for _, name := range []string{"readings", "alerts"} {
		if _, err := f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String(name),
			ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::archive"),
				RoleARN: aws.String(role), Prefix: aws.String(name + "/"), BufferingHints: &fhtypes.BufferingHints{IntervalInSeconds: aws.Int32(1), SizeInMBs: aws.Int32(1)}}}); err != nil {
			t.Fatal(err)
		}
	}
	fhARN := func(n string) string { return "arn:aws:firehose:us-east-1:000000000000:deliverystream/" + n }
	input := telemetryInput("unused")
	delete(input, "KinesisStreamsInput")
	input["KinesisFirehoseInput"] = map[string]string{"ResourceARN": fhARN("readings"), "RoleARN": role}
	code := `CREATE OR REPLACE STREAM "ALERTS" (device VARCHAR(16), site VARCHAR(32), temp DOUBLE);
CREATE OR REPLACE PUMP "ALERT_PUMP" AS INSERT INTO "ALERTS"
  SELECT STREAM r.device, COALESCE(s.site, 'unknown'), r.temp
  FROM "SOURCE_SQL_STREAM_001" AS r LEFT JOIN "SITES" AS s ON r.device = s.device
  WHERE r.temp > 30;`
	analyticsCall(t, s, "CreateApplication", map[string]any{"ApplicationName": "alerts", "ApplicationCode": code,
		"Inputs": []any{input},
		"Outputs": []any{map[string]any{"Name": "ALERTS", "KinesisFirehoseOutput": map[string]string{"ResourceARN": fhARN("alerts"), "RoleARN": role},
			"DestinationSchema": map[string]string{"RecordFormatType": "CSV"}}},
		"ReferenceDataSources": []any{map[string]any{"TableName": "SITES",
			"S3ReferenceDataSource": map[string]string{"BucketARN": "arn:aws:s3:::refs", "FileKey": "sites.csv", "ReferenceRoleARN": role},
			"ReferenceSchema": map[string]any{"RecordFormat": map[string]any{"RecordFormatType": "CSV",
				"MappingParameters": map[string]any{"CSVMappingParameters": map[string]string{"RecordRowDelimiter": "\n", "RecordColumnDelimiter": ","}}},
				"RecordColumns": []map[string]string{{"Name": "DEVICE", "SqlType": "VARCHAR(16)"}, {"Name": "SITE", "SqlType": "VARCHAR(32)"}}}}}})
	analyticsCall(t, s, "StartApplication", map[string]any{"ApplicationName": "alerts",
		"InputConfigurations": []any{map[string]any{"Id": "1.1", "InputStartingPositionConfiguration": map[string]string{"InputStartingPosition": "NOW"}}}})
	var recs []fhtypes.Record
	for _, r := range []string{`{"device":"pump-1","temp":35.5,"load":1}`, `{"device":"pump-2","temp":20,"load":1}`, `{"device":"pump-9","temp":41,"load":1}`} {
		recs = append(recs, fhtypes.Record{Data: []byte(r)})
	}
	if out, err := f.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("readings"), Records: recs}); err != nil || aws.ToInt32(out.FailedPutCount) != 0 {
		t.Fatalf("PutRecordBatch: %v", err)
	}
	// DiscoverInputSchema reads a delivery stream, and an object in a bucket.
	fromStream := analyticsCall(t, s, "DiscoverInputSchema", map[string]any{"ResourceARN": fhARN("readings"), "RoleARN": role,
		"InputStartingPositionConfiguration": map[string]string{"InputStartingPosition": "TRIM_HORIZON"}})
	if cols := fmt.Sprint(fromStream["InputSchema"].(map[string]any)["RecordColumns"]); !strings.Contains(cols, "Name:DEVICE") || !strings.Contains(cols, "SqlType:DOUBLE") {
		t.Errorf("discovered from the delivery stream: %s", cols)
	}
	fromObject := analyticsCall(t, s, "DiscoverInputSchema", map[string]any{
		"S3Configuration": map[string]string{"BucketARN": "arn:aws:s3:::refs", "FileKey": "sites.csv", "RoleARN": role}})
	if schema := fmt.Sprint(fromObject["InputSchema"]); !strings.Contains(schema, "RecordFormatType:CSV") || !strings.Contains(schema, "Name:COL_1") {
		t.Errorf("discovered from the object: %s", schema)
	}

	dir := filepath.Join(s.dataDir, "firehose-buckets", "archive", "alerts")
	var delivered string
	waitFor(t, 20*time.Second, "the alerts to be delivered", func() bool {
		delivered = ""
		filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() && !strings.Contains(path, ".tmp-") {
				b, _ := os.ReadFile(path)
				delivered += string(b)
			}
			return nil
		})
		return strings.Count(delivered, "\n") >= 2
	})
	if delivered != "pump-1,Plant North,35.5\npump-9,unknown,41\n" {
		t.Fatalf("delivered %q", delivered)
	}
}

// Functions instead of Lambda: a preprocessing function (an HTTP endpoint
// speaking the Lambda contract) upper-cases device names and drops test
// records; an output function receives the rows, and a row it first
// reports DeliveryFailed comes again with a retry hint.
func TestAnalyticsFunctions(t *testing.T) {
	var mu sync.Mutex
	var delivered []string
	var hints []int
	failedOnce := false
	type rec struct {
		RecordID string `json:"recordId"`
		Result   string `json:"result,omitempty"`
		Data     []byte `json:"data,omitempty"`
		Delivery *struct {
			RetryHint int `json:"retryHint"`
		} `json:"lambdaDeliveryRecordMetadata,omitempty"`
	}
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			ApplicationArn string `json:"applicationArn"`
			Records        []rec  `json:"records"`
		}
		json.NewDecoder(r.Body).Decode(&ev)
		var out []rec
		for _, x := range ev.Records {
			switch r.URL.Path {
			case "/preprocess":
				switch {
				case strings.Contains(string(x.Data), "test"):
					out = append(out, rec{RecordID: x.RecordID, Result: "Dropped"})
				default:
					out = append(out, rec{RecordID: x.RecordID, Result: "Ok", Data: []byte(strings.ToUpper(string(x.Data)))})
				}
			case "/deliver":
				mu.Lock()
				if !failedOnce {
					failedOnce = true
					out = append(out, rec{RecordID: x.RecordID, Result: "DeliveryFailed"})
				} else {
					delivered = append(delivered, string(x.Data))
					hints = append(hints, x.Delivery.RetryHint)
					out = append(out, rec{RecordID: x.RecordID, Result: "Ok"})
				}
				mu.Unlock()
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"records": out})
	}))
	defer fn.Close()

	s := startServer(t, nil)
	k := s.client()
	if _, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("raw"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	input := telemetryInput("raw")
	input["InputProcessingConfiguration"] = map[string]any{"InputLambdaProcessor": map[string]string{"ResourceARN": fn.URL + "/preprocess", "RoleARN": role}}
	input["InputSchema"].(map[string]any)["RecordColumns"] = []map[string]string{{"Name": "DEVICE", "Mapping": "$.DEVICE", "SqlType": "VARCHAR(16)"}, {"Name": "TEMP", "Mapping": "$.TEMP", "SqlType": "DOUBLE"}}
	code := `CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (device VARCHAR(16), temp DOUBLE);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM device, temp FROM "SOURCE_SQL_STREAM_001";`
	analyticsCall(t, s, "CreateApplication", map[string]any{"ApplicationName": "fn", "ApplicationCode": code, "Inputs": []any{input},
		"Outputs": []any{map[string]any{"Name": "DESTINATION_SQL_STREAM", "LambdaOutput": map[string]string{"ResourceARN": fn.URL + "/deliver", "RoleARN": role},
			"DestinationSchema": map[string]string{"RecordFormatType": "JSON"}}}})
	analyticsCall(t, s, "StartApplication", map[string]any{"ApplicationName": "fn",
		"InputConfigurations": []any{map[string]any{"Id": "1.1", "InputStartingPositionConfiguration": map[string]string{"InputStartingPosition": "TRIM_HORIZON"}}}})
	for _, d := range []string{`{"device":"pump-1","temp":1}`, `{"device":"test-rig","temp":2}`, `{"device":"pump-2","temp":3}`} {
		if _, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("raw"), PartitionKey: aws.String("k"), Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 20*time.Second, "two rows delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(delivered) >= 2 })
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	sort.Strings(delivered)
	if fmt.Sprint(delivered) != `[{"DEVICE":"PUMP-1","TEMP":1} {"DEVICE":"PUMP-2","TEMP":3}]` || !slices.Contains(hints, 1) {
		t.Fatalf("delivered %v with retry hints %v", delivered, hints)
	}
}

// InputParallelism 2 makes two in-application streams, each fed by half the
// shards; a pump per stream brings every record to the output.
func TestAnalyticsInputParallelism(t *testing.T) {
	s := startServer(t, nil)
	k := s.client()
	for name, n := range map[string]int32{"wide": 2, "merged": 1} {
		if _, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(n)}); err != nil {
			t.Fatal(err)
		}
	}
	input := telemetryInput("wide")
	input["InputParallelism"] = map[string]int{"Count": 2}
	code := `CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (device VARCHAR(16), lane INTEGER);
CREATE OR REPLACE PUMP "P1" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM device, 1 FROM "SOURCE_SQL_STREAM_001";
CREATE OR REPLACE PUMP "P2" AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM device, 2 FROM "SOURCE_SQL_STREAM_002";`
	analyticsCall(t, s, "CreateApplication", map[string]any{"ApplicationName": "wide", "ApplicationCode": code, "Inputs": []any{input},
		"Outputs": []any{streamOutput("DESTINATION_SQL_STREAM", "merged", "JSON")}})
	d := analyticsCall(t, s, "DescribeApplication", map[string]any{"ApplicationName": "wide"})
	names := d["ApplicationDetail"].(map[string]any)["InputDescriptions"].([]any)[0].(map[string]any)["InAppStreamNames"]
	if fmt.Sprint(names) != "[SOURCE_SQL_STREAM_001 SOURCE_SQL_STREAM_002]" {
		t.Fatalf("in-application streams %v", names)
	}
	analyticsCall(t, s, "StartApplication", map[string]any{"ApplicationName": "wide",
		"InputConfigurations": []any{map[string]any{"Id": "1.1", "InputStartingPositionConfiguration": map[string]string{"InputStartingPosition": "TRIM_HORIZON"}}}})
	for i := range 20 {
		if _, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("wide"), PartitionKey: aws.String(fmt.Sprint(i)),
			Data: fmt.Appendf(nil, `{"device":"d%02d","temp":1}`, i)}); err != nil {
			t.Fatal(err)
		}
	}
	got := waitRecords(t, k, "merged", 20)
	lanes := map[string]int{}
	for _, r := range got {
		var row struct{ LANE int }
		json.Unmarshal([]byte(r.data), &row)
		lanes[fmt.Sprint(row.LANE)]++
	}
	if len(got) != 20 || lanes["1"] == 0 || lanes["2"] == 0 {
		t.Fatalf("%d rows, by in-application stream %v", len(got), lanes)
	}
}

// The configuration operations round-trip through DescribeApplication, each
// bumping the version, and ListApplications pages.
func TestAnalyticsConfigurationOperations(t *testing.T) {
	s := startServer(t, nil)
	k := s.client()
	for _, name := range []string{"src", "dst"} {
		if _, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
	}
	describe := func(name string) map[string]any {
		return analyticsCall(t, s, "DescribeApplication", map[string]any{"ApplicationName": name})["ApplicationDetail"].(map[string]any)
	}
	for _, name := range []string{"a1", "a2", "a3"} {
		analyticsCall(t, s, "CreateApplication", map[string]any{"ApplicationName": name})
	}
	page := analyticsCall(t, s, "ListApplications", map[string]any{"Limit": 2})
	next := analyticsCall(t, s, "ListApplications", map[string]any{"Limit": 2, "ExclusiveStartApplicationName": "a2"})
	if fmt.Sprint(page["HasMoreApplications"], len(page["ApplicationSummaries"].([]any)), next["HasMoreApplications"], len(next["ApplicationSummaries"].([]any))) != "true 2 false 1" {
		t.Fatalf("pages: %v / %v", page, next)
	}

	version := func() float64 { return describe("a1")["ApplicationVersionId"].(float64) }
	call := func(op string, in map[string]any) {
		t.Helper()
		in["ApplicationName"], in["CurrentApplicationVersionId"] = "a1", version()
		analyticsCall(t, s, op, in)
	}
	call("AddApplicationInput", map[string]any{"Input": telemetryInput("src")})
	call("UpdateApplication", map[string]any{"ApplicationUpdate": map[string]any{"ApplicationCodeUpdate": `CREATE STREAM "DESTINATION_SQL_STREAM" (device VARCHAR(16));
CREATE PUMP p AS INSERT INTO "DESTINATION_SQL_STREAM" SELECT STREAM device FROM "SOURCE_SQL_STREAM_001";`}})
	call("AddApplicationOutput", map[string]any{"Output": streamOutput("DESTINATION_SQL_STREAM", "dst", "CSV")})
	call("AddApplicationReferenceDataSource", map[string]any{"ReferenceDataSource": map[string]any{"TableName": "T",
		"S3ReferenceDataSource": map[string]string{"BucketARN": "arn:aws:s3:::refs", "FileKey": "t.csv", "ReferenceRoleARN": role},
		"ReferenceSchema":       map[string]any{"RecordFormat": map[string]any{"RecordFormatType": "CSV"}, "RecordColumns": []map[string]string{{"Name": "A", "SqlType": "INTEGER"}}}}})
	call("AddApplicationCloudWatchLoggingOption", map[string]any{"CloudWatchLoggingOption": map[string]string{
		"LogStreamARN": "arn:aws:logs:us-east-1:000000000000:log-group:g:log-stream:s", "RoleARN": role}})
	call("AddApplicationInputProcessingConfiguration", map[string]any{"InputId": "1.1",
		"InputProcessingConfiguration": map[string]any{"InputLambdaProcessor": map[string]string{"ResourceARN": "http://127.0.0.1:9/fn", "RoleARN": role}}})
	d := describe("a1")
	in := d["InputDescriptions"].([]any)[0].(map[string]any)
	out := d["OutputDescriptions"].([]any)[0].(map[string]any)
	ref := d["ReferenceDataSourceDescriptions"].([]any)[0].(map[string]any)
	logs := d["CloudWatchLoggingOptionDescriptions"].([]any)[0].(map[string]any)
	if d["ApplicationVersionId"].(float64) != 7 || in["InputProcessingConfigurationDescription"] == nil || out["OutputId"] != "1.2" ||
		ref["ReferenceId"] != "1.3" || ref["TableName"] != "T" || logs["CloudWatchLoggingOptionId"] != "1.4" {
		t.Fatalf("after the additions: %v", d)
	}
	call("DeleteApplicationInputProcessingConfiguration", map[string]any{"InputId": "1.1"})
	call("DeleteApplicationOutput", map[string]any{"OutputId": "1.2"})
	call("DeleteApplicationReferenceDataSource", map[string]any{"ReferenceId": "1.3"})
	call("DeleteApplicationCloudWatchLoggingOption", map[string]any{"CloudWatchLoggingOptionId": "1.4"})
	d = describe("a1")
	if d["ApplicationVersionId"].(float64) != 11 || len(d["OutputDescriptions"].([]any)) != 0 || len(d["ReferenceDataSourceDescriptions"].([]any)) != 0 ||
		len(d["CloudWatchLoggingOptionDescriptions"].([]any)) != 0 || d["InputDescriptions"].([]any)[0].(map[string]any)["InputProcessingConfigurationDescription"] != nil {
		t.Fatalf("after the deletions: %v", d)
	}
	// A stale version, an unknown output and a Lambda ARN that is no URL are refused.
	for _, c := range []struct {
		op   string
		in   map[string]any
		code string
	}{
		{"DeleteApplicationOutput", map[string]any{"ApplicationName": "a1", "CurrentApplicationVersionId": 3, "OutputId": "1.9"}, "ConcurrentModificationException"},
		{"DeleteApplicationOutput", map[string]any{"ApplicationName": "a1", "CurrentApplicationVersionId": 11, "OutputId": "1.9"}, "ResourceNotFoundException"},
		{"AddApplicationOutput", map[string]any{"ApplicationName": "a1", "CurrentApplicationVersionId": 11, "Output": map[string]any{"Name": "DESTINATION_SQL_STREAM",
			"LambdaOutput":      map[string]string{"ResourceARN": "arn:aws:lambda:us-east-1:000000000000:function:f", "RoleARN": role},
			"DestinationSchema": map[string]string{"RecordFormatType": "JSON"}}}, "InvalidArgumentException"},
	} {
		status, _, body := s.rawCallAs(t, "kinesisanalytics", "KinesisAnalytics_20150814."+c.op, "application/x-amz-json-1.1", jsonBody(c.in))
		if status != 400 || !strings.Contains(string(body), c.code) {
			t.Errorf("%s: %d %s, want %s", c.op, status, body, c.code)
		}
	}
}
