package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/chromedp/chromedp"
	"github.com/streamgate/streamgate/internal/mediatest"
)

// hlsJS is hls.js as `make test` installs it (npm, pinned).
const hlsJS = "../bin/.hlsjs/node_modules/hls.js/dist/hls.min.js"

// browser starts headless Chromium (Debian's) for a test, with extra flags.
func browser(t testing.TB, flags ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run `make test`, which installs it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"), chromedp.Flag("headless", "new"))
	opts = append(opts, flags...)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return bctx
}

// The HLS session URL plays in a real browser with hls.js: the video's
// clock advances and it has a picture size.
func TestHLSPlaysInChromiumWithHLSJS(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	s := startVideoServer(t, nil)
	c := s.videoClients()
	mediatest.PublishLoop(t, mediatest.Clip(t, "h264", 4), s.rtspURL("web"))
	url := liveSessionURL(t, c, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("web"), PlaybackMode: amtypes.HLSPlaybackModeLive, DiscontinuityMode: amtypes.HLSDiscontinuityModeOnDiscontinuity})
	rctx := hlsPlayer(t, url, 60*time.Second)
	type playerState struct {
		Time   float64  `json:"t"`
		Width  int      `json:"w"`
		Errors []string `json:"e"`
		Parts  int      `json:"p"`
	}
	var state playerState
	start := -1.0
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		var err error
		state, err = chromedp.Run(rctx, chromedp.Evaluate[playerState](`({t: v.currentTime, w: v.videoWidth, e: window.errors, p: window.parts})`))
		if err != nil {
			t.Fatal(err)
		}
		if len(state.Errors) > 0 {
			t.Fatalf("hls.js: %v", state.Errors)
		}
		if state.Width > 0 && start < 0 && state.Time > 0 {
			start = state.Time
		}
		if start >= 0 && state.Time > start+2 {
			// Playing: the clock moved two seconds on, from Low-Latency HLS parts.
			if state.Parts == 0 {
				t.Fatal("hls.js played the LIVE session without loading a single LL-HLS part")
			}
			return
		}
	}
	shot := filepath.Join(t.TempDir(), "page.png")
	png, _ := chromedp.Run(rctx, chromedp.CaptureScreenshot())
	os.WriteFile(shot, png, 0o644)
	t.Fatalf("video did not play: currentTime %.2f, videoWidth %d (screenshot %s)", state.Time, state.Width, shot)
}

// hlsPlayer opens a page (on another origin, as a web app's would be) that
// plays url with hls.js in headless Chromium. The page keeps the player in
// window.h, its fatal errors in window.errors and counts the LL-HLS parts
// it loads in window.parts.
func hlsPlayer(t testing.TB, url string, timeout time.Duration) context.Context {
	t.Helper()
	js, err := os.ReadFile(hlsJS)
	if err != nil {
		t.Fatalf("hls.js is not installed (%v): run `make test`, which installs it", err)
	}
	page := `<!doctype html><video id="v" muted autoplay playsinline></video><script src="/hls.min.js"></script><script>
const v = document.getElementById("v"); window.errors = []; window.parts = 0;
const h = new Hls(); window.h = h;
h.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) window.errors.push(d.type + ":" + d.details + (d.error ? " (" + d.error.message + ")" : "") + (d.url ? " " + d.url : "")); });
h.on(Hls.Events.FRAG_LOADED, (e, d) => { if (d.part) window.parts++; });
h.loadSource(` + "`" + url + "`" + `); h.attachMedia(v); v.play().catch(() => {});
</script>`
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hls.min.js" {
			w.Header().Set("Content-Type", "text/javascript")
			w.Write(js)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(page))
	}))
	t.Cleanup(site.Close)
	rctx, cancel := context.WithTimeout(browser(t), timeout)
	t.Cleanup(cancel)
	if err := chromedp.Do(rctx, chromedp.Navigate(site.URL)); err != nil {
		t.Fatal(err)
	}
	return rctx
}

