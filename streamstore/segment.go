package streamstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/streamgate/streamgate/streamstore/vfs"
)

// indexEvery is the spacing of sparse index entries in segment bytes: small
// enough that a lookup scans little, large enough that 10 GiB of log keeps
// only a few MiB of index in memory.
const indexEvery = 64 << 10

// indexEntry points at a frame: its record index, file offset and arrival time.
type indexEntry struct {
	index   uint64
	offset  int64
	arrival int64
}

// segment is one append-only file of a shard. Fields other than the immutable
// ones are guarded by the owning shard's mutex.
type segment struct {
	base uint64 // index of its first record; the file is named after it
	path string
	file vfs.File

	size      int64  // bytes of valid frames
	count     uint64 // records in the segment
	firstTime int64  // arrival of the first record (0 when empty)
	lastTime  int64  // arrival of the last record
	producers producerRange
	index     []indexEntry
	sealed    bool

	// headers caches a sealed segment's record headers once read, when it
	// holds few records (video fragments): listings then touch no file.
	headers atomic.Pointer[[]RecordHeader]
}

func segmentName(base uint64) string { return fmt.Sprintf("%020d.log", base) }
func indexName(base uint64) string   { return fmt.Sprintf("%020d.idx", base) }

// listSegments returns the base indexes of the segment files in dir, ascending.
func listSegments(fs vfs.FS, dir string) ([]uint64, error) {
	names, err := fs.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bases []uint64
	for _, n := range names {
		if !strings.HasSuffix(n, ".log") {
			continue
		}
		b, err := strconv.ParseUint(strings.TrimSuffix(n, ".log"), 10, 64)
		if err != nil {
			continue
		}
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

// scanResult is what a full scan of a segment learned.
type scanResult struct {
	size      int64 // length of the valid prefix
	count     uint64
	firstTime int64
	lastTime  int64
	producers producerRange
	index     []indexEntry
	torn      bool // bytes after the valid prefix
}

// producerRange is the span of producer timestamps in a segment. Producer
// times need not be ordered (a camera's clock may jump), so a search by
// producer time skips the segments whose span misses the range and scans the rest.
type producerRange struct{ min, max int64 } // 0, 0: no record carries one

func (p *producerRange) add(t int64) {
	if t == 0 {
		return
	}
	if p.min == 0 || t < p.min {
		p.min = t
	}
	if t > p.max {
		p.max = t
	}
}

// overlaps reports whether the segment may hold a producer time in [from, to].
func (p producerRange) overlaps(from, to int64) bool {
	return p.max != 0 && p.max >= from && p.min <= to
}

// scanSegment reads a segment from the start and stops at the first frame
// that is short, corrupt or out of sequence. Everything before it is the
// valid prefix; recovery truncates the rest.
func scanSegment(f vfs.File, base uint64) (scanResult, error) {
	fileSize, err := f.Size()
	if err != nil {
		return scanResult{}, err
	}
	var res scanResult
	buf := make([]byte, 1<<20)
	var bufStart int64 // file offset of buf[0]
	n := 0             // valid bytes in buf
	lastIndexed := int64(-indexEvery)
	for {
		off := res.size - bufStart
		fr, ferr := decodeFrame(buf[off:n])
		if ferr == errShortFrame {
			if bufStart+int64(n) >= fileSize {
				break
			}
			// Slide the unread tail to the front and read more.
			copy(buf, buf[off:n])
			n -= int(off)
			bufStart = res.size
			need := frameHeader
			if n >= frameHeader {
				need = frameHeader + int(binary.BigEndian.Uint32(buf))
			}
			if need > len(buf) {
				buf = append(buf[:n], make([]byte, need-n)...)
				buf = buf[:cap(buf)]
			}
			m, rerr := f.ReadAt(buf[n:], bufStart+int64(n))
			n += m
			if rerr != nil && !errors.Is(rerr, io.EOF) {
				return res, rerr
			}
			if m == 0 {
				break
			}
			continue
		}
		if ferr != nil || fr.index != base+res.count || fr.arrival < res.lastTime {
			break
		}
		if res.size-lastIndexed >= indexEvery {
			res.index = append(res.index, indexEntry{fr.index, res.size, fr.arrival})
			lastIndexed = res.size
		}
		if res.count == 0 {
			res.firstTime = fr.arrival
		}
		res.producers.add(fr.producer)
		res.lastTime = fr.arrival
		res.count++
		res.size += int64(fr.size)
	}
	res.torn = res.size < fileSize
	return res, nil
}

// The index file of a sealed segment:
//
//	"SGIX" | uint32 version | uint64 count | int64 size | int64 first time | int64 last time |
//	int64 min producer time | int64 max producer time | uint32 entries | entries (uint64 index, int64 offset, int64 arrival) | uint32 CRC32C of all before
const (
	indexMagic   = "SGIX"
	indexVersion = 2 // 1 lacked the producer range; such files are rebuilt
	indexHeader  = 4 + 4 + 8 + 8 + 8 + 8 + 8 + 8 + 4
)

func encodeIndex(g *segment) []byte {
	b := make([]byte, 0, indexHeader+24*len(g.index)+4)
	b = append(b, indexMagic...)
	b = binary.BigEndian.AppendUint32(b, indexVersion)
	b = binary.BigEndian.AppendUint64(b, g.count)
	b = binary.BigEndian.AppendUint64(b, uint64(g.size))
	b = binary.BigEndian.AppendUint64(b, uint64(g.firstTime))
	b = binary.BigEndian.AppendUint64(b, uint64(g.lastTime))
	b = binary.BigEndian.AppendUint64(b, uint64(g.producers.min))
	b = binary.BigEndian.AppendUint64(b, uint64(g.producers.max))
	b = binary.BigEndian.AppendUint32(b, uint32(len(g.index)))
	for _, e := range g.index {
		b = binary.BigEndian.AppendUint64(b, e.index)
		b = binary.BigEndian.AppendUint64(b, uint64(e.offset))
		b = binary.BigEndian.AppendUint64(b, uint64(e.arrival))
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var errBadIndex = errors.New("damaged segment index")

// decodeIndex parses an index file for the segment starting at base. Any
// inconsistency is errBadIndex; the caller then rebuilds it from the segment.
func decodeIndex(b []byte, base uint64) (scanResult, error) {
	if len(b) < indexHeader+4 || string(b[:4]) != indexMagic || binary.BigEndian.Uint32(b[4:]) != indexVersion {
		return scanResult{}, errBadIndex
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return scanResult{}, errBadIndex
	}
	res := scanResult{
		count:     binary.BigEndian.Uint64(b[8:]),
		size:      int64(binary.BigEndian.Uint64(b[16:])),
		firstTime: int64(binary.BigEndian.Uint64(b[24:])),
		lastTime:  int64(binary.BigEndian.Uint64(b[32:])),
		producers: producerRange{int64(binary.BigEndian.Uint64(b[40:])), int64(binary.BigEndian.Uint64(b[48:]))},
	}
	n := binary.BigEndian.Uint32(b[56:])
	if uint64(len(body)-indexHeader) != uint64(n)*24 || res.size < 0 {
		return scanResult{}, errBadIndex
	}
	res.index = make([]indexEntry, n)
	prev := indexEntry{index: base, offset: -1}
	for i := range res.index {
		p := body[indexHeader+24*i:]
		e := indexEntry{binary.BigEndian.Uint64(p), int64(binary.BigEndian.Uint64(p[8:])), int64(binary.BigEndian.Uint64(p[16:]))}
		if e.index < prev.index || e.offset <= prev.offset || e.offset >= res.size || e.index >= base+res.count {
			return scanResult{}, errBadIndex
		}
		res.index[i], prev = e, e
	}
	return res, nil
}

// writeIndexFile writes the index atomically: temp file, fsync, rename.
func writeIndexFile(fs vfs.FS, dir string, g *segment) error {
	final := filepath.Join(dir, indexName(g.base))
	tmp := final + ".tmp"
	f, err := fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(encodeIndex(g), 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return fs.Rename(tmp, final)
}

// readFileAll reads a whole (small) file through the FS.
func readFileAll(fs vfs.FS, name string) ([]byte, error) {
	f, err := fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size > 64<<20 {
		return nil, errBadIndex
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// offsetOf returns the offset of the last indexed frame at or before record
// index i: where a scan for i starts.
func offsetOf(index []indexEntry, i uint64) int64 {
	k := sort.Search(len(index), func(k int) bool { return index[k].index > i })
	if k == 0 {
		return 0
	}
	return index[k-1].offset
}

// offsetBefore returns the offset of the last indexed frame that arrived
// before t: where a scan for the first arrival at or after t starts.
func offsetBefore(index []indexEntry, t int64) int64 {
	k := sort.Search(len(index), func(k int) bool { return index[k].arrival >= t })
	if k == 0 {
		return 0
	}
	return index[k-1].offset
}
