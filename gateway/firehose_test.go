package gateway_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/snappy"
	"github.com/parquet-go/parquet-go"
	"github.com/streamgate/streamgate/gateway"
	"github.com/streamgate/streamgate/gateway/awsapi"
	fh "github.com/streamgate/streamgate/gateway/firehose"
	"github.com/streamgate/streamgate/internal/mediatest"
)

// versitygw is a real S3-compatible server (posix backend) for a test.
type versitygw struct {
	url string
	dir string
	cmd *exec.Cmd
	s3  *s3.Client
}

const vgwKey, vgwSecret = "VGWTESTKEY", "vgwtestsecret"

func startVersitygw(t *testing.T, addr, dir string) *versitygw {
	t.Helper()
	bin := "../bin/.tools/versitygw"
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("versitygw"); err != nil {
			t.Fatal("versitygw is not installed: run `make test`, which installs it")
		}
	}
	v := &versitygw{url: "http://" + addr, dir: dir}
	v.cmd = exec.Command(bin, "--access", vgwKey, "--secret", vgwSecret, "--port", addr, "--quiet", "posix", dir)
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.stop)
	v.s3 = s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(v.url), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(vgwKey, vgwSecret, ""), HTTPClient: awsapi.SDKHTTPClient(nil)})
	waitFor(t, 10*time.Second, "versitygw to listen", func() bool {
		_, err := v.s3.ListBuckets(ctx, &s3.ListBucketsInput{})
		return err == nil
	})
	return v
}

// startWithBucket starts versitygw with a bucket and a gateway whose
// deliveries to that bucket go there.
func startWithBucket(t *testing.T, addr, dir, bucket string) (*versitygw, *server) {
	t.Helper()
	vgw := startVersitygw(t, addr, dir)
	if _, err := vgw.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, func(c *gateway.Config) {
		c.Firehose.S3Endpoints = map[string]fh.S3Endpoint{bucket: {URL: vgw.url, AccessKeyID: vgwKey, SecretAccessKey: vgwSecret}}
	})
	return vgw, s
}

func (v *versitygw) stop() {
	if v.cmd != nil && v.cmd.Process != nil {
		v.cmd.Process.Kill()
		v.cmd.Wait()
		v.cmd = nil
	}
}

// objects returns a bucket's objects under a prefix, by key.
func (v *versitygw) objects(t *testing.T, bucket, prefix string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	list, err := v.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list.Contents {
		res, err := v.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		out[aws.ToString(o.Key)] = b
	}
	return out
}

