package streamstore

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock               { return &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }
func entry(key, data string) Entry   { return Entry{PartitionKey: key, Data: []byte(data)} }
func openTest(t *testing.T, o Options) *Store {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustAppend(t *testing.T, s *Store, stream string, entries ...Entry) []Appended {
	t.Helper()
	res, err := s.Append(stream, entries)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("entry %d: %v", i, r.Err)
		}
	}
	return res
}

func readAll(t *testing.T, s *Store, stream, shard string) []Record {
	t.Helper()
	from, err := s.Seek(stream, shard, Position{Type: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	var all []Record
	for {
		res, err := s.Read(stream, shard, from, 7, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, res.Records...)
		if len(res.Records) == 0 {
			return all
		}
		from = res.Next
	}
}

func TestAppendedRecordsReadBackInOrderAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, Options{Dir: dir, SegmentBytes: 300})
	if _, err := s.CreateStream(StreamConfig{Name: "orders", Shards: 1}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 50 {
		d := fmt.Sprintf("record-%03d", i)
		want = append(want, d)
		mustAppend(t, s, "orders", entry("k", d))
	}
	check := func(s *Store) {
		recs := readAll(t, s, "orders", ShardID(0))
		if len(recs) != len(want) {
			t.Fatalf("read %d records, want %d", len(recs), len(want))
		}
		for i, r := range recs {
			if string(r.Data) != want[i] || r.PartitionKey != "k" {
				t.Fatalf("record %d = %q/%q", i, r.PartitionKey, r.Data)
			}
			if i > 0 && r.Seq.String() <= recs[i-1].Seq.String() {
				t.Fatalf("sequence numbers not increasing at %d", i)
			}
		}
	}
	check(s)
	s.Close()
	s2 := openTest(t, Options{Dir: dir, SegmentBytes: 300})
	check(s2)
	res := mustAppend(t, s2, "orders", entry("k", "after-restart"))
	last := readAll(t, s2, "orders", ShardID(0))
	if res[0].Seq.String() != last[len(last)-1].Seq.String() || len(last) != 51 {
		t.Fatalf("record after restart not at the end")
	}
	if res[0].Seq.String() <= last[49].Seq.String() {
		t.Fatal("sequence number reused after restart")
	}
}

func TestPartitionKeysRouteByMD5AndExplicitHashKey(t *testing.T) {
	s := openTest(t, Options{})
	info, err := s.CreateStream(StreamConfig{Name: "s", Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		key := fmt.Sprint("key-", i)
		res := mustAppend(t, s, "s", entry(key, "x"))
		h := HashPartitionKey(key)
		sh, _ := info.Shard(res[0].ShardID)
		if h.Cmp(sh.HashStart) < 0 || h.Cmp(sh.HashEnd) > 0 {
			t.Fatalf("key %s (hash %s) went to %s [%s,%s]", key, h, sh.ID, sh.HashStart, sh.HashEnd)
		}
	}
	last := info.Shards[3]
	res := mustAppend(t, s, "s", Entry{PartitionKey: "any", ExplicitHashKey: &last.HashStart, Data: []byte("x")})
	if res[0].ShardID != last.ID {
		t.Fatalf("explicit hash key routed to %s, want %s", res[0].ShardID, last.ID)
	}
	if info.Shards[0].HashStart != (HashKey{}) || info.Shards[3].HashEnd != MaxHashKey {
		t.Fatal("shards do not cover the hash-key space")
	}
	for i := 1; i < 4; i++ {
		if info.Shards[i-1].HashEnd.Add1() != info.Shards[i].HashStart {
			t.Fatalf("gap between shard %d and %d", i-1, i)
		}
	}
}

func TestSeekPositions(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, SegmentBytes: 200})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1})
	var seqs []Seq
	var times []time.Time
	for i := range 20 {
		times = append(times, clk.Now())
		seqs = append(seqs, mustAppend(t, s, "s", entry("k", fmt.Sprint(i)))[0].Seq)
		clk.Add(time.Second)
	}
	id := ShardID(0)
	cases := []struct {
		name string
		pos  Position
		want uint64
	}{
		{"trim horizon", Position{Type: TrimHorizon}, 1},
		{"latest", Position{Type: Latest}, 21},
		{"at sequence", Position{Type: AtSequence, Seq: seqs[7]}, 8},
		{"after sequence", Position{Type: AfterSequence, Seq: seqs[7]}, 9},
		{"after the starting sequence number", Position{Type: AfterSequence, Seq: Seq{}}, 1},
		{"at timestamp exact", Position{Type: AtTimestamp, Time: times[12]}, 13},
		{"at timestamp between", Position{Type: AtTimestamp, Time: times[12].Add(time.Millisecond)}, 14},
		{"at timestamp before all", Position{Type: AtTimestamp, Time: times[0].Add(-time.Hour)}, 1},
		{"at timestamp after all", Position{Type: AtTimestamp, Time: clk.Now().Add(time.Hour)}, 21},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Seek("s", id, c.pos)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %d, want %d", got, c.want)
			}
		})
	}
	other := Seq{Gen: 0, Shard: 5, Index: 1}
	if _, err := s.Seek("s", id, Position{Type: AtSequence, Seq: other}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("sequence number of another shard: %v, want ErrInvalid", err)
	}
}

