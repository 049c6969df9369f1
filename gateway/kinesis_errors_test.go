package gateway_test

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/fxamacker/cbor/v2"
	"github.com/streamgate/streamgate/gateway"
)

// Every bad request gets an AWS error body with the right type and status,
// a request id, and never a 5xx.
func TestBadInputGetsAWSErrors(t *testing.T) {
	s := startServer(t, func(c *gateway.Config) { c.Kinesis.MaxRequestBytes = 2 << 20 })
	k := s.client()
	createStream(t, k, "s", 1)
	it, _ := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeLatest})
	forged := []byte(aws.ToString(it.ShardIterator))
	forged[len(forged)/2] ^= 1
	manyRecords := make([]map[string]string, 501)
	for i := range manyRecords {
		manyRecords[i] = map[string]string{"Data": "eA==", "PartitionKey": "k"}
	}
	const json11 = "application/x-amz-json-1.1"
	cases := []struct {
		name, target, body string
		status             int
		code               string
	}{
		{"unknown target", "Kinesis_20131202.Nope", `{}`, 400, "UnknownOperationException"},
		{"no target", "", `{}`, 400, "UnknownOperationException"},
		{"malformed JSON", "Kinesis_20131202.PutRecord", `{"StreamName":`, 400, "SerializationException"},
		{"wrong type", "Kinesis_20131202.CreateStream", `{"StreamName":"x","ShardCount":"two"}`, 400, "SerializationException"},
		{"bad base64", "Kinesis_20131202.PutRecord", `{"StreamName":"s","PartitionKey":"k","Data":"!!"}`, 400, "SerializationException"},
		{"missing stream", "Kinesis_20131202.DescribeStream", `{"StreamName":"nope"}`, 400, "ResourceNotFoundException"},
		{"invalid name", "Kinesis_20131202.CreateStream", `{"StreamName":"bad name","ShardCount":1}`, 400, "ValidationException"},
		{"no name", "Kinesis_20131202.DescribeStreamSummary", `{}`, 400, "ValidationException"},
		{"missing data", "Kinesis_20131202.PutRecord", `{"StreamName":"s","PartitionKey":"k"}`, 400, "ValidationException"},
		{"long partition key", "Kinesis_20131202.PutRecord", `{"StreamName":"s","PartitionKey":"` + strings.Repeat("k", 257) + `","Data":"eA=="}`, 400, "ValidationException"},
		{"hash key out of range", "Kinesis_20131202.PutRecord", `{"StreamName":"s","PartitionKey":"k","Data":"eA==","ExplicitHashKey":"340282366920938463463374607431768211456"}`, 400, "InvalidArgumentException"},
		{"501 records", "Kinesis_20131202.PutRecords", string(jsonBody(map[string]any{"StreamName": "s", "Records": manyRecords})), 400, "ValidationException"},
		{"zero records", "Kinesis_20131202.PutRecords", `{"StreamName":"s","Records":[]}`, 400, "ValidationException"},
		{"forged iterator", "Kinesis_20131202.GetRecords", string(jsonBody(map[string]string{"ShardIterator": string(forged)})), 400, "InvalidArgumentException"},
		{"garbage iterator", "Kinesis_20131202.GetRecords", `{"ShardIterator":"hello"}`, 400, "InvalidArgumentException"},
		{"limit too high", "Kinesis_20131202.GetRecords", string(jsonBody(map[string]any{"ShardIterator": aws.ToString(it.ShardIterator), "Limit": 10001})), 400, "ValidationException"},
		{"bad iterator type", "Kinesis_20131202.GetShardIterator", `{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"SOMETIME"}`, 400, "ValidationException"},
		{"missing shard", "Kinesis_20131202.GetShardIterator", `{"StreamName":"s","ShardId":"shardId-000000000009","ShardIteratorType":"LATEST"}`, 400, "ResourceNotFoundException"},
		{"bad sequence number", "Kinesis_20131202.GetShardIterator", `{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"AT_SEQUENCE_NUMBER","StartingSequenceNumber":"12"}`, 400, "InvalidArgumentException"},
		{"split outside range", "Kinesis_20131202.SplitShard", `{"StreamName":"s","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"0"}`, 400, "InvalidArgumentException"},
		{"unknown consumer", "Kinesis_20131202.DescribeStreamConsumer", `{"ConsumerARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/x:1"}`, 400, "ResourceNotFoundException"},
		{"bad ARN", "Kinesis_20131202.DescribeStreamSummary", `{"StreamARN":"arn:nope"}`, 400, "InvalidArgumentException"},
		{"JSON array body", "Kinesis_20131202.ListStreams", `[1,2]`, 400, "SerializationException"},
		{"oversized body", "Kinesis_20131202.PutRecord", `{"Data":"` + strings.Repeat("A", 3<<20) + `"}`, 413, "SerializationException"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, hdr, body := s.rawCall(t, c.target, json11, []byte(c.body))
			var e struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("body %q is not JSON: %v", body, err)
			}
			if status != c.status || e.Type != c.code || e.Message == "" {
				t.Fatalf("got %d %s %q, want %d %s", status, e.Type, e.Message, c.status, c.code)
			}
			if hdr.Get("x-amzn-RequestId") == "" || hdr.Get("X-Amzn-ErrorType") != c.code {
				t.Fatalf("headers %v", hdr)
			}
		})
	}
}

