package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

// Records a delivery stream had buffered (acknowledged, not yet delivered)
// when the gateway was killed with -9 are all delivered after the restart.
func TestKill9WithFullFirehoseBuffers(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	key := p.adminKey(t)
	client := func(p *proc) *firehose.Client {
		return firehose.New(firehose.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + p.addr),
			Credentials: credentials.NewStaticCredentialsProvider(key.ID, key.Secret, ""), Retryer: aws.NopRetryer{},
			HTTPClient: awsapi.SDKHTTPClient(nil)})
	}
	f := client(p)
	_, err := f.CreateDeliveryStream(bg, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("logs"),
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::archive"),
			RoleARN: aws.String("arn:aws:iam::000000000000:role/x"), BufferingHints: &fhtypes.BufferingHints{SizeInMBs: aws.Int32(64), IntervalInSeconds: aws.Int32(4)}}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for b := range n / 500 {
		var batch []fhtypes.Record
		for i := range 500 {
			batch = append(batch, fhtypes.Record{Data: []byte(fmt.Sprintf("line-%05d\n", b*500+i))})
		}
		if out, err := f.PutRecordBatch(bg, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String("logs"), Records: batch}); err != nil || aws.ToInt32(out.FailedPutCount) != 0 {
			t.Fatalf("PutRecordBatch: %v", err)
		}
	}
	bucket := filepath.Join(dir, "firehose-buckets", "archive")
	if _, err := os.Stat(bucket); err == nil {
		t.Fatal("delivered before the kill: the buffer interval did not hold")
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	startServe(t, dir)
	deadline := time.Now().Add(30 * time.Second)
	for {
		seen := map[string]bool{}
		filepath.Walk(bucket, func(path string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() && !strings.Contains(info.Name(), ".tmp-") {
				b, _ := os.ReadFile(path)
				for _, l := range strings.Fields(string(b)) {
					seen[l] = true
				}
			}
			return nil
		})
		if len(seen) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after kill -9 and restart, %d of %d buffered records were delivered", len(seen), n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
