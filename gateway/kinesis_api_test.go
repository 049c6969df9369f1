package gateway_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/streamgate/streamgate/gateway"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

func createStream(t *testing.T, k *kinesis.Client, name string, shards int32) string {
	t.Helper()
	if _, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		t.Fatal(err)
	}
	sum, err := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(sum.StreamDescriptionSummary.StreamARN)
}

func TestStreamLifecycleAndPagination(t *testing.T) {
	s := startServer(t, nil)
	k := s.client()
	arn := createStream(t, k, "orders", 3)
	if arn != "arn:aws:kinesis:us-east-1:000000000000:stream/orders" {
		t.Fatalf("ARN %s", arn)
	}
	_, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(1)})
	apiError(t, err, "ResourceInUseException")

	// Waiters work: the stream is ACTIVE.
	w := kinesis.NewStreamExistsWaiter(k, func(o *kinesis.StreamExistsWaiterOptions) { o.MinDelay = 10 * time.Millisecond })
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("orders")}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	desc, err := k.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamARN: aws.String(arn), Limit: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	d := desc.StreamDescription
	if d.StreamStatus != types.StreamStatusActive || len(d.Shards) != 2 || !aws.ToBool(d.HasMoreShards) || aws.ToInt32(d.RetentionPeriodHours) != 24 {
		t.Fatalf("describe: %+v", d)
	}
	sum, _ := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("orders")})
	if aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount) != 3 || sum.StreamDescriptionSummary.StreamModeDetails.StreamMode != types.StreamModeProvisioned {
		t.Fatalf("summary: %+v", sum.StreamDescriptionSummary)
	}

	// On-demand streams get 4 shards.
	if _, err := k.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("ondemand"), StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a1", "a2", "a3"} {
		createStream(t, k, n, 1)
	}
	var names []string
	p := kinesis.NewListStreamsPaginator(k, &kinesis.ListStreamsInput{Limit: aws.Int32(2)})
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		names = append(names, out.StreamNames...)
		if len(out.StreamSummaries) != len(out.StreamNames) {
			t.Fatal("summaries do not match names")
		}
	}
	if strings.Join(names, ",") != "a1,a2,a3,ondemand,orders" || pages != 3 {
		t.Fatalf("ListStreams paged %d times: %v", pages, names)
	}

	// ListShards: pages of one, then NextToken alone.
	var ids []string
	in := &kinesis.ListShardsInput{StreamName: aws.String("orders"), MaxResults: aws.Int32(1)}
	for {
		out, err := k.ListShards(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range out.Shards {
			ids = append(ids, aws.ToString(sh.ShardId))
		}
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken, MaxResults: aws.Int32(1)}
	}
	if len(ids) != 3 || ids[0] != "shardId-000000000000" {
		t.Fatalf("ListShards: %v", ids)
	}
	_, err = k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("orders"), NextToken: aws.String("x")})
	apiError(t, err, "InvalidArgumentException")

	if _, err := k.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("orders")}); err != nil {
		t.Fatal(err)
	}
	_, err = k.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("orders")})
	apiError(t, err, "ResourceNotFoundException")
}

