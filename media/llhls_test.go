package media

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// The low-latency muxer, fed H.264 keyframes without in-band parameters (as
// RTP delivers them) and AAC, serves a multivariant playlist.
func TestLowLatencyHLSServesParts(t *testing.T) {
	ct := &h264Track{sps: testSPS, pps: testPPS}
	at := &aacTrack{config: mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelCount: 1}}
	l := newLowLatency([]codecTrack{ct, at}, t.TempDir(), quietLogger())
	if l == nil {
		t.Fatal("no muxer")
	}
	defer l.close()
	start := time.Now()
	for i := range 200 {
		nalu := make([]byte, 2000)
		nalu[0] = 0x41
		au := [][]byte{nalu}
		if i%25 == 0 {
			nalu[0] = 0x65
			au = [][]byte{nalu}
		}
		l.write(0, ct, start.Add(time.Duration(i)*40*time.Millisecond), int64(i*3600), au)
		for k := range 2 {
			a := i*2 + k
			l.write(1, at, start.Add(time.Duration(a)*20*time.Millisecond), int64(a*960), [][]byte{{0x21, 0x10, 0x04}})
		}
	}
	done := make(chan string, 1)
	go func() {
		w := httptest.NewRecorder()
		l.Handle(w, httptest.NewRequest("GET", "/index.m3u8", nil))
		done <- w.Body.String()
	}()
	select {
	case body := <-done:
		if !strings.Contains(body, "#EXT-X-STREAM-INF") {
			t.Fatalf("multivariant playlist:\n%s", body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no playlist after 8 s of video")
	}
}
