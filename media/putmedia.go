package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"
)

// PutMediaAck is one acknowledgement of Kinesis Video's PutMedia, written
// back to the producer as a line of JSON while it streams.
type PutMediaAck struct {
	EventType        string // BUFFERING, RECEIVED, PERSISTED, ERROR
	FragmentTimecode int64  // the producer's cluster timecode, ms
	FragmentNumber   string `json:",omitempty"`
	ErrorID          int    `json:"ErrorId,omitempty"`
	ErrorCode        string `json:",omitempty"`
}

// PutMediaOptions are PutMedia's headers.
type PutMediaOptions struct {
	// Relative: cluster timecodes count from ProducerStart
	// (x-amzn-fragment-timecode-type RELATIVE); else they are absolute, ms
	// since the epoch.
	Relative      bool
	ProducerStart time.Time
}

// PutMedia errors, with KVS's ack error ids.
var (
	errAckInvalidMKV   = &ackError{4006, "INVALID_MKV_DATA"}
	errAckNotMonotonic = &ackError{4004, "FRAGMENT_TIMECODE_NOT_MONOTONIC"}
	errAckTracks       = &ackError{4012, "MORE_THAN_ALLOWED_TRACKS_FOUND"}
	errAckArchival     = &ackError{5001, "FRAGMENT_ARCHIVAL_ERROR"}
)

type ackError struct {
	id   int
	code string
}

func (e *ackError) Error() string { return e.code }

// PutMedia ingests a producer's Matroska stream (the KVS producer SDK's,
// GStreamer's kvssink's): its H.264 (and AAC or Opus) frames go through
// the same publisher as an RTSP camera's, so they are fragmented at
// keyframes, stored, and fanned out live. Each cluster is acknowledged
// BUFFERING when it starts, RECEIVED when the next begins, and PERSISTED
// with its fragment number once the fragment holding it is durable. It
// returns when the body ends (after the last PERSISTED) or on an error,
// which it also acknowledges.
func (s *Server) PutMedia(ctx context.Context, stream string, body io.Reader, o PutMediaOptions, ack func(PutMediaAck)) error {
	var mu sync.Mutex
	done := false
	send := func(a PutMediaAck) {
		mu.Lock()
		defer mu.Unlock()
		if !done { // no ack once the caller's response is over
			ack(a)
		}
	}
	defer func() {
		mu.Lock()
		done = true
		mu.Unlock()
	}()
	err := s.putMedia(ctx, stream, body, o, send)
	var ae *ackError
	switch {
	case err == nil:
	case errors.As(err, &ae):
		send(PutMediaAck{EventType: "ERROR", ErrorID: ae.id, ErrorCode: ae.code})
	case errors.Is(err, errBadMKV) || errors.Is(err, io.ErrUnexpectedEOF):
		send(PutMediaAck{EventType: "ERROR", ErrorID: errAckInvalidMKV.id, ErrorCode: errAckInvalidMKV.code})
	case ctx.Err() == nil:
		// The body could not be read: the connection broke, or a chunk's
		// signature did not verify.
		send(PutMediaAck{EventType: "ERROR", ErrorID: 4000, ErrorCode: "STREAM_READ_ERROR"})
	}
	return err
}

// putTrack is a Matroska track the publisher records.
type putTrack struct {
	medi  *description.Media
	forma format.Format
	h264  bool
	// encode packetizes an access unit (its NAL units, or one audio frame).
	encode func(au [][]byte) ([]*rtp.Packet, error)
}

// pendingCluster is a cluster not yet acknowledged PERSISTED.
type pendingCluster struct {
	producer time.Time
	ms       int64
}

