package media

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// MKVTag is a name/value pair written as a Matroska SimpleTag after a
// fragment's cluster (the KVS API's per-fragment metadata).
type MKVTag struct{ Name, Value string }

// MKVWriter writes stored fragments as one Matroska stream: an EBML header
// and a Segment of unknown size with the tracks, then one Cluster (and its
// Tags) per fragment. A fragment with new codec parameters or a new
// publisher session starts a new EBML header and Segment, as a change of
// tracks needs, which Matroska readers (ffmpeg, mkvinfo, the KVS parser)
// handle as a continuation.
type MKVWriter struct {
	w      io.Writer
	init   []byte // init segment of the current Segment
	tracks []mkvTrack
}

type mkvTrack struct {
	id        int // fMP4 track ID
	number    uint64
	timeScale uint32
}

// NewMKVWriter returns a writer onto w.
func NewMKVWriter(w io.Writer) *MKVWriter { return &MKVWriter{w: w} }

// WriteFragment appends one stored fragment and its tags.
func (m *MKVWriter) WriteFragment(init, media []byte, newSession bool, tags []MKVTag) error {
	if m.init == nil || newSession || !bytes.Equal(init, m.init) {
		if err := m.startSegment(init); err != nil {
			return err
		}
	}
	parts, err := parseParts(media)
	if err != nil {
		return fmt.Errorf("fragment media: %w", err)
	}
	cluster, err := m.cluster(parts)
	if err != nil {
		return err
	}
	if err := writeCluster(m.w, cluster); err != nil {
		return err
	}
	if len(tags) == 0 {
		return nil
	}
	t := mkvTag{}
	for _, tag := range tags {
		t.SimpleTag = append(t.SimpleTag, mkvSimpleTag{tag.Name, tag.Value})
	}
	return ebml.Marshal(&struct {
		Tags mkvTags `ebml:"Tags"`
	}{mkvTags{Tag: []mkvTag{t}}}, m.w)
}

// writeCluster writes a Cluster: its Timecode marshalled by ebml-go, its
// SimpleBlocks framed here. A SimpleBlock is a fixed 4-byte header before
// the sample (RFC 9559 §10.2); ebml-go's reflective marshalling of a whole
// cluster grew nested buffers by doubling and cost more than everything
// else GetMedia does for a 1 MB fragment.
func writeCluster(w io.Writer, c mkvCluster) error {
	var head bytes.Buffer
	if err := ebml.Marshal(&struct {
		Timecode uint64 `ebml:"Timecode"`
	}{c.Timecode}, &head); err != nil {
		return err
	}
	size := head.Len()
	for _, b := range c.SimpleBlock {
		size += 1 + 8 + 4 + len(b.Data[0]) // ID, size, header, data
	}
	out := make([]byte, 0, 12+head.Len()+13*len(c.SimpleBlock))
	out = append(out, 0x1F, 0x43, 0xB6, 0x75) // Cluster
	out = appendSize8(out, size)
	out = append(out, head.Bytes()...)
	if _, err := w.Write(out); err != nil {
		return err
	}
	var hdr [13]byte
	for _, b := range c.SimpleBlock {
		if b.TrackNumber > 126 {
			return fmt.Errorf("track number %d needs a longer encoding", b.TrackNumber)
		}
		h := append(hdr[:0], 0xA3) // SimpleBlock
		h = appendSize8(h, 4+len(b.Data[0]))
		flags := byte(0)
		if b.Keyframe {
			flags = 0x80
		}
		h = append(h, 0x80|byte(b.TrackNumber), byte(uint16(b.Timecode)>>8), byte(b.Timecode), flags)
		if _, err := w.Write(h); err != nil {
			return err
		}
		if _, err := w.Write(b.Data[0]); err != nil {
			return err
		}
	}
	return nil
}

// appendSize8 appends an element size as an 8-byte EBML integer.
func appendSize8(b []byte, n int) []byte {
	b = append(b, 0x01)
	for i := 6; i >= 0; i-- {
		b = append(b, byte(n>>(8*i)))
	}
	return b
}

