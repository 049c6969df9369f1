package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
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
func browser(t *testing.T, flags ...chromedp.ExecAllocatorOption) context.Context {
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
	js, err := os.ReadFile(hlsJS)
	if err != nil {
		t.Fatalf("hls.js is not installed (%v): run `make test`, which installs it", err)
	}
	s := startVideoServer(t, nil)
	c := s.videoClients()
	mediatest.PublishLoop(t, mediatest.Clip(t, "h264", 4), s.rtspURL("web"))
	var out *kinesisvideoarchivedmedia.GetHLSStreamingSessionURLOutput
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err = c.archived.GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
			StreamName: aws.String("web"), PlaybackMode: amtypes.HLSPlaybackModeLive, DiscontinuityMode: amtypes.HLSDiscontinuityModeOnDiscontinuity})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	// The page comes from another origin, as a web app's would.
	page := `<!doctype html><video id="v" muted autoplay playsinline></video><script src="/hls.min.js"></script><script>
const v = document.getElementById("v"); window.errors = []; window.parts = 0;
const h = new Hls(); h.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) window.errors.push(d.type + ":" + d.details + (d.error ? " (" + d.error.message + ")" : "") + (d.url ? " " + d.url : "")); });
h.on(Hls.Events.FRAG_LOADED, (e, d) => { if (d.part) window.parts++; });
h.loadSource(` + "`" + aws.ToString(out.HLSStreamingSessionURL) + "`" + `); h.attachMedia(v); v.play().catch(() => {});
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
	defer site.Close()

	bctx := browser(t)
	rctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(rctx, chromedp.Navigate(site.URL)); err != nil {
		t.Fatal(err)
	}
	type playerState struct {
		Time   float64  `json:"t"`
		Width  int      `json:"w"`
		Errors []string `json:"e"`
		Parts  int      `json:"p"`
	}
	var state playerState
	start := -1.0
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
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
