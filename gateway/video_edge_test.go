package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideomedia"
	mtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideomedia/types"
	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"
	"github.com/streamgate/streamgate/gateway"
	"github.com/streamgate/streamgate/internal/mediatest"
	"github.com/streamgate/streamgate/media"
)

// rtspStatus returns the RTSP status of a DESCRIBE by a gortsplib client.
func rtspStatus(t *testing.T, rawURL string) int {
	t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, res, err := c.Describe(u)
	var bad liberrors.ErrClientBadStatusCode
	switch {
	case err == nil:
		return int(res.StatusCode)
	case errors.As(err, &bad):
		return int(bad.Code)
	}
	t.Fatalf("DESCRIBE %s: %v", u.Host, err)
	return 0
}

// RTSP follows the gateway's keys and policies: no credentials or a wrong
// secret is 401, a key without kinesisvideo:GetMedia on the stream 403.
func TestRTSPAuthentication(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	s := startVideoServer(t, nil)
	viewer := s.addKey(t, "lobby-viewer", `{"Statement":[{"Effect":"Allow","Action":"kinesisvideo:GetMedia","Resource":"arn:aws:kinesisvideo:*:*:stream/lobby/*"}]}`)
	addr := s.gw.RTSPAddr()
	if got := rtspStatus(t, "rtsp://"+addr+"/lobby"); got != 401 {
		t.Errorf("no credentials: %d, want 401", got)
	}
	if got := rtspStatus(t, "rtsp://"+s.key.ID+":wrong@"+addr+"/lobby"); got != 401 {
		t.Errorf("wrong secret: %d, want 401", got)
	}
	if got := rtspStatus(t, "rtsp://"+viewer.ID+":"+viewer.Secret+"@"+addr+"/garage"); got != 403 {
		t.Errorf("key without access to the stream: %d, want 403", got)
	}
	if got := rtspStatus(t, "rtsp://"+viewer.ID+":"+viewer.Secret+"@"+addr+"/lobby"); got != 404 {
		t.Errorf("allowed key, stream not live (Digest, as gortsplib's client answers the challenge): %d, want 404", got)
	}
	// Basic, sent up front by a client that does not wait for the challenge.
	basic := func(user, pass string) string {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "DESCRIBE rtsp://%s/lobby RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic %s\r\n\r\n", addr, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		return strings.TrimSpace(line)
	}
	if got := basic(viewer.ID, viewer.Secret); !strings.Contains(got, "404") {
		t.Errorf("Basic with the right secret: %q, want 404 (authenticated, not live)", got)
	}
	if got := basic(viewer.ID, "wrong"); !strings.Contains(got, "401") {
		t.Errorf("Basic with a wrong secret: %q, want 401", got)
	}
	// The viewer may not publish; ffmpeg without credentials neither.
	clip := mediatest.Clip(t, "h264", 4)
	for _, target := range []string{"rtsp://" + viewer.ID + ":" + viewer.Secret + "@" + addr + "/lobby", "rtsp://" + addr + "/lobby"} {
		out, err := exec.Command("ffmpeg", "-v", "error", "-i", clip, "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", target).CombinedOutput()
		if err == nil {
			t.Errorf("publishing to %s succeeded without the right to", strings.Replace(target, viewer.Secret, "***", 1))
		} else if !strings.Contains(string(out), "40") {
			t.Errorf("publish refusal does not say 401/403: %s", out)
		}
	}
	// With the admin key it works, and the viewer can then read it live.
	mediatest.PublishLoop(t, clip, s.rtspURL("lobby"))
	s.waitLive(t, "lobby", true)
	if got := rtspStatus(t, "rtsp://"+viewer.ID+":"+viewer.Secret+"@"+addr+"/lobby"); got != 200 {
		t.Errorf("allowed key, live stream: %d, want 200", got)
	}
}

