package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"
)

// sample is one access unit ready for fMP4: payload in the container's form,
// decode time and presentation offset in the track's clock.
type sample struct {
	dts       int64
	ptsOffset int32
	sync      bool
	// payload is the sample's bytes in pieces, written one after another
	// (H.264 and H.265: each NAL unit after its 4-byte length, as in AVCC,
	// without copying the units together).
	payload [][]byte
	nominal int64 // duration when no later sample tells it (audio frame length), 0 if unknown
}

// lengthPrefixed returns an access unit as AVCC/HVCC pieces: each NAL unit
// after its big-endian 32-bit length. The NAL units are not copied (the RTP
// decoders hand over buffers of their own), which saves a frame-sized
// allocation and copy per frame: a third of a recording camera's garbage.
func lengthPrefixed(au [][]byte) [][]byte {
	lengths := make([]byte, 4*len(au))
	out := make([][]byte, 0, 2*len(au))
	for i, n := range au {
		binary.BigEndian.PutUint32(lengths[4*i:], uint32(len(n)))
		out = append(out, lengths[4*i:4*i+4:4*i+4], n)
	}
	return out
}

func (s sample) pts() int64 { return s.dts + int64(s.ptsOffset) }

// codecTrack turns one RTP format into samples. Implementations keep the
// codec parameters current and report when they change.
type codecTrack interface {
	// depacketize returns the access units an RTP packet completes.
	depacketize(pkt *rtp.Packet) ([][][]byte, error)
	// sample converts an access unit presented at pts; ok is false for units
	// that cannot start or join a recording yet (before the first keyframe).
	// changed reports new codec parameters, which take effect with this sample.
	sample(pts int64, au [][]byte) (s sample, ok, changed bool, err error)
	codec() mp4.Codec
	clockRate() int
	isVideo() bool
	name() string
}

// newCodecTrack returns the adapter for a format, or an error naming a codec
// the recorder does not support.
func newCodecTrack(f format.Format) (codecTrack, error) {
	switch f := f.(type) {
	case *format.H264:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		sps, pps := f.SafeParams()
		return &h264Track{dec: dec, sps: sps, pps: pps}, nil
	case *format.H265:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		vps, sps, pps := f.SafeParams()
		return &h265Track{dec: dec, vps: vps, sps: sps, pps: pps}, nil
	case *format.MPEG4Audio:
		if f.Config == nil {
			return nil, fmt.Errorf("MPEG-4 audio without a config (LATM is not supported)")
		}
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		return &aacTrack{dec: dec, config: *f.Config}, nil
	case *format.Opus:
		dec, err := f.CreateDecoder()
		if err != nil {
			return nil, err
		}
		channels := f.ChannelCount
		if channels == 0 {
			channels = 2
		}
		return &opusTrack{dec: dec, channels: channels}, nil
	}
	return nil, fmt.Errorf("codec %s is not supported", f.Codec())
}

// notYet drops the depacketizer's "not a whole access unit yet" answers,
// which are how it works, not errors: an access unit spans packets, and a
// session may begin mid-unit.
func notYet(err error, benign ...error) error {
	for _, b := range benign {
		if errors.Is(err, b) {
			return nil
		}
	}
	return err
}

// h264Track records H.264: parameters from the SDP and in-band SPS/PPS,
// decode times from the DTS extractor, samples in AVCC form.
type h264Track struct {
	dec interface {
		Decode(*rtp.Packet) ([][]byte, error)
	}
	sps, pps []byte
	dtsx     *h264.DTSExtractor
}

func (t *h264Track) depacketize(pkt *rtp.Packet) ([][][]byte, error) {
	au, err := t.dec.Decode(pkt)
	if err != nil || au == nil {
		return nil, notYet(err, rtph264.ErrMorePacketsNeeded, rtph264.ErrNonStartingPacketAndNoPrevious)
	}
	return [][][]byte{au}, nil
}

func (t *h264Track) sample(pts int64, au [][]byte) (sample, bool, bool, error) {
	changed, hasSPS := false, false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			hasSPS = true
			if !bytes.Equal(n, t.sps) {
				t.sps, changed = bytes.Clone(n), true
			}
		case h264.NALUTypePPS:
			if !bytes.Equal(n, t.pps) {
				t.pps, changed = bytes.Clone(n), true
			}
		}
	}
	random := h264.IsRandomAccess(au)
	if random && !hasSPS {
		au = t.inband(au)
	}
	if changed {
		t.dtsx = nil
	}
	if t.dtsx == nil {
		if !random || t.sps == nil || t.pps == nil {
			return sample{}, false, false, nil
		}
		t.dtsx = &h264.DTSExtractor{}
		t.dtsx.Initialize()
	}
	dts, err := t.dtsx.Extract(au, pts)
	if err != nil {
		t.dtsx = nil // resynchronize on the next keyframe
		return sample{}, false, false, err
	}
	return sample{dts: dts, ptsOffset: int32(pts - dts), sync: random, payload: lengthPrefixed(au)}, true, changed, nil
}

// inband returns a keyframe's access unit with the stream's parameters in
// front: the DTS extractor and the HLS muxer need them there, and it makes
// every fragment decodable on its own.
func (t *h264Track) inband(au [][]byte) [][]byte {
	if t.sps == nil || t.pps == nil || !h264.IsRandomAccess(au) {
		return au
	}
	for _, n := range au {
		if len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
			return au
		}
	}
	return append([][]byte{t.sps, t.pps}, au...)
}