func (s *server) firehose() *firehose.Client {
	return firehose.New(firehose.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(s.key.ID, s.key.Secret, ""), Retryer: aws.NopRetryer{},
		HTTPClient: awsapi.SDKHTTPClient(nil)})
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sortedConcat joins objects in key order (object names carry the time,
// and within one second a UUID: the test sorts by content order instead).
func records(objs map[string][]byte, decode func([]byte) []byte) []string {
	var lines []string
	for _, b := range objs {
		for _, l := range strings.Split(strings.TrimSuffix(string(decode(b)), "\n"), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
	}
	sort.Strings(lines)
	return lines
}

// 10,000 records through PutRecordBatch land in a real S3-compatible server
// (versitygw) as gzip objects under Firehose's default time prefix, named
// <stream>-<version>-<time>-<uuid>.gz; together they hold exactly the
// records, each object in order; `gzip -t` accepts every one.
func TestFirehoseDirectPutToVersitygw(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "gzip")
	vgw, s := startWithBucket(t, freeTCPAddr(t), t.TempDir(), "telemetry")
	f := s.firehose()
	_, err := f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("events"),
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::telemetry"),
			RoleARN: aws.String("arn:aws:iam::000000000000:role/firehose"), Prefix: aws.String("raw/"),
			BufferingHints:    &fhtypes.BufferingHints{SizeInMBs: aws.Int32(1), IntervalInSeconds: aws.Int32(1)},
			CompressionFormat: fhtypes.CompressionFormatGzip}})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for b := range 20 {
		var batch []fhtypes.Record
		for i := range 500 {
			line := fmt.Sprintf(`{"n":%05d,"pad":"%s"}`, b*500+i, strings.Repeat("x", 100))
			want = append(want, line)
			batch = append(batch, fhtypes.Record{Data: []byte(line + "\n")})
		}
		out, err := f.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("events"), Records: batch})
		if err != nil || aws.ToInt32(out.FailedPutCount) != 0 || len(out.RequestResponses) != 500 {
			t.Fatalf("PutRecordBatch: %v %+v", err, out)
		}
	}
	var objs map[string][]byte
	waitFor(t, 30*time.Second, "10,000 records in S3", func() bool {
		objs = vgw.objects(t, "telemetry", "raw/")
		return len(records(objs, func(b []byte) []byte { return gunzip(t, b) })) >= len(want)
	})
	got := records(objs, func(b []byte) []byte { return gunzip(t, b) })
	if len(got) != len(want) || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("S3 holds %d records, want exactly the %d put", len(got), len(want))
	}
	name := regexp.MustCompile(`^raw/\d{4}/\d{2}/\d{2}/\d{2}/events-1-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f-]{36}\.gz$`)
	for key, body := range objs {
		if !name.MatchString(key) {
			t.Errorf("object key %s does not follow Firehose's naming", key)
		}
		lines := strings.Split(strings.TrimSuffix(string(gunzip(t, body)), "\n"), "\n")
		if !sort.StringsAreSorted(lines) {
			t.Errorf("object %s is not in record order", key)
		}
		path := filepath.Join(t.TempDir(), "o.gz")
		os.WriteFile(path, body, 0o644)
		if out, err := exec.Command("gzip", "-t", path).CombinedOutput(); err != nil {
			t.Errorf("gzip -t %s: %v %s", key, err, out)
		}
	}
	if len(objs) < 2 {
		t.Errorf("%d objects for 1.3 MB of records with a 1 MB buffer, want several", len(objs))
	}
}