func TestPutRecordsAndReadThemBackWithEveryIteratorType(t *testing.T) {
	s := startServer(t, nil)
	k := s.client()
	createStream(t, k, "telemetry", 2)
	before := time.Now().Add(-time.Second)

	var entries []types.PutRecordsRequestEntry
	for i := range 100 {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint("sensor-", i%7)), Data: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}
	out, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("telemetry"), Records: entries})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 0 || len(out.Records) != 100 {
		t.Fatalf("PutRecords: %d failed of %d", aws.ToInt32(out.FailedRecordCount), len(out.Records))
	}
	single, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("telemetry"), PartitionKey: aws.String("x"),
		Data: []byte("explicit"), ExplicitHashKey: aws.String("0"), SequenceNumberForOrdering: out.Records[0].SequenceNumber})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(single.ShardId) != "shardId-000000000000" {
		t.Fatalf("explicit hash key 0 went to %s", aws.ToString(single.ShardId))
	}

	// Read everything back with TRIM_HORIZON, small pages.
	got := map[string]string{}
	for _, shard := range []string{"shardId-000000000000", "shardId-000000000001"} {
		it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("telemetry"), ShardId: aws.String(shard), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		var last string
		for {
			res, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(9)})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Records {
				seq := aws.ToString(r.SequenceNumber)
				if seq <= last {
					t.Fatalf("sequence numbers out of order: %s after %s", seq, last)
				}
				last = seq
				got[seq] = string(r.Data)
				if r.ApproximateArrivalTimestamp.Before(before) || r.ApproximateArrivalTimestamp.After(time.Now()) {
					t.Fatalf("arrival timestamp %v", r.ApproximateArrivalTimestamp)
				}
			}
			iter = res.NextShardIterator
			if len(res.Records) == 0 {
				if aws.ToInt64(res.MillisBehindLatest) != 0 {
					t.Fatalf("caught up but MillisBehindLatest %d", aws.ToInt64(res.MillisBehindLatest))
				}
				break
			}
		}
	}
	for i, r := range out.Records {
		if got[aws.ToString(r.SequenceNumber)] != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("record %d (%s) not read back", i, aws.ToString(r.SequenceNumber))
		}
	}
	if got[aws.ToString(single.SequenceNumber)] != "explicit" {
		t.Fatal("PutRecord record not read back")
	}

	shard0 := aws.String(aws.ToString(out.Records[0].ShardId))
	seq0 := out.Records[0].SequenceNumber
	read1 := func(in *kinesis.GetShardIteratorInput) []types.Record {
		t.Helper()
		in.StreamName, in.ShardId = aws.String("telemetry"), shard0
		it, err := k.GetShardIterator(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		res, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(1)})
		if err != nil {
			t.Fatal(err)
		}
		return res.Records
	}
	if r := read1(&kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: seq0}); len(r) != 1 || aws.ToString(r[0].SequenceNumber) != aws.ToString(seq0) {
		t.Fatal("AT_SEQUENCE_NUMBER did not start at the record")
	}
	if r := read1(&kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: seq0}); len(r) != 1 || aws.ToString(r[0].SequenceNumber) <= aws.ToString(seq0) {
		t.Fatal("AFTER_SEQUENCE_NUMBER did not start after the record")
	}
	if r := read1(&kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeLatest}); len(r) != 0 {
		t.Fatal("LATEST returned an old record")
	}
	if r := read1(&kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(before)}); len(r) != 1 {
		t.Fatal("AT_TIMESTAMP before the first record found nothing")
	}
	if r := read1(&kinesis.GetShardIteratorInput{ShardIteratorType: types.ShardIteratorTypeAtTimestamp, Timestamp: aws.Time(time.Now().Add(time.Hour))}); len(r) != 0 {
		t.Fatal("AT_TIMESTAMP in the future returned records")
	}
	// A sequence number of another shard is refused.
	var other *string
	for _, r := range out.Records {
		if aws.ToString(r.ShardId) != aws.ToString(shard0) {
			other = r.SequenceNumber
			break
		}
	}
	_, err = k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("telemetry"), ShardId: shard0,
		ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: other})
	apiError(t, err, "InvalidArgumentException")
}

