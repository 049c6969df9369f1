package streamstore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamgate/streamgate/streamstore/vfs"
)

// copyDir copies a data directory (files only, recursively).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "streams", "*", "*", "*.log"))
	return files
}

// Cutting the tail segment at every byte offset of its last records must
// recover exactly the records that lie wholly before the cut.
func TestRecoveryTruncatedTailAtEveryOffset(t *testing.T) {
	src := t.TempDir()
	s := openTest(t, Options{Dir: src})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1})
	const n = 6
	for i := range n {
		mustAppend(t, s, "s", entry(fmt.Sprint("key", i), strings.Repeat(fmt.Sprint(i), 10+i)))
	}
	s.Close()
	segs := segmentFiles(t, src)
	if len(segs) != 1 {
		t.Fatalf("%d segments", len(segs))
	}
	whole, _ := os.ReadFile(segs[0])
	// Frame boundaries, to know how many records a cut keeps.
	var ends []int
	for off := 0; off < len(whole); {
		f, err := decodeFrame(whole[off:])
		if err != nil {
			t.Fatal(err)
		}
		off += f.size
		ends = append(ends, off)
	}
	for cut := ends[n-4]; cut <= len(whole); cut++ {
		dir := t.TempDir()
		copyDir(t, src, dir)
		seg := segmentFiles(t, dir)[0]
		if err := os.Truncate(seg, int64(cut)); err != nil {
			t.Fatal(err)
		}
		want := 0
		for want < n && ends[want] <= cut {
			want++
		}
		s2, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		recs := readAll(t, s2, "s", ShardID(0))
		if len(recs) != want {
			t.Fatalf("cut at %d: recovered %d records, want %d", cut, len(recs), want)
		}
		for i, r := range recs {
			if r.PartitionKey != fmt.Sprint("key", i) || string(r.Data) != strings.Repeat(fmt.Sprint(i), 10+i) {
				t.Fatalf("cut at %d: record %d corrupt", cut, i)
			}
		}
		// The log continues after the repaired tail.
		res := mustAppend(t, s2, "s", entry("after", "x"))
		if res[0].Seq.Index != uint64(want)+1 {
			t.Fatalf("cut at %d: next index %d, want %d", cut, res[0].Seq.Index, want)
		}
		s2.Close()
	}
}

func TestRecoveryCorruptTailAndMissingIndex(t *testing.T) {
	src := t.TempDir()
	s := openTest(t, Options{Dir: src})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1})
	for i := range 5 {
		mustAppend(t, s, "s", entry("k", fmt.Sprint("v", i)))
	}
	s.Close()
	// Reopen twice so the first segment is sealed with an index file.
	s = openTest(t, Options{Dir: src})
	mustAppend(t, s, "s", entry("k", "v5"))
	s.Close()
	segs := segmentFiles(t, src)
	if len(segs) != 2 {
		t.Fatalf("%d segments", len(segs))
	}
	// Flip a byte in the last record of the tail, and damage the sealed index.
	b, _ := os.ReadFile(segs[1])
	b[len(b)-1] ^= 0xff
	os.WriteFile(segs[1], b, 0o644)
	idx := strings.TrimSuffix(segs[0], ".log") + ".idx"
	os.WriteFile(idx, []byte("garbage"), 0o644)
	s = openTest(t, Options{Dir: src})
	recs := readAll(t, s, "s", ShardID(0))
	if len(recs) != 5 {
		t.Fatalf("recovered %d records, want the 5 intact ones", len(recs))
	}
	if got, _ := os.ReadFile(idx); string(got) == "garbage" {
		t.Fatal("damaged index was not rebuilt")
	}
}

func TestENOSPCThrottlesAndRecovers(t *testing.T) {
	ffs := vfs.NewFaultFS(vfs.OS)
	dir := t.TempDir()
	s := openTest(t, Options{Dir: dir, FS: ffs})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1})
	mustAppend(t, s, "s", entry("k", "before"))
	ffs.SetFault(func(op vfs.Op, name string, n int) error {
		if op == vfs.OpWrite && strings.HasSuffix(name, ".log") {
			return vfs.ENOSPC
		}
		return nil
	})
	res, err := s.Append("s", []Entry{entry("k", "lost")})
	if err != nil || !errors.Is(res[0].Err, ErrNoSpace) {
		t.Fatalf("append on a full disk: %v / %v, want ErrNoSpace", err, res[0].Err)
	}
	ffs.SetFault(nil) // space returns
	mustAppend(t, s, "s", entry("k", "after"))
	check := func(s *Store) {
		recs := readAll(t, s, "s", ShardID(0))
		if len(recs) != 2 || string(recs[0].Data) != "before" || string(recs[1].Data) != "after" {
			t.Fatalf("records %v", recs)
		}
	}
	check(s)
	s.Close()
	check(openTest(t, Options{Dir: dir}))
}

