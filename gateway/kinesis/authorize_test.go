package kinesis

import (
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

type denyAll struct{}

func (denyAll) Allows(action, resource string) bool { return false }
func (denyAll) ARN() string                         { return "arn:aws:iam::000000000000:user/nobody" }

// Every operation asks for authorization before it changes or reveals
// anything: a caller allowed nothing gets AccessDeniedException everywhere.
func TestEveryOperationIsAuthorized(t *testing.T) {
	store, err := streamstore.Open(streamstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	a := New(store, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	svc := a.Service()
	admin := func(op, body string) any {
		out, err := svc.Ops[op](&awsapi.Request{Op: op, Body: []byte(body), R: httptest.NewRequest("POST", "/", nil)})
		if err != nil {
			t.Fatalf("setup %s: %v", op, err)
		}
		return out
	}
	admin("CreateStream", `{"StreamName":"s","ShardCount":2}`)
	reg := admin("RegisterStreamConsumer", `{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","ConsumerName":"c"}`)
	carn := reg.(struct{ Consumer consumer }).Consumer.ConsumerARN
	it := admin("GetShardIterator", `{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`).(struct{ ShardIterator string }).ShardIterator
	arn := `"arn:aws:kinesis:us-east-1:000000000000:stream/s"`
	bodies := map[string]string{
		"CreateStream":                  `{"StreamName":"t","ShardCount":1}`,
		"DeleteStream":                  `{"StreamName":"s","EnforceConsumerDeletion":true}`,
		"DescribeStream":                `{"StreamName":"s"}`,
		"DescribeStreamSummary":         `{"StreamName":"s"}`,
		"ListStreams":                   `{}`,
		"ListShards":                    `{"StreamName":"s"}`,
		"PutRecord":                     `{"StreamName":"s","PartitionKey":"k","Data":"eA=="}`,
		"PutRecords":                    `{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"eA=="}]}`,
		"GetShardIterator":              `{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"LATEST"}`,
		"GetRecords":                    `{"ShardIterator":"` + it + `"}`,
		"SplitShard":                    `{"StreamName":"s","ShardToSplit":"shardId-000000000000","NewStartingHashKey":"100"}`,
		"MergeShards":                   `{"StreamName":"s","ShardToMerge":"shardId-000000000000","AdjacentShardToMerge":"shardId-000000000001"}`,
		"UpdateShardCount":              `{"StreamName":"s","TargetShardCount":3,"ScalingType":"UNIFORM_SCALING"}`,
		"IncreaseStreamRetentionPeriod": `{"StreamName":"s","RetentionPeriodHours":48}`,
		"DecreaseStreamRetentionPeriod": `{"StreamName":"s","RetentionPeriodHours":24}`,
		"UpdateStreamMode":              `{"StreamARN":` + arn + `,"StreamModeDetails":{"StreamMode":"ON_DEMAND"}}`,
		"UpdateMaxRecordSize":           `{"StreamARN":` + arn + `,"MaxRecordSizeInKiB":2048}`,
		"AddTagsToStream":               `{"StreamName":"s","Tags":{"a":"b"}}`,
		"RemoveTagsFromStream":          `{"StreamName":"s","TagKeys":["a"]}`,
		"ListTagsForStream":             `{"StreamName":"s"}`,
		"TagResource":                   `{"ResourceARN":` + arn + `,"Tags":{"a":"b"}}`,
		"UntagResource":                 `{"ResourceARN":` + arn + `,"TagKeys":["a"]}`,
		"ListTagsForResource":           `{"ResourceARN":` + arn + `}`,
		"DescribeLimits":                `{}`,
		"RegisterStreamConsumer":        `{"StreamARN":` + arn + `,"ConsumerName":"d"}`,
		"DeregisterStreamConsumer":      `{"ConsumerARN":"` + carn + `"}`,
		"DescribeStreamConsumer":        `{"ConsumerARN":"` + carn + `"}`,
		"ListStreamConsumers":           `{"StreamARN":` + arn + `}`,
		"SubscribeToShard":              `{"ConsumerARN":"` + carn + `","ShardId":"shardId-000000000000","StartingPosition":{"Type":"LATEST"}}`,
	}
	for op := range svc.Ops {
		body, ok := bodies[op]
		if !ok {
			t.Errorf("no test body for %s: add one", op)
			continue
		}
		t.Run(op, func(t *testing.T) {
			w := httptest.NewRecorder()
			_, err := svc.Ops[op](&awsapi.Request{Op: op, Body: []byte(body), W: w, R: httptest.NewRequest("POST", "/", nil), Principal: denyAll{}, Service: svc})
			var ae *awsapi.Error
			if !errors.As(err, &ae) || ae.Code != awsapi.CodeAccessDenied || !strings.Contains(ae.Message, "kinesis:"+op) {
				t.Fatalf("got %v, want AccessDeniedException naming kinesis:%s", err, op)
			}
		})
	}
	// Nothing changed.
	info, err := store.Stream("s")
	if err != nil || len(info.Shards) != 2 || info.RetentionHours != 24 || len(info.Consumers) != 1 || len(info.Tags) != 0 {
		t.Fatalf("denied calls changed the stream: %v %+v", err, info)
	}
	if _, err := store.Stream("t"); err == nil {
		t.Fatal("denied CreateStream created a stream")
	}
}
