package rules

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/streamgate/streamgate/mqtt"
	"github.com/streamgate/streamgate/streamstore"
)

// Records of one partition key keep their order across the appender's
// workers, every callback reports durability, and a full store is reported
// as quota exceeded.
func TestAppenderKeepsOrderPerKeyAndReportsRefusals(t *testing.T) {
	store, err := streamstore.Open(streamstore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.CreateStream(streamstore.StreamConfig{Name: "s", Shards: 2}); err != nil {
		t.Fatal(err)
	}
	a := NewAppender(store)
	var wg sync.WaitGroup
	for k := range 8 {
		for i := range 500 {
			wg.Add(1)
			a.Append("s", streamstore.Entry{PartitionKey: fmt.Sprint("key", k), Data: []byte(fmt.Sprint(i))}, func(err error) {
				if err != nil {
					t.Error(err)
				}
				wg.Done()
			})
		}
	}
	wg.Wait()
	a.Close()
	last := map[string]int{}
	n := 0
	info, _ := store.Stream("s")
	for _, sh := range info.Shards {
		res, err := store.Read("s", sh.ID, 0, 10000, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Records {
			var i int
			fmt.Sscan(string(r.Data), &i)
			if prev, ok := last[r.PartitionKey]; ok && i != prev+1 {
				t.Fatalf("key %s: record %d after %d", r.PartitionKey, i, prev)
			}
			last[r.PartitionKey] = i
			n++
		}
	}
	if n != 8*500 {
		t.Fatalf("%d records, want %d", n, 8*500)
	}
	if err := refusal(streamstore.ErrNoSpace); !errors.Is(err, mqtt.ErrQuotaExceeded) {
		t.Errorf("a full store is reported as %v, want quota exceeded", err)
	}
}