func TestReaderWokenByNewRecord(t *testing.T) {
	s := openTest(t, Options{})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1})
	ch, err := s.Changed("s", ShardID(0))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("woken before any write")
	default:
	}
	mustAppend(t, s, "s", entry("k", "v"))
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("reader not woken by a new record")
	}
}

func TestSplitAndMergeKeepLineageAndOrder(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, Options{Dir: dir})
	info, _ := s.CreateStream(StreamConfig{Name: "s", Shards: 2})
	before := mustAppend(t, s, "s", entry("a", "1"))[0]
	parent, _ := info.Shard(before.ShardID)
	mid, _ := ParseHashKey(splitSpace(parent.HashStart, parent.HashEnd, 2)[1].String())
	children, err := s.SplitShard("s", parent.ID, mid)
	if err != nil {
		t.Fatal(err)
	}
	if len(children) != 2 || children[0].Parent != parent.ID || children[1].Parent != parent.ID {
		t.Fatalf("children %+v", children)
	}
	if _, err := s.SplitShard("s", parent.ID, mid); !errors.Is(err, ErrShardClosed) {
		t.Fatalf("second split of a closed shard: %v", err)
	}
	after := mustAppend(t, s, "s", entry("a", "2"))[0]
	if after.ShardID == parent.ID {
		t.Fatal("record went to a closed shard")
	}
	if after.Seq.String() <= before.Seq.String() {
		t.Fatalf("child sequence %s not greater than parent's %s", after.Seq, before.Seq)
	}
	res, err := s.Read("s", parent.ID, 1, 100, 1<<20)
	if err != nil || len(res.Records) != 1 || !res.EndOfShard {
		t.Fatalf("parent read: %v %+v", err, res)
	}
	merged, err := s.MergeShards("s", children[0].ID, children[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	if merged.Parent != children[0].ID || merged.AdjacentParent != children[1].ID ||
		merged.HashStart != parent.HashStart || merged.HashEnd != parent.HashEnd {
		t.Fatalf("merged shard %+v", merged)
	}
	other := info.Shards[0]
	if other.ID == parent.ID {
		other = info.Shards[1]
	}
	if _, err := s.MergeShards("s", other.ID, children[0].ID); err == nil && other.HashEnd.Add1() != children[0].HashStart {
		t.Fatal("merged non-adjacent shards")
	}
	s.Close()
	s2 := openTest(t, Options{Dir: dir})
	info2, _ := s2.Stream("s")
	p, _ := info2.Shard(parent.ID)
	if !p.Closed || p.EndSeq() != before.Seq {
		t.Fatalf("after reopen, parent %+v, want closed ending at %s", p, before.Seq)
	}
}

func TestUpdateShardCountScalesUniformly(t *testing.T) {
	s := openTest(t, Options{})
	s.CreateStream(StreamConfig{Name: "s", Shards: 3})
	for _, target := range []int{5, 6, 3, 2, 4} {
		if err := s.UpdateShardCount("s", target); err != nil {
			t.Fatal(err)
		}
		info, _ := s.Stream("s")
		open := info.OpenShards()
		if len(open) != target {
			t.Fatalf("target %d: %d open shards", target, len(open))
		}
		want := splitSpace(HashKey{}, MaxHashKey, target)
		for i, sh := range open {
			if sh.HashStart != want[i] {
				t.Fatalf("target %d: shard %d starts at %s, want %s", target, i, sh.HashStart, want[i])
			}
		}
		mustAppend(t, s, "s", entry("k", "v"))
	}
}

func TestTimeRetentionDeletesWholeSegments(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now, SegmentBytes: 100, RetentionInterval: time.Hour})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1, RetentionHours: 24})
	for i := range 10 {
		mustAppend(t, s, "s", entry("k", fmt.Sprint("old-", i)))
	}
	clk.Add(23 * time.Hour)
	for i := range 10 {
		mustAppend(t, s, "s", entry("k", fmt.Sprint("new-", i)))
	}
	clk.Add(2 * time.Hour)
	s.EnforceRetention()
	recs := readAll(t, s, "s", ShardID(0))
	if len(recs) != 10 || string(recs[0].Data) != "new-0" {
		t.Fatalf("after retention read %d records starting %q", len(recs), recs[0].Data)
	}
	th, _ := s.Seek("s", ShardID(0), Position{Type: TrimHorizon})
	if th != 11 {
		t.Fatalf("trim horizon %d, want 11", th)
	}
	if _, err := s.Seek("s", ShardID(0), Position{Type: AtSequence, Seq: Seq{Index: 3}}); !errors.Is(err, ErrTrimmed) {
		t.Fatalf("seek to a deleted record: %v, want ErrTrimmed", err)
	}
}