// Dynamic partitioning with a JQ query puts each customer's records under
// its own prefix (the embedded directory destination); Snappy objects
// decode with a standard reader; records put with the aws CLI into a
// Kinesis stream arrive through a KinesisStreamAsSource delivery stream.
func TestFirehoseDynamicPartitioningAndKinesisSource(t *testing.T) {
	t.Parallel()
	awsBin, err := exec.LookPath("aws")
	if err != nil {
		t.Fatal("the aws CLI is not installed: run `make test`, which installs it")
	}
	s := startServer(t, nil)
	f := s.firehose()
	hints := &fhtypes.BufferingHints{SizeInMBs: aws.Int32(1), IntervalInSeconds: aws.Int32(1)}
	_, err = f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("orders"),
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::lake"),
			RoleARN: aws.String("arn:aws:iam::000000000000:role/x"), BufferingHints: hints, CompressionFormat: fhtypes.CompressionFormatSnappy,
			Prefix:                           aws.String("customer=!{partitionKeyFromQuery:customer}/dt=!{timestamp:yyyy'-'MM'-'dd}/"),
			ErrorOutputPrefix:                aws.String("errors/!{firehose:error-output-type}/"),
			DynamicPartitioningConfiguration: &fhtypes.DynamicPartitioningConfiguration{Enabled: aws.Bool(true)},
			ProcessingConfiguration: &fhtypes.ProcessingConfiguration{Enabled: aws.Bool(true), Processors: []fhtypes.Processor{
				{Type: fhtypes.ProcessorTypeMetadataExtraction, Parameters: []fhtypes.ProcessorParameter{
					{ParameterName: fhtypes.ProcessorParameterNameMetadataExtractionQuery, ParameterValue: aws.String("{customer: .customer}")},
					{ParameterName: fhtypes.ProcessorParameterNameJsonParsingEngine, ParameterValue: aws.String("JQ-1.6")}}},
				{Type: fhtypes.ProcessorTypeAppendDelimiterToRecord}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var batch []fhtypes.Record
	for i := range 30 {
		batch = append(batch, fhtypes.Record{Data: []byte(fmt.Sprintf(`{"customer":"c%d","order":%d}`, i%3, i))})
	}
	batch = append(batch, fhtypes.Record{Data: []byte("not json")})
	if _, err := f.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("orders"), Records: batch}); err != nil {
		t.Fatal(err)
	}
	lake := filepath.Join(s.dataDir, "firehose-buckets", "lake")
	day := time.Now().UTC().Format("2006-01-02")
	waitFor(t, 20*time.Second, "three customer prefixes and the error output", func() bool {
		for _, p := range []string{"customer=c0/dt=" + day, "customer=c1/dt=" + day, "customer=c2/dt=" + day, "errors/processing-failed"} {
			if len(deliveredObjects(filepath.Join(lake, p))) == 0 {
				return false
			}
		}
		return true
	})
	for c := range 3 {
		for _, e := range deliveredObjects(filepath.Join(lake, fmt.Sprintf("customer=c%d/dt=%s", c, day))) {
			raw, _ := os.ReadFile(filepath.Join(lake, fmt.Sprintf("customer=c%d/dt=%s", c, day), e.Name()))
			body, err := io.ReadAll(snappy.NewReader(bytes.NewReader(raw)))
			if err != nil || !strings.HasSuffix(e.Name(), ".snappy") {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
				if !strings.Contains(l, fmt.Sprintf(`"customer":"c%d"`, c)) {
					t.Errorf("record %s under customer c%d", l, c)
				}
			}
		}
	}

	// KinesisStreamAsSource, fed with the aws CLI.
	k := s.client()
	arn := createStream(t, k, "clicks", 2)
	_, err = f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("clicks-to-lake"),
		DeliveryStreamType:               fhtypes.DeliveryStreamTypeKinesisStreamAsSource,
		KinesisStreamSourceConfiguration: &fhtypes.KinesisStreamSourceConfiguration{KinesisStreamARN: aws.String(arn), RoleARN: aws.String("arn:aws:iam::000000000000:role/x")},
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::lake"),
			RoleARN: aws.String("arn:aws:iam::000000000000:role/x"), Prefix: aws.String("clicks/"), BufferingHints: hints}})
	if err != nil {
		t.Fatal(err)
	}
	cli := awsCLI(t, awsBin, s)
	cli(append([]string{"kinesis", "put-records", "--stream-name", "clicks", "--records",
		`Data=click-1,PartitionKey=a`, `Data=click-2,PartitionKey=b`, `Data=click-3,PartitionKey=c`}, rawBlobs(awsBin)...)...)
	waitFor(t, 20*time.Second, "the stream's records in the lake", func() bool {
		var all []string
		filepath.Walk(filepath.Join(lake, "clicks"), func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				b, _ := os.ReadFile(p)
				all = append(all, string(b))
			}
			return nil
		})
		joined := strings.Join(all, "")
		return strings.Contains(joined, "click-1") && strings.Contains(joined, "click-2") && strings.Contains(joined, "click-3")
	})
}