// BenchmarkLLHLSPlayerLatency measures live latency as a viewer sees it:
// ffmpeg publishes a 25 fps clip (2 s GOP) in real time, hls.js plays the
// LIVE session in Chromium, and every 250 ms the page compares its clock
// with the wall-clock time of the frame on screen (EXT-X-PROGRAM-DATE-TIME:
// when the fragment's first packet reached the gateway). "ll" is the
// Low-Latency HLS a LIVE fMP4 session gets; "archive" is a LIVE MPEG-TS
// session, whose playlist lists stored fragments only. `make bench` runs it
// once (-benchtime 1x), 20 s of playing each.
func BenchmarkLLHLSPlayerLatency(b *testing.B) {
	mediatest.Need(b, "ffmpeg")
	s := startVideoServer(b, nil)
	mediatest.PublishLoop(b, mediatest.Clip(b, "h264", 10), s.rtspURL("player"))
	b.Run("ll", func(b *testing.B) { playerLatency(b, s, amtypes.ContainerFormatFragmentedMp4) })
	b.Run("archive", func(b *testing.B) { playerLatency(b, s, amtypes.ContainerFormatMpegTs) })
}

func playerLatency(b *testing.B, s *server, container amtypes.ContainerFormat) {
	c := s.videoClients()
	url := liveSessionURL(b, c, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("player"), PlaybackMode: amtypes.HLSPlaybackModeLive, ContainerFormat: container,
		DisplayFragmentTimestamp: amtypes.HLSDisplayFragmentTimestampAlways})
	rctx := hlsPlayer(b, url, 120*time.Second)
	type sample struct {
		Latency float64  `json:"l"` // ms; -1 before the playhead has a date
		Errors  []string `json:"e"`
		Parts   int      `json:"p"`
	}
	var lat []time.Duration
	for deadline := time.Now().Add(60 * time.Second); len(lat) < 80 && time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		got, err := chromedp.Run(rctx, chromedp.Evaluate[sample](
			`({l: (h.playingDate && !v.paused && v.currentTime > 0) ? Date.now() - h.playingDate.getTime() : -1, e: window.errors, p: window.parts})`))
		if err != nil {
			b.Fatal(err)
		}
		if len(got.Errors) > 0 {
			b.Fatalf("hls.js: %v", got.Errors)
		}
		if got.Latency >= 0 && (got.Parts > 0 || container != amtypes.ContainerFormatFragmentedMp4) {
			lat = append(lat, time.Duration(got.Latency*float64(time.Millisecond)))
		}
	}
	if len(lat) < 20 {
		b.Fatalf("the player played for only %d samples", len(lat))
	}
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Milliseconds()) }
	b.ReportMetric(p(0.5), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat)), "samples")
}

// liveSessionURL asks for an HLS session URL until the stream, whose
// publisher has just started, has something to play (20 s at most).
func liveSessionURL(t testing.TB, c videoClients, in *kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, err := c.archived.GetHLSStreamingSessionURL(ctx, in)
		if err == nil {
			return aws.ToString(out.HLSStreamingSessionURL)
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}

// hls.js playing a LIVE session keeps playing when the camera disconnects
// and comes back: the Low-Latency HLS playlist outlives the publisher
// session (before, the player got a 404 and stopped for good).
func TestHLSJSPlaysOnAcrossCameraReconnect(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	s := startVideoServer(t, nil)
	c := s.videoClients()
	clip := mediatest.Clip(t, "h264", 4)
	first := mediatest.PublishLoop(t, clip, s.rtspURL("porch"))
	s.waitLive(t, "porch", true)
	url := liveSessionURL(t, c, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
		StreamName: aws.String("porch"), PlaybackMode: amtypes.HLSPlaybackModeLive})
	rctx := hlsPlayer(t, url, 120*time.Second)
	type playerState struct {
		Time   float64  `json:"t"`
		Errors []string `json:"e"`
	}
	// playsTo waits until the player's clock passes t, failing on a fatal error.
	playsTo := func(what string, t0 float64) float64 {
		t.Helper()
		var st playerState
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			var err error
			if st, err = chromedp.Run(rctx, chromedp.Evaluate[playerState](`({t: v.currentTime, e: window.errors})`)); err != nil {
				t.Fatal(err)
			}
			if len(st.Errors) > 0 {
				t.Fatalf("%s: hls.js: %v", what, st.Errors)
			}
			if st.Time > t0 {
				return st.Time
			}
		}
		t.Fatalf("%s: the player's clock stayed at %.2f s", what, st.Time)
		return 0
	}
	playsTo("first session", 2)
	first.Process.Signal(syscall.SIGINT)
	first.Wait()
	s.waitLive(t, "porch", false)
	time.Sleep(2 * time.Second) // the camera is away; the player keeps reloading
	at := playsTo("while the camera is away", 0)
	mediatest.PublishLoop(t, clip, s.rtspURL("porch"))
	s.waitLive(t, "porch", true)
	playsTo("after the camera came back", at+2)
}