type mkvCluster struct {
	Timecode    uint64       `ebml:"Timecode"`
	SimpleBlock []ebml.Block `ebml:"SimpleBlock"`
}

type mkvTags struct {
	Tag []mkvTag `ebml:"Tag"`
}

type mkvTag struct {
	Targets   struct{}       `ebml:"Targets"`
	SimpleTag []mkvSimpleTag `ebml:"SimpleTag"`
}

type mkvSimpleTag struct {
	TagName   string `ebml:"TagName"`
	TagString string `ebml:"TagString"`
}

// cluster turns one fMP4 part into a cluster: its time is the leading
// track's first decode time; blocks carry presentation times relative to it,
// in decode order, tracks interleaved by time.
func (m *MKVWriter) cluster(parts fmp4.Parts) (mkvCluster, error) {
	type block struct {
		dts, pts int64 // ms
		b        ebml.Block
	}
	var blocks []block
	start := int64(math.MaxInt64)
	for _, part := range parts {
		for _, pt := range part.Tracks {
			tr := m.track(pt.ID)
			if tr == nil {
				return mkvCluster{}, fmt.Errorf("fragment has track %d, not in its init segment", pt.ID)
			}
			ms := func(t int64) int64 { return t * 1000 / int64(tr.timeScale) }
			dts := int64(pt.BaseTime)
			if tr.number == 1 {
				start = min(start, ms(dts))
			}
			for _, s := range pt.Samples {
				blocks = append(blocks, block{ms(dts), ms(dts + int64(s.PTSOffset)), ebml.Block{
					TrackNumber: tr.number, Keyframe: !s.IsNonSyncSample, Data: [][]byte{s.Payload},
				}})
				dts += int64(s.Duration)
			}
		}
	}
	if len(blocks) == 0 {
		return mkvCluster{}, errors.New("fragment has no samples")
	}
	if start == math.MaxInt64 {
		start = blocks[0].dts
	}
	slices.SortStableFunc(blocks, func(a, b block) int { return cmp.Compare(a.dts, b.dts) })
	c := mkvCluster{Timecode: uint64(max(start, 0))}
	for _, bl := range blocks {
		rel := bl.pts - int64(c.Timecode)
		if rel < math.MinInt16 || rel > math.MaxInt16 {
			return mkvCluster{}, fmt.Errorf("sample %d ms from its fragment's start: too far for a Matroska block", rel)
		}
		bl.b.Timecode = int16(rel)
		c.SimpleBlock = append(c.SimpleBlock, bl.b)
	}
	return c, nil
}

func (m *MKVWriter) track(id int) *mkvTrack {
	for i := range m.tracks {
		if m.tracks[i].id == id {
			return &m.tracks[i]
		}
	}
	return nil
}

// startSegment writes an EBML header and a Segment with the init's tracks.
func (m *MKVWriter) startSegment(init []byte) error {
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		return fmt.Errorf("fragment init: %w", err)
	}
	var entries []webm.TrackEntry
	m.tracks = m.tracks[:0]
	// The leading (video) track is number 1, so cluster times follow it.
	order := append([]*fmp4.InitTrack{}, in.Tracks...)
	slices.SortStableFunc(order, func(a, b *fmp4.InitTrack) int {
		return cmp.Compare(btoi(!a.Codec.IsVideo()), btoi(!b.Codec.IsVideo()))
	})
	for _, t := range order {
		n := uint64(len(entries) + 1)
		e, err := trackEntry(t, init, n)
		if err != nil {
			return err
		}
		entries = append(entries, e)
		m.tracks = append(m.tracks, mkvTrack{id: t.ID, number: n, timeScale: t.TimeScale})
	}
	header := struct {
		Header webm.EBMLHeader `ebml:"EBML"`
	}{webm.EBMLHeader{EBMLVersion: 1, EBMLReadVersion: 1, EBMLMaxIDLength: 4, EBMLMaxSizeLength: 8,
		DocType: "matroska", DocTypeVersion: 4, DocTypeReadVersion: 2}}
	if err := ebml.Marshal(&header, m.w); err != nil {
		return err
	}
	seg := struct {
		Segment struct {
			Info   webm.Info   `ebml:"Info"`
			Tracks webm.Tracks `ebml:"Tracks"`
		} `ebml:"Segment,size=unknown"`
	}{}
	seg.Segment.Info = webm.Info{TimecodeScale: 1000000, MuxingApp: "streamgate", WritingApp: "streamgate"}
	seg.Segment.Tracks.TrackEntry = entries
	if err := ebml.Marshal(&seg, m.w); err != nil {
		return err
	}
	m.init = bytes.Clone(init)
	return nil
}

