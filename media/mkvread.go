package media

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// mkvReader reads a live Matroska stream as a KVS producer sends it to
// PutMedia: an EBML header, a Segment (usually of unknown size) with Info
// and Tracks, then Clusters (also of unknown size) of SimpleBlocks or
// BlockGroups, and Tags. It hands out what an ingest needs, one event at
// a time, without holding more than one block.
type mkvReader struct {
	r     *bufio.Reader
	scale int64 // TimecodeScale, ns per tick
	// cluster is the open cluster's timecode (ticks); inCluster when one is open.
	cluster   int64
	inCluster bool
	tracks    []mkvTrackInfo
	read      int64 // bytes consumed
}

// mkvTrackInfo is a TrackEntry.
type mkvTrackInfo struct {
	Number       uint64
	Type         uint64 // 1 video, 2 audio
	CodecID      string
	CodecPrivate []byte
	SampleRate   float64
	Channels     uint64
}

// mkvEvent is what next returns: the tracks (when a Tracks element was
// read), the start of a cluster, or a block.
type mkvEvent struct {
	Tracks       []mkvTrackInfo
	ClusterStart bool
	Timecode     int64 // of the cluster or the block, in ns
	Track        uint64
	Keyframe     bool
	Data         []byte
}

// Matroska element IDs (with their marker bits, as written).
const (
	eidEBML         = 0x1A45DFA3
	eidSegment      = 0x18538067
	eidInfo         = 0x1549A966
	eidTimecodeScal = 0x2AD7B1
	eidTracks       = 0x1654AE6B
	eidTrackEntry   = 0xAE
	eidTrackNumber  = 0xD7
	eidTrackType    = 0x83
	eidCodecID      = 0x86
	eidCodecPrivate = 0x63A2
	eidAudio        = 0xE1
	eidSampleFreq   = 0xB5
	eidChannels     = 0x9F
	eidCluster      = 0x1F43B675
	eidTimecode     = 0xE7
	eidSimpleBlock  = 0xA3
	eidBlockGroup   = 0xA0
	eidBlock        = 0xA1
	eidRefBlock     = 0xFB
)

// unknownSize marks an element whose end is where a sibling or parent
// element begins (live streams).
const unknownSize = -1

// maxElement bounds what is read into memory: a block (a frame) or a
// header element.
const maxElement = 64 << 20

var errBadMKV = errors.New("invalid Matroska data")

func newMKVReader(r io.Reader) *mkvReader {
	return &mkvReader{r: bufio.NewReaderSize(r, 64<<10), scale: 1_000_000}
}

