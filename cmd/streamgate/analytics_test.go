package main

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// kdaCall calls the Kinesis Analytics API of the process, signed with its
// admin key.
func kdaCall(t *testing.T, p *proc, op string, in any) {
	t.Helper()
	key := p.keys()
	r := resolved{region: "us-east-1", endpoint: aws.String("http://" + p.addr), creds: credentials.NewStaticCredentialsProvider(key.ID, key.Secret, "")}
	if _, err := signedCall(r, "kinesisanalytics", "KinesisAnalytics_20150814."+op, in); err != nil {
		t.Fatal(err)
	}
}

func createWindowApp(t *testing.T, p *proc, name, out, start string) {
	t.Helper()
	arn := func(s string) string { return "arn:aws:kinesis:us-east-1:000000000000:stream/" + s }
	code := `CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (device VARCHAR(8), win TIMESTAMP, n BIGINT, total BIGINT, first_seq BIGINT);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM device, FLOOR(ROWTIME TO SECOND), COUNT(*), SUM(v), MIN(seq)
  FROM "SOURCE_SQL_STREAM_001" GROUP BY device, STEP(ROWTIME BY INTERVAL '1' SECOND);
CREATE OR REPLACE PUMP "SLOW" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM 'all', STEP(ROWTIME BY INTERVAL '3' SECOND), COUNT(*), SUM(v), MIN(seq)
  FROM "SOURCE_SQL_STREAM_001" GROUP BY STEP(ROWTIME BY INTERVAL '3' SECOND);`
	kdaCall(t, p, "CreateApplication", map[string]any{"ApplicationName": name, "ApplicationCode": code,
		"Inputs": []any{map[string]any{"NamePrefix": "SOURCE_SQL_STREAM", "KinesisStreamsInput": map[string]string{"ResourceARN": arn("readings"), "RoleARN": "arn:aws:iam::000000000000:role/r"},
			"InputSchema": map[string]any{"RecordFormat": map[string]any{"RecordFormatType": "JSON"},
				"RecordColumns": []map[string]string{{"Name": "DEVICE", "Mapping": "$.d", "SqlType": "VARCHAR(8)"}, {"Name": "V", "Mapping": "$.v", "SqlType": "INTEGER"},
					{"Name": "SEQ", "Mapping": "$.seq", "SqlType": "BIGINT"}}}}},
		"Outputs": []any{map[string]any{"Name": "DESTINATION_SQL_STREAM", "KinesisStreamsOutput": map[string]string{"ResourceARN": arn(out), "RoleARN": "arn:aws:iam::000000000000:role/r"},
			"DestinationSchema": map[string]string{"RecordFormatType": "JSON"}}}})
	kdaCall(t, p, "StartApplication", map[string]any{"ApplicationName": name,
		"InputConfigurations": []any{map[string]any{"Id": "1.1", "InputStartingPositionConfiguration": map[string]string{"InputStartingPosition": start}}}})
}

// waitStable reads a stream until its record count stops changing.
func waitStable(t *testing.T, k *kinesis.Client, stream string) []string {
	t.Helper()
	last := -1
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(1500 * time.Millisecond) {
		got := readStream(t, k, stream)
		if len(got) == last && last > 0 {
			var rows []string
			for _, v := range got {
				rows = append(rows, v)
			}
			sort.Strings(rows)
			return rows
		}
		last = len(got)
	}
	t.Fatalf("stream %s did not settle", stream)
	return nil
}

// An application whose gateway is stopped (SIGTERM) or killed (-9) in the
// middle of its windows and restarted emits exactly what an application
// that ran without a restart emits over the same records: no window lost,
// none twice. Its 3-second window makes the restart replay 1-second
// windows that were emitted already.
func TestRestartMidWindowAnalyticsExactlyOnce(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) { restartMidWindow(t, sig) })
	}
}

