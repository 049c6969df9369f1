package streamstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestHeadersMatchFullReads lists records by arrival and by producer time
// and checks each header against the record read in full, over a mix of
// large records (one read per header) and small ones (many per window),
// across segment rolls and a reopen.
func TestHeadersMatchFullReads(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := openTest(t, Options{Dir: dir, Now: clk.Now, SegmentBytes: 1 << 20})
	if _, err := s.CreateStream(StreamConfig{Name: "video/cam", Shards: 1, MaxRecordKiB: 50 << 10}); err != nil {
		t.Fatal(err)
	}
	base := clk.Now()
	for i := range 60 {
		size := 10 + i*7
		if i%3 == 0 {
			size = 300<<10 + i // larger than the header window and the index spacing
		}
		key := fmt.Sprintf("k%d", i)
		if i == 7 {
			key = strings.Repeat("long-key", 700) // longer than the header window
		}
		// Producer time runs backwards for the second half: a clock reset.
		producer := base.Add(time.Duration(i) * time.Second)
		if i >= 30 {
			producer = base.Add(-time.Hour + time.Duration(i)*time.Second)
		}
		mustAppend(t, s, "video/cam", Entry{PartitionKey: key, Data: bytes.Repeat([]byte{byte(i)}, size), Producer: producer.UnixNano()})
		clk.Add(time.Second)
	}
	check := func(s *Store) {
		all := readAll(t, s, "video/cam", ShardID(0))
		if len(all) != 60 {
			t.Fatalf("read %d records", len(all))
		}
		list := func(kind TimeKind, from, to time.Time) []RecordHeader {
			var hs []RecordHeader
			if err := s.Headers("video/cam", ShardID(0), kind, from.UnixNano(), to.UnixNano(), func(h RecordHeader) bool {
				hs = append(hs, h)
				return true
			}); err != nil {
				t.Fatal(err)
			}
			return hs
		}
		match := func(hs []RecordHeader, want func(r Record) bool) {
			t.Helper()
			var exp []Record
			for _, r := range all {
				if want(r) {
					exp = append(exp, r)
				}
			}
			if len(hs) != len(exp) {
				t.Fatalf("listed %d, want %d", len(hs), len(exp))
			}
			for i, h := range hs {
				r := exp[i]
				if h.Seq != r.Seq || h.PartitionKey != r.PartitionKey || h.Size != len(r.Data) || h.Arrival != r.Arrival || h.Producer != r.Producer {
					t.Fatalf("header %d = %+v, record has seq %v key %.10q size %d", i, h, r.Seq, r.PartitionKey, len(r.Data))
				}
			}
		}
		from, to := base.Add(10*time.Second), base.Add(40*time.Second)
		match(list(ArrivalTime, from, to), func(r Record) bool {
			return r.Arrival >= from.UnixNano() && r.Arrival <= to.UnixNano()
		})
		match(list(ArrivalTime, base.Add(-time.Hour), base.Add(time.Hour)), func(Record) bool { return true })
		pf, pt := base.Add(-time.Hour+35*time.Second), base.Add(5*time.Second)
		match(list(ProducerTime, pf, pt), func(r Record) bool {
			return r.Producer >= pf.UnixNano() && r.Producer <= pt.UnixNano()
		})
		if hs := list(ArrivalTime, to, from); len(hs) != 0 {
			t.Fatalf("reversed range listed %d", len(hs))
		}
		// By index: the newest records.
		var tail []RecordHeader
		s.HeadersFrom("video/cam", ShardID(0), all[55].Seq.Index, func(h RecordHeader) bool { tail = append(tail, h); return true })
		if len(tail) != 5 || tail[0].Seq != all[55].Seq || tail[4].Seq != all[59].Seq || tail[2].PartitionKey != all[57].PartitionKey {
			t.Fatalf("HeadersFrom the 56th record listed %d: %v", len(tail), tail)
		}
		// A record's data, read in ranges.
		for _, r := range []Record{all[0], all[7], all[59]} {
			h, data, err := s.RecordData("video/cam", ShardID(0), r.Seq.Index)
			if err != nil || h.Seq != r.Seq || h.PartitionKey != r.PartitionKey || data.Size() != int64(len(r.Data)) {
				t.Fatalf("RecordData(%v): %v, header %+v", r.Seq, err, h)
			}
			part := make([]byte, min(100, len(r.Data)-3))
			if _, err := data.ReadAt(part, 3); err != nil || !bytes.Equal(part, r.Data[3:3+len(part)]) {
				t.Fatalf("RecordData(%v) read at 3: %v", r.Seq, err)
			}
		}
		if _, _, err := s.RecordData("video/cam", ShardID(0), all[59].Seq.Index+1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("RecordData past the end: %v", err)
		}
		// Whole records into one buffer, grown once and then reused.
		var buf []byte
		for _, r := range []Record{all[3], all[0], all[7], all[59]} {
			before := cap(buf)
			var got Record
			var err error
			got, buf, err = s.ReadRecord("video/cam", ShardID(0), r.Seq.Index, buf)
			if err != nil || got.Seq != r.Seq || got.PartitionKey != r.PartitionKey || !bytes.Equal(got.Data, r.Data) || got.Arrival != r.Arrival || got.Producer != r.Producer {
				t.Fatalf("ReadRecord(%v): %v, got seq %v key %.10q size %d", r.Seq, err, got.Seq, got.PartitionKey, len(got.Data))
			}
			if before >= len(buf) && cap(buf) != before {
				t.Fatalf("ReadRecord(%v) grew a buffer of %d bytes for a %d-byte frame", r.Seq, before, len(buf))
			}
		}
		if _, _, err := s.ReadRecord("video/cam", ShardID(0), all[59].Seq.Index+1, buf); !errors.Is(err, ErrNotFound) {
			t.Fatalf("ReadRecord past the end: %v", err)
		}
		// Stopping early stops.
		n := 0
		s.Headers("video/cam", ShardID(0), ArrivalTime, 0, base.Add(time.Hour).UnixNano(), func(RecordHeader) bool { n++; return n < 3 })
		if n != 3 {
			t.Fatalf("fn called %d times after asking to stop at 3", n)
		}
	}
	check(s)
	s.Close()
	s = openTest(t, Options{Dir: dir, Now: clk.Now, SegmentBytes: 1 << 20})
	check(s)

	// A flipped bit in a record's data fails its CRC: ReadRecord says so
	// instead of handing the bytes over.
	h, _, err := s.RecordData("video/cam", ShardID(0), 8)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	var seg string
	for _, f := range segmentFiles(t, dir) {
		if b, _ := os.ReadFile(f); int64(len(b)) > h.dataAt && bytes.Equal(b[h.dataAt:h.dataAt+int64(h.Size)], bytes.Repeat([]byte{7}, h.Size)) {
			seg = f
		}
	}
	if seg == "" {
		t.Fatal("no segment holds record 8's data at its offset")
	}
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0x55}, h.dataAt+int64(h.Size)/2)
	f.Close()
	s = openTest(t, Options{Dir: dir, Now: clk.Now, SegmentBytes: 1 << 20})
	if _, _, err := s.ReadRecord("video/cam", ShardID(0), 8, nil); !errors.Is(err, errBadFrame) {
		t.Fatalf("ReadRecord of a record with a flipped byte: %v, want a checksum error", err)
	}
}

