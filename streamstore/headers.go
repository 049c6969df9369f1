package streamstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/streamgate/streamgate/streamstore/vfs"
)

// RecordHeader is a record without its data: what a listing needs. Reading
// headers costs one small read per record however large the records are, so
// listing video fragments does not read the video.
type RecordHeader struct {
	Seq          Seq
	PartitionKey string
	Size         int   // bytes of data
	Arrival      int64 // Unix ns
	Producer     int64 // Unix ns, 0 when unknown

	dataAt int64 // file offset of the data, for RecordData
	at     int64 // file offset of the frame
}

// TimeKind selects which timestamp a time search uses.
type TimeKind int

const (
	ArrivalTime  TimeKind = iota // server time: ordered within a shard, found through the index
	ProducerTime                 // producer time: unordered, found through each segment's range
)

// Headers calls fn with the header of each visible record whose kind of time
// is in [from, to], in sequence order, until fn returns false.
func (s *Store) Headers(name, shardID string, kind TimeKind, from, to int64, fn func(RecordHeader) bool) error {
	_, log, _, err := s.lookup(name, shardID)
	if err != nil || from > to {
		return err
	}
	views := log.snapshot()
	k := 0
	if kind == ArrivalTime {
		k = segmentEndingAtOrAfter(views, from)
	}
	start := func(v segView) (int64, bool, bool) {
		if kind == ProducerTime {
			return 0, v.producers.overlaps(from, to), true
		}
		if v.first > to {
			return 0, false, false
		}
		return offsetBefore(v.index, from), true, true
	}
	pick := func(h RecordHeader) verdict {
		t := h.Arrival
		if kind == ProducerTime {
			t = h.Producer
		}
		switch {
		case kind == ArrivalTime && t > to:
			return stopScan
		case t < from || t > to:
			return skipRecord
		}
		return takeRecord
	}
	return log.walkHeaders(views[k:], start, pick, fn)
}

// verdict is what a header walk does with one record.
type verdict int

const (
	skipRecord verdict = iota
	takeRecord
	stopScan
)

// walkHeaders scans the visible records of segments in order. start gives a
// segment's scan offset, whether to scan it, and whether to go on to later
// segments; pick decides each record; fn gets the records taken until it
// returns false.
func (sh *shardLog) walkHeaders(views []segView, start func(segView) (off int64, scan, more bool), pick func(RecordHeader) verdict, fn func(RecordHeader) bool) error {
	vis := sh.visible.Load()
	for _, v := range views {
		if v.count == 0 || v.base >= vis {
			continue
		}
		off, scan, more := start(v)
		if !more {
			return nil
		}
		if !scan {
			continue
		}
		stop := false
		err := v.scanHeaders(off, func(h RecordHeader) bool {
			if h.Seq.Index >= vis {
				stop = true
				return false
			}
			switch pick(h) {
			case stopScan:
				stop = true
				return false
			case skipRecord:
				return true
			}
			h.Seq.Gen, h.Seq.Shard = sh.gen, sh.num
			stop = !fn(h)
			return !stop
		})
		if err != nil || stop {
			return err
		}
	}
	return nil
}

// scanHeaders reads headers through a window that adapts to the frames: a
// wide one takes many small frames' headers in one read; after a large frame
// a narrow one reads just the next header, not the data behind it.
const (
	wideWindow   = 64 << 10
	narrowWindow = 512
)

// scanHeaders calls fn with the header of each frame of a segment from offset
// off until fn returns false. Only headers are read; the CRC, which covers
// the data, is checked by the reads that return data.
func scanHeaders(v segView, off int64, fn func(RecordHeader) bool) error {
	buf := make([]byte, wideWindow)
	window := int64(wideWindow)
	var win []byte   // bytes read at winOff
	var winOff int64 // file offset of win[0]
	for off < v.size {
		rel := off - winOff
		atEnd := winOff+int64(len(win)) >= v.size
		if win == nil || rel < 0 || rel >= int64(len(win)) || (rel+frameHeader+24+binary.MaxVarintLen64 > int64(len(win)) && !atEnd) {
			n := min(window, v.size-off)
			m, err := v.file.ReadAt(buf[:n], off)
			if err != nil && !(errors.Is(err, io.EOF) && int64(m) == n) {
				return err
			}
			win, winOff, rel = buf[:m], off, 0
		}
		h, keyStart, keyLen, err := decodeHeader(win[rel:])
		if err != nil {
			return fmt.Errorf("segment %d offset %d: %w", v.base, off, err)
		}
		if k := int(rel) + keyStart; k+keyLen <= len(win) {
			h.PartitionKey = string(win[k : k+keyLen])
		} else {
			// A key longer than the window: read it on its own.
			key := make([]byte, keyLen)
			if _, err := v.file.ReadAt(key, off+int64(keyStart)); err != nil {
				return err
			}
			h.PartitionKey = string(key)
		}
		h.dataAt, h.at = off+int64(keyStart+keyLen), off
		if !fn(h) {
			return nil
		}
		size := int64(frameHeader) + int64(binary.BigEndian.Uint32(win[rel:]))
		off += size
		window = wideWindow
		if size > wideWindow/4 {
			window = narrowWindow
		}
	}
	return nil
}

// maxCachedHeaders bounds which sealed segments keep their headers in
// memory: a segment of video fragments holds tens of records and is listed
// again and again; one of small records holds millions and is not.
const maxCachedHeaders = 1 << 14

