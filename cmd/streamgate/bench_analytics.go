package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

// signedCall posts a JSON 1.1 call signed for a service and returns the
// body of a 200 answer.
func signedCall(r resolved, service, target string, in any) ([]byte, error) {
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest("POST", aws.ToString(r.endpoint)+"/", bytes.NewReader(body))
	req.Header.Set("X-Amz-Target", target)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	creds, err := r.creds.Retrieve(bg)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(bg, creds, req, hex.EncodeToString(sum[:]), service, r.region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %d %s", target, resp.StatusCode, b)
	}
	return b, nil
}

// benchAnalyticsCmd measures an analytics application: a tumbling
// AVG/MAX/COUNT GROUP BY device over many devices, reading a preloaded
// stream from TRIM_HORIZON (records per second from the log to the
// output), and, with records put live, how long after a window's end its
// rows are in the output stream.
func benchAnalyticsCmd(args []string) error {
	fs := flag.NewFlagSet("bench analytics", flag.ExitOnError)
	var c clientFlags
	c.register(fs)
	records := fs.Int("records", 600000, "records to preload for the throughput run")
	devices := fs.Int("devices", 10000, "distinct devices (groups)")
	shards := fs.Int("shards", 2, "shards of the input stream")
	rate := fs.Int("rate", 5000, "records per second put during the latency run")
	duration := fs.Duration("duration", 10*time.Second, "length of the latency run")
	serverPID := fs.Int("server-pid", 0, "pid of the gateway, for its CPU time")
	fs.Parse(args)
	r := c.resolve()
	k := kinesis.New(kinesis.Options{Region: r.region, BaseEndpoint: r.endpoint, Credentials: r.creds, HTTPClient: awsapi.SDKHTTPClient(nil)})
	tag := fmt.Sprint(time.Now().Unix())
	in, out, live := "bench-in-"+tag, "bench-out-"+tag, "bench-live-"+tag
	for name, n := range map[string]int{in: *shards, out: 1, live: 1} {
		if _, err := k.CreateStream(bg, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(int32(n))}); err != nil {
			return err
		}
	}
	put := func(n, offset int) error {
		var recs []types.PutRecordsRequestEntry
		for i := range n {
			d := (offset + i) % *devices
			recs = append(recs, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(d)),
				Data: fmt.Appendf(nil, `{"device":"d%05d","temp":%d.%d,"load":%d}`, d, (offset+i)%90, i%10, i%17)})
		}
		o, err := k.PutRecords(bg, &kinesis.PutRecordsInput{StreamName: aws.String(in), Records: recs})
		if err == nil && aws.ToInt32(o.FailedRecordCount) > 0 {
			err = fmt.Errorf("%d records failed", aws.ToInt32(o.FailedRecordCount))
		}
		return err
	}
	fmt.Printf("preloading %d records of %d devices into %d shards...\n", *records, *devices, *shards)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := w * 500; off < *records; off += 8 * 500 {
				if err := put(min(500, *records-off), off); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}

	arn := func(s string) string { return "arn:aws:kinesis:" + r.region + ":000000000000:stream/" + s }
	app := func(name, source, dest, window, start string) error {
		code := fmt.Sprintf(`CREATE OR REPLACE STREAM "DESTINATION_SQL_STREAM" (device VARCHAR(8), win TIMESTAMP, n BIGINT, avg_temp DOUBLE, max_temp DOUBLE);
CREATE OR REPLACE PUMP "P" AS INSERT INTO "DESTINATION_SQL_STREAM"
  SELECT STREAM device, STEP(ROWTIME BY INTERVAL '%[1]s' SECOND), COUNT(*), AVG(temp), MAX(temp)
  FROM "SOURCE_SQL_STREAM_001" GROUP BY device, STEP(ROWTIME BY INTERVAL '%[1]s' SECOND);`, window)
		if _, err := signedCall(r, "kinesisanalytics", "KinesisAnalytics_20150814.CreateApplication", map[string]any{"ApplicationName": name, "ApplicationCode": code,
			"Inputs": []any{map[string]any{"NamePrefix": "SOURCE_SQL_STREAM", "KinesisStreamsInput": map[string]string{"ResourceARN": arn(source), "RoleARN": "arn:aws:iam::000000000000:role/b"},
				"InputSchema": map[string]any{"RecordFormat": map[string]any{"RecordFormatType": "JSON"},
					"RecordColumns": []map[string]string{{"Name": "DEVICE", "Mapping": "$.device", "SqlType": "VARCHAR(8)"}, {"Name": "TEMP", "Mapping": "$.temp", "SqlType": "DOUBLE"},
						{"Name": "LOAD", "Mapping": "$.load", "SqlType": "INTEGER"}}}}},
			"Outputs": []any{map[string]any{"Name": "DESTINATION_SQL_STREAM", "KinesisStreamsOutput": map[string]string{"ResourceARN": arn(dest), "RoleARN": "arn:aws:iam::000000000000:role/b"},
				"DestinationSchema": map[string]string{"RecordFormatType": "JSON"}}}}); err != nil {
			return err
		}
		_, err := signedCall(r, "kinesisanalytics", "KinesisAnalytics_20150814.StartApplication", map[string]any{"ApplicationName": name,
			"InputConfigurations": []any{map[string]any{"Id": "1.1", "InputStartingPositionConfiguration": map[string]string{"InputStartingPosition": start}}}})
		return err
	}
	metricsURL := aws.ToString(r.endpoint) + "/metrics"
	series := func(name string) string {
		return `streamgate_analytics_input_records_total{application="` + name + `"}`
	}
	tput := "bench-tput-" + tag
	cpu0, t0 := procCPU(*serverPID), time.Now()
	if err := app(tput, in, out, "60", "TRIM_HORIZON"); err != nil {
		return err
	}
	for {
		v, _ := gauge(metricsURL, series(tput))
		if int(v) >= *records {
			break
		}
		if time.Since(t0) > 5*time.Minute {
			return fmt.Errorf("the application read %d of %d records in 5 minutes", int(v), *records)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed, cpu := time.Since(t0), procCPU(*serverPID)-cpu0
	fmt.Printf("analytics tumbling GROUP BY %d devices: %d records in %.2fs = %.0f records/s (server CPU %.2fs = %.0f%% of a core)\n",
		*devices, *records, elapsed.Seconds(), float64(*records)/elapsed.Seconds(), cpu.Seconds(), 100*cpu.Seconds()/elapsed.Seconds())

	// An ad hoc query over the same records: a bounded scan through the
	// same engine (ExecuteQuery, as `streamgate query` runs it).
	var qlat []time.Duration
	var scanned float64
	for range 3 {
		q0 := time.Now()
		body, err := signedCall(r, "kinesisanalytics", "KinesisAnalytics_20150814.ExecuteQuery", map[string]any{
			"SQL":  "SELECT device, COUNT(*) AS n, AVG(temp) AS avg_temp, MAX(temp) AS max_temp FROM " + strconv.Quote(in) + " GROUP BY device",
			"From": float64(t0.Add(-time.Hour).Unix()), "To": float64(time.Now().Add(time.Minute).Unix()), "Limit": 100000})
		if err != nil {
			return err
		}
		qlat = append(qlat, time.Since(q0))
		var res struct{ RecordsScanned float64 }
		json.Unmarshal(body, &res)
		scanned = res.RecordsScanned
	}
	sort.Slice(qlat, func(i, j int) bool { return qlat[i] < qlat[j] })
	fmt.Printf("ad hoc query GROUP BY device over %.0f records: median %.2fs = %.0f records/s (3 runs: %v)\n",
		scanned, qlat[1].Seconds(), scanned/qlat[1].Seconds(), qlat)

	// Latency: 1-second windows over records put live; a row's latency is
	// its arrival in the output stream minus its window's end.
	liveApp := "bench-live-" + tag
	if err := app(liveApp, in, live, "1", "NOW"); err != nil {
		return err
	}
	batch := max(*rate/50, 1)
	tick := time.NewTicker(20 * time.Millisecond)
	for end, off := time.Now().Add(*duration), 0; time.Now().Before(end); off += batch {
		<-tick.C
		if err := put(batch, off); err != nil {
			return err
		}
	}
	tick.Stop()
	time.Sleep(1500 * time.Millisecond) // the last window closes
	var lat []time.Duration
	shardsOut, err := k.ListShards(bg, &kinesis.ListShardsInput{StreamName: aws.String(live)})
	if err != nil {
		return err
	}
	for _, sh := range shardsOut.Shards {
		it, err := k.GetShardIterator(bg, &kinesis.GetShardIteratorInput{StreamName: aws.String(live), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			return err
		}
		for iter := it.ShardIterator; iter != nil; {
			res, err := k.GetRecords(bg, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				return err
			}
			for _, rec := range res.Records {
				var row struct{ WIN string }
				json.Unmarshal(rec.Data, &row)
				start, err := time.Parse("2006-01-02 15:04:05.000", row.WIN)
				if err == nil {
					lat = append(lat, rec.ApproximateArrivalTimestamp.Sub(start.Add(time.Second)))
				}
			}
			if len(res.Records) == 0 {
				break
			}
			iter = res.NextShardIterator
		}
	}
	fmt.Printf("analytics window close -> row in the output stream (1 s windows, %d records/s live): %s\n", *rate, strings.TrimSpace(percentiles(lat)))
	return nil
}
