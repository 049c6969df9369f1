package gateway_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/streamgate/streamgate/internal/mediatest"
)

// probeDuration is ffprobe's idea of a file's or URL's duration in seconds.
func probeDuration(t *testing.T, target string) float64 {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", target).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", target, err, out)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("ffprobe duration %q", out)
	}
	return d
}

// topBoxes lists an MP4 file's top-level box types.
func topBoxes(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for len(b) >= 8 {
		n := int(binary.BigEndian.Uint32(b))
		types = append(types, string(b[4:8]))
		if n < 8 || n > len(b) {
			break
		}
		b = b[n:]
	}
	return types
}

// checkPlayback checks a playback URL of the 30 s test clip with ffmpeg:
// its duration, both tracks, a clean decode of every frame.
func checkPlayback(t *testing.T, what, url string) {
	t.Helper()
	if d := probeDuration(t, url); d < 28 || d > 32 {
		t.Errorf("%s lasts %.2f s, the clip 30 s", what, d)
	}
	if got := strings.Join(mediatest.Codecs(t, url), " "); got != "h264 aac" {
		t.Errorf("%s streams %q, want h264 aac", what, got)
	}
	mediatest.DecodeClean(t, url)
	if n := mediatest.Frames(t, url); n != 750 {
		t.Errorf("%s decodes to %d frames, the clip has 750", what, n)
	}
}

// ON_DEMAND HLS of a published clip plays in ffmpeg with the right duration
// and both tracks (URL from the aws CLI); GetClip returns a fast-start MP4
// of a 10 s range; bad tokens and empty ranges get AWS errors.
func TestHLSOnDemandAndGetClip(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg", "ffprobe")
	awsBin, err := exec.LookPath("aws")
	if err != nil {
		t.Fatal("the aws CLI is not installed: run `make test`, which installs it")
	}
	s := startVideoServer(t, nil)
	c := s.videoClients()
	mediatest.Publish(t, mediatest.Clip(t, "h264", 30), s.rtspURL("yard"), "tcp", true) // real time: server timestamps span 30 s
	s.waitLive(t, "yard", false)
	frags := listAll(t, c, "yard", nil)
	first, last := frags[0], frags[len(frags)-1]
	start, end := first.ServerTimestamp.Add(-time.Second), last.ServerTimestamp.Add(time.Second)

	out := awsCLI(t, awsBin, s)("kinesis-video-archived-media", "get-hls-streaming-session-url", "--stream-name", "yard",
		"--playback-mode", "ON_DEMAND", "--hls-fragment-selector",
		"FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={StartTimestamp="+start.UTC().Format(time.RFC3339Nano)+",EndTimestamp="+end.UTC().Format(time.RFC3339Nano)+"}")
	hlsURL, _ := out["HLSStreamingSessionURL"].(string)
	if !strings.HasPrefix(hlsURL, s.endpoint+"/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=") {
		t.Fatalf("session URL %q", hlsURL)
	}
	checkPlayback(t, "ON_DEMAND HLS", hlsURL)

	// The same range in MPEG-TS segments.
	tsOut, err := c.archived.GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("yard"),
		PlaybackMode: amtypes.HLSPlaybackModeOnDemand, ContainerFormat: amtypes.ContainerFormatMpegTs,
		HLSFragmentSelector: &amtypes.HLSFragmentSelector{FragmentSelectorType: amtypes.HLSFragmentSelectorTypeServerTimestamp,
			TimestampRange: &amtypes.HLSTimestampRange{StartTimestamp: aws.Time(start), EndTimestamp: aws.Time(end)}}})
	if err != nil {
		t.Fatal(err)
	}
	tsURL := aws.ToString(tsOut.HLSStreamingSessionURL)
	checkPlayback(t, "MPEG_TS HLS", tsURL)

	// DASH over the same range.
	dashOut, err := c.archived.GetDASHStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{StreamName: aws.String("yard"),
		PlaybackMode: amtypes.DASHPlaybackModeOnDemand,
		DASHFragmentSelector: &amtypes.DASHFragmentSelector{FragmentSelectorType: amtypes.DASHFragmentSelectorTypeServerTimestamp,
			TimestampRange: &amtypes.DASHTimestampRange{StartTimestamp: aws.Time(start), EndTimestamp: aws.Time(end)}}})
	if err != nil {
		t.Fatal(err)
	}
	dashURL := aws.ToString(dashOut.DASHStreamingSessionURL)
	checkPlayback(t, "DASH", dashURL)

	// A forged token and an empty range.
	forged := strings.Replace(hlsURL, "SessionToken=", "SessionToken=x", 1)
	resp, err := http.Get(forged)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), "NotAuthorizedException") {
		t.Errorf("forged session token: %d %s", resp.StatusCode, body)
	}
	_, err = c.archived.GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String("yard"),
		PlaybackMode: amtypes.HLSPlaybackModeOnDemand, HLSFragmentSelector: &amtypes.HLSFragmentSelector{FragmentSelectorType: amtypes.HLSFragmentSelectorTypeServerTimestamp,
			TimestampRange: &amtypes.HLSTimestampRange{StartTimestamp: aws.Time(start.Add(-time.Hour)), EndTimestamp: aws.Time(start.Add(-30 * time.Minute))}}})
	apiError(t, err, "ResourceNotFoundException")

	// GetClip of the five fragments (10 s) from the fifth: the range is drawn
	// from their server timestamps, which are arrival times and jitter.
	from := frags[4].ServerTimestamp.Add(-10 * time.Millisecond)
	to := frags[9].ServerTimestamp.Add(-10 * time.Millisecond)
	clip, err := c.archived.GetClip(ctx, &kinesisvideoarchivedmedia.GetClipInput{StreamName: aws.String("yard"),
		ClipFragmentSelector: &amtypes.ClipFragmentSelector{FragmentSelectorType: amtypes.ClipFragmentSelectorTypeServerTimestamp,
			TimestampRange: &amtypes.ClipTimestampRange{StartTimestamp: aws.Time(from), EndTimestamp: aws.Time(to)}}})
	if err != nil {
		t.Fatal(err)
	}
	mp4 := mediatest.Save(t, clip.Payload, "clip.mp4")
	boxes := strings.Join(topBoxes(t, mp4), " ")
	if !regexp.MustCompile(`^ftyp moov mdat`).MatchString(boxes) {
		t.Errorf("clip boxes %q: want ftyp, moov, then mdat (fast start)", boxes)
	}
	if d := probeDuration(t, mp4); d < 8 || d > 12 {
		t.Errorf("GetClip of 10 s lasts %.2f s", d)
	}
	mediatest.DecodeClean(t, mp4)
	if got := strings.Join(mediatest.Codecs(t, mp4), " "); got != "h264 aac" {
		t.Errorf("clip streams %q", got)
	}

	// GetImages: a JPEG every 2 s over 10 s, scaled to 160 pixels wide.
	imgs, err := c.archived.GetImages(ctx, &kinesisvideoarchivedmedia.GetImagesInput{StreamName: aws.String("yard"),
		ImageSelectorType: amtypes.ImageSelectorTypeServerTimestamp, StartTimestamp: aws.Time(from), EndTimestamp: aws.Time(from.Add(10 * time.Second)),
		SamplingInterval: aws.Int32(2000), Format: amtypes.FormatJpeg, WidthPixels: aws.Int32(160)})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs.Images) != 5 {
		t.Fatalf("GetImages returned %d images for 10 s every 2 s", len(imgs.Images))
	}
	for i, im := range imgs.Images {
		if im.Error != "" || aws.ToString(im.ImageContent) == "" {
			t.Fatalf("image %d: error %q", i, im.Error)
		}
	}
	jpg, _ := base64.StdEncoding.DecodeString(aws.ToString(imgs.Images[2].ImageContent))
	jpgPath := filepath.Join(t.TempDir(), "frame.jpg")
	os.WriteFile(jpgPath, jpg, 0o644)
	if b, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0", jpgPath).CombinedOutput(); err != nil || strings.TrimSpace(string(b)) != "mjpeg,160,120" {
		t.Errorf("GetImages picture: %v %q, want a 160x120 JPEG", err, b)
	}
}

