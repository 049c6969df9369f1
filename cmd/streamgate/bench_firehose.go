package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

// benchFirehoseCmd measures Direct PUT into a delivery stream (PutRecordBatch
// through aws-sdk-go-v2) next to PutRecords into a Kinesis stream with the
// same client and load, and how fresh deliveries are (the gateway's
// DataFreshness gauge, sampled during the run).
func benchFirehoseCmd(args []string) error {
	fs := flag.NewFlagSet("bench firehose", flag.ExitOnError)
	var c clientFlags
	c.register(fs)
	bucket := fs.String("bucket", "bench", "bucket of the delivery stream (a directory, or an S3 endpoint the gateway has for it)")
	label := fs.String("label", "directory", "name of the destination, for the output")
	size := fs.Int("record-size", 100, "bytes per record")
	concurrency := fs.Int("concurrency", 8, "concurrent requests")
	duration := fs.Duration("duration", 10*time.Second, "measured time")
	interval := fs.Int("interval", 1, "BufferingHints.IntervalInSeconds")
	serverPID := fs.Int("server-pid", 0, "pid of the gateway, for its CPU time")
	fs.Parse(args)
	r := c.resolve()
	f := firehose.New(firehose.Options{Region: r.region, BaseEndpoint: r.endpoint, Credentials: r.creds, HTTPClient: awsapi.SDKHTTPClient(nil)})
	k := kinesis.New(kinesis.Options{Region: r.region, BaseEndpoint: r.endpoint, Credentials: r.creds, HTTPClient: awsapi.SDKHTTPClient(nil)})
	name := fmt.Sprintf("bench-%d", time.Now().Unix())
	if _, err := f.CreateDeliveryStream(bg, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String(name),
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::" + *bucket),
			RoleARN: aws.String("arn:aws:iam::000000000000:role/bench"), CompressionFormat: fhtypes.CompressionFormatGzip,
			BufferingHints: &fhtypes.BufferingHints{SizeInMBs: aws.Int32(16), IntervalInSeconds: aws.Int32(int32(*interval))}}}); err != nil {
		return err
	}
	if _, err := k.CreateStream(bg, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)}); err != nil {
		return err
	}
	data := []byte(strings.Repeat("x", *size))
	run := func(put func() (int, error)) (float64, float64, error) {
		var n atomic.Int64
		var firstErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		cpu0, start := procCPU(*serverPID), time.Now()
		for range *concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					ok, err := put()
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					n.Add(int64(ok))
				}
			}()
		}
		time.Sleep(*duration)
		close(stop)
		wg.Wait()
		el := time.Since(start).Seconds()
		if err, _ := firstErr.Load().(error); err != nil {
			return 0, 0, err
		}
		return float64(n.Load()) / el, 100 * (procCPU(*serverPID) - cpu0).Seconds() / el, nil
	}
	fhBatch := make([]fhtypes.Record, 500)
	kBatch := make([]ktypes.PutRecordsRequestEntry, 500)
	for i := range fhBatch {
		fhBatch[i] = fhtypes.Record{Data: data}
		kBatch[i] = ktypes.PutRecordsRequestEntry{Data: data, PartitionKey: aws.String(strconv.Itoa(i))}
	}
	var worst atomic.Int64 // freshness, ms
	stopSampling := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if v, err := gauge(aws.ToString(r.endpoint)+"/metrics", `streamgate_firehose_data_freshness_seconds{delivery_stream="`+name+`"}`); err == nil {
				if ms := int64(v * 1000); ms > worst.Load() {
					worst.Store(ms)
				}
			}
		}
	}()
	fhRate, fhCPU, err := run(func() (int, error) {
		out, err := f.PutRecordBatch(bg, &firehose.PutRecordBatchInput{DeliveryStreamName: aws.String(name), Records: fhBatch})
		if err != nil {
			return 0, err
		}
		return 500 - int(aws.ToInt32(out.FailedPutCount)), nil
	})
	close(stopSampling)
	if err != nil {
		return err
	}
	kRate, kCPU, err := run(func() (int, error) {
		out, err := k.PutRecords(bg, &kinesis.PutRecordsInput{StreamName: aws.String(name), Records: kBatch})
		if err != nil {
			return 0, err
		}
		return 500 - int(aws.ToInt32(out.FailedRecordCount)), nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("Firehose Direct PUT -> %s (GZIP, 16 MB / %d s buffers), %d-byte records, %d concurrent PutRecordBatch of 500 (aws-sdk-go-v2):\n",
		*label, *interval, *size, *concurrency)
	fmt.Printf("  PutRecordBatch: %.0f records/s (server CPU %.0f%%); PutRecords into a 1-shard stream, same client: %.0f records/s (%.0f%%) = %.2fx\n",
		fhRate, fhCPU, kRate, kCPU, fhRate/kRate)
	fmt.Printf("  DataFreshness while loaded: worst %.1f s (buffer interval %d s)\n", float64(worst.Load())/1000, *interval)
	return nil
}

// gauge reads one sample of a Prometheus text endpoint.
func gauge(url, series string) (float64, error) {
	res, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
		}
	}
	return 0, errors.New("no sample")
}