// CBOR is what the Java SDK and KCL send by default: blobs as byte strings,
// timestamps as tag 1.
func TestCBORProtocol(t *testing.T) {
	s := startServer(t, nil)
	const cborCT = "application/x-amz-cbor-1.1"
	call := func(op string, in any, out any) int {
		t.Helper()
		body, _ := cbor.Marshal(in)
		status, hdr, resp := s.rawCall(t, "Kinesis_20131202."+op, cborCT, body)
		if hdr.Get("Content-Type") != cborCT {
			t.Fatalf("%s answered %s", op, hdr.Get("Content-Type"))
		}
		if err := cbor.Unmarshal(resp, out); err != nil {
			t.Fatalf("%s: response is not CBOR: %v", op, err)
		}
		return status
	}
	var empty map[string]any
	if st := call("CreateStream", map[string]any{"StreamName": "c", "ShardCount": 1}, &empty); st != 200 {
		t.Fatalf("CreateStream %d %v", st, empty)
	}
	payload := []byte{0, 1, 2, 0xff, 'b', 'i', 'n'}
	var put struct{ ShardId, SequenceNumber string }
	if st := call("PutRecord", map[string]any{"StreamName": "c", "PartitionKey": "k", "Data": payload}, &put); st != 200 || put.SequenceNumber == "" {
		t.Fatalf("PutRecord %d %+v", st, put)
	}
	var it struct{ ShardIterator string }
	call("GetShardIterator", map[string]any{"StreamName": "c", "ShardId": put.ShardId, "ShardIteratorType": "AT_TIMESTAMP",
		"Timestamp": cbor.Tag{Number: 1, Content: time.Now().Add(-time.Minute).UnixMilli()}}, &it)
	var got struct {
		Records []struct {
			Data                        []byte
			SequenceNumber              string
			ApproximateArrivalTimestamp cbor.Tag
		}
	}
	if st := call("GetRecords", map[string]any{"ShardIterator": it.ShardIterator}, &got); st != 200 || len(got.Records) != 1 {
		t.Fatalf("GetRecords %d, %d records", st, len(got.Records))
	}
	r := got.Records[0]
	if !bytes.Equal(r.Data, payload) || r.SequenceNumber != put.SequenceNumber {
		t.Fatalf("record %+v", r)
	}
	ms, ok := r.ApproximateArrivalTimestamp.Content.(uint64)
	if r.ApproximateArrivalTimestamp.Number != 1 || !ok || time.Since(time.UnixMilli(int64(ms))) > time.Minute {
		t.Fatalf("arrival timestamp %+v", r.ApproximateArrivalTimestamp)
	}
	var e struct {
		Type    string `cbor:"__type"`
		Message string `cbor:"message"`
	}
	if st := call("DescribeStream", map[string]any{"StreamName": "missing"}, &e); st != 400 || e.Type != "ResourceNotFoundException" {
		t.Fatalf("CBOR error %d %+v", st, e)
	}
}