func TestDiskBudgetDeletesOldestAndNeverOverfills(t *testing.T) {
	s := openTest(t, Options{DiskBudget: 1 << 20, SegmentBytes: 64 << 10, RetentionInterval: time.Hour})
	s.CreateStream(StreamConfig{Name: "a", Shards: 1})
	s.CreateStream(StreamConfig{Name: "b", Shards: 1, DiskBudget: 300 << 10})
	data := make([]byte, 4000)
	for i := range 2000 {
		name := "a"
		if i%2 == 1 {
			name = "b"
		}
		res, err := s.Append(name, []Entry{{PartitionKey: "k", Data: data}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("append %d: %v %v", i, err, res[0].Err)
		}
		per, total := s.Usage()
		if total > 1<<20+200<<10 {
			t.Fatalf("total %d bytes exceeds the budget by more than a segment", total)
		}
		if per["b"] > 300<<10+100<<10 {
			t.Fatalf("stream b uses %d bytes, budget 300 KiB", per["b"])
		}
	}
	recs := readAll(t, s, "a", ShardID(0))
	if len(recs) == 0 || len(recs) == 1000 {
		t.Fatalf("stream a kept %d records; want the newest only", len(recs))
	}
}

func TestCheckpoints(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, Options{Dir: dir})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1})
	if err := s.SetCheckpoint("firehose-x", "s", ShardID(0), "123"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCheckpoint("g", "s", "shardId-000000000099", "1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("checkpoint of unknown shard: %v", err)
	}
	s.Close()
	s = openTest(t, Options{Dir: dir})
	if got, _ := s.Checkpoint("firehose-x", "s", ShardID(0)); got != "123" {
		t.Fatalf("checkpoint %q after reopen", got)
	}
	s.DeleteStream("s")
	s.CreateStream(StreamConfig{Name: "s", Shards: 1})
	if got, _ := s.Checkpoint("firehose-x", "s", ShardID(0)); got != "" {
		t.Fatalf("checkpoint %q survived stream deletion", got)
	}
}