func TestNamespacesKeepVideoAndDataStreamsApart(t *testing.T) {
	s := openTest(t, Options{})
	for _, name := range []string{"cam", "video/cam"} {
		if _, err := s.CreateStream(StreamConfig{Name: name, Shards: 1}); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, s, "video/cam", entry("k", "frag"))
	if got := readAll(t, s, "cam", ShardID(0)); len(got) != 0 {
		t.Fatalf("data stream sees %d records of the video stream", len(got))
	}
	if Namespace("video/cam") != "video" || Namespace("cam") != "" {
		t.Fatal("Namespace")
	}
	for _, bad := range []string{"Video/cam", "video/", "/cam", "a/b/c", "video/c m"} {
		if _, err := s.CreateStream(StreamConfig{Name: bad, Shards: 1}); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateStream(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestLiveOnlyStreamKeepsMinutes(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	info, err := s.CreateStream(StreamConfig{Name: "video/live", Shards: 1, LiveOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if info.RetentionHours != 0 || info.Retention() != LiveRetention {
		t.Fatalf("retention %d h / %v", info.RetentionHours, info.Retention())
	}
	for range 20 {
		mustAppend(t, s, "video/live", entry("k", "fragment"))
		clk.Add(30 * time.Second)
		s.EnforceRetention()
	}
	recs := readAll(t, s, "video/live", ShardID(0))
	if len(recs) == 0 || len(recs) == 20 {
		t.Fatalf("kept %d of 20 records over 10 minutes", len(recs))
	}
	oldest := time.Unix(0, recs[0].Arrival)
	if age := clk.Now().Sub(oldest); age > LiveRetention+LiveRetention/4+30*time.Second {
		t.Fatalf("oldest kept record is %v old", age)
	}
}

func TestRequestedArrivalIsKeptButNeverLaterThanNowOrEarlierThanThePrevious(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Now: clk.Now})
	s.CreateStream(StreamConfig{Name: "video/a", Shards: 1})
	now := clk.Now()
	for _, a := range []time.Time{now.Add(-2 * time.Second), now.Add(-3 * time.Second), now.Add(time.Hour), {}} {
		e := entry("k", "d")
		if !a.IsZero() {
			e.Arrival = a.UnixNano()
		}
		mustAppend(t, s, "video/a", e)
	}
	recs := readAll(t, s, "video/a", ShardID(0))
	want := []time.Time{now.Add(-2 * time.Second), now.Add(-2 * time.Second), now, now}
	for i, r := range recs {
		if r.Arrival != want[i].UnixNano() {
			t.Errorf("record %d arrival %v, want %v", i, time.Unix(0, r.Arrival).UTC(), want[i])
		}
	}
}

// A crash (a copy of the open store's files) keeps large video-like records
// listable by header after recovery.
func TestHeadersAfterCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := openTest(t, Options{Dir: dir, Now: clk.Now})
	s.CreateStream(StreamConfig{Name: "video/yard", Shards: 1, MaxRecordKiB: 50 << 10})
	for i := range 3 {
		clk.Add(2 * time.Second)
		mustAppend(t, s, "video/yard", Entry{PartitionKey: "f1 2000000 700 50 k 1", Data: bytes.Repeat([]byte{byte(i)}, 200<<10),
			Producer: clk.Now().UnixNano(), Arrival: clk.Now().Add(-2 * time.Second).UnixNano()})
	}
	crashed := t.TempDir()
	copyDir(t, dir, crashed)
	r := openTest(t, Options{Dir: crashed, Now: clk.Now})
	n := 0
	err := r.Headers("video/yard", ShardID(0), ArrivalTime, -1<<63, 1<<63-1, func(RecordHeader) bool { n++; return true })
	if err != nil || n != 3 {
		t.Fatalf("listed %d after recovery (%v); records readable: %d", n, err, len(readAll(t, r, "video/yard", ShardID(0))))
	}
}

// After a restart the active segment is empty; a seek by time must still
// find records in the sealed ones (it once skipped them all).
func TestSeekByTimeAfterReopen(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := openTest(t, Options{Dir: dir, Now: clk.Now})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1})
	start := clk.Now()
	for range 5 {
		mustAppend(t, s, "s", entry("k", "v"))
		clk.Add(time.Second)
	}
	s.Close()
	r := openTest(t, Options{Dir: dir, Now: clk.Now})
	at, err := r.Seek("s", ShardID(0), Position{Type: AtTimestamp, Time: start.Add(2 * time.Second)})
	if err != nil || at != 3 {
		t.Fatalf("seek to the third record's time after reopen: index %d, %v", at, err)
	}
}

