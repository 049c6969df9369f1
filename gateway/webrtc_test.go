package gateway_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/pion/webrtc/v4"
	"github.com/streamgate/streamgate/gateway"
	"github.com/streamgate/streamgate/internal/mediatest"
	"github.com/streamgate/streamgate/internal/rtctest"
	"github.com/streamgate/streamgate/media"
)

// startWebRTCServer is a video server with WHIP/WHEP on (ICE on a loopback port).
func startWebRTCServer(t testing.TB, tweak func(*gateway.Config)) *server {
	t.Helper()
	return startVideoServer(t, func(c *gateway.Config) {
		c.WebRTCAddr = "127.0.0.1:0"
		if tweak != nil {
			tweak(c)
		}
	})
}

// token is the bearer token of the admin key.
func (s *server) token() string { return s.key.ID + ":" + s.key.Secret }

// waitFor polls cond until it holds or the time is up.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A pion peer publishes H.264 + Opus over WHIP; a second plays it over WHEP
// and gets a decodable picture at once (the current GOP) and Opus; the
// stream is stored: ListFragments lists it and GetClip has both tracks.
func TestWHIPToWHEPWithPionPeers(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg", "ffprobe")
	s := startWebRTCServer(t, nil)
	h264, ogg := mediatest.Elementary(t, mediatest.Clip(t, "webrtc", 10))
	pub, err := rtctest.Publish(ctx, s.endpoint+"/whip/desk", s.token(), h264, ogg, 25)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // join mid-GOP: the viewer must not wait for the next keyframe
	v, err := rtctest.Play(ctx, s.endpoint+"/whep/desk", s.token(), rtctest.ViewerOptions{Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "100 frames over WHEP", func() bool { return v.Frames.Load() >= 100 })
	t.Logf("first keyframe after %v; %d frames, %d audio packets", time.Duration(v.FirstKeyframe.Load()), v.Frames.Load(), v.AudioPackets.Load())
	if v.AudioPackets.Load() == 0 {
		t.Error("no Opus packets reached the viewer")
	}
	got := filepath.Join(t.TempDir(), "whep.h264")
	os.WriteFile(got, v.H264(), 0o644)
	mediatest.DecodeClean(t, got)
	if n := mediatest.Frames(t, got); n < 100 {
		t.Errorf("ffmpeg decoded %d frames of what the viewer got, want >= 100", n)
	}
	v.Close()
	plis := pub.PLIs.Load()
	pub.Close()
	s.waitLive(t, "desk", false)

	c := s.videoClients()
	frags := listAll(t, c, "desk", nil)
	if len(frags) < 2 {
		t.Fatalf("ListFragments: %d fragments, want several", len(frags))
	}
	first, last := frags[0], frags[len(frags)-1]
	clip, err := c.archived.GetClip(ctx, &kinesisvideoarchivedmedia.GetClipInput{StreamName: aws.String("desk"),
		ClipFragmentSelector: &amtypes.ClipFragmentSelector{FragmentSelectorType: amtypes.ClipFragmentSelectorTypeServerTimestamp,
			TimestampRange: &amtypes.ClipTimestampRange{StartTimestamp: first.ServerTimestamp, EndTimestamp: aws.Time(last.ServerTimestamp.Add(time.Second))}}})
	if err != nil {
		t.Fatal(err)
	}
	mp4 := mediatest.Save(t, clip.Payload, "clip.mp4")
	if codecs := mediatest.Codecs(t, mp4); !slices.Equal(codecs, []string{"h264", "opus"}) {
		t.Errorf("GetClip of the WHIP stream has %v, want [h264 opus]", codecs)
	}
	mediatest.DecodeClean(t, mp4)
	// A browser's encoder sends keyframes only when asked: the gateway asks
	// (PLI) when a fragment is due.
	if plis == 0 {
		t.Error("the gateway never asked the WHIP publisher for a keyframe")
	}
}

// offerSDP is a valid offer from a pion peer with the given codecs sending
// (WHIP) or receiving (WHEP) video.
func offerSDP(t *testing.T, mime string, dir webrtc.RTPTransceiverDirection) string {
	t.Helper()
	me := &webrtc.MediaEngine{}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: dir}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// call sends a WHIP/WHEP request and returns its status and body.
func call(t *testing.T, method, url, contentType, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// openSockets counts the process's sockets (files of the store stay open
// by design).
func openSockets() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// Bad offers, unknown streams and sessions, and missing or wrong tokens get
// HTTP errors with a clear body; afterwards (and after a whole session) no
// goroutine or socket is left behind. Not parallel: it counts goroutines.
func TestWebRTCBadInputAndAuth(t *testing.T) {
	mediatest.Need(t, "ffmpeg")
	s := startWebRTCServer(t, nil)
	h264, ogg := mediatest.Elementary(t, mediatest.Clip(t, "webrtc", 10))
	http.DefaultClient.CloseIdleConnections()
	goroutines, sockets := runtime.NumGoroutine(), openSockets()

	whip, whep := s.endpoint+"/whip/", s.endpoint+"/whep/"
	for _, c := range []struct {
		name, method, url, ctype, token, body string
		status                                int
		says                                  string
	}{
		{"malformed SDP", "POST", whip + "cam", "application/sdp", s.token(), "this is not SDP", 400, "malformed SDP offer"},
		{"SDP without media", "POST", whip + "cam", "application/sdp", s.token(), "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", 400, "no media"},
		{"wrong content type", "POST", whip + "cam", "application/json", s.token(), "{}", 415, "application/sdp"},
		{"no supported codec", "POST", whip + "cam", "application/sdp", s.token(), offerSDP(t, webrtc.MimeTypeVP8, webrtc.RTPTransceiverDirectionSendonly), 422, "offers VP8"},
		{"WHEP of a stream that does not exist", "POST", whep + "nothing", "application/sdp", s.token(), offerSDP(t, webrtc.MimeTypeH264, webrtc.RTPTransceiverDirectionRecvonly), 404, "not live"},
		{"DELETE of an unknown session", "DELETE", whep + "cam/0123456789abcdef", "", s.token(), "", 404, "no such session"},
		{"PATCH of an unknown session", "PATCH", whip + "cam/0123456789abcdef", "application/trickle-ice-sdpfrag", s.token(), "a=end-of-candidates\r\n", 404, "no such session"},
		{"WHEP without a token", "POST", whep + "cam", "application/sdp", "", offerSDP(t, webrtc.MimeTypeH264, webrtc.RTPTransceiverDirectionRecvonly), 401, "bearer token"},
		{"WHIP with a wrong secret", "POST", whip + "cam", "application/sdp", s.key.ID + ":wrong", offerSDP(t, webrtc.MimeTypeH264, webrtc.RTPTransceiverDirectionSendonly), 401, "bearer token"},
		{"unknown path", "GET", s.endpoint + "/whip/", "", "", "", 404, "POST /whip/{stream}"},
	} {
		status, body := call(t, c.method, c.url, c.ctype, c.token, c.body)
		if status != c.status || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %q, want %d saying %q", c.name, status, body, c.status, c.says)
		}
	}

	// A key that may only watch cam.
	viewer := s.addKey(t, "cam-viewer", `{"Statement":[{"Effect":"Allow","Action":"kinesisvideo:GetMedia","Resource":"arn:aws:kinesisvideo:*:*:stream/cam/*"}]}`)
	viewerToken := viewer.ID + ":" + viewer.Secret
	if status, body := call(t, "POST", whip+"cam", "application/sdp", viewerToken, offerSDP(t, webrtc.MimeTypeH264, webrtc.RTPTransceiverDirectionSendonly)); status != 403 {
		t.Errorf("WHIP with a key that may only watch: %d %s, want 403", status, body)
	}
	if status, body := call(t, "POST", whep+"garage", "application/sdp", viewerToken, offerSDP(t, webrtc.MimeTypeH264, webrtc.RTPTransceiverDirectionRecvonly)); status != 403 {
		t.Errorf("WHEP of another stream: %d %s, want 403", status, body)
	}

	// A whole session: publish, watch (with the viewer's key), a second
	// publisher refused, trickle, end.
	pub, err := rtctest.Publish(ctx, whip+"cam", s.token(), h264, ogg, 25)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rtctest.Publish(ctx, whip+"cam", s.token(), h264, ogg, 25); err == nil || err.(*rtctest.StatusError).Status != 409 {
		t.Errorf("second publisher: %v, want HTTP 409", err)
	}
	v, err := rtctest.Play(ctx, whep+"cam", viewerToken, rtctest.ViewerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "frames", func() bool { return v.Frames.Load() > 10 })
	if status, body := call(t, "PATCH", v.Session, "application/trickle-ice-sdpfrag", "", "a=ice-ufrag:other\r\na=ice-pwd:otherotherotherotherother\r\n"); status != 422 {
		t.Errorf("ICE restart: %d %s, want 422", status, body)
	}
	if status, _ := call(t, "DELETE", v.Session, "", "", ""); status != 200 {
		t.Errorf("DELETE of the viewer's session: %d, want 200", status)
	}
	select {
	case <-v.Ended:
	case <-time.After(10 * time.Second):
		t.Error("the viewer's peer connection was not closed after DELETE")
	}
	v.Close()
	pub.Close()
	s.waitLive(t, "cam", false)

	http.DefaultClient.CloseIdleConnections()
	for deadline := time.Now().Add(15 * time.Second); runtime.NumGoroutine() > goroutines || openSockets() > sockets; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("leak: %d goroutines (were %d), %d sockets (were %d)\n%s", runtime.NumGoroutine(), goroutines, openSockets(), sockets, buf[:runtime.Stack(buf, true)])
		}
	}
}