func TestFailedFsyncFaultsShardForGood(t *testing.T) {
	for _, c := range []struct {
		name string
		op   vfs.Op
	}{{"fsync EIO", vfs.OpSync}, {"write EIO", vfs.OpWrite}} {
		t.Run(c.name, func(t *testing.T) {
			ffs := vfs.NewFaultFS(vfs.OS)
			dir := t.TempDir()
			s := openTest(t, Options{Dir: dir, FS: ffs})
			s.CreateStream(StreamConfig{Name: "s", Shards: 1})
			mustAppend(t, s, "s", entry("k", "durable"))
			ffs.SetFault(func(op vfs.Op, name string, n int) error {
				if op == c.op && strings.HasSuffix(name, ".log") {
					return vfs.EIO
				}
				return nil
			})
			res, _ := s.Append("s", []Entry{entry("k", "x")})
			if !errors.Is(res[0].Err, ErrFaulted) {
				t.Fatalf("append: %v, want ErrFaulted", res[0].Err)
			}
			ffs.SetFault(nil)
			// Never retried-and-ignored: the shard stays faulted.
			res, _ = s.Append("s", []Entry{entry("k", "y")})
			if !errors.Is(res[0].Err, ErrFaulted) {
				t.Fatalf("append after fault: %v, want ErrFaulted", res[0].Err)
			}
			s.Close()
			s2 := openTest(t, Options{Dir: dir})
			recs := readAll(t, s2, "s", ShardID(0))
			if len(recs) == 0 || string(recs[0].Data) != "durable" {
				t.Fatalf("after restart: %v", recs)
			}
			mustAppend(t, s2, "s", entry("k", "healthy again"))
		})
	}
}

// crashChildEnv makes the test binary a writer that prints each acknowledged
// record, so the parent can kill -9 it and check every one survived.
const crashChildEnv = "STREAMSTORE_CRASH_CHILD_DIR"

// crashChild opens the store of a crash child (nil when the test binary
// is not running as one) with stream cfg, and the writer of its output.
func crashChild(cfg StreamConfig) (*Store, *bufio.Writer) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		return nil, nil
	}
	s, err := Open(Options{Dir: dir, SegmentBytes: 256 << 10})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	s.CreateStream(cfg)
	return s, bufio.NewWriter(os.Stdout)
}

func TestCrashChildWriter(t *testing.T) {
	s, out := crashChild(StreamConfig{Name: "s", Shards: 3})
	if s == nil {
		return // only runs as the child of TestKill9KeepsEveryAcknowledgedRecord
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				batch := make([]Entry, 1+i%20)
				for k := range batch {
					batch[k] = entry(fmt.Sprintf("w%d-%d-%d", w, i, k), fmt.Sprintf("data-%d-%d-%d", w, i, k))
				}
				res, err := s.Append("s", batch)
				if err != nil {
					continue
				}
				mu.Lock()
				for k, r := range res {
					if r.Err == nil {
						fmt.Fprintf(out, "%s %d %s\n", r.ShardID, r.Seq.Index, batch[k].Data)
					}
				}
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestKill9KeepsEveryAcknowledgedRecord(t *testing.T) {
	crashRounds(t, "TestCrashChildWriter", 2, 800*time.Millisecond, 400*time.Millisecond, 100, func(round int, acked map[string]string, s *Store) {
		got := map[string]string{}
		for _, id := range []string{ShardID(0), ShardID(1), ShardID(2)} {
			for _, r := range readAll(t, s, "s", id) {
				got[fmt.Sprintf("%s %d", id, r.Seq.Index)] = string(r.Data)
			}
		}
		for k, v := range acked {
			if got[k] != v {
				t.Fatalf("round %d: acknowledged record %s = %q lost (got %q)", round, k, v, got[k])
			}
		}
		t.Logf("round %d: %d acknowledged records, all present (%d in the log)", round, len(acked), len(got))
	})
}

// crashRounds runs the writer child test child on one data directory
// rounds times, killing it with SIGKILL after first, first+step, ...;
// after each kill it reopens the store and hands check what the child
// acknowledged (at least minAcked records).
func crashRounds(t *testing.T, child string, rounds int, first, step time.Duration, minAcked int, check func(round int, acked map[string]string, s *Store)) {
	if testing.Short() {
		t.Skip("spawns a writer process; -short")
	}
	dir := t.TempDir()
	for round := range rounds {
		acked := killCrashChild(t, child, dir, first+time.Duration(round)*step)
		if len(acked) < minAcked {
			t.Fatalf("round %d: only %d acknowledged records before the kill", round, len(acked))
		}
		s, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		check(round, acked, s)
		s.Close()
	}
}

// killCrashChild runs the test binary as the writer child test child on
// dir, kills it with SIGKILL after d, and returns what it acknowledged:
// "shard index" to the line's third field.
func killCrashChild(t *testing.T, child, dir string, d time.Duration) map[string]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				return acked
			}
			f := strings.Fields(l)
			if len(f) == 3 {
				acked[f[0]+" "+f[1]] = f[2]
			}
		case <-deadline:
			cmd.Process.Signal(syscall.SIGKILL)
			deadline = nil
		}
	}
}

