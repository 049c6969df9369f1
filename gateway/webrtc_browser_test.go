package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/streamgate/streamgate/internal/mediatest"
)

// webrtcBrowser is Chromium with a fake camera and microphone, allowed to
// use them without asking, and ICE on loopback with plain host candidates.
func webrtcBrowser(t *testing.T) context.Context {
	return browser(t, chromedp.Flag("use-fake-device-for-media-stream", true), chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true), chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"))
}

// whipPage publishes the fake camera and microphone over WHIP.
const whipPage = `<!doctype html><script>
window.state = "starting";
(async () => {
  const media = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: true});
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) pc.addTransceiver(track, {direction: "sendonly"});
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { if (pc.iceGatheringState === "complete") r(); pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); setTimeout(r, 2000); });
  const res = await fetch(ENDPOINT, {method: "POST", headers: {"Content-Type": "application/sdp", "Authorization": "Bearer " + TOKEN}, body: pc.localDescription.sdp});
  if (res.status !== 201) { window.state = "refused " + res.status + " " + await res.text(); return; }
  await pc.setRemoteDescription({type: "answer", sdp: await res.text()});
  window.pc = pc;
  pc.onconnectionstatechange = () => window.state = pc.connectionState;
})().catch(e => window.state = "error " + e);
</script>`

// whepPage plays a stream over WHEP in a <video> element.
const whepPage = `<!doctype html><video id="v" muted autoplay playsinline></video><script>
window.state = "starting";
const v = document.getElementById("v");
(async () => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  const ms = new MediaStream();
  pc.ontrack = e => { ms.addTrack(e.track); v.srcObject = ms; v.play().catch(() => {}); };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { if (pc.iceGatheringState === "complete") r(); pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); setTimeout(r, 2000); });
  window.started = performance.now();
  const res = await fetch(ENDPOINT, {method: "POST", headers: {"Content-Type": "application/sdp", "Authorization": "Bearer " + TOKEN}, body: pc.localDescription.sdp});
  if (res.status !== 201) { window.state = "refused " + res.status + " " + await res.text(); return; }
  window.answer = await res.text();
  await pc.setRemoteDescription({type: "answer", sdp: window.answer});
  window.pc = pc;
  pc.onconnectionstatechange = () => window.state = pc.connectionState;
})().catch(e => window.state = "error " + e);
async function videoStats() {
  const out = {decoded: 0, w: v.videoWidth, state: window.state, firstMs: window.firstMs || 0};
  if (!window.pc) return out;
  (await window.pc.getStats()).forEach(s => { if (s.type === "inbound-rtp" && s.kind === "video") out.decoded = s.framesDecoded || 0; });
  if (out.decoded > 0 && !window.firstMs) window.firstMs = out.firstMs = performance.now() - window.started;
  return out;
}
</script>`

// page serves one HTML page from its own origin (as a web app would).
func page(t *testing.T, html string, vars map[string]string) string {
	t.Helper()
	for k, v := range vars {
		html = strings.ReplaceAll(html, k, "`"+v+"`")
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(html))
	}))
	t.Cleanup(site.Close)
	return site.URL
}

type videoStats struct {
	Decoded int     `json:"decoded"`
	Width   int     `json:"w"`
	State   string  `json:"state"`
	FirstMs float64 `json:"firstMs"`
}

// watchInChromium opens the WHEP page in a new tab and waits until the
// browser decodes frames steadily and the <video> has a picture size.
func watchInChromium(t *testing.T, bctx context.Context, endpoint, token string) (tab context.Context) {
	t.Helper()
	tab, cancel := chromedp.NewContext(bctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tab, chromedp.Navigate(page(t, whepPage, map[string]string{"ENDPOINT": endpoint, "TOKEN": token}))); err != nil {
		t.Fatal(err)
	}
	var st videoStats
	first := -1
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var err error
		st, err = chromedp.Run(tab, chromedp.Evaluate[videoStats](`videoStats()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(st.State, "refused") || strings.HasPrefix(st.State, "error") || st.State == "failed" {
			t.Fatalf("WHEP page: %s", st.State)
		}
		if st.Decoded > 0 && first < 0 {
			first = st.Decoded
			t.Logf("Chromium decoded its first frame %.0f ms after posting the offer", st.FirstMs)
		}
		if first >= 0 && st.Decoded >= first+30 && st.Width > 0 {
			return tab // framesDecoded grows and the video has a size
		}
	}
	shot := filepath.Join(t.TempDir(), "whep.png")
	png, _ := chromedp.Run(tab, chromedp.CaptureScreenshot())
	os.WriteFile(shot, png, 0o644)
	t.Fatalf("WHEP in Chromium did not play: %+v (screenshot %s)", st, shot)
	return nil
}

// Chromium publishes its fake camera over WHIP from one page and plays it
// over WHEP in another; the stream is also recorded.
func TestChromiumWHIPToWHEP(t *testing.T) {
	t.Parallel()
	s := startWebRTCServer(t, nil)
	bctx := webrtcBrowser(t)
	pubTab, cancel := chromedp.NewContext(bctx)
	defer cancel()
	if err := chromedp.Do(pubTab, chromedp.Navigate(page(t, whipPage, map[string]string{"ENDPOINT": s.endpoint + "/whip/browser", "TOKEN": s.token()}))); err != nil {
		t.Fatal(err)
	}
	var state string
	for deadline := time.Now().Add(20 * time.Second); state != "connected"; time.Sleep(100 * time.Millisecond) {
		var err error
		if state, err = chromedp.Run(pubTab, chromedp.Evaluate[string](`window.state`)); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) || strings.HasPrefix(state, "refused") || strings.HasPrefix(state, "error") {
			t.Fatalf("WHIP page: %s", state)
		}
	}
	watchInChromium(t, bctx, s.endpoint+"/whep/browser", s.token())
	waitFor(t, 20*time.Second, "a stored fragment of the browser's stream", func() bool {
		return len(listAll(t, s.videoClients(), "browser", nil)) > 0
	})
}

// An RTSP camera (ffmpeg publishing H.264 and AAC) is watched in Chromium
// over WHEP; AAC cannot be carried, and the answer says so.
func TestChromiumWatchesRTSPCameraOverWHEP(t *testing.T) {
	t.Parallel()
	mediatest.Need(t, "ffmpeg")
	s := startWebRTCServer(t, nil)
	mediatest.PublishLoop(t, mediatest.Clip(t, "camera", 6), s.rtspURL("porch"))
	s.waitLive(t, "porch", true)
	tab := watchInChromium(t, webrtcBrowser(t), s.endpoint+"/whep/porch", s.token())
	answer, err := chromedp.Run(tab, chromedp.Evaluate[string](`window.answer`))
	if err != nil {
		t.Fatal(err)
	}
	audio := answer[strings.Index(answer, "m=audio"):]
	if !strings.HasPrefix(audio, "m=audio 0 ") && !strings.Contains(audio, "a=inactive") {
		t.Errorf("the answer's audio section should be rejected or inactive (AAC is not carried):\n%s", audio)
	}
}