func (s *Server) putMedia(ctx context.Context, stream string, body io.Reader, o PutMediaOptions, send func(PutMediaAck)) error {
	r := newMKVReader(body)
	var ev mkvEvent
	var err error
	for ev, err = r.next(); err == nil && ev.Tracks == nil; ev, err = r.next() {
		if ev.ClusterStart || ev.Track != 0 {
			return fmt.Errorf("%w: a cluster before the Tracks", errBadMKV)
		}
	}
	if err != nil {
		return err
	}
	desc, tracks, err := putMediaTracks(ev.Tracks)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p, err := s.startPublisher(stream, desc, cancel)
	if err != nil {
		return err
	}
	l := p.live
	sub := l.subscribe()

	// PERSISTED acks: a cluster is durable once a stored fragment reaches
	// past its start (clusters begin at keyframes, which is where fragments
	// are cut).
	var pmu sync.Mutex
	var pending []pendingCluster
	persisted := make(chan struct{})
	go func() {
		defer close(persisted)
		for f := range sub.C {
			end := f.Producer.Add(f.Duration)
			pmu.Lock()
			n := 0
			for n < len(pending) && pending[n].producer.Before(end) {
				send(PutMediaAck{EventType: "PERSISTED", FragmentTimecode: pending[n].ms, FragmentNumber: f.Number})
				n++
			}
			pending = pending[n:]
			pmu.Unlock()
		}
	}()
	ended := false
	end := func() {
		if !ended {
			ended = true
			s.endPublisher(l, p) // stores the last fragment
		}
	}
	defer func() {
		end()
		sub.Close()
		<-persisted // its acks go out before the caller's response ends
	}()

	var first int64 = -1
	var lastCluster int64 = -1
	var clusterMS int64
	for {
		ev, err = r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			if f := p.storeErr(); f != nil {
				return errAckArchival
			}
			return ctx.Err()
		}
		switch {
		case ev.Tracks != nil:
			return fmt.Errorf("%w: the tracks changed within a session", errAckTracks)
		case ev.ClusterStart:
			if lastCluster >= 0 && ev.Timecode < lastCluster {
				return errAckNotMonotonic
			}
			if lastCluster >= 0 {
				send(PutMediaAck{EventType: "RECEIVED", FragmentTimecode: clusterMS})
			}
			lastCluster = ev.Timecode
			producer := putMediaTime(o, ev.Timecode)
			clusterMS = producer.UnixMilli()
			if o.Relative {
				clusterMS = ev.Timecode / 1e6
			}
			pmu.Lock()
			pending = append(pending, pendingCluster{producer: producer, ms: clusterMS})
			pmu.Unlock()
			send(PutMediaAck{EventType: "BUFFERING", FragmentTimecode: clusterMS})
		default:
			t, ok := tracks[ev.Track]
			if !ok {
				continue // a track that is not recorded
			}
			if first < 0 {
				first = ev.Timecode
			}
			if err := p.putFrame(t, ev, first, putMediaTime(o, ev.Timecode)); err != nil {
				return err
			}
		}
	}
	if lastCluster >= 0 {
		send(PutMediaAck{EventType: "RECEIVED", FragmentTimecode: clusterMS})
	}
	end()
	select { // the last fragment's PERSISTED
	case <-persisted:
	case <-time.After(10 * time.Second):
	}
	if f := p.storeErr(); f != nil {
		return errAckArchival
	}
	return nil
}

// putMediaTime is a timecode's producer time.
func putMediaTime(o PutMediaOptions, tc int64) time.Time {
	if o.Relative {
		return o.ProducerStart.Add(time.Duration(tc))
	}
	return time.Unix(0, tc)
}

