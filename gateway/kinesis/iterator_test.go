package kinesis

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func call(op awsapi.Op, body string) (any, error) {
	return op(&awsapi.Request{Body: []byte(body)})
}

func TestShardIteratorsExpireAfterFiveMinutesAndRejectTampering(t *testing.T) {
	store, err := streamstore.Open(streamstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	clk := &fakeClock{t: time.Now()}
	a := New(store, Options{Now: clk.now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if _, err := call(a.createStream, `{"StreamName":"s","ShardCount":1}`); err != nil {
		t.Fatal(err)
	}
	out, err := call(a.getShardIterator, `{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`)
	if err != nil {
		t.Fatal(err)
	}
	it := out.(struct{ ShardIterator string }).ShardIterator
	if len(it) > 512 {
		t.Fatalf("iterator of %d chars; AWS allows 512", len(it))
	}
	clk.add(4*time.Minute + 59*time.Second)
	if _, err := call(a.getRecords, `{"ShardIterator":"`+it+`"}`); err != nil {
		t.Fatalf("iterator rejected before 5 minutes: %v", err)
	}
	clk.add(2 * time.Second)
	_, err = call(a.getRecords, `{"ShardIterator":"`+it+`"}`)
	var ae *awsapi.Error
	if !errors.As(err, &ae) || ae.Code != "ExpiredIteratorException" {
		t.Fatalf("after 5 minutes: %v, want ExpiredIteratorException", err)
	}
	// Another process (a restart) has another key: its iterators are forgeries here.
	b := New(store, Options{Now: clk.now})
	_, err = call(b.getRecords, `{"ShardIterator":"`+it+`"}`)
	if !errors.As(err, &ae) || ae.Code != "InvalidArgumentException" {
		t.Fatalf("iterator from another process: %v, want InvalidArgumentException", err)
	}
	// A stream deleted and re-created does not honour old iterators.
	out, _ = call(a.getShardIterator, `{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"LATEST"}`)
	fresh := out.(struct{ ShardIterator string }).ShardIterator
	call(a.deleteStream, `{"StreamName":"s"}`)
	call(a.createStream, `{"StreamName":"s","ShardCount":1}`)
	_, err = call(a.getRecords, `{"ShardIterator":"`+fresh+`"}`)
	if !errors.As(err, &ae) || ae.Code != "ResourceNotFoundException" {
		t.Fatalf("iterator of a deleted stream: %v, want ResourceNotFoundException", err)
	}
}

func TestListShardsNextTokenExpires(t *testing.T) {
	store, err := streamstore.Open(streamstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	clk := &fakeClock{t: time.Now()}
	a := New(store, Options{Now: clk.now})
	call(a.createStream, `{"StreamName":"s","ShardCount":3}`)
	out, err := call(a.listShards, `{"StreamName":"s","MaxResults":1}`)
	if err != nil {
		t.Fatal(err)
	}
	tok := out.(listShardsOutput).NextToken
	if tok == "" {
		t.Fatal("no NextToken with more shards left")
	}
	if _, err := call(a.listShards, `{"NextToken":"`+tok+`"}`); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	clk.add(nextTokenTTL + time.Second)
	_, err = call(a.listShards, `{"NextToken":"`+tok+`"}`)
	var ae *awsapi.Error
	if !errors.As(err, &ae) || ae.Code != "ExpiredNextTokenException" {
		t.Fatalf("after %s: %v, want ExpiredNextTokenException", nextTokenTTL, err)
	}
}