func restartMidWindow(t *testing.T, sig syscall.Signal) {
	dir := t.TempDir()
	p := startServe(t, dir)
	k := p.client()
	for _, s := range []string{"readings", "out", "reference"} {
		if _, err := k.CreateStream(bg, &kinesis.CreateStreamInput{StreamName: aws.String(s), ShardCount: aws.Int32(1)}); err != nil {
			t.Fatal(err)
		}
	}
	createWindowApp(t, p, "windows", "out", "TRIM_HORIZON")
	seq := 0
	put := func(k *kinesis.Client, d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			var recs []types.PutRecordsRequestEntry
			for dev := range 5 {
				seq++
				recs = append(recs, types.PutRecordsRequestEntry{PartitionKey: aws.String("k"),
					Data: fmt.Appendf(nil, `{"d":"dev%d","v":%d,"seq":%d}`, dev, seq%97, seq)})
			}
			if out, err := k.PutRecords(bg, &kinesis.PutRecordsInput{StreamName: aws.String("readings"), Records: recs}); err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
				t.Fatalf("PutRecords: %v", err)
			}
		}
	}
	put(k, 2500*time.Millisecond)
	p.cmd.Process.Signal(sig) // windows are open
	p.cmd.Wait()
	p = startServe(t, dir)
	k = p.client()
	put(k, 2500*time.Millisecond)
	time.Sleep(3500 * time.Millisecond) // the last 3-second window closes by the clock
	got := waitStable(t, k, "out")

	createWindowApp(t, p, "reference", "reference", "TRIM_HORIZON")
	want := waitStable(t, k, "reference")
	if len(got) == 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after %v: %d rows, without a restart: %d rows\n got %v\nwant %v", sig, len(got), len(want), got, want)
	}
}

// `streamgate query` runs ad hoc SQL over a stream's last hour: a
// filtered GROUP BY without a window (the range is one), as a table and as
// JSON lines; bad SQL gets its position.
func TestQueryCommand(t *testing.T) {
	p := startServe(t, t.TempDir())
	runCLI(t, p, "", "streams", "create", "--shards", "2", "telemetry")
	var lines []string
	for i := range 30 {
		lines = append(lines, fmt.Sprintf(`{"device":"pump-%d","temp":%d,"site":{"name":"north"}}`, i%3, 10+i))
	}
	runCLI(t, p, strings.Join(lines, "\n")+"\n", "put", "telemetry", "--partition-key", "k", "--lines", "-")
	out := runCLI(t, p, "", "query", `SELECT device, COUNT(*) AS n, MAX(temp) AS hottest FROM telemetry WHERE temp >= 20 GROUP BY device`,
		"--from", "-1h", "--format", "json")
	got := strings.Split(strings.TrimSpace(out), "\n")
	sort.Strings(got)
	want := []string{`3 rows from 30 records`, `{"DEVICE":"pump-0","HOTTEST":37,"N":6}`, `{"DEVICE":"pump-1","HOTTEST":38,"N":7}`, `{"DEVICE":"pump-2","HOTTEST":39,"N":7}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("query output:\n%s", out)
	}
	sorted := runCLI(t, p, "", "query", `SELECT device, COUNT(*) AS n, MAX(temp) AS hottest FROM telemetry GROUP BY device ORDER BY n DESC, hottest DESC LIMIT 2`,
		"--format", "json")
	if want := "{\"DEVICE\":\"pump-2\",\"HOTTEST\":39,\"N\":10}\n{\"DEVICE\":\"pump-1\",\"HOTTEST\":38,\"N\":10}\n2 rows from 30 records\n"; sorted != want {
		t.Fatalf("ORDER BY ... LIMIT:\n%s\nwant\n%s", sorted, want)
	}
	table := runCLI(t, p, "", "query", `SELECT STREAM device, temp, site_name FROM telemetry WHERE temp > 37`)
	if !strings.Contains(table, "DEVICE  TEMP  SITE_NAME") || !strings.Contains(table, "pump-2  39    north") {
		t.Fatalf("table output:\n%s", table)
	}
	cmd := exec.Command(serveBin, "query", "SELECT device FROM telemetry WHERE")
	k := p.adminKey(t)
	cmd.Env = append(os.Environ(), "STREAMGATE_ENDPOINT=http://"+p.addr, "AWS_ACCESS_KEY_ID="+k.ID, "AWS_SECRET_ACCESS_KEY="+k.Secret)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "CodeValidationException") || !strings.Contains(string(out), "line 1, column") {
		t.Fatalf("bad SQL: %v %s", err, out)
	}
}