// LIVE HLS follows the live edge: the media playlist advances while a
// camera publishes, and ffmpeg reads it.
func TestHLSLive(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg", "ffprobe")
	s := startVideoServer(t, nil)
	c := s.videoClients()
	mediatest.PublishLoop(t, mediatest.Clip(t, "h264", 4), s.rtspURL("live"))
	s.waitLive(t, "live", true)
	master := liveSessionURL(t, c, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("live"), PlaybackMode: amtypes.HLSPlaybackModeLive, MaxMediaPlaylistFragmentResults: aws.Int64(2)})
	mediaURL := strings.Replace(master, "getHLSMasterPlaylist", "getHLSMediaPlaylist", 1)
	sequence := func() int {
		resp, err := http.Get(mediaURL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`).FindSubmatch(b)
		if m == nil || strings.Contains(string(b), "#EXT-X-ENDLIST") {
			t.Fatalf("live media playlist:\n%s", b)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	before := sequence()
	time.Sleep(4500 * time.Millisecond)
	if after := sequence(); after <= before {
		t.Fatalf("live playlist did not advance: media sequence %d, then %d", before, after)
	}
	if got := strings.Join(mediatest.Codecs(t, master), " "); !strings.Contains(got, "h264") || !strings.Contains(got, "aac") {
		t.Fatalf("ffprobe of the live URL: %v", got)
	}
	// While the camera publishes, the LIVE master playlist leads to Low-Latency
	// HLS: parts, blocking reload.
	ref := lowLatencyPlaylist(t, master)
	var ll []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		r2, err := http.Get(ref.String())
		if err != nil {
			t.Fatal(err)
		}
		ll, _ = io.ReadAll(r2.Body)
		r2.Body.Close()
		if r2.StatusCode == 200 && strings.Contains(string(ll), "#EXT-X-PART:") {
			break
		}
	}
	if !strings.Contains(string(ll), "#EXT-X-PART:") || !strings.Contains(string(ll), "CAN-BLOCK-RELOAD=YES") {
		t.Fatalf("low-latency media playlist:\n%s", ll)
	}

	// LIVE_REPLAY from the first fragment: the playlist starts there and stays open.
	first := listAll(t, c, "live", nil)[0]
	replay, err := c.archived.GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("live"), PlaybackMode: amtypes.HLSPlaybackModeLiveReplay,
		HLSFragmentSelector: &amtypes.HLSFragmentSelector{FragmentSelectorType: amtypes.HLSFragmentSelectorTypeServerTimestamp,
			TimestampRange: &amtypes.HLSTimestampRange{StartTimestamp: first.ServerTimestamp}}})
	if err != nil {
		t.Fatal(err)
	}
	mediaURL = strings.Replace(aws.ToString(replay.HLSStreamingSessionURL), "getHLSMasterPlaylist", "getHLSMediaPlaylist", 1)
	if n := sequence(); n != 1 {
		t.Errorf("LIVE_REPLAY from the first fragment starts at media sequence %d", n)
	}

	// DASH at the live edge: a dynamic manifest ffmpeg reads.
	dash, err := c.archived.GetDASHStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{
		StreamName: aws.String("live"), PlaybackMode: amtypes.DASHPlaybackModeLive})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(aws.ToString(dash.DASHStreamingSessionURL))
	if err != nil {
		t.Fatal(err)
	}
	mpd, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(mpd), `type="dynamic"`) || !strings.Contains(string(mpd), "avc1.") {
		t.Fatalf("live DASH manifest:\n%s", mpd)
	}
	if got := mediatest.Codecs(t, aws.ToString(dash.DASHStreamingSessionURL)); len(got) == 0 || got[0] != "h264" {
		t.Fatalf("ffprobe of the live DASH URL: %v", got)
	}
}

// A camera that reconnects does not break a LIVE player: the Low-Latency
// HLS playlist it reloads is kept while the camera is away (new LIVE
// sessions get it too) and goes on when it is back, media sequence numbers
// counting on, with a discontinuity before the new session.
func TestLowLatencyHLSAcrossPublisherReconnect(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	s := startVideoServer(t, nil)
	c := s.videoClients()
	clip := mediatest.Clip(t, "h264", 4)
	first := mediatest.PublishLoop(t, clip, s.rtspURL("door"))
	s.waitLive(t, "door", true)
	master := liveSessionURL(t, c, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("door"), PlaybackMode: amtypes.HLSPlaybackModeLive})
	playlist := lowLatencyPlaylist(t, master)
	msnRE := regexp.MustCompile(`msn=(\d+)`)
	newest := func(b []byte) int {
		n := 0
		for _, m := range msnRE.FindAllSubmatch(b, -1) {
			v, _ := strconv.Atoi(string(m[1]))
			n = max(n, v)
		}
		return n
	}
	get := func() []byte {
		t.Helper()
		r, err := http.Get(playlist.String())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 {
			t.Fatalf("LL playlist: %d %s", r.StatusCode, b)
		}
		return b
	}
	time.Sleep(2500 * time.Millisecond) // at least one complete segment
	before := newest(get())

	first.Process.Signal(syscall.SIGINT)
	first.Wait()
	s.waitLive(t, "door", false)
	if away := get(); !bytes.Contains(away, []byte("#EXTINF")) {
		t.Fatalf("LL playlist while the camera is away:\n%s", away)
	}
	// A player that opens now gets the same Low-Latency HLS playlist.
	lowLatencyPlaylist(t, liveSessionURL(t, c, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("door"), PlaybackMode: amtypes.HLSPlaybackModeLive}))

	mediatest.PublishLoop(t, clip, s.rtspURL("door"))
	s.waitLive(t, "door", true)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b := get()
		if bytes.Contains(b, []byte("#EXT-X-DISCONTINUITY\n")) && newest(b) > before+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LL playlist after the camera came back (newest msn before: %d):\n%s", before, b)
		}
	}
}

// lowLatencyPlaylist follows a LIVE session's master playlist, which leads
// to Low-Latency HLS while a publisher is on, and returns its media
// playlist's URL.
func lowLatencyPlaylist(t testing.TB, master string) *url.URL {
	t.Helper()
	resp, err := http.Get(master)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	variant := regexp.MustCompile(`(?m)^[^#\s].*\.m3u8.*$`).Find(body)
	if resp.StatusCode != 200 || variant == nil || !strings.Contains(resp.Request.URL.Path, "/hls/v1/ll/") {
		t.Fatalf("LIVE master playlist (%d, at %s):\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	ref, err := resp.Request.URL.Parse(string(variant))
	if err != nil {
		t.Fatal(err)
	}
	return ref
}