func (t *h264Track) codec() mp4.Codec { return &mp4.CodecH264{SPS: t.sps, PPS: t.pps} }
func (t *h264Track) clockRate() int   { return 90000 }
func (t *h264Track) isVideo() bool    { return true }
func (t *h264Track) name() string     { return "H264" }

// h265Track records H.265 like h264Track, with VPS/SPS/PPS.
type h265Track struct {
	dec interface {
		Decode(*rtp.Packet) ([][]byte, error)
	}
	vps, sps, pps []byte
	dtsx          *h265.DTSExtractor
}

func (t *h265Track) depacketize(pkt *rtp.Packet) ([][][]byte, error) {
	au, err := t.dec.Decode(pkt)
	if err != nil || au == nil {
		return nil, notYet(err, rtph265.ErrMorePacketsNeeded, rtph265.ErrNonStartingPacketAndNoPrevious)
	}
	return [][][]byte{au}, nil
}

func (t *h265Track) sample(pts int64, au [][]byte) (sample, bool, bool, error) {
	changed, hasSPS := false, false
	for _, n := range au {
		if len(n) < 2 {
			continue
		}
		var p *[]byte
		switch h265.NALUType((n[0] >> 1) & 0x3f) {
		case h265.NALUType_VPS_NUT:
			p = &t.vps
		case h265.NALUType_SPS_NUT:
			p, hasSPS = &t.sps, true
		case h265.NALUType_PPS_NUT:
			p = &t.pps
		}
		if p != nil && !bytes.Equal(n, *p) {
			*p, changed = bytes.Clone(n), true
		}
	}
	random := h265.IsRandomAccess(au)
	if random && !hasSPS {
		au = t.inband(au)
	}
	if changed {
		t.dtsx = nil
	}
	if t.dtsx == nil {
		if !random || t.vps == nil || t.sps == nil || t.pps == nil {
			return sample{}, false, false, nil
		}
		t.dtsx = &h265.DTSExtractor{}
		t.dtsx.Initialize()
	}
	dts, err := t.dtsx.Extract(au, pts)
	if err != nil {
		t.dtsx = nil
		return sample{}, false, false, err
	}
	return sample{dts: dts, ptsOffset: int32(pts - dts), sync: random, payload: lengthPrefixed(au)}, true, changed, nil
}

// inband is h264Track.inband for H.265's VPS, SPS and PPS.
func (t *h265Track) inband(au [][]byte) [][]byte {
	if t.vps == nil || t.sps == nil || t.pps == nil || !h265.IsRandomAccess(au) {
		return au
	}
	for _, n := range au {
		if len(n) > 1 && h265.NALUType((n[0]>>1)&0x3f) == h265.NALUType_SPS_NUT {
			return au
		}
	}
	return append([][]byte{t.vps, t.sps, t.pps}, au...)
}

func (t *h265Track) codec() mp4.Codec {
	return &mp4.CodecH265{VPS: t.vps, SPS: t.sps, PPS: t.pps}
}
func (t *h265Track) clockRate() int { return 90000 }
func (t *h265Track) isVideo() bool  { return true }
func (t *h265Track) name() string   { return "H265" }

// aacTrack records MPEG-4 audio (AAC): every access unit is 1024 samples.
type aacTrack struct {
	dec interface {
		Decode(*rtp.Packet) ([][]byte, error)
	}
	config mpeg4audio.AudioSpecificConfig
}

func (t *aacTrack) depacketize(pkt *rtp.Packet) ([][][]byte, error) {
	aus, err := t.dec.Decode(pkt)
	if err != nil {
		return nil, notYet(err, rtpmpeg4audio.ErrMorePacketsNeeded)
	}
	out := make([][][]byte, len(aus))
	for i, au := range aus {
		out[i] = [][]byte{au}
	}
	return out, nil
}

func (t *aacTrack) sample(pts int64, au [][]byte) (sample, bool, bool, error) {
	return sample{dts: pts, sync: true, payload: [][]byte{bytes.Clone(au[0])}, nominal: mpeg4audio.SamplesPerAccessUnit}, true, false, nil
}

func (t *aacTrack) codec() mp4.Codec { return &mp4.CodecMPEG4Audio{Config: t.config} }
func (t *aacTrack) clockRate() int   { return t.config.SampleRate }
func (t *aacTrack) isVideo() bool    { return false }
func (t *aacTrack) name() string     { return "MPEG-4 Audio" }

// opusTrack records Opus: one packet is one sample at 48 kHz.
type opusTrack struct {
	dec interface {
		Decode(*rtp.Packet) ([]byte, error)
	}
	channels int
}

func (t *opusTrack) depacketize(pkt *rtp.Packet) ([][][]byte, error) {
	p, err := t.dec.Decode(pkt)
	if err != nil {
		return nil, err
	}
	return [][][]byte{{p}}, nil
}

func (t *opusTrack) sample(pts int64, au [][]byte) (sample, bool, bool, error) {
	return sample{dts: pts, sync: true, payload: [][]byte{bytes.Clone(au[0])}, nominal: opus.PacketDuration2(au[0])}, true, false, nil
}

func (t *opusTrack) codec() mp4.Codec { return &mp4.CodecOpus{ChannelCount: t.channels} }
func (t *opusTrack) clockRate() int   { return 48000 }
func (t *opusTrack) isVideo() bool    { return false }
func (t *opusTrack) name() string     { return "Opus" }