func FuzzScanSegment(f *testing.F) {
	var seed []byte
	for i := range 3 {
		seed = appendFrame(seed, uint64(i), int64(i), 0, "key", []byte("data"))
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "seg")
		os.WriteFile(p, b, 0o644)
		file, err := vfs.OS.OpenFile(p, os.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		res, err := scanSegment(file, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if res.size > int64(len(b)) {
			t.Fatalf("valid prefix %d longer than the file %d", res.size, len(b))
		}
		// The valid prefix decodes frame by frame to exactly count records.
		var n uint64
		for off := int64(0); off < res.size; n++ {
			fr, err := decodeFrame(b[off:res.size])
			if err != nil {
				t.Fatalf("valid prefix does not decode at %d: %v", off, err)
			}
			off += int64(fr.size)
		}
		if n != res.count {
			t.Fatalf("prefix holds %d frames, scan counted %d", n, res.count)
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	g := &segment{base: 10, size: 1 << 20, count: 100, firstTime: 1, lastTime: 2,
		index: []indexEntry{{10, 0, 1}, {50, 70000, 2}}}
	f.Add(encodeIndex(g))
	f.Add([]byte("SGIX"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := decodeIndex(b, 10)
		if err != nil {
			return
		}
		for i, e := range res.index {
			if e.offset >= res.size || e.index >= 10+res.count || (i > 0 && e.offset <= res.index[i-1].offset) {
				t.Fatalf("accepted an inconsistent index entry %+v", e)
			}
		}
	})
}

func FuzzParseSeq(f *testing.F) {
	f.Add(Seq{1, 2, 3}.String())
	f.Add("0")
	f.Fuzz(func(t *testing.T, s string) {
		seq, err := ParseSeq(s)
		if err == nil && seq.String() != s {
			t.Fatalf("ParseSeq(%q) round-trips to %q", s, seq.String())
		}
	})
}

// A big record written from the caller's slice, and a streamed record of
// pieces, are stored whole; a disk that fills in the middle of a vectored
// write leaves no trace of it; a record of more pieces than one system
// call takes is written whole.
func TestPiecesAreStoredWhole(t *testing.T) {
	ffs := vfs.NewFaultFS(vfs.OS)
	dir := t.TempDir()
	s := openTest(t, Options{Dir: dir, FS: ffs})
	s.CreateStream(StreamConfig{Name: "s", Shards: 1})
	big := bytes.Repeat([]byte("0123456789abcdef"), 9000) // 144 KB: past bigRecord
	pieces := [][]byte{[]byte("init"), {}, big, []byte("tail")}
	whole := bytes.Join(pieces, nil)
	stream := func(pieces ...[]byte) error {
		w, err := s.BeginRecord("s", ShardID(0), 0, 0, 4)
		if err != nil {
			return err
		}
		if err := w.Write(pieces...); err != nil {
			return err
		}
		if _, err := w.Commit("k"); err != nil {
			return err
		}
		return w.Durable()
	}
	mustAppend(t, s, "s", entry("k", "small"), Entry{PartitionKey: "k", Data: whole}, entry("k", "after"))
	if err := stream(pieces...); err != nil {
		t.Fatal(err)
	}
	ffs.SetFault(func(op vfs.Op, name string, n int) error {
		if op == vfs.OpWrite && strings.HasSuffix(name, ".log") {
			return vfs.ENOSPC
		}
		return nil
	})
	if res, err := s.Append("s", []Entry{{PartitionKey: "k", Data: whole}}); err != nil || !errors.Is(res[0].Err, ErrNoSpace) {
		t.Fatalf("a big record on a full disk: %v / %v, want ErrNoSpace", err, res[0].Err)
	}
	if err := stream(pieces...); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("a streamed record on a full disk: %v, want ErrNoSpace", err)
	}
	ffs.SetFault(nil)
	// More pieces than one pwritev takes (IOV_MAX 1024).
	many := make([][]byte, 2500)
	for i := range many {
		many[i] = []byte{byte(i), byte(i >> 8), 7}
	}
	if err := stream(many...); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		recs := readAll(t, s, "s", ShardID(0))
		want := []string{"small", string(whole), "after", string(whole), string(bytes.Join(many, nil))}
		if len(recs) != len(want) {
			t.Fatalf("%d records, want %d", len(recs), len(want))
		}
		for i, r := range recs {
			if string(r.Data) != want[i] {
				t.Fatalf("record %d: %d bytes, want %d", i, len(r.Data), len(want[i]))
			}
		}
	}
	check(s)
	s.Close()
	check(openTest(t, Options{Dir: dir}))
}