func TestReshardingKeepsLineageAndHandsReadersToChildren(t *testing.T) {
	s := startServer(t, nil)
	k := s.client()
	createStream(t, k, "rs", 1)
	put := func(data string) *kinesis.PutRecordOutput {
		out, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("rs"), PartitionKey: aws.String(data), Data: []byte(data)})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	parentRec := put("before-split")
	it, _ := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("rs"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if _, err := k.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("rs"), ShardToSplit: aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("170141183460469231731687303715884105728")}); err != nil {
		t.Fatal(err)
	}
	_, err := k.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("rs"), ShardToSplit: aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("100")})
	apiError(t, err, "ResourceInUseException")
	childRec := put("after-split")
	if aws.ToString(childRec.SequenceNumber) <= aws.ToString(parentRec.SequenceNumber) {
		t.Fatal("child sequence number not greater than the parent's")
	}
	// Reading the parent ends with its children.
	res, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 {
		t.Fatalf("parent had %d records", len(res.Records))
	}
	if res.NextShardIterator != nil || len(res.ChildShards) != 2 {
		t.Fatalf("end of parent: next %v, children %d", res.NextShardIterator, len(res.ChildShards))
	}
	shards, _ := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("rs")})
	if len(shards.Shards) != 3 || aws.ToString(shards.Shards[1].ParentShardId) != "shardId-000000000000" || shards.Shards[0].SequenceNumberRange.EndingSequenceNumber == nil {
		t.Fatalf("shards after split: %+v", shards.Shards)
	}
	latest, _ := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("rs"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	if len(latest.Shards) != 2 {
		t.Fatalf("AT_LATEST listed %d shards", len(latest.Shards))
	}
	if _, err := k.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("rs"), ShardToMerge: aws.String("shardId-000000000001"), AdjacentShardToMerge: aws.String("shardId-000000000002")}); err != nil {
		t.Fatal(err)
	}
	shards, _ = k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("rs"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	if len(shards.Shards) != 1 || aws.ToString(shards.Shards[0].AdjacentParentShardId) != "shardId-000000000002" {
		t.Fatalf("after merge: %+v", shards.Shards)
	}
	up, err := k.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("rs"), TargetShardCount: aws.Int32(2), ScalingType: types.ScalingTypeUniformScaling})
	if err != nil || aws.ToInt32(up.CurrentShardCount) != 1 || aws.ToInt32(up.TargetShardCount) != 2 {
		t.Fatalf("UpdateShardCount: %v %+v", err, up)
	}
	_, err = k.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String("rs"), TargetShardCount: aws.Int32(5), ScalingType: types.ScalingTypeUniformScaling})
	apiError(t, err, "LimitExceededException")
	sum, _ := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("rs")})
	if aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount) != 2 {
		t.Fatalf("open shards %d", aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount))
	}
}