// A live stream is readable over RTSP from memory: ffmpeg reads it and
// decodes frames while the publisher runs.
func TestRTSPReadLive(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	s := startVideoServer(t, nil)
	clip := mediatest.Clip(t, "h264", 4)
	mediatest.PublishLoop(t, clip, s.rtspURL("live"))
	s.waitLive(t, "live", true)
	out := filepath.Join(t.TempDir(), "read.mkv")
	if b, err := exec.Command("ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", s.rtspURL("live"), "-t", "5", "-c", "copy", "-y", out).CombinedOutput(); err != nil {
		t.Fatalf("reading live over RTSP: %v\n%s", err, b)
	}
	if n := mediatest.Frames(t, out); n < 60 {
		t.Fatalf("read %d frames in 5 s of a 25 fps stream with 2 s GOPs", n)
	}
}

// A publisher killed mid-stream leaves a complete, decodable last fragment.
func TestPublisherKilledMidStream(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg", "ffprobe")
	s := startVideoServer(t, nil)
	c := s.videoClients()
	clip := mediatest.Clip(t, "h264", 20)
	pub := exec.Command("ffmpeg", "-v", "error", "-re", "-i", clip, "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", s.rtspURL("cut"))
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	s.waitLive(t, "cut", true)
	time.Sleep(5 * time.Second)
	pub.Process.Signal(syscall.SIGKILL)
	pub.Wait()
	s.waitLive(t, "cut", false)
	frags := listAll(t, c, "cut", nil)
	if len(frags) < 2 {
		t.Fatalf("%d fragments after 5 s", len(frags))
	}
	last := frags[len(frags)-1]
	if last.FragmentLengthInMilliseconds <= 0 {
		t.Fatalf("last fragment lasts %d ms", last.FragmentLengthInMilliseconds)
	}
	out, err := c.archived.GetMediaForFragmentList(ctx, &kinesisvideoarchivedmedia.GetMediaForFragmentListInput{
		StreamName: aws.String("cut"), Fragments: []string{aws.ToString(last.FragmentNumber)}})
	if err != nil {
		t.Fatal(err)
	}
	path := mediatest.Save(t, out.Payload, "last.mkv")
	mediatest.DecodeClean(t, path)
	want := int(last.FragmentLengthInMilliseconds) / 40
	if n := mediatest.Frames(t, path); n < want-1 || n > want+1 {
		t.Fatalf("last fragment has %d frames, its %d ms say %d", n, last.FragmentLengthInMilliseconds, want)
	}
}

