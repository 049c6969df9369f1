package media

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// llFeed drives a fragmenter with LL-HLS on: 25 fps video (keyframe every
// 50 frames, 2 s target) and 48 kHz audio in 1024-sample frames, written in
// time order.
type llFeed struct {
	f      *Fragmenter
	c      collected
	hls    *LLHLS
	video  int // frames written
	audio  int
	origin time.Time
}

func newLLFeed() *llFeed {
	l := &llFeed{origin: time.Now()}
	l.f = newFragmenter([]codecTrack{&fakeTrack{video: true, rate: 90000}, &fakeTrack{rate: 48000}}, 2*time.Second, 0, l.c.begin, l.c.emit)
	l.hls = newLLHLS(l.f.target)
	l.f.hls = l.hls
	return l
}

// until writes frames up to media time t.
func (l *llFeed) until(t testing.TB, d time.Duration) {
	t.Helper()
	for {
		vt := time.Duration(l.video) * 40 * time.Millisecond
		at := time.Duration(l.audio) * time.Second * 1024 / 48000
		if vt >= d && at >= d {
			return
		}
		var err error
		if vt <= at {
			key := byte(0)
			if l.video%50 == 0 {
				key = 1
			}
			err = l.f.Write(0, int64(l.video*3600), time.Time{}, l.origin.Add(vt), [][]byte{{key}})
			l.video++
		} else {
			err = l.f.Write(1, int64(l.audio*1024), time.Time{}, l.origin.Add(at), [][]byte{{0}})
			l.audio++
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// get serves one request of the LL-HLS state.
func (l *llFeed) get(file, query string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/"+file+"?"+query, nil)
	l.hls.Serve(w, r, file, LLView{ServeSegment: func(w http.ResponseWriter, _ *http.Request, n string) { w.Write([]byte("stored " + n)) }, Segments: 5})
	return w
}

// Parts follow the part target, start segments with a keyframe, and add up
// to exactly the fragment that is stored: the same samples with the same
// decode times.
func TestLLHLSPartsAddUpToFragments(t *testing.T) {
	l := newLLFeed()
	l.until(t, 6100*time.Millisecond)
	if len(l.c.frags) != 3 {
		t.Fatalf("%d fragments, want 3", len(l.c.frags))
	}
	l.hls.mu.Lock()
	defer l.hls.mu.Unlock()
	if len(l.hls.segs) != 4 || l.hls.segs[3].complete {
		t.Fatalf("%d segments, the last complete: %v", len(l.hls.segs), l.hls.segs[len(l.hls.segs)-1].complete)
	}
	for i, frag := range l.c.frags {
		seg := l.hls.segs[i]
		if seg.msn != uint64(i+1) || !seg.complete || seg.duration != frag.Duration {
			t.Fatalf("segment %d: msn %d, complete %v, %v (fragment %v)", i, seg.msn, seg.complete, seg.duration, frag.Duration)
		}
		// Nobody watched: the parts of completed segments are dropped.
		if seg.parts != nil {
			t.Fatalf("segment %d keeps %d parts unwatched", i, len(seg.parts))
		}
	}
	open := l.hls.segs[3]
	if len(open.parts) != 0 && !open.parts[0].independent {
		t.Fatal("the open segment's first part is not independent")
	}

	// Watched: completed segments keep their parts, which add up to the fragment.
	l.hls.watched = time.Now()
	l.hls.mu.Unlock()
	l.until(t, 8100*time.Millisecond)
	l.hls.mu.Lock()
	frag := l.c.frags[3]
	seg := l.hls.segment(4)
	if seg == nil || !seg.complete || len(seg.parts) != 10 {
		t.Fatalf("segment 4: %+v", seg)
	}
	var joined []byte
	var sum time.Duration
	for i, p := range seg.parts {
		if p.independent != (i == 0) {
			t.Errorf("part %d independent: %v", i, p.independent)
		}
		if p.duration > partTarget {
			t.Errorf("part %d lasts %v, over the part target", i, p.duration)
		}
		sum += p.duration
		b, err := p.read()
		if err != nil || len(b) != p.size {
			t.Fatalf("part %d: %v, %d bytes of %d", i, err, len(b), p.size)
		}
		joined = append(joined, b...)
	}
	if sum != frag.Duration {
		t.Errorf("parts add up to %v, the fragment lasts %v", sum, frag.Duration)
	}
	if !bytes.Equal(joined, mediaOf(frag)) {
		t.Fatalf("the parts are %d bytes, not the stored fragment's %d", len(joined), len(mediaOf(frag)))
	}
	parse(t, frag) // its chunks follow on in time
}

// The playlist lists parts before the first fragment is complete, blocking
// reloads wait for the part they name, and parts, inits and stored segments
// are served.
func TestLLHLSServesPlaylistsBeforeTheFirstSegment(t *testing.T) {
	l := newLLFeed()
	l.until(t, 250*time.Millisecond)
	w := l.get("stream.m3u8", "")
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, `#EXT-X-PART:DURATION=0.20000,URI="part.mp4?msn=1&part=0",INDEPENDENT=YES`) ||
		!strings.Contains(body, `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part.mp4?msn=1&part=1"`) ||
		!strings.Contains(body, "#EXT-X-TARGETDURATION:2\n") || !strings.Contains(body, `#EXT-X-MAP:URI="init.mp4?v=1"`) {
		t.Fatalf("first playlist (%d):\n%s", w.Code, body)
	}
	if w := l.get("index.m3u8", ""); w.Code != 200 || !strings.Contains(w.Body.String(), "\nstream.m3u8\n") {
		t.Fatalf("multivariant playlist (%d):\n%s", w.Code, w.Body)
	}
	if w := l.get("init.mp4", "v=1"); w.Code != 200 || !hasBox(w.Body.Bytes(), "ftyp") {
		t.Fatalf("init: %d", w.Code)
	}
	var parts fmp4.Parts
	if w := l.get("part.mp4", "msn=1&part=0"); w.Code != 200 || parts.Unmarshal(w.Body.Bytes()) != nil || len(parts) != 1 || len(parts[0].Tracks) != 2 {
		t.Fatalf("part: %d, %d parts", w.Code, len(parts))
	}

	// A blocking reload and a preload-hinted part wait for the next part.
	type answer struct {
		code int
		body string
	}
	reload, hinted := make(chan answer, 1), make(chan answer, 1)
	go func() { w := l.get("stream.m3u8", "_HLS_msn=1&_HLS_part=1"); reload <- answer{w.Code, w.Body.String()} }()
	go func() { w := l.get("part.mp4", "msn=1&part=1"); hinted <- answer{w.Code, w.Body.String()} }()
	time.Sleep(50 * time.Millisecond)
	select {
	case a := <-reload:
		t.Fatalf("blocking reload answered before its part existed: %d\n%s", a.code, a.body)
	case <-hinted:
		t.Fatal("the hinted part was served before it existed")
	default:
	}
	l.until(t, 450*time.Millisecond)
	if a := <-reload; a.code != 200 || !strings.Contains(a.body, `part.mp4?msn=1&part=1"`) || strings.Contains(a.body, `part.mp4?msn=1&part=1",INDEPENDENT`) {
		t.Fatalf("blocking reload: %d\n%s", a.code, a.body)
	}
	if a := <-hinted; a.code != 200 {
		t.Fatalf("hinted part: %d %s", a.code, a.body)
	}

	// Beyond the live edge: 400; after the first fragment: a segment, served
	// from the store once it has it.
	if w := l.get("stream.m3u8", "_HLS_msn=9"); w.Code != http.StatusBadRequest {
		t.Fatalf("a reload far ahead: %d", w.Code)
	}
	l.until(t, 2300*time.Millisecond)
	body = l.get("stream.m3u8", "").Body.String()
	if !regexp.MustCompile(`#EXTINF:2\.00000,\nsegment\.mp4\?msn=1\n`).MatchString(body) || !strings.Contains(body, `part.mp4?msn=2&part=0",INDEPENDENT=YES`) {
		t.Fatalf("playlist after the first segment:\n%s", body)
	}
	stored := make(chan *httptest.ResponseRecorder, 1)
	go func() { stored <- l.get("segment.mp4", "msn=1") }()
	time.Sleep(20 * time.Millisecond)
	l.hls.stored(1, "91343852333181432392682062581425458216781208135612710914")
	if w := <-stored; w.Code != 200 || w.Body.String() != "stored 91343852333181432392682062581425458216781208135612710914" {
		t.Fatalf("segment: %d %s", w.Code, w.Body)
	}
	for _, bad := range []string{"part=x&msn=1", "msn=1"} {
		if w := l.get("part.mp4", bad); w.Code != http.StatusBadRequest {
			t.Errorf("part.mp4?%s: %d", bad, w.Code)
		}
	}

	// The publisher's session ends and a new one begins (a camera that
	// reconnects): the playlist goes on, with a discontinuity, and a reload
	// waiting across the gap is answered by the new session's first part.
	if err := l.f.Close(); err != nil {
		t.Fatal(err)
	}
	l.hls.end()
	waiting := make(chan string, 1)
	go func() { waiting <- l.get("stream.m3u8", "_HLS_msn=3&_HLS_part=0").Body.String() }()
	time.Sleep(20 * time.Millisecond)
	next := newLLFeed()
	next.f.hls, next.hls = l.hls, l.hls
	next.until(t, 250*time.Millisecond)
	body = <-waiting
	if !strings.Contains(body, "#EXT-X-DISCONTINUITY\n#EXT-X-PART:DURATION=0.20000,URI=\"part.mp4?msn=3&part=0\",INDEPENDENT=YES") ||
		!strings.Contains(body, "#EXT-X-MEDIA-SEQUENCE:1\n") || strings.Count(body, "#EXTINF") != 2 {
		t.Fatalf("playlist across a publisher reconnect:\n%s", body)
	}
	if w := l.get("part.mp4", "msn=3&part=0"); w.Code != 200 {
		t.Fatalf("the new session's first part: %d", w.Code)
	}
}

// Any file name and query gets an answer, never a panic; blocking requests
// end with their context.
func FuzzLLHLSRequests(f *testing.F) {
	for _, s := range []string{"stream.m3u8?_HLS_msn=1&_HLS_part=2", "part.mp4?msn=1&part=0", "init.mp4?v=1",
		"segment.mp4?msn=1", "index.m3u8", "part.mp4?msn=18446744073709551615&part=18446744073709551615", "x?_HLS_part=1"} {
		f.Add(s)
	}
	l := newLLFeed()
	l.until(f, 2300*time.Millisecond)
	f.Fuzz(func(t *testing.T, target string) {
		file, query, _ := strings.Cut(target, "?")
		r, err := http.NewRequest("GET", "/?"+query, nil)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		w := httptest.NewRecorder()
		l.hls.Serve(w, r.WithContext(ctx), file, LLView{ServeSegment: func(w http.ResponseWriter, _ *http.Request, n string) { w.Write([]byte(n)) }})
	})
}