// An HTTP endpoint that fails the first attempts gets every record with
// the Firehose contract (request id reused across retries, access key).
func TestFirehoseHTTPEndpointRetries(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	var mu sync.Mutex
	var ids []string
	var got []string
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		mu.Lock()
		ids = append(ids, r.Header.Get("X-Amz-Firehose-Request-Id"))
		mu.Unlock()
		if r.Header.Get("X-Amz-Firehose-Access-Key") != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var body struct {
			Records []struct{ Data []byte } `json:"records"`
		}
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &body)
		mu.Lock()
		for _, rec := range body.Records {
			got = append(got, string(rec.Data))
		}
		mu.Unlock()
		fmt.Fprintf(w, `{"requestId":%q,"timestamp":%d}`, r.Header.Get("X-Amz-Firehose-Request-Id"), time.Now().UnixMilli())
	}))
	t.Cleanup(site.Close) // after the gateway has stopped delivering (cleanups run last first)
	s := startServer(t, nil)
	f := s.firehose()
	_, err := f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("hook"),
		HttpEndpointDestinationConfiguration: &fhtypes.HttpEndpointDestinationConfiguration{
			EndpointConfiguration: &fhtypes.HttpEndpointConfiguration{Url: aws.String(site.URL), AccessKey: aws.String("s3cret")},
			BufferingHints:        &fhtypes.HttpEndpointBufferingHints{SizeInMBs: aws.Int32(1), IntervalInSeconds: aws.Int32(1)},
			RetryOptions:          &fhtypes.HttpEndpointRetryOptions{DurationInSeconds: aws.Int32(60)},
			S3Configuration:       &fhtypes.S3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::backup"), RoleARN: aws.String("arn:aws:iam::000000000000:role/x")}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := f.PutRecord(ctx, &firehose.PutRecordInput{DeliveryStreamName: aws.String("hook"), Record: &fhtypes.Record{Data: []byte(fmt.Sprint("r", i))}}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "five records at the endpoint after two failures", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 5 })
	mu.Lock()
	defer mu.Unlock()
	if calls.Load() < 3 || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("retries: %d calls, request ids %v (want the same id across retries)", calls.Load(), ids)
	}
}

// Bad requests get Firehose's errors.
func TestFirehoseBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	f := s.firehose()
	s3dest := func(mod func(*fhtypes.ExtendedS3DestinationConfiguration)) *fhtypes.ExtendedS3DestinationConfiguration {
		d := &fhtypes.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::b"), RoleARN: aws.String("arn:aws:iam::000000000000:role/x")}
		mod(d)
		return d
	}
	for name, dest := range map[string]*fhtypes.ExtendedS3DestinationConfiguration{
		"buffer size 0": s3dest(func(d *fhtypes.ExtendedS3DestinationConfiguration) {
			d.BufferingHints = &fhtypes.BufferingHints{SizeInMBs: aws.Int32(0), IntervalInSeconds: aws.Int32(60)}
		}),
		"interval 901": s3dest(func(d *fhtypes.ExtendedS3DestinationConfiguration) {
			d.BufferingHints = &fhtypes.BufferingHints{SizeInMBs: aws.Int32(5), IntervalInSeconds: aws.Int32(901)}
		}),
		"malformed JQ": s3dest(func(d *fhtypes.ExtendedS3DestinationConfiguration) {
			d.Prefix, d.ErrorOutputPrefix = aws.String("!{partitionKeyFromQuery:k}/"), aws.String("e/!{firehose:error-output-type}/")
			d.DynamicPartitioningConfiguration = &fhtypes.DynamicPartitioningConfiguration{Enabled: aws.Bool(true)}
			d.ProcessingConfiguration = &fhtypes.ProcessingConfiguration{Enabled: aws.Bool(true), Processors: []fhtypes.Processor{{Type: fhtypes.ProcessorTypeMetadataExtraction,
				Parameters: []fhtypes.ProcessorParameter{{ParameterName: fhtypes.ProcessorParameterNameMetadataExtractionQuery, ParameterValue: aws.String("{k: .a | }")}}}}}
		}),
		"error-output-type in Prefix": s3dest(func(d *fhtypes.ExtendedS3DestinationConfiguration) {
			d.Prefix = aws.String("!{firehose:error-output-type}/")
		}),
	} {
		_, err := f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("bad"), ExtendedS3DestinationConfiguration: dest})
		if !strings.Contains(fmt.Sprint(err), "InvalidArgumentException") {
			t.Errorf("%s: %v, want InvalidArgumentException", name, err)
		}
	}
	_, err := f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("nodest")})
	apiError(t, err, "InvalidArgumentException")
	_, err = f.PutRecord(ctx, &firehose.PutRecordInput{DeliveryStreamName: aws.String("missing"), Record: &fhtypes.Record{Data: []byte("x")}})
	apiError(t, err, "ResourceNotFoundException")
	if _, err := f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("ok"),
		ExtendedS3DestinationConfiguration: s3dest(func(*fhtypes.ExtendedS3DestinationConfiguration) {})}); err != nil {
		t.Fatal(err)
	}
	_, err = f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("ok"),
		ExtendedS3DestinationConfiguration: s3dest(func(*fhtypes.ExtendedS3DestinationConfiguration) {})})
	apiError(t, err, "ResourceInUseException")
	_, err = f.PutRecord(ctx, &firehose.PutRecordInput{DeliveryStreamName: aws.String("ok"), Record: &fhtypes.Record{Data: make([]byte, 1_024_001)}})
	if err == nil || !strings.Contains(err.Error(), "1024000") {
		t.Errorf("a record over 1,000 KiB: %v", err)
	}
	_, err = f.UpdateDestination(ctx, &firehose.UpdateDestinationInput{DeliveryStreamName: aws.String("ok"), CurrentDeliveryStreamVersionId: aws.String("7"),
		DestinationId: aws.String("destinationId-000000000001"), ExtendedS3DestinationUpdate: &fhtypes.ExtendedS3DestinationUpdate{Prefix: aws.String("p/")}})
	apiError(t, err, "ConcurrentModificationException")
	d, err := f.DescribeDeliveryStream(ctx, &firehose.DescribeDeliveryStreamInput{DeliveryStreamName: aws.String("ok")})
	if err != nil || d.DeliveryStreamDescription.DeliveryStreamStatus != fhtypes.DeliveryStreamStatusActive || aws.ToString(d.DeliveryStreamDescription.VersionId) != "1" {
		t.Fatalf("describe: %v %+v", err, d)
	}
	list, err := f.ListDeliveryStreams(ctx, &firehose.ListDeliveryStreamsInput{})
	if err != nil || len(list.DeliveryStreamNames) != 1 {
		t.Fatalf("list: %v %+v", err, list)
	}
	if _, err := f.DeleteDeliveryStream(ctx, &firehose.DeleteDeliveryStreamInput{DeliveryStreamName: aws.String("ok")}); err != nil {
		t.Fatal(err)
	}
}

