package media

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// rtcFeed packetizes a live stream's H.264 video and Opus audio once for all
// its WebRTC viewers: every viewer is handed the same packets (each viewer's
// goroutine only adjusts a header copy and encrypts). It works only while
// viewers exist.
type rtcFeed struct {
	video   *rtcOut // nil: no H.264 track
	audio   *rtcOut // nil: no Opus track
	skipped []string

	mu           sync.Mutex
	viewers      map[*rtcViewer]struct{}
	lastVideoPTS int64
	closed       bool
	m            *Metrics
}

// rtcOut is one track's packetizer.
type rtcOut struct {
	index   int // the publisher's codec track
	codec   webrtc.RTPCodecCapability
	h264    *rtph264.Encoder // nil for Opus
	nextSeq uint16
	tsBase  uint32
}

// rtcFrame is one access unit's packets, shared read-only by all viewers.
type rtcFrame struct {
	video, key bool
	pkts       []*rtp.Packet
}

// rtcItem is a frame as one viewer sends it: its sequence numbers shifted
// down by the packets this viewer skipped, so the viewer's stream has no
// gaps its browser would ask to have resent.
type rtcItem struct {
	fr    *rtcFrame
	shift uint16
}

// viewerQueue is how many frames (about 2 s of 30 fps video and its audio)
// a viewer may lag before it skips to the next keyframe.
const viewerQueue = 160

// rtcViewer is one WHEP session's place in the feed.
type rtcViewer struct {
	queue chan rtcItem // closed when the publisher ends
	// under rtcFeed.mu:
	resync bool      // skipping until the next video keyframe
	shift  [2]uint16 // packets skipped, per track (video, audio)
}

// newRTCFeed picks the tracks WebRTC can carry: the first H.264 and the
// first Opus track.
func newRTCFeed(cts []codecTrack, m *Metrics) *rtcFeed {
	f := &rtcFeed{viewers: map[*rtcViewer]struct{}{}, m: m}
	for i, ct := range cts {
		switch ct.(type) {
		case *h264Track:
			if f.video == nil {
				enc := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: videoPayloadMax, PacketizationMode: 1}
				enc.Init() //nolint:errcheck // fails only for packetization mode 2
				f.video = &rtcOut{index: i, h264: enc, nextSeq: *enc.InitialSequenceNumber, tsBase: *enc.SSRC,
					codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
						SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}}
				continue
			}
		case *opusTrack:
			if f.audio == nil {
				f.audio = &rtcOut{index: i, nextSeq: uint16(randUint32()), tsBase: randUint32(),
					codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
						SDPFmtpLine: "minptime=10;useinbandfec=1"}}
				continue
			}
		}
		f.skipped = append(f.skipped, ct.name())
	}
	return f
}

// randUint32 returns a random initial RTP sequence number or timestamp.
func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:]) //nolint:errcheck // never fails
	return binary.BigEndian.Uint32(b[:])
}