// scanHeaders is scanHeaders over the segment's cached headers when it has
// them (reading and caching them all on the first scan of a sealed, small
// segment), else over the file.
func (v segView) scanHeaders(off int64, fn func(RecordHeader) bool) error {
	if !v.sealed || v.seg == nil || v.count > maxCachedHeaders {
		return scanHeaders(v, off, fn)
	}
	cached := v.seg.headers.Load()
	if cached == nil {
		all := make([]RecordHeader, 0, v.count)
		if err := scanHeaders(v, 0, func(h RecordHeader) bool { all = append(all, h); return true }); err != nil {
			return err
		}
		v.seg.headers.Store(&all)
		cached = &all
	}
	list := *cached
	for _, h := range list[sort.Search(len(list), func(i int) bool { return list[i].at >= off }):] {
		if !fn(h) {
			return nil
		}
	}
	return nil
}

// decodeHeader parses a frame's header from the start of b: the record
// header (without its key) and where in b the key starts and how long it is.
func decodeHeader(b []byte) (h RecordHeader, keyStart, keyLen int, err error) {
	if len(b) < frameHeader+24+1 {
		return h, 0, 0, errBadFrame
	}
	n := binary.BigEndian.Uint32(b)
	if n < 25 || n > maxFrame {
		return h, 0, 0, errBadFrame
	}
	p := b[frameHeader:]
	h.Seq.Index = binary.BigEndian.Uint64(p)
	h.Arrival = int64(binary.BigEndian.Uint64(p[8:]))
	h.Producer = int64(binary.BigEndian.Uint64(p[16:]))
	klen, k := binary.Uvarint(p[24:])
	if k <= 0 || klen > uint64(n)-24-uint64(k) {
		return h, 0, 0, errBadFrame
	}
	h.Size = int(uint64(n) - 24 - uint64(k) - klen)
	return h, frameHeader + 24 + k, int(klen), nil
}

// HeadersFrom calls fn with the header of each visible record from index
// from on, in sequence order, until fn returns false: the newest N records
// of a shard are HeadersFrom(tip-N).
func (s *Store) HeadersFrom(name, shardID string, from uint64, fn func(RecordHeader) bool) error {
	_, log, _, err := s.lookup(name, shardID)
	if err != nil {
		return err
	}
	views := log.snapshot()
	k := sort.Search(len(views), func(k int) bool { return views[k].base+views[k].count > from })
	start := func(v segView) (int64, bool, bool) { return offsetOf(v.index, from), true, true }
	pick := func(h RecordHeader) verdict {
		if h.Seq.Index < from {
			return skipRecord
		}
		return takeRecord
	}
	return log.walkHeaders(views[k:], start, pick, fn)
}

// RecordData returns a record's header and a reader of its data that reads
// nothing until asked: a clip is planned from the sample tables of each
// video fragment, not from its media. The bytes are not checked against the
// frame's CRC, which covers the whole record.
func (s *Store) RecordData(name, shardID string, index uint64) (RecordHeader, *io.SectionReader, error) {
	h, file, err := s.findRecord(name, shardID, index)
	if err != nil {
		return RecordHeader{}, nil, err
	}
	return h, io.NewSectionReader(file, h.dataAt, int64(h.Size)), nil
}

// ReadRecord reads one visible record whole into buf (grown when too small)
// and checks it against its CRC; the record's data aliases the returned
// buffer. A reader that goes through large records one at a time (the
// fragments of a video clip) reuses one buffer instead of allocating and
// zeroing one per record, as Read must for records it hands over.
func (s *Store) ReadRecord(name, shardID string, index uint64, buf []byte) (Record, []byte, error) {
	h, file, err := s.findRecord(name, shardID, index)
	if err != nil {
		return Record{}, buf, err
	}
	size := int(h.dataAt-h.at) + h.Size
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if n, err := file.ReadAt(buf, h.at); n < size {
		return Record{}, buf, err
	}
	f, err := decodeFrame(buf)
	if err != nil || f.index != index {
		return Record{}, buf, fmt.Errorf("record %d: %w", index, errBadFrame)
	}
	return Record{Seq: h.Seq, PartitionKey: h.PartitionKey, Data: f.data, Arrival: f.arrival, Producer: f.producer}, buf, nil
}

// findRecord returns a visible record's header and the segment file that
// holds it.
func (s *Store) findRecord(name, shardID string, index uint64) (RecordHeader, vfs.File, error) {
	_, log, _, err := s.lookup(name, shardID)
	if err != nil {
		return RecordHeader{}, nil, err
	}
	views := log.snapshot()
	k := sort.Search(len(views), func(k int) bool { return views[k].base+views[k].count > index })
	var found RecordHeader
	var file vfs.File
	start := func(v segView) (int64, bool, bool) { file = v.file; return offsetOf(v.index, index), true, true }
	pick := func(h RecordHeader) verdict {
		switch {
		case h.Seq.Index < index:
			return skipRecord
		case h.Seq.Index > index:
			return stopScan
		}
		return takeRecord
	}
	if k < len(views) {
		err = log.walkHeaders(views[k:k+1], start, pick, func(h RecordHeader) bool { found = h; return false })
	}
	if err != nil {
		return RecordHeader{}, nil, err
	}
	if found.Seq.Index != index || index == 0 {
		return RecordHeader{}, nil, fmt.Errorf("record %d: %w", index, ErrNotFound)
	}
	return found, file, nil
}