// The S3 server goes away during delivery and comes back 30 s later: every
// record arrives (at least once; duplicates are counted and reported).
func TestFirehoseSurvivesAnS3Outage(t *testing.T) {
	t.Parallel()
	addr, dir := freeTCPAddr(t), t.TempDir()
	vgw, s := startWithBucket(t, addr, dir, "outage")
	f := s.firehose()
	_, err := f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("d"),
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::outage"),
			RoleARN: aws.String("arn:aws:iam::000000000000:role/x"), BufferingHints: &fhtypes.BufferingHints{SizeInMBs: aws.Int32(1), IntervalInSeconds: aws.Int32(1)}}})
	if err != nil {
		t.Fatal(err)
	}
	put := func(from, n int) {
		var batch []fhtypes.Record
		for i := from; i < from+n; i++ {
			batch = append(batch, fhtypes.Record{Data: []byte(fmt.Sprintf("rec-%05d\n", i))})
		}
		if _, err := f.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("d"), Records: batch}); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 300)
	waitFor(t, 20*time.Second, "the first records in S3", func() bool { return len(records(vgw.objects(t, "outage", ""), noDecode)) >= 300 })
	vgw.stop()
	put(300, 300) // buffered while S3 is down: retried with backoff
	time.Sleep(30 * time.Second)
	vgw = startVersitygw(t, addr, dir)
	put(600, 300)
	var got []string
	waitFor(t, 60*time.Second, "every record after the outage", func() bool {
		seen := map[string]bool{}
		got = records(vgw.objects(t, "outage", ""), noDecode)
		for _, r := range got {
			seen[r] = true
		}
		return len(seen) == 900
	})
	t.Logf("900 records delivered around an S3 outage; %d copies in S3 (%d duplicates)", len(got), len(got)-900)
	if m := s.metrics(t); !strings.Contains(m, `streamgate_firehose_delivery_failures_total{delivery_stream="d",destination="s3"}`) {
		t.Errorf("no failed deliveries counted during the outage")
	}
}

func noDecode(b []byte) []byte { return b }