// ICE-TCP on the ICE port's number carries a viewer whose network allows
// no UDP; configured additional hosts (a NAT's public address) are
// announced as host candidates on the same port. Both with host candidates
// only (the gateway is ICE-lite) and with an ICE server, which makes it a
// full agent and is announced in Link headers.
func TestWHEPOverICETCPAndAdditionalHosts(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	clip := mediatest.Clip(t, "camera", 6)
	for _, c := range []struct {
		name    string
		servers []media.ICEServer
	}{
		{"ice-lite", nil},
		{"full ICE with a STUN server", []media.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startWebRTCServer(t, func(cfg *gateway.Config) {
				cfg.WebRTC.AdditionalHosts = []string{"192.0.2.10"}
				cfg.WebRTC.ICEServers = c.servers
			})
			req, _ := http.NewRequest("OPTIONS", s.endpoint+"/whep/dock", nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			wantLink := ""
			if c.servers != nil {
				wantLink = `<stun:127.0.0.1:3478>; rel="ice-server"`
			}
			if link := res.Header.Get("Link"); res.StatusCode != 204 || link != wantLink {
				t.Errorf("OPTIONS: %d, Link %q, want %q", res.StatusCode, link, wantLink)
			}
			mediatest.PublishLoop(t, clip, s.rtspURL("dock"))
			s.waitLive(t, "dock", true)
			v, err := rtctest.Play(ctx, s.endpoint+"/whep/dock", s.token(), rtctest.ViewerOptions{TCP: true})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			waitFor(t, 15*time.Second, "frames over ICE-TCP", func() bool { return v.Frames.Load() >= 30 })
			if lite := strings.Contains(v.Answer, "a=ice-lite"); lite != (c.servers == nil) {
				t.Errorf("answer says ice-lite: %v; want it only without ICE servers (a full agent gathers through them)", lite)
			}
			_, port, _ := strings.Cut(s.gw.WebRTCAddr(), ":")
			for _, want := range []string{" udp ", " tcp "} {
				found := false
				for _, line := range strings.Split(v.Answer, "\r\n") {
					if strings.HasPrefix(line, "a=candidate:") && strings.Contains(line, want) && strings.Contains(line, " 192.0.2.10 "+port+" typ host") {
						found = true
					}
				}
				if !found {
					t.Errorf("no%scandidate for the additional host 192.0.2.10:%s in the answer:\n%s", want, port, v.Answer)
				}
			}
		})
	}
}