func TestRetentionTagsModeRecordSizeAndLimits(t *testing.T) {
	s := startServer(t, nil)
	k := s.client()
	arn := createStream(t, k, "cfg", 1)
	name := aws.String("cfg")
	if _, err := k.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(48)}); err != nil {
		t.Fatal(err)
	}
	_, err := k.IncreaseStreamRetentionPeriod(ctx, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(9000)})
	apiError(t, err, "InvalidArgumentException")
	_, err = k.DecreaseStreamRetentionPeriod(ctx, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(72)})
	apiError(t, err, "InvalidArgumentException")
	_, err = k.DecreaseStreamRetentionPeriod(ctx, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(12)})
	apiError(t, err, "InvalidArgumentException")
	if _, err := k.DecreaseStreamRetentionPeriod(ctx, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(24)}); err != nil {
		t.Fatal(err)
	}

	if _, err := k.AddTagsToStream(ctx, &kinesis.AddTagsToStreamInput{StreamName: name, Tags: map[string]string{"team": "video", "env": "edge"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.TagResource(ctx, &kinesis.TagResourceInput{ResourceARN: aws.String(arn), Tags: map[string]string{"site": "pi-3"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.RemoveTagsFromStream(ctx, &kinesis.RemoveTagsFromStreamInput{StreamName: name, TagKeys: []string{"env"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := k.ListTagsForStream(ctx, &kinesis.ListTagsForStreamInput{StreamName: name, Limit: aws.Int32(1)})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "site" || !aws.ToBool(tags.HasMoreTags) {
		t.Fatalf("ListTagsForStream: %v %+v", err, tags)
	}
	rt, _ := k.ListTagsForResource(ctx, &kinesis.ListTagsForResourceInput{ResourceARN: aws.String(arn)})
	if len(rt.Tags) != 2 {
		t.Fatalf("ListTagsForResource: %+v", rt.Tags)
	}
	if _, err := k.UntagResource(ctx, &kinesis.UntagResourceInput{ResourceARN: aws.String(arn), TagKeys: []string{"team"}}); err != nil {
		t.Fatal(err)
	}
	rt, _ = k.ListTagsForResource(ctx, &kinesis.ListTagsForResourceInput{ResourceARN: aws.String(arn)})
	if len(rt.Tags) != 1 || aws.ToString(rt.Tags[0].Key) != "site" {
		t.Fatalf("after UntagResource: %+v", rt.Tags)
	}

	if _, err := k.UpdateStreamMode(ctx, &kinesis.UpdateStreamModeInput{StreamARN: aws.String(arn), StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 2<<20)
	_, err = k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("k"), Data: big})
	apiError(t, err, "ValidationException")
	if _, err := k.UpdateMaxRecordSize(ctx, &kinesis.UpdateMaxRecordSizeInput{StreamARN: aws.String(arn), MaxRecordSizeInKiB: aws.Int32(4096)}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("k"), Data: big}); err != nil {
		t.Fatalf("2 MiB record after UpdateMaxRecordSize: %v", err)
	}
	sum, _ := k.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: name})
	if sum.StreamDescriptionSummary.StreamModeDetails.StreamMode != types.StreamModeOnDemand || aws.ToInt32(sum.StreamDescriptionSummary.MaxRecordSizeInKiB) != 4096 {
		t.Fatalf("summary %+v", sum.StreamDescriptionSummary)
	}
	lim, err := k.DescribeLimits(ctx, &kinesis.DescribeLimitsInput{})
	if err != nil || aws.ToInt32(lim.OpenShardCount) != 1 || aws.ToInt32(lim.OnDemandStreamCount) != 1 {
		t.Fatalf("DescribeLimits: %v %+v", err, lim)
	}
}

func TestPerShardThroughputLimit(t *testing.T) {
	s := startServer(t, func(c *gateway.Config) { c.Kinesis.ShardRecordsPerSecond = 10 })
	k := s.client()
	createStream(t, k, "limited", 1)
	var entries []types.PutRecordsRequestEntry
	for i := range 30 {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: []byte("x")})
	}
	out, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("limited"), Records: entries})
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, r := range out.Records {
		if r.ErrorCode != nil {
			failed++
			if aws.ToString(r.ErrorCode) != "ProvisionedThroughputExceededException" || !strings.Contains(aws.ToString(r.ErrorMessage), "Rate exceeded for shard shardId-000000000000") {
				t.Fatalf("per-record error %s: %s", aws.ToString(r.ErrorCode), aws.ToString(r.ErrorMessage))
			}
		}
	}
	if failed != 20 || int(aws.ToInt32(out.FailedRecordCount)) != failed {
		t.Fatalf("%d throttled (FailedRecordCount %d), want 20", failed, aws.ToInt32(out.FailedRecordCount))
	}
	_, err = k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("limited"), PartitionKey: aws.String("k"), Data: []byte("x")})
	apiError(t, err, "ProvisionedThroughputExceededException")
}