// A transformation function with the Lambda contract (here an HTTP test
// server) rewrites records, drops some, fails others, and gives partition
// keys for !{partitionKeyFromLambda:...}.
func TestFirehoseLambdaTransformation(t *testing.T) {
	t.Parallel()
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Records []struct {
				RecordID string `json:"recordId"`
				Data     []byte `json:"data"`
			} `json:"records"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		var out []map[string]any
		for _, rec := range in.Records {
			text := string(rec.Data)
			res := map[string]any{"recordId": rec.RecordID, "result": "Ok", "data": []byte(strings.ToUpper(text) + "\n"),
				"metadata": map[string]any{"partitionKeys": map[string]string{"kind": strings.SplitN(text, "-", 2)[0]}}}
			switch {
			case strings.Contains(text, "drop"):
				res = map[string]any{"recordId": rec.RecordID, "result": "Dropped", "data": ""}
			case strings.Contains(text, "fail"):
				res = map[string]any{"recordId": rec.RecordID, "result": "ProcessingFailed", "data": rec.Data}
			}
			out = append(out, res)
		}
		json.NewEncoder(w).Encode(map[string]any{"records": out})
	}))
	t.Cleanup(fn.Close)
	s := startServer(t, nil)
	f := s.firehose()
	_, err := f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("xf"),
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::xf"),
			RoleARN: aws.String("arn:aws:iam::000000000000:role/x"), BufferingHints: &fhtypes.BufferingHints{SizeInMBs: aws.Int32(1), IntervalInSeconds: aws.Int32(1)},
			Prefix: aws.String("!{partitionKeyFromLambda:kind}/"), ErrorOutputPrefix: aws.String("err/!{firehose:error-output-type}/"),
			DynamicPartitioningConfiguration: &fhtypes.DynamicPartitioningConfiguration{Enabled: aws.Bool(true)},
			S3BackupMode:                     fhtypes.S3BackupModeEnabled, S3BackupConfiguration: &fhtypes.S3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::xf-source"),
				RoleARN: aws.String("arn:aws:iam::000000000000:role/x"), Prefix: aws.String("source/")},
			ProcessingConfiguration: &fhtypes.ProcessingConfiguration{Enabled: aws.Bool(true), Processors: []fhtypes.Processor{{Type: fhtypes.ProcessorTypeLambda,
				Parameters: []fhtypes.ProcessorParameter{{ParameterName: fhtypes.ProcessorParameterNameLambdaArn, ParameterValue: aws.String(fn.URL)}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var batch []fhtypes.Record
	for _, d := range []string{"temp-1", "temp-2", "door-1", "drop-me", "fail-me"} {
		batch = append(batch, fhtypes.Record{Data: []byte(d)})
	}
	if _, err := f.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("xf"), Records: batch}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(s.dataDir, "firehose-buckets", "xf")
	read := func(dir string) string {
		var all string
		filepath.Walk(filepath.Join(root, dir), func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				b, _ := os.ReadFile(p)
				all += string(b)
			}
			return nil
		})
		return all
	}
	waitFor(t, 20*time.Second, "transformed records under their keys", func() bool {
		return read("temp") == "TEMP-1\nTEMP-2\n" && read("door") == "DOOR-1\n" && strings.Contains(read("err/processing-failed"), "ZmFpbC1tZQ==")
	})
	if all := read(""); strings.Contains(all, "DROP") {
		t.Errorf("a dropped record was delivered: %s", all)
	}
	// S3BackupMode Enabled: every source record, as it came, in the backup bucket.
	waitFor(t, 10*time.Second, "the source records in the backup bucket", func() bool {
		var all string
		filepath.Walk(filepath.Join(s.dataDir, "firehose-buckets", "xf-source", "source"), func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				b, _ := os.ReadFile(p)
				all += string(b)
			}
			return nil
		})
		return all == "temp-1temp-2door-1drop-mefail-me"
	})
}

// Record format conversion: JSON telemetry becomes Parquet files with the
// configured schema's columns (read back with parquet-go); a record that
// does not fit goes to the format-conversion-failed error output.
func TestFirehoseParquetConversion(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *gateway.Config) {
		c.Firehose.Schemas = map[string][]fh.Column{"readings": {{Name: "device", Type: "string"}, {Name: "temp", Type: "double"}, {Name: "count", Type: "bigint"}, {Name: "ts", Type: "timestamp"}}}
	})
	f := s.firehose()
	_, err := f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("pq"),
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::lake"),
			RoleARN: aws.String("arn:aws:iam::000000000000:role/x"), Prefix: aws.String("readings/"), ErrorOutputPrefix: aws.String("bad/!{firehose:error-output-type}/"),
			BufferingHints: &fhtypes.BufferingHints{SizeInMBs: aws.Int32(64), IntervalInSeconds: aws.Int32(1)},
			DataFormatConversionConfiguration: &fhtypes.DataFormatConversionConfiguration{Enabled: aws.Bool(true),
				SchemaConfiguration:       &fhtypes.SchemaConfiguration{DatabaseName: aws.String("iot"), TableName: aws.String("readings"), RoleARN: aws.String("arn:aws:iam::000000000000:role/x")},
				InputFormatConfiguration:  &fhtypes.InputFormatConfiguration{Deserializer: &fhtypes.Deserializer{OpenXJsonSerDe: &fhtypes.OpenXJsonSerDe{}}},
				OutputFormatConfiguration: &fhtypes.OutputFormatConfiguration{Serializer: &fhtypes.Serializer{ParquetSerDe: &fhtypes.ParquetSerDe{Compression: fhtypes.ParquetCompressionSnappy}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var batch []fhtypes.Record
	for i := range 100 {
		batch = append(batch, fhtypes.Record{Data: []byte(fmt.Sprintf(`{"Device":"d%d","temp":%d.5,"count":%d,"ts":1764130000000,"extra":true}`, i%4, i, i))})
	}
	batch = append(batch, fhtypes.Record{Data: []byte(`{"device":"x","temp":"hot"}`)})
	if _, err := f.PutRecordBatch(ctx, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("pq"), Records: batch}); err != nil {
		t.Fatal(err)
	}
	lake := filepath.Join(s.dataDir, "firehose-buckets", "lake")
	var files []string
	waitFor(t, 20*time.Second, "a Parquet file and the conversion failure", func() bool {
		files = nil
		filepath.Walk(filepath.Join(lake, "readings"), func(p string, info os.FileInfo, err error) error {
			if err == nil && strings.HasSuffix(p, ".parquet") {
				files = append(files, p)
			}
			return nil
		})
		bad := deliveredObjects(filepath.Join(lake, "bad", "format-conversion-failed"))
		return len(files) > 0 && len(bad) > 0
	})
	rows := 0
	for _, p := range files {
		b, _ := os.ReadFile(p)
		r := parquet.NewReader(bytes.NewReader(b))
		for {
			row := map[string]any{}
			if err := r.Read(&row); err != nil {
				break
			}
			if row["device"] == nil || row["count"] == nil || len(row) != 4 {
				t.Errorf("row %v: want the four schema columns", row)
			}
			rows++
		}
	}
	if rows != 100 {
		t.Errorf("%d rows in Parquet, want 100", rows)
	}
	// Conversion needs UNCOMPRESSED at the top level and a known schema.
	_, err = f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("pq2"),
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::lake"),
			RoleARN: aws.String("arn:aws:iam::000000000000:role/x"),
			DataFormatConversionConfiguration: &fhtypes.DataFormatConversionConfiguration{Enabled: aws.Bool(true),
				SchemaConfiguration: &fhtypes.SchemaConfiguration{TableName: aws.String("nope")}}}})
	apiError(t, err, "InvalidArgumentException")
}

// deliveredObjects lists a bucket directory's complete objects: a delivery
// in flight is a ".tmp-" file until it is renamed into place.
func deliveredObjects(dir string) []os.DirEntry {
	ents, _ := os.ReadDir(dir)
	var out []os.DirEntry
	for _, e := range ents {
		if !strings.Contains(e.Name(), ".tmp-") {
			out = append(out, e)
		}
	}
	return out
}