// A viewer's picture loss report (PLI) reaches the WebRTC publisher as a
// keyframe request. Fragments of 20 s keep the gateway's own requests (a
// fragment is due) out of the count.
func TestWHEPViewerPLIReachesWHIPPublisher(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	s := startWebRTCServer(t, func(c *gateway.Config) {
		c.Video.MaxFragmentDuration = 20 * time.Second
		c.Video.StreamFragmentDurations = map[string]time.Duration{"pli": 20 * time.Second}
	})
	h264, ogg := mediatest.Elementary(t, mediatest.Clip(t, "webrtc", 10))
	pub, err := rtctest.Publish(ctx, s.endpoint+"/whip/pli", s.token(), h264, ogg, 25)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	v, err := rtctest.Play(ctx, s.endpoint+"/whep/pli", s.token(), rtctest.ViewerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	waitFor(t, 10*time.Second, "frames", func() bool { return v.Frames.Load() > 10 })
	time.Sleep(time.Second) // past the gateway's rate limit of keyframe requests
	before := pub.PLIs.Load()
	if err := v.RequestKeyframe(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the viewer's PLI at the publisher", func() bool { return pub.PLIs.Load() > before })

	// A publisher that goes away without DELETE (a closed tab) ends its
	// session: the stream leaves the live registry, its viewer is ended, and
	// the open fragment is stored.
	pub.Drop()
	s.waitLive(t, "pli", false)
	select {
	case <-v.Ended:
	case <-time.After(10 * time.Second):
		t.Error("the viewer's session did not end with its publisher")
	}
	if n := len(listAll(t, s.videoClients(), "pli", nil)); n == 0 {
		t.Error("the dropped publisher's open fragment was not stored")
	}
}