func TestConsumersAndSubscribeToShard(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			s := startServer(t, nil)
			var k *kinesis.Client
			var seen sync.Map
			if proto == "h2c" {
				p := new(http.Protocols)
				p.SetUnencryptedHTTP2(true)
				rt := &protoRecorder{next: &http.Transport{Protocols: p}, seen: &seen}
				k = s.client(func(o *kinesis.Options) { o.HTTPClient = awsapi.SDKHTTPClient(rt) })
			} else {
				k = s.client()
			}
			arn := createStream(t, k, "fanout", 1)
			reg, err := k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("app")})
			if err != nil {
				t.Fatal(err)
			}
			carn := reg.Consumer.ConsumerARN
			_, err = k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("app")})
			apiError(t, err, "ResourceInUseException")
			d, err := k.DescribeStreamConsumer(ctx, &kinesis.DescribeStreamConsumerInput{ConsumerARN: carn})
			if err != nil || d.ConsumerDescription.ConsumerStatus != types.ConsumerStatusActive {
				t.Fatalf("DescribeStreamConsumer: %v", err)
			}
			lc, _ := k.ListStreamConsumers(ctx, &kinesis.ListStreamConsumersInput{StreamARN: aws.String(arn)})
			if len(lc.Consumers) != 1 {
				t.Fatalf("ListStreamConsumers: %d", len(lc.Consumers))
			}
			_, err = k.DeleteStream(ctx, &kinesis.DeleteStreamInput{StreamName: aws.String("fanout")})
			apiError(t, err, "ResourceInUseException")

			// Each SubscribeToShard gets its own client: aws-sdk-go-v2 shares one
			// event-stream decoder across a client's streams (aws/smithy-go#714).
			subClient := func() *kinesis.Client {
				return s.client(func(o *kinesis.Options) { o.HTTPClient = k.Options().HTTPClient })
			}
			sub, err := subClient().SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: carn, ShardId: aws.String("shardId-000000000000"),
				StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = subClient().SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: carn, ShardId: aws.String("shardId-000000000000"),
				StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
			apiError(t, err, "ResourceInUseException")

			go func() {
				for i := range 5 {
					k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("fanout"), PartitionKey: aws.String("p"), Data: []byte(fmt.Sprint("live-", i))})
				}
			}()
			var got []string
			var cont string
			timeout := time.After(10 * time.Second)
			for len(got) < 5 {
				select {
				case ev, ok := <-sub.GetStream().Events():
					if !ok {
						t.Fatalf("stream ended: %v", sub.GetStream().Err())
					}
					e := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent).Value
					for _, r := range e.Records {
						got = append(got, string(r.Data))
					}
					cont = aws.ToString(e.ContinuationSequenceNumber)
				case <-timeout:
					t.Fatalf("received %v before the timeout", got)
				}
			}
			sub.GetStream().Close()
			sort.Strings(got)
			if strings.Join(got, ",") != "live-0,live-1,live-2,live-3,live-4" {
				t.Fatalf("received %v", got)
			}
			// Resume after the continuation sequence number: only newer records.
			k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("fanout"), PartitionKey: aws.String("p"), Data: []byte("after-resume")})
			time.Sleep(5100 * time.Millisecond) // a new subscription takes over after 5 s, as on AWS
			sub2, err := subClient().SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: carn, ShardId: aws.String("shardId-000000000000"),
				StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(cont)}})
			if err != nil {
				t.Fatal(err)
			}
			defer sub2.GetStream().Close()
			ev := (<-sub2.GetStream().Events()).(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent).Value
			if len(ev.Records) != 1 || string(ev.Records[0].Data) != "after-resume" {
				t.Fatalf("resumed subscription got %d records", len(ev.Records))
			}
			if proto == "h2c" {
				if _, ok := seen.Load("HTTP/2.0"); !ok {
					t.Fatal("the client did not speak HTTP/2")
				}
			}
			if _, err := k.DeregisterStreamConsumer(ctx, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: carn}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// protoRecorder notes which HTTP versions responses came back on.
type protoRecorder struct {
	next http.RoundTripper
	seen *sync.Map
}

func (p *protoRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.next.RoundTrip(r)
	if err == nil {
		p.seen.Store(resp.Proto, true)
	}
	return resp, err
}

// A stream with a disk budget from the config never grows past it: oldest
// segments go first, and the newest records stay readable.
func TestStreamDiskBudgetFromConfig(t *testing.T) {
	s := startServer(t, func(c *gateway.Config) {
		c.Storage.SegmentBytes = 64 << 10
		c.Storage.StreamDiskBudgets = map[string]gateway.ByteSize{"cam": 512 << 10}
	})
	k := s.client()
	createStream(t, k, "cam", 1)
	data := bytes.Repeat([]byte("v"), 8<<10)
	var last *kinesis.PutRecordOutput
	for i := range 300 {
		out, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("cam"), PartitionKey: aws.String("k"), Data: append(data, fmt.Sprint(i)...)})
		if err != nil {
			t.Fatal(err)
		}
		last = out
	}
	per, _ := s.gw.Store().Usage()
	if per["cam"] > 512<<10+64<<10 {
		t.Fatalf("stream uses %d bytes; budget 512 KiB", per["cam"])
	}
	it, _ := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("cam"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	n := 0
	for iter := it.ShardIterator; ; {
		res, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Records) == 0 {
			break
		}
		n += len(res.Records)
		if aws.ToString(res.Records[len(res.Records)-1].SequenceNumber) == aws.ToString(last.SequenceNumber) {
			break
		}
		iter = res.NextShardIterator
	}
	if n == 0 || n >= 300 {
		t.Fatalf("kept %d of 300 records; want only the newest", n)
	}
}
