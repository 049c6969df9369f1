package streamstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"sync/atomic"
	"syscall"
)

// RecordWriter appends one record whose data is written as it is produced
// (a video fragment, frame by frame), so its producer never holds the whole
// record in memory. The record owns the shard's tail from BeginRecord to
// Commit or Abort: other appends to the shard wait for it. A video stream
// has one shard and one publisher, so nothing waits in practice.
//
// The frame's head is written last, at Commit. Until then the bytes after
// the shard's last frame start with zeros, which are not a frame, so a crash
// leaves a tail that recovery cuts, as it cuts any torn write; a head that
// reached the disk without all the data fails the frame's CRC.
type RecordWriter struct {
	sh       *shardLog
	shardID  string
	g        *segment
	at       int64        // file offset of the frame
	head     []byte       // the frame's head, key padded to its reservation
	keyAt    int          // where the key starts in head
	limit    int64        // the stream's record limit
	size     atomic.Int64 // data bytes written (ReadAt may run beside Write)
	crc      uint32       // CRC32C of the data written
	index    uint64
	arrival  int64
	producer int64
	closed   bool
	err      error // the first failure: the record is abandoned
}

// BeginRecord opens a record on a shard. Its arrival time follows Entry's
// rules (arrival, when given, may be earlier than now, never later) and is
// fixed now, as is its index. keyReserve is the most bytes its key may take:
// the key is only known at Commit, and its place is reserved here.
func (s *Store) BeginRecord(name, shardID string, producer, arrival int64, keyReserve int) (*RecordWriter, error) {
	if keyReserve < 0 || keyReserve > 1024 {
		return nil, fmt.Errorf("key reservation %d: %w", keyReserve, ErrInvalid)
	}
	st, sh, _, err := s.lookup(name, shardID)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	limit, budget := int64(st.info.MaxRecordKiB)<<10, st.info.DiskBudget
	s.mu.RUnlock()
	if err := s.checkBudget(st, budget); err != nil {
		return nil, err
	}
	sh.tail.Lock()
	sh.mu.Lock()
	g, now, err := sh.activeLocked(s.opts.Now)
	if err != nil {
		sh.mu.Unlock()
		sh.tail.Unlock()
		return nil, err
	}
	sh.open = true
	w := &RecordWriter{sh: sh, shardID: shardID, g: g, at: g.size, limit: limit, index: sh.next,
		arrival: arrivalAt(sh.lastArrival, arrival, now), producer: producer}
	sh.mu.Unlock()
	w.head = appendFrameHead(nil, w.index, w.arrival, producer, strings.Repeat(" ", keyReserve))
	w.keyAt = len(w.head) - keyReserve
	return w, nil
}

// dataAt is the file offset of the record's data.
func (w *RecordWriter) dataAt() int64 { return w.at + int64(len(w.head)) }

// Write appends pieces to the record's data. It is not durable, nor
// readable by others, until Commit. After an error the record is
// abandoned (as by Abort) and every call fails.
func (w *RecordWriter) Write(pieces ...[]byte) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("record already committed")
	}
	n, size := int64(0), w.size.Load()
	for _, p := range pieces {
		n += int64(len(p))
	}
	if size+n > w.limit || int64(len(w.head))-frameHeader+size+n > maxFrame {
		return w.fail(ErrRecordTooBig)
	}
	if _, err := w.g.file.WriteVAt(pieces, w.dataAt()+size); err != nil {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return w.fail(fmt.Errorf("%w: %v", ErrNoSpace, err))
		}
		return w.fail(fmt.Errorf("%w: write: %v", ErrFaulted, err))
	}
	for _, p := range pieces {
		w.crc = crc32.Update(w.crc, castagnoli, p)
	}
	w.size.Add(n)
	w.sh.addBytes(n)
	return nil
}

// Size is how many data bytes have been written.
func (w *RecordWriter) Size() int64 { return w.size.Load() }

// ReadAt reads data the record holds, from offset off of its data. It
// works before Commit (a live viewer joining mid-fragment reads what was
// written) and after, until retention deletes the segment.
func (w *RecordWriter) ReadAt(p []byte, off int64) error {
	if size := w.size.Load(); off < 0 || off+int64(len(p)) > size {
		return fmt.Errorf("read of %d bytes at %d: the record holds %d", len(p), off, size)
	}
	_, err := w.g.file.ReadAt(p, w.dataAt()+off)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// Commit writes the record's head with its key (at most the reserved
// length; it is padded with spaces to it) and appends the record to the
// shard: from now on it is listed and, under the fsync policies that do not
// wait, readable. Durable waits for it to reach the disk.
func (w *RecordWriter) Commit(key string) (Appended, error) {
	if w.err != nil {
		return Appended{}, w.err
	}
	if w.closed {
		return Appended{}, errors.New("record already committed")
	}
	if reserve := len(w.head) - w.keyAt; len(key) > reserve {
		return Appended{}, w.fail(fmt.Errorf("key of %d bytes in a reservation of %d: %w", len(key), reserve, ErrInvalid))
	}
	copy(w.head[w.keyAt:], key)
	size := w.size.Load()
	crc := crcCombine(crc32.Checksum(w.head[frameHeader:], castagnoli), w.crc, size)
	binary.BigEndian.PutUint32(w.head, uint32(int64(len(w.head)-frameHeader)+size))
	binary.BigEndian.PutUint32(w.head[4:], crc)
	if _, err := w.g.file.WriteAt(w.head, w.at); err != nil {
		return Appended{}, w.fail(fmt.Errorf("%w: write: %v", ErrFaulted, err))
	}
	sh, g := w.sh, w.g
	sh.mu.Lock()
	var index []indexEntry
	if w.at-g.lastIndexed() >= indexEvery {
		index = []indexEntry{{w.index, w.at, w.arrival}}
	}
	producers := g.producers
	producers.add(w.producer)
	// The data was counted on disk as it was written; the head is new.
	sh.addedLocked(g, 1, int64(len(w.head))+size, int64(len(w.head)), index, producers, w.arrival, w.arrival)
	sh.open = false
	sh.mu.Unlock()
	sh.tail.Unlock()
	w.closed = true
	return Appended{ShardID: w.shardID, Seq: Seq{sh.gen, sh.num, w.index}, Arrival: w.arrival}, nil
}

// Durable returns once the committed record is on stable storage under the
// store's fsync policy (at once for the policies that do not wait).
func (w *RecordWriter) Durable() error {
	if !w.closed || w.err != nil {
		return errors.New("record not committed")
	}
	if w.sh.opts.Fsync != FsyncAlways {
		return nil
	}
	return w.sh.waitDurable(w.index + 1)
}

// Abort abandons an uncommitted record: its bytes are cut and the shard's
// tail is free again. Aborting a committed or failed record does nothing.
func (w *RecordWriter) Abort() {
	if w.closed || w.err != nil {
		return
	}
	w.fail(errors.New("record aborted"))
}

// fail abandons the record after err: the written bytes are cut (a fault
// when even that fails) and the tail released.
func (w *RecordWriter) fail(err error) error {
	sh := w.sh
	sh.mu.Lock()
	if terr := w.g.file.Truncate(w.at); terr != nil && sh.fault == nil {
		sh.fault = fmt.Errorf("cutting an abandoned record: %v", terr)
	}
	sh.open = false
	sh.mu.Unlock()
	sh.addBytes(-w.size.Load())
	sh.tail.Unlock()
	w.err = err
	return err
}