// GetMedia from EARLIEST returns the stored fragments; from NOW it follows
// a publisher that starts later, live.
func TestGetMediaStartSelectors(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg", "ffprobe")
	s := startVideoServer(t, nil)
	c := s.videoClients()
	if _, err := c.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("door"), DataRetentionInHours: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	clip := mediatest.Clip(t, "h264", 8)
	// NOW, opened before anything is published: it sees the publisher's fragments as they come.
	nowCtx, cancel := contextWithTimeout(30 * time.Second)
	defer cancel()
	live, err := c.media.GetMedia(nowCtx, &kinesisvideomedia.GetMediaInput{StreamName: aws.String("door"),
		StartSelector: &mtypes.StartSelector{StartSelectorType: mtypes.StartSelectorTypeNow}})
	if err != nil {
		t.Fatal(err)
	}
	liveFile := filepath.Join(t.TempDir(), "live.mkv")
	done := make(chan error, 1)
	go func() {
		f, _ := os.Create(liveFile)
		defer f.Close()
		_, err := io.Copy(f, live.Payload)
		done <- err
	}()
	mediatest.Publish(t, clip, s.rtspURL("door"), "tcp", true)
	s.waitLive(t, "door", false)
	time.Sleep(300 * time.Millisecond)
	cancel()
	<-done
	if n := mediatest.Frames(t, liveFile); n != 200 {
		t.Errorf("GetMedia NOW followed %d frames of a 200-frame publish", n)
	}
	// EARLIEST: everything stored; the tags carry fragment numbers.
	ectx, ecancel := contextWithTimeout(30 * time.Second)
	defer ecancel()
	early, err := c.media.GetMedia(ectx, &kinesisvideomedia.GetMediaInput{StreamName: aws.String("door"),
		StartSelector: &mtypes.StartSelector{StartSelectorType: mtypes.StartSelectorTypeEarliest}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(2 * time.Second); ecancel() }()
	earlyFile := mediatest.Save(t, early.Payload, "early.mkv")
	if n := mediatest.Frames(t, earlyFile); n != 200 {
		t.Errorf("GetMedia EARLIEST returned %d frames of 200 stored", n)
	}
	if b, err := exec.Command("mkvinfo", "--all", earlyFile).CombinedOutput(); err == nil && !strings.Contains(string(b), "AWS_KINESISVIDEO_CONTINUATION_TOKEN") {
		t.Errorf("GetMedia output lacks continuation tokens")
	}
	// Every other selector, positioned at the second fragment: one fragment fewer.
	frags := listAll(t, c, "door", nil)
	want := 200 - int(frags[0].FragmentLengthInMilliseconds)/40
	second := frags[1]
	for _, sel := range []mtypes.StartSelector{
		{StartSelectorType: mtypes.StartSelectorTypeFragmentNumber, AfterFragmentNumber: frags[0].FragmentNumber},
		{StartSelectorType: mtypes.StartSelectorTypeContinuationToken, ContinuationToken: frags[0].FragmentNumber},
		{StartSelectorType: mtypes.StartSelectorTypeServerTimestamp, StartTimestamp: second.ServerTimestamp},
		{StartSelectorType: mtypes.StartSelectorTypeProducerTimestamp, StartTimestamp: second.ProducerTimestamp},
	} {
		sctx, scancel := contextWithTimeout(30 * time.Second)
		out, err := c.media.GetMedia(sctx, &kinesisvideomedia.GetMediaInput{StreamName: aws.String("door"), StartSelector: &sel})
		if err != nil {
			t.Fatal(err)
		}
		go func() { time.Sleep(1500 * time.Millisecond); scancel() }()
		path := mediatest.Save(t, out.Payload, "sel.mkv")
		if n := mediatest.Frames(t, path); n != want {
			t.Errorf("GetMedia %s from the second fragment: %d frames, want %d", sel.StartSelectorType, n, want)
		}
	}
}

// Bad input gets errors in the protocol's form and leaves other streams alone.
func TestVideoBadInput(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	s := startVideoServer(t, nil)
	c := s.videoClients()
	addr := s.gw.RTSPAddr()

	// A well-behaved publisher runs throughout.
	clip := mediatest.Clip(t, "h264", 4)
	mediatest.PublishLoop(t, clip, s.rtspURL("good"))
	s.waitLive(t, "good", true)

	// Nonsense over the RTSP port: a 400 or a closed connection, never a hang.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte("HELLO /there RTSP/9.9\r\nfoo\r\n\r\n\x00\x01\x02garbage\r\n\r\n"))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if line != "" && !strings.Contains(line, "400") {
		t.Errorf("nonsense request answered %q", line)
	}

	// An SDP with no supported track: 415 at ANNOUNCE.
	u, _ := base.ParseURL(s.rtspURL("weird"))
	pc := gortsplib.Client{}
	unsupported := &description.Session{Medias: []*description.Media{{Type: description.MediaTypeApplication,
		Formats: []format.Format{&format.Generic{PayloadTyp: 98, RTPMa: "x-telemetry/90000"}}}}}
	err = pc.StartRecording(u.String(), unsupported)
	var bad liberrors.ErrClientBadStatusCode
	if !errors.As(err, &bad) || bad.Code != base.StatusUnsupportedMediaType {
		t.Errorf("publishing an unsupported codec: %v, want 415", err)
	}
	pc.Close()

	// Garbage RTP in a valid session: counted, not fatal; nothing is stored.
	h264 := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: testSPSBytes, PPS: testPPSBytes}
	gc := gortsplib.Client{Transport: transportTCP()}
	desc := &description.Session{Medias: []*description.Media{{Type: description.MediaTypeVideo, Formats: []format.Format{h264}}}}
	if err := gc.StartRecording(s.rtspURL("garbage"), desc); err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		payload := []byte{byte(i), 0xff, 0x00, 0x13, 0x37, byte(i * 7)}
		gc.WritePacketRTP(desc.Medias[0], &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i * 3), Timestamp: uint32(i * 977), SSRC: 7}, Payload: payload})
	}
	gc.Close()

	// A reversed time range is InvalidArgumentException.
	now := time.Now()
	_, err = c.archived.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("good"),
		FragmentSelector: &amtypes.FragmentSelector{FragmentSelectorType: amtypes.FragmentSelectorTypeServerTimestamp,
			TimestampRange: &amtypes.TimestampRange{StartTimestamp: aws.Time(now), EndTimestamp: aws.Time(now.Add(-time.Hour))}}})
	apiError(t, err, "InvalidArgumentException")
	_, err = c.archived.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("nope")})
	apiError(t, err, "ResourceNotFoundException")
	_, err = c.archived.GetMediaForFragmentList(ctx, &kinesisvideoarchivedmedia.GetMediaForFragmentListInput{StreamName: aws.String("good"), Fragments: []string{"12"}})
	apiError(t, err, "InvalidArgumentException")

	// The good stream kept recording through all of it.
	before := len(listAll(t, c, "good", nil))
	time.Sleep(4500 * time.Millisecond)
	if after := len(listAll(t, c, "good", nil)); after <= before {
		t.Fatalf("the good stream stopped recording: %d fragments, then %d", before, after)
	}
	if s.gw.RTSPAddr() == "" || rtspStatus(t, s.rtspURL("good")) != 200 {
		t.Fatal("RTSP server not serving after bad input")
	}
}

