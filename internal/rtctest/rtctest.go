// Package rtctest holds WebRTC test peers built with pion: a WHIP publisher
// of an H.264 + Opus clip, and a WHEP viewer that records what it receives.
package rtctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// StatusError is a WHIP/WHEP endpoint's refusal.
type StatusError struct {
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.Status, strings.TrimSpace(e.Body))
}

// newPeer makes a peer connection with pion's default codecs and
// interceptors, with ICE over UDP, or over TCP only.
func newPeer(tcp bool) (*webrtc.PeerConnection, error) {
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	if tcp {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).
		NewPeerConnection(webrtc.Configuration{})
}

// Offer posts an SDP offer to a WHIP/WHEP endpoint and returns the answer and
// the session URL.
func Offer(ctx context.Context, endpoint, token, offer string) (answer, session string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(offer))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		return "", "", &StatusError{Status: res.StatusCode, Body: string(body)}
	}
	loc, err := url.Parse(endpoint)
	if err != nil {
		return "", "", err
	}
	rel, err := loc.Parse(res.Header.Get("Location"))
	if err != nil {
		return "", "", err
	}
	return string(body), rel.String(), nil
}

// negotiate runs the offer/answer exchange of pc with an endpoint and
// returns the session URL and the answer.
func negotiate(ctx context.Context, pc *webrtc.PeerConnection, endpoint, token string) (string, string, error) {
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return "", "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return "", "", err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", "", ctx.Err()
	}
	answer, session, err := Offer(ctx, endpoint, token, pc.LocalDescription().SDP)
	if err != nil {
		return "", "", err
	}
	return session, answer, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
}

// Delete ends a session by its URL.
func Delete(session string) (int, error) {
	req, err := http.NewRequest(http.MethodDelete, session, nil)
	if err != nil {
		return 0, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

// Publisher sends an H.264 (Annex-B) and an Ogg Opus file over WHIP in real
// time, looping, until closed.
type Publisher struct {
	Session string
	PLIs    atomic.Int64 // keyframe requests received
	pc      *webrtc.PeerConnection
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// Publish starts a WHIP publisher; fps is the video's frame rate.
func Publish(ctx context.Context, endpoint, token, h264File, oggFile string, fps int) (*Publisher, error) {
	pc, err := newPeer(false)
	if err != nil {
		return nil, err
	}
	p := &Publisher{pc: pc, stop: make(chan struct{})}
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "video", "test")
	if err != nil {
		return nil, err
	}
	audio, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "test")
	if err != nil {
		return nil, err
	}
	for _, t := range []*webrtc.TrackLocalStaticSample{video, audio} {
		tr, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			pc.Close()
			return nil, err
		}
		sender := tr.Sender()
		isVideo := t == video
		go func() {
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, pkt := range pkts {
					if _, ok := pkt.(*rtcp.PictureLossIndication); ok && isVideo {
						p.PLIs.Add(1)
					}
				}
			}
		}()
	}
	connected := make(chan struct{})
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	if p.Session, _, err = negotiate(ctx, pc, endpoint, token); err != nil {
		pc.Close()
		return nil, err
	}
	select {
	case <-connected:
	case <-ctx.Done():
		pc.Close()
		return nil, ctx.Err()
	case <-time.After(10 * time.Second):
		pc.Close()
		return nil, errors.New("WHIP publisher did not connect")
	}
	start := time.Now()
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.sendVideo(video, h264File, time.Second/time.Duration(fps), start) }()
	go func() { defer p.wg.Done(); p.sendAudio(audio, oggFile, start) }()
	return p, nil
}

// pace waits until a media time after start; false when stopped.
func (p *Publisher) pace(start time.Time, at time.Duration) bool {
	select {
	case <-p.stop:
		return false
	case <-time.After(time.Until(start.Add(at))):
		return true
	}
}

func (p *Publisher) sendVideo(t *webrtc.TrackLocalStaticSample, file string, frame time.Duration, start time.Time) {
	var at time.Duration
	for {
		data, err := os.ReadFile(file)
		if err != nil {
			return
		}
		r, err := h264reader.NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		var au []byte
		for {
			nal, err := r.NextNAL()
			if err != nil {
				break
			}
			au = append(append(au, 0, 0, 0, 1), nal.Data...)
			if nal.UnitType != h264reader.NalUnitTypeCodedSliceIdr && nal.UnitType != h264reader.NalUnitTypeCodedSliceNonIdr {
				continue
			}
			if !p.pace(start, at) {
				return
			}
			t.WriteSample(media.Sample{Data: au, Duration: frame}) //nolint:errcheck // ends with the session
			at += frame
			au = nil
		}
	}
}

