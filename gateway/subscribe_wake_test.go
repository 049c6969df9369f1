package gateway_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// Every record put while subscribers wait at the tip reaches them promptly:
// pushes are driven by the store's wake-ups, not by the 5 s heartbeat.
func TestSubscribersAtTheTipGetEveryRecordPromptly(t *testing.T) {
	s := startServer(t, nil)
	k := s.client()
	arn := createStream(t, k, "tip", 4)
	reg, err := k.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(arn), ConsumerName: aws.String("c")})
	if err != nil {
		t.Fatal(err)
	}
	var received atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 4 {
		// One client per subscription: aws-sdk-go-v2 shares one event-stream
		// decoder across a client's streams (aws/smithy-go#714, a data race).
		sub, err := s.client().SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN,
			ShardId: aws.String(fmt.Sprintf("shardId-%012d", i)), StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sub.GetStream().Close()
			for {
				select {
				case <-stop:
					return
				case ev, ok := <-sub.GetStream().Events():
					if !ok {
						t.Logf("subscription to shard %d ended: %v", i, sub.GetStream().Err())
						return
					}
					if e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent); ok {
						received.Add(int64(len(e.Value.Records)))
					}
				}
			}
		}()
	}
	sent := 0
	for i := range 200 {
		var entries []types.PutRecordsRequestEntry
		for j := range 10 {
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i, "-", j)), Data: []byte("x")})
		}
		if _, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("tip"), Records: entries}); err != nil {
			t.Fatal(err)
		}
		sent += len(entries)
		time.Sleep(5 * time.Millisecond)
	}
	// Well under the 5 s heartbeat: a missed wake-up would leave records behind.
	deadline := time.Now().Add(2 * time.Second)
	for received.Load() < int64(sent) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if got := received.Load(); got != int64(sent) {
		t.Fatalf("received %d of %d records within 2 s of the last put", got, sent)
	}
}