// vint reads an EBML variable-length integer; with marker it keeps the
// length marker bit (element IDs), else it strips it (sizes), and an
// all-ones size is unknownSize.
func (m *mkvReader) vint(marker bool) (int64, error) {
	b, err := m.r.ReadByte()
	if err != nil {
		return 0, err
	}
	m.read++
	n := 1
	for mask := byte(0x80); n <= 8 && b&mask == 0; mask >>= 1 {
		n++
	}
	if n > 8 || (marker && n > 4) {
		return 0, fmt.Errorf("%w: bad length byte 0x%02x", errBadMKV, b)
	}
	v := int64(b)
	if !marker {
		v &= int64(0xFF >> n)
	}
	allOnes := v == int64(0xFF>>n)
	for range n - 1 {
		c, err := m.r.ReadByte()
		if err != nil {
			return 0, noEOF(err)
		}
		m.read++
		v = v<<8 | int64(c)
		allOnes = allOnes && c == 0xFF
	}
	if !marker && allOnes {
		return unknownSize, nil
	}
	return v, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// header reads an element's ID and size.
func (m *mkvReader) header() (id, size int64, err error) {
	if id, err = m.vint(true); err != nil {
		return 0, 0, err
	}
	if size, err = m.vint(false); err != nil {
		return 0, 0, noEOF(err)
	}
	return id, size, nil
}

func (m *mkvReader) payload(size int64) ([]byte, error) {
	if size < 0 || size > maxElement {
		return nil, fmt.Errorf("%w: an element of %d bytes", errBadMKV, size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(m.r, b); err != nil {
		return nil, noEOF(err)
	}
	m.read += size
	return b, nil
}

func (m *mkvReader) skip(size int64) error {
	if size < 0 {
		return fmt.Errorf("%w: an unknown-size element that cannot be skipped", errBadMKV)
	}
	n, err := m.r.Discard(int(min(size, math.MaxInt32)))
	m.read += int64(n)
	if err == nil && int64(n) < size {
		return m.skip(size - int64(n))
	}
	return noEOF(err)
}

func uintOf(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// next returns the next event; io.EOF at the end of the stream.
func (m *mkvReader) next() (mkvEvent, error) {
	for {
		id, size, err := m.header()
		if err != nil {
			return mkvEvent{}, err
		}
		switch id {
		case eidSegment:
			// descend: its children follow
		case eidCluster:
			m.inCluster = true
			m.cluster = -1
		case eidTimecode:
			b, err := m.payload(size)
			if err != nil {
				return mkvEvent{}, err
			}
			if !m.inCluster {
				continue
			}
			m.cluster = int64(uintOf(b))
			return mkvEvent{ClusterStart: true, Timecode: m.cluster * m.scale}, nil
		case eidInfo:
			if err := m.info(size); err != nil {
				return mkvEvent{}, err
			}
		case eidTracks:
			b, err := m.payload(size)
			if err != nil {
				return mkvEvent{}, err
			}
			tracks, err := parseTracks(b)
			if err != nil {
				return mkvEvent{}, err
			}
			m.tracks = tracks
			return mkvEvent{Tracks: tracks}, nil
		case eidBlockGroup:
			// descend: the Block and its references follow; a group without
			// ReferenceBlock is a keyframe, which the Block's flags cannot say.
			b, err := m.payload(size)
			if err != nil {
				return mkvEvent{}, err
			}
			return m.blockGroup(b)
		case eidSimpleBlock:
			b, err := m.payload(size)
			if err != nil {
				return mkvEvent{}, err
			}
			return m.block(b)
		default:
			if size == unknownSize {
				return mkvEvent{}, fmt.Errorf("%w: element 0x%X of unknown size", errBadMKV, id)
			}
			if err := m.skip(size); err != nil { // EBML header, SeekHead, Tags, Cues, Void, ...
				return mkvEvent{}, err
			}
		}
	}
}

func (m *mkvReader) info(size int64) error {
	b, err := m.payload(size)
	if err != nil {
		return err
	}
	return eachChild(b, func(id int64, v []byte) error {
		if id == eidTimecodeScal {
			if s := int64(uintOf(v)); s > 0 {
				m.scale = s
			}
		}
		return nil
	})
}

// eachChild walks the child elements of a master element read whole.
func eachChild(b []byte, fn func(id int64, payload []byte) error) error {
	sub := &mkvReader{r: bufio.NewReader(bytes.NewReader(b))}
	for sub.read < int64(len(b)) {
		id, size, err := sub.header()
		if err != nil {
			return fmt.Errorf("%w: %v", errBadMKV, err)
		}
		if size == unknownSize || sub.read+size > int64(len(b)) {
			return fmt.Errorf("%w: child element 0x%X overruns its parent", errBadMKV, id)
		}
		v, err := sub.payload(size)
		if err != nil {
			return err
		}
		if err := fn(id, v); err != nil {
			return err
		}
	}
	return nil
}

func parseTracks(b []byte) ([]mkvTrackInfo, error) {
	var tracks []mkvTrackInfo
	err := eachChild(b, func(id int64, v []byte) error {
		if id != eidTrackEntry {
			return nil
		}
		var t mkvTrackInfo
		err := eachChild(v, func(id int64, v []byte) error {
			switch id {
			case eidTrackNumber:
				t.Number = uintOf(v)
			case eidTrackType:
				t.Type = uintOf(v)
			case eidCodecID:
				t.CodecID = string(v)
			case eidCodecPrivate:
				t.CodecPrivate = v
			case eidAudio:
				return eachChild(v, func(id int64, v []byte) error {
					switch id {
					case eidSampleFreq:
						switch len(v) {
						case 4:
							t.SampleRate = float64(math.Float32frombits(binary.BigEndian.Uint32(v)))
						case 8:
							t.SampleRate = math.Float64frombits(binary.BigEndian.Uint64(v))
						}
					case eidChannels:
						t.Channels = uintOf(v)
					}
					return nil
				})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if t.Number == 0 {
			return fmt.Errorf("%w: a TrackEntry without a TrackNumber", errBadMKV)
		}
		tracks = append(tracks, t)
		return nil
	})
	return tracks, err
}

// block decodes a (Simple)Block: track number, timecode relative to the
// cluster, flags; laced blocks are refused (producers do not lace video).
func (m *mkvReader) block(b []byte) (mkvEvent, error) {
	sub := &mkvReader{r: bufio.NewReader(bytes.NewReader(b))}
	track, err := sub.vint(false)
	if err != nil || track <= 0 || sub.read+3 > int64(len(b)) {
		return mkvEvent{}, fmt.Errorf("%w: a block without its header", errBadMKV)
	}
	if !m.inCluster || m.cluster < 0 {
		return mkvEvent{}, fmt.Errorf("%w: a block outside a cluster with a timecode", errBadMKV)
	}
	h := b[sub.read:]
	rel := int64(int16(binary.BigEndian.Uint16(h[0:2])))
	flags := h[2]
	if flags&0x06 != 0 {
		return mkvEvent{}, fmt.Errorf("%w: laced blocks are not supported", errBadMKV)
	}
	return mkvEvent{Track: uint64(track), Timecode: (m.cluster + rel) * m.scale, Keyframe: flags&0x80 != 0, Data: h[3:]}, nil
}

func (m *mkvReader) blockGroup(b []byte) (mkvEvent, error) {
	var blk []byte
	referenced := false
	err := eachChild(b, func(id int64, v []byte) error {
		switch id {
		case eidBlock:
			blk = v
		case eidRefBlock:
			referenced = true
		}
		return nil
	})
	if err != nil || blk == nil {
		return mkvEvent{}, fmt.Errorf("%w: a BlockGroup without a Block", errBadMKV)
	}
	ev, err := m.block(blk)
	ev.Keyframe = !referenced
	return ev, err
}