func TestConcurrentWritersAndReaders(t *testing.T) {
	s := openTest(t, Options{SegmentBytes: 32 << 10})
	s.CreateStream(StreamConfig{Name: "s", Shards: 2})
	const writers, per = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if _, err := s.Append("s", []Entry{entry(fmt.Sprint(w), fmt.Sprintf("%d-%d", w, i))}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	var rg sync.WaitGroup
	for _, id := range []string{ShardID(0), ShardID(1)} {
		rg.Add(1)
		go func() {
			defer rg.Done()
			var from uint64
			for {
				ch, _ := s.Changed("s", id)
				res, err := s.Read("s", id, from, 50, 1<<20)
				if err != nil {
					t.Error(err)
					return
				}
				from = res.Next
				if len(res.Records) == 0 {
					select {
					case <-stop:
						return
					case <-ch:
					}
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rg.Wait()
	total := len(readAll(t, s, "s", ShardID(0))) + len(readAll(t, s, "s", ShardID(1)))
	if total != writers*per {
		t.Fatalf("%d records, want %d", total, writers*per)
	}
}

func TestOversizedRecordRejected(t *testing.T) {
	s := openTest(t, Options{})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1})
	res, err := s.Append("s", []Entry{{PartitionKey: "k", Data: make([]byte, 1<<20+1)}, {PartitionKey: "k", Data: make([]byte, 1<<20)}})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(res[0].Err, ErrRecordTooBig) || res[1].Err != nil {
		t.Fatalf("1 MiB + 1: %v; exactly 1 MiB: %v", res[0].Err, res[1].Err)
	}
}

// Many writers on tiny segments: rolls race with group-commit fsyncs. A lock
// order mistake between them deadlocks here (it once did under load).
func TestConcurrentAppendsAcrossSegmentRolls(t *testing.T) {
	s := openTest(t, Options{SegmentBytes: 2 << 10})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1})
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				batch := make([]Entry, 1+i%5)
				for k := range batch {
					batch[k] = entry("k", fmt.Sprintf("%d-%d-%d", w, i, k))
				}
				if res, err := s.Append("s", batch); err != nil || res[0].Err != nil {
					t.Errorf("append: %v %v", err, res[0].Err)
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("appends stuck: deadlock between segment roll and fsync")
	}
	want := 0
	for i := range 300 {
		want += 8 * (1 + i%5)
	}
	if n := len(readAll(t, s, "s", ShardID(0))); n != want {
		t.Fatalf("%d records, want %d", n, want)
	}
}

// Records larger than a read chunk (256 KiB) read back whole, and time
// seeks step over them.
func TestLargeRecordsReadBackAndSeekOver(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1, MaxRecordKiB: 4096})
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i)
	}
	mustAppend(t, s, "s", entry("k", "before"))
	clk.Add(time.Second)
	bigAt := clk.Now()
	mustAppend(t, s, "s", Entry{PartitionKey: "k", Data: big})
	clk.Add(time.Second)
	after := clk.Now()
	mustAppend(t, s, "s", entry("k", "after"))
	recs := readAll(t, s, "s", ShardID(0))
	if len(recs) != 3 || string(recs[0].Data) != "before" || string(recs[2].Data) != "after" || len(recs[1].Data) != len(big) {
		t.Fatalf("read %d records", len(recs))
	}
	for i := range big {
		if recs[1].Data[i] != big[i] {
			t.Fatalf("large record differs at byte %d", i)
		}
	}
	i, err := s.Seek("s", ShardID(0), Position{Type: AtTimestamp, Time: after})
	if err != nil || i != recs[2].Seq.Index {
		t.Fatalf("seek past the large record: %d %v, want %d", i, err, recs[2].Seq.Index)
	}
	// A time the large record answers: the scan must look at it, not skip it.
	i, err = s.Seek("s", ShardID(0), Position{Type: AtTimestamp, Time: bigAt.Add(-time.Millisecond)})
	if err != nil || i != recs[1].Seq.Index {
		t.Fatalf("seek to the large record: %d %v, want %d", i, err, recs[1].Seq.Index)
	}
}

func TestDocumentsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s.PutDocument("rule", "a", []byte("1"))
	s.PutDocument("rule", "b", []byte("2"))
	s.PutDocument("other", "a", []byte("x"))
	if err := s.DeleteDocument("rule", "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDocument("rule", "b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
	s.Close()
	s, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	docs, _ := s.Documents("rule")
	if len(docs) != 1 || string(docs["a"]) != "1" {
		t.Fatalf("documents after reopen: %v", docs)
	}
	if _, err := s.Document("rule", "b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted document: %v", err)
	}
}

// The watermark stays at the oldest record written but not yet readable
// (its fsync pending), and follows the clock once everything is readable.
func TestWatermarkWaitsForUnreadableRecords(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1})
	shard := "shardId-000000000000"
	if w, err := s.Watermark("s", shard); err != nil || w != c.Now().UnixNano() {
		t.Fatalf("empty shard: watermark %d (%v), clock %d", w, err, c.Now().UnixNano())
	}
	_, log, _, _ := s.lookup("s", shard)
	// Written, not yet durable: what Append does before its fsync.
	first := c.Now().UnixNano()
	if _, err := log.append([]pending{{key: "k", data: []byte("a")}}, c.Now); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Second)
	if _, err := log.append([]pending{{key: "k", data: []byte("b")}}, c.Now); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Second)
	if w, _ := s.Watermark("s", shard); w != first {
		t.Fatalf("with unreadable records: watermark %v, want the oldest's arrival %v", time.Unix(0, w), time.Unix(0, first))
	}
	if err := log.waitDurable(log.next); err != nil {
		t.Fatal(err)
	}
	if w, _ := s.Watermark("s", shard); w != c.Now().UnixNano() {
		t.Fatalf("all readable: watermark %v, clock %v", time.Unix(0, w), c.Now())
	}
	if _, err := s.Watermark("s", "shardId-000000000009"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown shard: %v", err)
	}
}