// write hands an access unit of codec track i to the viewers, packetized
// once. The publisher calls it, in order, for every access unit.
func (f *rtcFeed) write(i int, ct codecTrack, pts int64, au [][]byte) {
	var out *rtcOut
	switch {
	case f.video != nil && i == f.video.index:
		out = f.video
	case f.audio != nil && i == f.audio.index:
		out = f.audio
	default:
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if out == f.video {
		f.lastVideoPTS = pts
	}
	if len(f.viewers) == 0 {
		return
	}
	var fr *rtcFrame
	if out == f.video {
		au = ct.(*h264Track).inband(au)
		pkts, err := out.h264.Encode(copyAU(au))
		if err != nil || len(pkts) == 0 {
			return
		}
		for _, p := range pkts {
			p.Timestamp = out.tsBase + uint32(pts)
		}
		out.nextSeq = pkts[len(pkts)-1].SequenceNumber + 1
		fr = &rtcFrame{video: true, key: h264.IsRandomAccess(au), pkts: pkts}
	} else {
		fr = &rtcFrame{pkts: []*rtp.Packet{{
			Header:  rtp.Header{Version: 2, Marker: true, SequenceNumber: out.nextSeq, Timestamp: out.tsBase + uint32(pts)},
			Payload: bytes.Clone(au[0]),
		}}}
		out.nextSeq++
	}
	for v := range f.viewers {
		f.offer(v, fr)
	}
}

// copyAU copies an access unit's NAL units into one buffer: the packets
// outlive the depacketizer's buffers.
func copyAU(au [][]byte) [][]byte {
	n := 0
	for _, nalu := range au {
		n += len(nalu)
	}
	buf := make([]byte, 0, n)
	out := make([][]byte, len(au))
	for i, nalu := range au {
		buf = append(buf, nalu...)
		out[i] = buf[len(buf)-len(nalu):]
	}
	return out
}

// offer queues a frame for a viewer; a viewer whose queue is full skips to
// the next keyframe (the recording and the other viewers never wait).
func (f *rtcFeed) offer(v *rtcViewer, fr *rtcFrame) {
	t := 1
	if fr.video {
		t = 0
	}
	if v.resync {
		if f.video != nil && !fr.key {
			v.shift[t] += uint16(len(fr.pkts))
			return
		}
		v.resync = false
	}
	select {
	case v.queue <- rtcItem{fr: fr, shift: v.shift[t]}:
	default:
		v.resync = true
		v.shift[t] += uint16(len(fr.pkts))
		f.m.webrtcViewerSkips.Inc()
	}
}

// join adds a viewer. gop is the current group of pictures (stored H.264
// samples from the latest keyframe); the viewer is sent it at once,
// numbered to end just before the next live packet and timed just before
// the newest picture, so its decoder has a picture now and plays on live.
// Without a GOP the viewer waits for the next keyframe.
func (f *rtcFeed) join(v *rtcViewer, gop [][]byte) ([]*rtp.Packet, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, false
	}
	var burst []*rtp.Packet
	if f.video != nil && len(gop) > 0 {
		enc := &rtph264.Encoder{PayloadType: 96, PayloadMaxSize: videoPayloadMax, PacketizationMode: 1}
		enc.Init() //nolint:errcheck // cannot fail
		for j, payload := range gop {
			var au h264.AVCC
			if err := au.Unmarshal(payload); err != nil {
				burst = nil
				break
			}
			pkts, err := enc.Encode(copyAU(au))
			if err != nil {
				burst = nil
				break
			}
			for _, p := range pkts {
				p.Timestamp = f.video.tsBase + uint32(f.lastVideoPTS) - uint32(len(gop)-1-j)
			}
			burst = append(burst, pkts...)
		}
		for k, p := range burst {
			p.SequenceNumber = f.video.nextSeq - uint16(len(burst)-k)
		}
	}
	v.resync = f.video != nil && len(burst) == 0
	f.viewers[v] = struct{}{}
	return burst, true
}

// leave removes a viewer.
func (f *rtcFeed) leave(v *rtcViewer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.viewers, v)
}

// close ends every viewer: the publisher is gone.
func (f *rtcFeed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for v := range f.viewers {
		close(v.queue)
		delete(f.viewers, v)
	}
}

