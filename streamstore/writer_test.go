package streamstore

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// streamedData is the data of streamed record i of the crash child: pieces
// of different sizes, so a torn one shows.
func streamedData(i int) [][]byte {
	var pieces [][]byte
	for k := range 5 + i%7 {
		pieces = append(pieces, bytes.Repeat([]byte{byte('a' + (i+k)%26)}, 1000+733*k+i%97))
	}
	return pieces
}

func TestRecordWriterStreamsARecordInPieces(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := openTest(t, Options{Dir: dir, Now: c.Now})
	s.CreateStream(StreamConfig{Name: "v", Shards: 1})
	mustAppend(t, s, "v", entry("k", "before"))
	first := c.Now().UnixNano()
	c.Add(time.Second)
	w, err := s.BeginRecord("v", ShardID(0), 77, first, 32)
	if err != nil {
		t.Fatal(err)
	}
	// An append while the record is open waits for it: the open record owns the tail.
	appended := make(chan Appended, 1)
	go func() {
		res, err := s.Append("v", []Entry{entry("k", "after")})
		if err != nil || res[0].Err != nil {
			t.Errorf("append after the open record: %v %v", err, res[0].Err)
		}
		appended <- res[0]
	}()
	pieces := streamedData(3)
	for _, p := range pieces {
		if err := w.Write(p[:10], p[10:]); err != nil {
			t.Fatal(err)
		}
	}
	whole := bytes.Join(pieces, nil)
	got := make([]byte, 1500)
	if err := w.ReadAt(got, 900); err != nil || !bytes.Equal(got, whole[900:2400]) {
		t.Fatalf("read back before commit: %v", err)
	}
	if err := w.ReadAt(got, int64(len(whole))-1000); err == nil {
		t.Fatal("a read past what was written succeeded")
	}
	if recs := readAll(t, s, "v", ShardID(0)); len(recs) != 1 {
		t.Fatalf("%d records visible while one is open, want 1", len(recs))
	}
	select {
	case <-appended:
		t.Fatal("an append went through while a record held the tail")
	case <-time.After(50 * time.Millisecond):
	}
	res, err := w.Commit("fragment-key")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Durable(); err != nil {
		t.Fatal(err)
	}
	if res.Arrival != first || res.Seq.Index != 2 {
		t.Fatalf("committed %+v, want index 2 arriving at %d", res, first)
	}
	if a := <-appended; a.Seq.Index != 3 || a.Arrival < c.Now().UnixNano() {
		t.Fatalf("the waiting append got %+v, want index 3 now", a)
	}
	check := func(s *Store) {
		t.Helper()
		recs := readAll(t, s, "v", ShardID(0))
		if len(recs) != 3 || !bytes.Equal(recs[1].Data, whole) || string(recs[2].Data) != "after" {
			t.Fatalf("records after the streamed one: %d", len(recs))
		}
		r := recs[1]
		if strings.TrimRight(r.PartitionKey, " ") != "fragment-key" || len(r.PartitionKey) != 32 || r.Producer != 77 || r.Arrival != first {
			t.Fatalf("streamed record %q producer %d arrival %d", r.PartitionKey, r.Producer, r.Arrival)
		}
	}
	check(s)
	s.Close()
	check(openTest(t, Options{Dir: dir})) // the recovery scan checks the combined CRC
}

func TestRecordWriterAbortAndLimitsLeaveTheShardClean(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, Options{Dir: dir})
	s.CreateStream(StreamConfig{Name: "v", Shards: 1, MaxRecordKiB: 4})
	w, err := s.BeginRecord("v", ShardID(0), 0, 0, 8)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bytes.Repeat([]byte("x"), 3000))
	w.Abort()
	if _, err := w.Commit("k"); err == nil {
		t.Fatal("commit after abort succeeded")
	}
	w, _ = s.BeginRecord("v", ShardID(0), 0, 0, 8)
	w.Write(bytes.Repeat([]byte("y"), 3000))
	if err := w.Write(bytes.Repeat([]byte("y"), 2000)); !errors.Is(err, ErrRecordTooBig) {
		t.Fatalf("writing past the record limit: %v, want ErrRecordTooBig", err)
	}
	w, _ = s.BeginRecord("v", ShardID(0), 0, 0, 4)
	w.Write([]byte("z"))
	if _, err := w.Commit("too long"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a key past its reservation: %v, want ErrInvalid", err)
	}
	mustAppend(t, s, "v", entry("k", "kept"))
	if _, err := s.BeginRecord("nope", ShardID(0), 0, 0, 4); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown stream: %v", err)
	}
	s.Close()
	if recs := readAll(t, openTest(t, Options{Dir: dir}), "v", ShardID(0)); len(recs) != 1 || string(recs[0].Data) != "kept" {
		t.Fatalf("after abandoned records: %d records", len(recs))
	}
}

// The child writes streamed records, a piece at a time with pauses (so a
// kill often lands inside one), and prints each once durable.
func TestCrashChildRecordWriter(t *testing.T) {
	s, out := crashChild(StreamConfig{Name: "v", Shards: 1})
	if s == nil {
		return // only runs as the child of TestKill9KeepsEveryStreamedRecord
	}
	for i := 0; ; i++ {
		w, err := s.BeginRecord("v", ShardID(0), 0, 0, 16)
		if err != nil {
			continue
		}
		for _, p := range streamedData(i) {
			w.Write(p)
			time.Sleep(200 * time.Microsecond)
		}
		res, err := w.Commit("k")
		if err == nil && w.Durable() == nil {
			fmt.Fprintf(out, "%s %d %d\n", res.ShardID, res.Seq.Index, i)
			out.Flush()
		}
	}
}

func TestKill9KeepsEveryStreamedRecord(t *testing.T) {
	crashRounds(t, "TestCrashChildRecordWriter", 3, 500*time.Millisecond, 300*time.Millisecond, 20, func(round int, acked map[string]string, s *Store) {
		got := map[string][]byte{}
		for _, r := range readAll(t, s, "v", ShardID(0)) {
			got[fmt.Sprintf("%s %d", ShardID(0), r.Seq.Index)] = r.Data
		}
		for k, v := range acked {
			i, _ := strconv.Atoi(v)
			if !bytes.Equal(got[k], bytes.Join(streamedData(i), nil)) {
				t.Fatalf("round %d: acknowledged record %s (#%d) lost or damaged", round, k, i)
			}
		}
		t.Logf("round %d: %d acknowledged streamed records, all present (%d in the log)", round, len(acked), len(got))
	})
}
