package streamstore

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// A frame on disk:
//
//	uint32 payload length | uint32 CRC32C of payload | payload
//	payload: uint64 index | int64 arrival ns | int64 producer ns | uvarint key length | key | data
const frameHeader = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaxRecordBytes is the largest record a stream can be configured to take:
// video fragments need far more than Kinesis's 1 MiB.
const MaxRecordBytes = 64 << 20

// maxFrame bounds a payload so a damaged length field cannot make a reader
// allocate gigabytes: the largest record plus its key and header.
const maxFrame = MaxRecordBytes + 1024 + 64

var (
	errShortFrame = errors.New("short frame")
	errBadFrame   = errors.New("corrupt frame")
)

// Record is one entry of a shard.
type Record struct {
	Seq          Seq
	PartitionKey string
	Data         []byte
	Arrival      int64 // server time, Unix nanoseconds
	Producer     int64 // producer time, Unix nanoseconds (0 when unknown)
}

// appendFrame encodes one record onto buf.
func appendFrame(buf []byte, index uint64, arrival, producer int64, key string, data []byte) []byte {
	return append(appendFrameHead(buf, index, arrival, producer, key, data), data...)
}

// appendFrameHead encodes a record's frame without its data, which the
// caller writes right after it: large records (video fragments) are not
// copied into the write buffer. The data is the concatenation of its
// pieces; length and CRC cover it.
func appendFrameHead(buf []byte, index uint64, arrival, producer int64, key string, data ...[]byte) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint64(buf, index)
	buf = binary.BigEndian.AppendUint64(buf, uint64(arrival))
	buf = binary.BigEndian.AppendUint64(buf, uint64(producer))
	buf = binary.AppendUvarint(buf, uint64(len(key)))
	buf = append(buf, key...)
	head := buf[start+frameHeader:]
	size, crc := len(head), crc32.Checksum(head, castagnoli)
	for _, d := range data {
		size += len(d)
		crc = crc32.Update(crc, castagnoli, d)
	}
	binary.BigEndian.PutUint32(buf[start:], uint32(size))
	binary.BigEndian.PutUint32(buf[start+4:], crc)
	return buf
}

// decodedFrame is a frame parsed from a buffer; Key and Data alias the buffer.
type decodedFrame struct {
	index    uint64
	arrival  int64
	producer int64
	key      []byte
	data     []byte
	size     int // bytes the frame occupies
}

// decodeFrame parses the frame at the start of b. It returns errShortFrame when
// b holds only part of a frame (read more, or a torn tail) and errBadFrame when
// the bytes cannot be a frame.
func decodeFrame(b []byte) (decodedFrame, error) {
	if len(b) < frameHeader {
		return decodedFrame{}, errShortFrame
	}
	n := binary.BigEndian.Uint32(b)
	if n < 25 || n > maxFrame {
		return decodedFrame{}, errBadFrame
	}
	if len(b) < frameHeader+int(n) {
		return decodedFrame{}, errShortFrame
	}
	payload := b[frameHeader : frameHeader+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return decodedFrame{}, errBadFrame
	}
	f := decodedFrame{
		index:    binary.BigEndian.Uint64(payload),
		arrival:  int64(binary.BigEndian.Uint64(payload[8:])),
		producer: int64(binary.BigEndian.Uint64(payload[16:])),
		size:     frameHeader + int(n),
	}
	rest := payload[24:]
	klen, k := binary.Uvarint(rest)
	if k <= 0 || klen > uint64(len(rest)-k) {
		return decodedFrame{}, errBadFrame
	}
	f.key = rest[k : k+int(klen)]
	f.data = rest[k+int(klen):]
	return f, nil
}