// trackEntry describes a track in Matroska terms.
func trackEntry(t *fmp4.InitTrack, init []byte, n uint64) (webm.TrackEntry, error) {
	e := webm.TrackEntry{TrackNumber: n, TrackUID: n}
	switch c := t.Codec.(type) {
	case *mp4.CodecH264:
		var sps h264.SPS
		if err := sps.Unmarshal(c.SPS); err != nil {
			return e, fmt.Errorf("H264 SPS: %w", err)
		}
		e.CodecID, e.TrackType = "V_MPEG4/ISO/AVC", 1
		e.CodecPrivate = boxPayload(init, "avcC")
		e.Video = &webm.Video{PixelWidth: uint64(sps.Width()), PixelHeight: uint64(sps.Height())}
	case *mp4.CodecH265:
		var sps h265.SPS
		if err := sps.Unmarshal(c.SPS); err != nil {
			return e, fmt.Errorf("H265 SPS: %w", err)
		}
		e.CodecID, e.TrackType = "V_MPEGH/ISO/HEVC", 1
		e.CodecPrivate = boxPayload(init, "hvcC")
		e.Video = &webm.Video{PixelWidth: uint64(sps.Width()), PixelHeight: uint64(sps.Height())}
	case *mp4.CodecMPEG4Audio:
		conf, err := c.Config.Marshal()
		if err != nil {
			return e, err
		}
		e.CodecID, e.TrackType, e.CodecPrivate = "A_AAC", 2, conf
		e.Audio = &webm.Audio{SamplingFrequency: float64(c.Config.SampleRate), Channels: uint64(c.Config.ChannelCount)}
	case *mp4.CodecOpus:
		e.CodecID, e.TrackType = "A_OPUS", 2
		e.CodecPrivate = opusHead(c.ChannelCount)
		e.CodecDelay, e.SeekPreRoll = 6500000, 80000000
		e.Audio = &webm.Audio{SamplingFrequency: 48000, Channels: uint64(c.ChannelCount)}
	default:
		return e, fmt.Errorf("codec %T has no Matroska mapping", t.Codec)
	}
	if e.CodecPrivate == nil && e.TrackType == 1 {
		return e, errors.New("init segment lacks the decoder configuration box")
	}
	return e, nil
}

// boxPayload returns the payload of the first box of type typ in an MP4
// byte string: the decoder configuration records (avcC, hvcC) that Matroska
// stores verbatim as CodecPrivate.
func boxPayload(b []byte, typ string) []byte {
	i := bytes.Index(b, []byte(typ))
	if i < 4 {
		return nil
	}
	size := int(binary.BigEndian.Uint32(b[i-4:]))
	if size < 8 || i-4+size > len(b) {
		return nil
	}
	return bytes.Clone(b[i+4 : i-4+size])
}

// opusHead is the identification header Matroska's A_OPUS wants as CodecPrivate (RFC 7845).
func opusHead(channels int) []byte {
	h := []byte("OpusHead")
	h = append(h, 1, byte(channels))
	h = binary.LittleEndian.AppendUint16(h, 312) // pre-skip
	h = binary.LittleEndian.AppendUint32(h, 48000)
	h = binary.LittleEndian.AppendUint16(h, 0) // output gain
	return append(h, 0)                        // channel mapping family
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