func (p *Publisher) sendAudio(t *webrtc.TrackLocalStaticSample, file string, start time.Time) {
	var at time.Duration
	for {
		f, err := os.Open(file)
		if err != nil {
			return
		}
		r, _, err := oggreader.NewWith(f)
		if err != nil {
			f.Close()
			return
		}
		var last uint64
		for {
			page, h, err := r.ParseNextPage()
			if err != nil {
				break
			}
			if len(page) == 0 || bytes.HasPrefix(page, []byte("OpusHead")) || bytes.HasPrefix(page, []byte("OpusTags")) {
				last = h.GranulePosition
				continue
			}
			d := time.Duration(h.GranulePosition-last) * time.Second / 48000
			last = h.GranulePosition
			if !p.pace(start, at) {
				f.Close()
				return
			}
			t.WriteSample(media.Sample{Data: page, Duration: d}) //nolint:errcheck // ends with the session
			at += d
		}
		f.Close()
	}
}

// Close ends the WHIP session (DELETE) and the peer.
func (p *Publisher) Close() {
	p.Drop()
	Delete(p.Session) //nolint:errcheck // the server may be gone
}

// Drop closes the peer without ending the session, like a browser tab that
// is closed. It may be called before Close.
func (p *Publisher) Drop() {
	p.once.Do(func() {
		close(p.stop)
		p.wg.Wait()
		p.pc.Close()
	})
}

// Viewer plays a stream over WHEP and records what arrives.
type Viewer struct {
	Session       string
	Answer        string // the gateway's SDP answer
	Start         time.Time
	FirstKeyframe atomic.Int64 // ns from Start to the first complete keyframe; 0 before
	Frames        atomic.Int64 // complete video access units
	Keyframes     atomic.Int64
	AudioPackets  atomic.Int64
	VideoBytes    atomic.Int64  // RTP payload bytes of video
	Ended         chan struct{} // closed when the connection failed or closed

	pc   *webrtc.PeerConnection
	opts ViewerOptions
	mu   sync.Mutex
	h264 bytes.Buffer // Annex-B from the first keyframe, when keep
}

// ViewerOptions say what a viewer does with the video.
type ViewerOptions struct {
	Keep      bool              // retain the video (Annex-B) for checks
	OnAU      func(au [][]byte) // called for each complete access unit
	CountOnly bool              // only count payload bytes (no depacketizing): many cheap viewers
	TCP       bool              // ICE over TCP only
}

// Play starts a WHEP viewer.
func Play(ctx context.Context, endpoint, token string, opts ViewerOptions) (*Viewer, error) {
	pc, err := newPeer(opts.TCP)
	if err != nil {
		return nil, err
	}
	v := &Viewer{pc: pc, opts: opts, Start: time.Now(), Ended: make(chan struct{})}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return nil, err
		}
	}
	var once sync.Once
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			once.Do(func() { close(v.Ended) })
		}
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if t.Kind() == webrtc.RTPCodecTypeAudio {
			for {
				if _, _, err := t.ReadRTP(); err != nil {
					return
				}
				v.AudioPackets.Add(1)
			}
		}
		v.readVideo(t)
	})
	if v.Session, v.Answer, err = negotiate(ctx, pc, endpoint, token); err != nil {
		pc.Close()
		return nil, err
	}
	return v, nil
}

func (v *Viewer) readVideo(t *webrtc.TrackRemote) {
	dec, err := (&format.H264{PacketizationMode: 1}).CreateDecoder()
	if err != nil {
		return
	}
	started := false
	buf := make([]byte, 1500)
	for {
		if v.opts.CountOnly {
			n, _, err := t.Read(buf)
			if err != nil {
				return
			}
			v.VideoBytes.Add(int64(n))
			continue
		}
		pkt, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		v.VideoBytes.Add(int64(len(pkt.Payload)))
		au, err := dec.Decode(pkt)
		if err != nil || au == nil {
			continue
		}
		key := h264.IsRandomAccess(au)
		if key && v.FirstKeyframe.Load() == 0 {
			v.FirstKeyframe.Store(int64(time.Since(v.Start)))
		}
		if key {
			v.Keyframes.Add(1)
			started = true
		}
		if !started {
			continue
		}
		v.Frames.Add(1)
		if v.opts.OnAU != nil {
			v.opts.OnAU(au)
		}
		if v.opts.Keep {
			b, err := h264.AnnexB(au).Marshal()
			if err == nil {
				v.mu.Lock()
				v.h264.Write(b)
				v.mu.Unlock()
			}
		}
	}
}

// RequestKeyframe sends a picture loss indication for the video, as a
// browser does when it cannot decode.
func (v *Viewer) RequestKeyframe() error {
	for _, r := range v.pc.GetReceivers() {
		if t := r.Track(); t != nil && t.Kind() == webrtc.RTPCodecTypeVideo {
			return v.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.SSRC())}})
		}
	}
	return errors.New("no video track yet")
}

// H264 returns the video received so far (Annex-B, from the first keyframe).
func (v *Viewer) H264() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return bytes.Clone(v.h264.Bytes())
}

// Close ends the WHEP session (DELETE) and the peer.
func (v *Viewer) Close() {
	Delete(v.Session) //nolint:errcheck // the server may be gone
	v.pc.Close()
}