// A pull source records a camera (here: a second gateway serving a
// publisher) and reconnects when the camera goes away and comes back.
func TestPullSourceRecordsAndReconnects(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	camera := startVideoServer(t, nil)
	clip := mediatest.Clip(t, "h264", 4)
	startCamera := func() *exec.Cmd {
		cmd := mediatest.PublishLoop(t, clip, camera.rtspURL("cam"))
		camera.waitLive(t, "cam", true)
		return cmd
	}
	cam := startCamera()
	s := startVideoServer(t, func(c *gateway.Config) {
		c.Video.Sources = map[string]media.SourceConfig{"pulled": {URL: camera.rtspURL("cam"), Transport: "tcp"}}
	})
	c := s.videoClients()
	waitFragments := func(n int) int {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			out, err := c.archived.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("pulled")})
			if err == nil && len(out.Fragments) >= n {
				return len(out.Fragments)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("pulled stream has fewer than %d fragments", n)
		return 0
	}
	got := waitFragments(2)
	info := s.describeRaw(t, "pulled")
	src, _ := info["Source"].(map[string]any)
	if src["State"] != "PLAYING" || strings.Contains(src["URL"].(string), camera.key.Secret) {
		t.Fatalf("source state %v", src)
	}
	// The camera goes away: the source retries; it comes back: recording resumes.
	cam.Process.Kill()
	cam.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for {
		src, _ = s.describeRaw(t, "pulled")["Source"].(map[string]any)
		if src["State"] == "RETRYING" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("source never noticed the camera leaving: %v", src)
		}
		time.Sleep(100 * time.Millisecond)
	}
	startCamera()
	waitFragments(got + 2)
	src, _ = s.describeRaw(t, "pulled")["Source"].(map[string]any)
	if src["State"] != "PLAYING" || src["Attempts"].(float64) < 2 {
		t.Fatalf("after reconnecting: %v", src)
	}
}

// A second publisher to a busy stream is refused with an RTSP error; with
// video.take_over it replaces the first.
func TestSecondPublisherRefusedOrTakesOver(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	clip := mediatest.Clip(t, "h264", 4)
	for _, takeOver := range []bool{false, true} {
		s := startVideoServer(t, func(c *gateway.Config) { c.Video.TakeOver = takeOver })
		first := mediatest.PublishLoop(t, clip, s.rtspURL("busy"))
		s.waitLive(t, "busy", true)
		second := exec.Command("ffmpeg", "-v", "error", "-re", "-i", clip, "-t", "3", "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", s.rtspURL("busy"))
		out, err := second.CombinedOutput()
		if !takeOver {
			if err == nil || !strings.Contains(string(out), "455") {
				t.Fatalf("second publisher to a busy stream: %v %s", err, out)
			}
			continue
		}
		if err != nil {
			t.Fatalf("take-over publisher failed: %v %s", err, out)
		}
		done := make(chan error, 1)
		go func() { done <- first.Wait() }()
		select {
		case <-done: // the first publisher's session was ended
		case <-time.After(10 * time.Second):
			t.Fatal("the first publisher kept publishing after being taken over")
		}
	}
}