// A sealed segment's headers are read once and kept: the second listing
// answers from memory with the same headers, the active segment from the file.
func TestSealedSegmentHeadersAreCached(t *testing.T) {
	clk := newClock()
	s := openTest(t, Options{Dir: t.TempDir(), Now: clk.Now, SegmentBytes: 64 << 10})
	if _, err := s.CreateStream(StreamConfig{Name: "video/c", Shards: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		mustAppend(t, s, "video/c", Entry{PartitionKey: fmt.Sprint("f", i), Data: bytes.Repeat([]byte{1}, 10<<10)})
		clk.Add(time.Second)
	}
	list := func() []RecordHeader {
		var hs []RecordHeader
		if err := s.HeadersFrom("video/c", ShardID(0), 1, func(h RecordHeader) bool { hs = append(hs, h); return true }); err != nil {
			t.Fatal(err)
		}
		return hs
	}
	first := list()
	_, log, _, _ := s.lookup("video/c", ShardID(0))
	cached := 0
	for _, g := range log.segments {
		if g.sealed && g.headers.Load() != nil {
			cached++
		}
	}
	if cached == 0 || len(log.segments) < 3 {
		t.Fatalf("%d of %d segments have cached headers", cached, len(log.segments))
	}
	if second := list(); len(first) != 40 || !reflect.DeepEqual(first, second) {
		t.Fatalf("listings differ: %d and %d headers", len(first), len(second))
	}
}
