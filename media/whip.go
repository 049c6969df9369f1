package media

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/rtcpreceiver"
	"github.com/bluenviron/gortsplib/v4/pkg/rtptime"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// publish starts a WHIP publisher: the browser's H.264 and Opus go through
// the same publisher as an RTSP camera's (fragmenter, store, live readers).
func (r *rtcServer) publish(stream string, offer *sdp.SessionDescription, raw string) (*rtcSession, int, error) {
	desc, offered := sessionFromOffer(offer)
	if len(desc.Medias) == 0 {
		return nil, http.StatusUnprocessableEntity, fmt.Errorf("the offer has no H264 video or Opus audio to record (it offers %s)", strings.Join(offered, ", "))
	}
	rs, err := r.newPeer(stream, true)
	if err != nil {
		return nil, http.StatusServiceUnavailable, err
	}
	if err := rs.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: raw}); err != nil {
		rs.end(r)
		return nil, http.StatusBadRequest, fmt.Errorf("the offer was refused: %w", err)
	}
	p, err := r.s.startPublisher(stream, desc, func() { go rs.end(r) })
	if err != nil {
		rs.end(r)
		switch {
		case errors.Is(err, errBusy):
			return nil, http.StatusConflict, fmt.Errorf("stream %s already has a publisher", stream)
		case errors.Is(err, ErrStreamNotFound):
			return nil, http.StatusNotFound, err
		case errors.Is(err, ErrNoSupportedTrack):
			return nil, http.StatusUnprocessableEntity, err
		}
		return nil, http.StatusInternalServerError, err
	}
	l := p.live
	rs.onEnd = func() { r.s.endPublisher(l, p) }

	// Browsers send keyframes only when asked: ask when a fragment is due,
	// and when a viewer lost the picture.
	var videoSSRC atomic.Uint32
	p.requestKeyframe = func() {
		if ssrc := videoSSRC.Load(); ssrc != 0 {
			rs.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}) //nolint:errcheck // best effort
		}
	}
	var ts rtptime.GlobalDecoder2
	ts.Initialize()
	rs.pc.OnTrack(func(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		for _, medi := range desc.Medias {
			if (medi.Type == description.MediaTypeVideo) != (track.Kind() == webrtc.RTPCodecTypeVideo) {
				continue
			}
			if medi.Type == description.MediaTypeVideo {
				videoSSRC.Store(uint32(track.SSRC()))
				p.requestKeyframe()
			}
			go r.readTrack(rs, p, medi, medi.Formats[0], track, recv, &ts)
			return
		}
	})
	return rs, 0, nil
}

// sessionFromOffer describes the offer's recordable media for the
// publisher: the first H.264 video and the first Opus audio section. It
// also names every codec offered, for the error when nothing is recordable.
func sessionFromOffer(offer *sdp.SessionDescription) (*description.Session, []string) {
	desc := &description.Session{}
	var offered []string
	var video, audio bool
	for _, md := range offer.MediaDescriptions {
		for _, a := range md.Attributes {
			if a.Key != "rtpmap" {
				continue
			}
			_, enc, _ := strings.Cut(a.Value, " ")
			name, _, _ := strings.Cut(enc, "/")
			offered = append(offered, name)
			switch {
			case md.MediaName.Media == "video" && strings.EqualFold(name, "H264") && !video:
				video = true
				desc.Medias = append(desc.Medias, &description.Media{Type: description.MediaTypeVideo,
					Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1}}})
			case md.MediaName.Media == "audio" && strings.EqualFold(name, "opus") && !audio:
				audio = true
				desc.Medias = append(desc.Medias, &description.Media{Type: description.MediaTypeAudio,
					Formats: []format.Format{&format.Opus{PayloadTyp: 111, ChannelCount: 2}}})
			}
		}
	}
	if len(offered) == 0 {
		offered = []string{"no codecs"}
	}
	return desc, offered
}

// readTrack feeds a WebRTC track's packets, in sequence order, to the
// publisher, with the producer's clock from its sender reports. It returns
// when the peer connection closes.
func (r *rtcServer) readTrack(rs *rtcSession, p *publisher, medi *description.Media, forma format.Format, track *webrtc.TrackRemote,
	recv *webrtc.RTPReceiver, ts *rtptime.GlobalDecoder2) {
	// gortsplib's receiver reorders packets (NACKed ones arrive late) and maps
	// RTP time to the sender's NTP clock; its own reports are not sent, as
	// pion's interceptors already send receiver reports.
	ssrc := uint32(track.SSRC()) + 1
	rr := &rtcpreceiver.RTCPReceiver{ClockRate: forma.ClockRate(), LocalSSRC: &ssrc, UnrealiableTransport: true,
		Period: time.Minute, WritePacketRTCP: func(rtcp.Packet) {}}
	if err := rr.Initialize(); err != nil {
		return
	}
	defer rr.Close()
	go func() {
		for {
			pkts, _, err := recv.ReadRTCP()
			if err != nil {
				return
			}
			for _, pkt := range pkts {
				if sr, ok := pkt.(*rtcp.SenderReport); ok && sr.SSRC == uint32(track.SSRC()) {
					rr.ProcessSenderReport(sr, time.Now())
				}
			}
		}
	}()
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		pkts, lost, err := rr.ProcessPacket2(pkt, time.Now(), forma.PTSEqualsDTS(pkt))
		if err != nil {
			r.s.m.decodeErrors.Inc()
			continue
		}
		if lost > 0 {
			r.s.m.packetsLost.Add(float64(lost))
		}
		for _, pk := range pkts {
			// RTSP readers of this stream see the payload type of its SDP.
			pk.PayloadType = forma.PayloadType()
			pts, ok := ts.Decode(forma, pk)
			ntp, _ := rr.PacketNTP(pk.Timestamp)
			p.packet(medi, forma, pk, pts, ok, ntp)
		}
		select {
		case <-rs.done:
			return
		default:
		}
	}
}