// putMediaTracks maps Matroska tracks to the publisher's formats: H.264
// (avcC), AAC (AudioSpecificConfig) and Opus; others are skipped.
func putMediaTracks(infos []mkvTrackInfo) (*description.Session, map[uint64]*putTrack, error) {
	desc := &description.Session{}
	tracks := map[uint64]*putTrack{}
	video, audio := false, false
	for _, ti := range infos {
		var t putTrack
		switch {
		case ti.CodecID == "V_MPEG4/ISO/AVC" && !video:
			sps, pps, err := parseAVCC(ti.CodecPrivate)
			if err != nil {
				return nil, nil, err
			}
			f := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps}
			enc, err := f.CreateEncoder()
			if err != nil {
				return nil, nil, err
			}
			t = putTrack{medi: &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{f}}, forma: f, h264: true, encode: enc.Encode}
			video = true
		case ti.CodecID == "A_AAC" && !audio:
			var conf mpeg4audio.AudioSpecificConfig
			if err := conf.Unmarshal(ti.CodecPrivate); err != nil {
				return nil, nil, fmt.Errorf("%w: AAC CodecPrivate: %v", errBadMKV, err)
			}
			f := &format.MPEG4Audio{PayloadTyp: 97, Config: &conf, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
			enc, err := f.CreateEncoder()
			if err != nil {
				return nil, nil, err
			}
			t = putTrack{medi: &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{f}}, forma: f, encode: enc.Encode}
			audio = true
		case ti.CodecID == "A_OPUS" && !audio:
			ch := int(max(ti.Channels, 1))
			f := &format.Opus{PayloadTyp: 111, ChannelCount: ch}
			enc, err := f.CreateEncoder()
			if err != nil {
				return nil, nil, err
			}
			t = putTrack{medi: &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{f}}, forma: f,
				encode: func(au [][]byte) ([]*rtp.Packet, error) {
					pkt, err := enc.Encode(au[0])
					return []*rtp.Packet{pkt}, err
				}}
			audio = true
		default:
			continue
		}
		desc.Medias = append(desc.Medias, t.medi)
		tracks[ti.Number] = &t
	}
	if len(tracks) == 0 {
		return nil, nil, ErrNoSupportedTrack
	}
	return desc, tracks, nil
}

// parseAVCC reads the SPS and PPS of an AVCDecoderConfigurationRecord
// (ISO 14496-15); frames must use 4-byte NAL unit lengths.
func parseAVCC(b []byte) ([]byte, []byte, error) {
	bad := fmt.Errorf("%w: an H.264 CodecPrivate that is not an avcC record", errBadMKV)
	if len(b) < 7 || b[0] != 1 {
		return nil, nil, bad
	}
	if b[4]&0x03 != 3 {
		return nil, nil, fmt.Errorf("%w: H.264 NAL unit lengths of %d bytes (want 4)", errBadMKV, b[4]&0x03+1)
	}
	pos := 5
	var sps, pps []byte
	for _, dst := range []*[]byte{&sps, &pps} {
		if pos >= len(b) {
			return nil, nil, bad
		}
		n := int(b[pos])
		if dst == &sps {
			n &= 0x1F
		}
		pos++
		for range n {
			if pos+2 > len(b) {
				return nil, nil, bad
			}
			l := int(b[pos])<<8 | int(b[pos+1])
			pos += 2
			if pos+l > len(b) {
				return nil, nil, bad
			}
			if *dst == nil {
				*dst = b[pos : pos+l]
			}
			pos += l
		}
	}
	if sps == nil || pps == nil {
		return nil, nil, bad
	}
	return sps, pps, nil
}

// putFrame hands a Matroska frame to the publisher as RTP, as an RTSP
// camera's would arrive: pts in the track's clock from the first frame.
func (p *publisher) putFrame(t *putTrack, ev mkvEvent, first int64, producer time.Time) error {
	au := [][]byte{ev.Data}
	if t.h264 {
		var avcc h264.AVCC
		if err := avcc.Unmarshal(ev.Data); err != nil {
			return fmt.Errorf("%w: an H.264 frame: %v", errBadMKV, err)
		}
		au = avcc
	}
	pkts, err := t.encode(au)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadMKV, err)
	}
	rate := int64(t.forma.ClockRate())
	pts := (ev.Timecode - first) * rate / int64(time.Second)
	for _, pkt := range pkts {
		pkt.Timestamp = uint32(pts)
		p.packet(t.medi, t.forma, pkt, pts, true, producer)
	}
	if f := p.storeErr(); f != nil {
		return errAckArchival
	}
	return nil
}