// FuzzRequestDecoder throws arbitrary bodies at every operation, in JSON and
// CBOR: the answer is always an AWS response, never a 5xx or a panic.
func FuzzRequestDecoder(f *testing.F) {
	s := startServer(f, nil)
	ops := []string{"CreateStream", "DeleteStream", "DescribeStream", "DescribeStreamSummary", "ListStreams", "ListShards",
		"PutRecord", "PutRecords", "GetShardIterator", "GetRecords", "SplitShard", "MergeShards", "UpdateShardCount",
		"IncreaseStreamRetentionPeriod", "DecreaseStreamRetentionPeriod", "UpdateStreamMode", "UpdateMaxRecordSize",
		"AddTagsToStream", "RemoveTagsFromStream", "ListTagsForStream", "DescribeLimits", "RegisterStreamConsumer",
		"DeregisterStreamConsumer", "DescribeStreamConsumer", "ListStreamConsumers", "TagResource", "ListTagsForResource"}
	s.rawCall(f, "Kinesis_20131202.CreateStream", "application/x-amz-json-1.1", []byte(`{"StreamName":"f","ShardCount":2}`))
	f.Add(uint8(6), false, []byte(`{"StreamName":"f","PartitionKey":"k","Data":"eA=="}`))
	f.Add(uint8(7), false, []byte(`{"StreamName":"f","Records":[{"PartitionKey":"k","Data":"eA==","ExplicitHashKey":"99"}]}`))
	f.Add(uint8(8), false, []byte(`{"StreamName":"f","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP","Timestamp":"x"}`))
	f.Add(uint8(5), false, []byte(`{"StreamName":"f","ShardFilter":{"Type":"AT_TIMESTAMP"}}`))
	f.Add(uint8(10), false, []byte(`{"StreamName":"f","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"5"}`))
	f.Add(uint8(6), true, []byte{0xa1, 0x64, 'D', 'a', 't', 'a', 0x41, 0x00})
	f.Fuzz(func(t *testing.T, op uint8, useCBOR bool, body []byte) {
		ct := "application/x-amz-json-1.1"
		if useCBOR {
			ct = "application/x-amz-cbor-1.1"
		}
		status, _, resp := s.rawCall(t, "Kinesis_20131202."+ops[int(op)%len(ops)], ct, body)
		if status >= 500 {
			t.Fatalf("status %d: %s", status, resp)
		}
	})
}

// Random operation sequences keep the server consistent (a smoke test of
// the whole API surface under churn).
func TestRandomOperationChurn(t *testing.T) {
	s := startServer(t, nil)
	k := s.client()
	rng := rand.New(rand.NewSource(1))
	createStream(t, k, "churn", 2)
	for i := 0; i < 200; i++ {
		switch rng.Intn(4) {
		case 0:
			k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("churn"), PartitionKey: aws.String(string(rune('a' + rng.Intn(26)))), Data: []byte("x")})
		case 1:
			shards, err := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("churn"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
			if err != nil {
				t.Fatal(err)
			}
			if len(shards.Shards) < 6 {
				sh := shards.Shards[rng.Intn(len(shards.Shards))]
				start, _ := new(bigInt).SetString(aws.ToString(sh.HashKeyRange.StartingHashKey), 10)
				end, _ := new(bigInt).SetString(aws.ToString(sh.HashKeyRange.EndingHashKey), 10)
				mid := new(bigInt).Add(start, end)
				mid.Rsh(mid, 1)
				mid.Add(mid, bigOne)
				if _, err := k.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String("churn"), ShardToSplit: sh.ShardId, NewStartingHashKey: aws.String(mid.String())}); err != nil {
					t.Fatal(err)
				}
			}
		case 2:
			shards, _ := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("churn"), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
			// ListShards lists by shard id; adjacency is by hash key.
			sort.Slice(shards.Shards, func(a, b int) bool {
				x, _ := new(bigInt).SetString(aws.ToString(shards.Shards[a].HashKeyRange.StartingHashKey), 10)
				y, _ := new(bigInt).SetString(aws.ToString(shards.Shards[b].HashKeyRange.StartingHashKey), 10)
				return x.Cmp(y) < 0
			})
			if len(shards.Shards) > 1 {
				j := rng.Intn(len(shards.Shards) - 1)
				if _, err := k.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("churn"), ShardToMerge: shards.Shards[j].ShardId, AdjacentShardToMerge: shards.Shards[j+1].ShardId}); err != nil {
					t.Fatal(err)
				}
			}
		case 3:
			shards, _ := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String("churn")})
			sh := shards.Shards[rng.Intn(len(shards.Shards))]
			it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("churn"), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator}); err != nil {
				t.Fatal(err)
			}
		}
	}
	resp, err := http.Get(s.endpoint + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after churn: %v", err)
	}
}