// With video.auto_create off, publishing to an unknown stream is 404; after
// CreateStream it records.
func TestPublishNeedsStreamWhenAutoCreateIsOff(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	s := startVideoServer(t, func(c *gateway.Config) { c.Video.AutoCreate = false })
	c := s.videoClients()
	clip := mediatest.Clip(t, "h264", 4)
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", clip, "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", s.rtspURL("unknown")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "404") {
		t.Fatalf("publishing to an unknown stream with auto_create off: %v %s", err, out)
	}
	if _, err := c.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("unknown"), DataRetentionInHours: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	mediatest.Publish(t, clip, s.rtspURL("unknown"), "tcp", false)
	s.waitLive(t, "unknown", false)
	if frags := listAll(t, c, "unknown", nil); len(frags) < 2 {
		t.Fatalf("%d fragments after CreateStream and publishing 4 s", len(frags))
	}
}

// RTSPS: a camera publishes over TLS with the gateway's certificate; readers
// on RTSPS (verifying it) and on plain RTSP see the same live stream.
func TestRTSPSPublishAndRead(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.issue(t, 2, certFile, keyFile)
	s := startVideoServer(t, func(c *gateway.Config) {
		c.TLS.CertFile, c.TLS.KeyFile = certFile, keyFile
		c.Video.RTSPSAddr = "127.0.0.1:0"
	})
	secure := url.URL{Scheme: "rtsps", Host: s.gw.RTSPSAddr(), Path: "/vault", User: url.UserPassword(s.key.ID, s.key.Secret)}
	mediatest.PublishLoop(t, mediatest.Clip(t, "h264", 4), secure.String())
	// The API port serves HTTPS here; plain RTSP tells when the stream is live.
	for deadline := time.Now().Add(15 * time.Second); rtspStatus(t, s.rtspURL("vault")) != 200; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the stream published over RTSPS never became live")
		}
	}

	u, _ := base.ParseURL(secure.String())
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, TLSConfig: &tls.Config{RootCAs: pool}}
	if err := c.Start2(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil || len(desc.Medias) == 0 {
		t.Fatalf("DESCRIBE over RTSPS with a verified certificate: %v", err)
	}
}

// GStreamer's rtspclientsink publishes (H.264 from an MP4 file, in real time).
func TestGStreamerPublisher(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "gst-launch-1.0", "ffmpeg")
	s := startVideoServer(t, nil)
	clip := mediatest.Clip(t, "h264", 4)
	// gst-launch has been seen to stall (no data, no exit) on a loaded
	// machine: a stalled run is killed and tried once more.
	var out []byte
	var err error
	stream := "gst"
	for attempt := range 2 {
		stream = fmt.Sprintf("gst%d", attempt)
		gctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err = exec.CommandContext(gctx, "gst-launch-1.0", "-q", "filesrc", "location="+clip, "!", "qtdemux", "name=d", "d.video_0", "!", "queue", "!", "h264parse", "!",
			"rtspclientsink", "location=rtsp://"+s.gw.RTSPAddr()+"/"+stream, "user-id="+s.key.ID, "user-pw="+s.key.Secret, "protocols=tcp").CombinedOutput()
		stalled := gctx.Err() != nil
		cancel()
		if !stalled {
			break
		}
		t.Logf("gst-launch-1.0 stalled (attempt %d): %s", attempt+1, out)
	}
	// rtspclientsink sometimes exits 1 with "Received end-of-file" after its
	// TEARDOWN was answered and the connection closed; what was recorded is
	// the test, and gst's error is shown only when that falls short.
	if err != nil {
		t.Logf("gst-launch-1.0: %v\n%s", err, out)
	}
	s.waitLive(t, stream, false)
	frags := listAll(t, s.videoClients(), stream, nil)
	var total int64
	for _, f := range frags {
		total += f.FragmentLengthInMilliseconds
	}
	if len(frags) != 2 || total < 3900 {
		t.Fatalf("GStreamer's 4 s: %d fragments, %d ms (gst-launch-1.0: %v\n%s)", len(frags), total, err, out)
	}
}