// play starts a WHEP viewer of a live stream.
func (r *rtcServer) play(stream string, offer *sdp.SessionDescription, raw string) (*rtcSession, int, error) {
	r.s.mu.Lock()
	l := r.s.lives[stream]
	r.s.mu.Unlock()
	if l == nil {
		return nil, http.StatusNotFound, fmt.Errorf("stream %s is not live (it has no publisher)", stream)
	}
	p := l.pub
	f := p.rtc
	video := f.video != nil && offers(offer, "video", "H264")
	audio := f.audio != nil && offers(offer, "audio", "opus")
	if !video && !audio {
		return nil, http.StatusUnprocessableEntity, fmt.Errorf("nothing to send: WebRTC carries H264 and Opus; the offer and stream %s have none in common", stream)
	}
	rs, err := r.newPeer(stream, false)
	if err != nil {
		return nil, http.StatusServiceUnavailable, err
	}
	if err := rs.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: raw}); err != nil {
		rs.end(r)
		return nil, http.StatusBadRequest, fmt.Errorf("the offer was refused: %w", err)
	}
	var vt, at *webrtc.TrackLocalStaticRTP
	if video {
		vt, err = r.addTrack(rs, p, f.video.codec)
	}
	if err == nil && audio {
		at, err = r.addTrack(rs, p, f.audio.codec)
	}
	if err != nil {
		rs.end(r)
		return nil, http.StatusInternalServerError, err
	}
	// Inactive m-lines tell the client what it will not get.
	for _, tr := range rs.pc.GetTransceivers() {
		if tr.Sender() == nil || tr.Sender().Track() == nil {
			tr.Stop() //nolint:errcheck // best effort
		}
	}
	if len(f.skipped) > 0 {
		r.log.Info("tracks not carried over WebRTC", "stream", stream, "codecs", strings.Join(f.skipped, ", "))
	}
	v := &rtcViewer{queue: make(chan rtcItem, viewerQueue)}
	rs.onEnd = func() { f.leave(v) }
	go r.view(rs, p, v, vt, at)
	return rs, 0, nil
}

// offers reports whether an offer has a section of the kind with the codec.
func offers(offer *sdp.SessionDescription, kind, codec string) bool {
	for _, md := range offer.MediaDescriptions {
		if md.MediaName.Media != kind {
			continue
		}
		for _, a := range md.Attributes {
			if a.Key == "rtpmap" {
				_, enc, _ := strings.Cut(a.Value, " ")
				if name, _, _ := strings.Cut(enc, "/"); strings.EqualFold(name, codec) {
					return true
				}
			}
		}
	}
	return false
}

// addTrack adds a viewer's outgoing track and forwards its picture loss
// reports to the publisher.
func (r *rtcServer) addTrack(rs *rtcSession, p *publisher, c webrtc.RTPCodecCapability) (*webrtc.TrackLocalStaticRTP, error) {
	kind := strings.SplitN(c.MimeType, "/", 2)[0]
	t, err := webrtc.NewTrackLocalStaticRTP(c, kind, "streamgate")
	if err != nil {
		return nil, err
	}
	sender, err := rs.pc.AddTrack(t)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			pkts, _, err := sender.ReadRTCP() // also runs the NACK responder
			if err != nil {
				return
			}
			for _, pkt := range pkts {
				switch pkt.(type) {
				case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
					p.askKeyframe()
				}
			}
		}
	}()
	return t, nil
}

// view sends a viewer its stream once it is connected: the current GOP,
// then live frames, until the session or the publisher ends.
func (r *rtcServer) view(rs *rtcSession, p *publisher, v *rtcViewer, vt, at *webrtc.TrackLocalStaticRTP) {
	select {
	case <-rs.connected:
	case <-rs.done:
		return
	}
	burst, ok := p.joinRTC(v)
	if !ok {
		rs.end(r)
		return
	}
	if len(burst) == 0 {
		p.askKeyframe()
	}
	for _, pkt := range burst {
		vt.WriteRTP(pkt) //nolint:errcheck // a closed session ends below
	}
	for {
		select {
		case it, ok := <-v.queue:
			if !ok {
				rs.end(r) // the publisher ended
				return
			}
			t := at
			if it.fr.video {
				t = vt
			}
			for _, pkt := range it.fr.pkts {
				h := *pkt
				h.SequenceNumber -= it.shift
				t.WriteRTP(&h) //nolint:errcheck // as above
			}
		case <-rs.done:
			return
		}
	}
}
