package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Low-Latency HLS comes from the fragmenter itself rather than from a second
// muxer: the open fragment is cut into parts of about partTarget as its
// samples arrive, and a fragment, once stored, is the segment its parts add
// up to (same samples, same decode times). So the first playlist exists as
// soon as the first part does (a fifth of a second after the first
// keyframe, where a muxer that lists only complete segments needs a whole
// GOP), nothing is encoded twice while nobody watches, and a part is encoded
// (moof+mdat) only when a player asks for it.
const (
	partTarget = 200 * time.Millisecond
	// llSegments is how many completed segments a playlist can list.
	llSegments = 10
	// llPartSegments is how many completed segments keep their parts
	// playable (RFC 8216bis: parts stay listed for about three target
	// durations), and only while players are watching.
	llPartSegments = 2
	// llWatched is how long after the last request a stream counts as watched.
	llWatched = time.Minute
)

// LLHLS is the Low-Latency HLS state of a stream. It outlives publisher
// sessions: when a camera reconnects, its playlist goes on (media sequence
// numbers continue, a discontinuity marks the new session), so players keep
// playing instead of failing on a playlist that started over. The current
// publisher's fragmenter feeds it under the publisher's lock; HTTP requests
// read it under its own, waiting on changed for blocking playlist reloads
// and preload hints.
type LLHLS struct {
	target time.Duration // the fragmenter's target duration
	// declared is the playlist's PART-TARGET: the first part's duration (a
	// whole number of frames near partTarget, which players expect parts
	// to match), in milliseconds rounded up.
	declared time.Duration

	mu      sync.Mutex
	changed chan struct{}  // closed and replaced on every change
	ended   time.Time      // when the last publisher ended; zero while one publishes
	watched time.Time      // last request
	segs    []*llSegment   // oldest first; the last one is open while !segs[len-1].complete
	discSeq int            // discontinuities in segments dropped from segs
	lastMSN uint64         // the newest segment's media sequence number
	inits   map[int][]byte // init segments by id, of the segments in segs
	initID  int            // the newest init segment's id
}

// llSegment is one fragment as a segment of the playlist.
type llSegment struct {
	msn      uint64 // media sequence number, counting on across publisher sessions
	initID   int
	disc     bool // codec parameters changed (a discontinuity before it)
	start    time.Time
	duration time.Duration
	complete bool
	number   string // the stored fragment's number; "" until stored
	parts    []*llPart
}

// llPart is a part of a segment: a moof+mdat chunk of the stored fragment,
// each track's samples over about partTarget.
type llPart struct {
	duration    time.Duration
	independent bool // starts with a keyframe of the leading track
	size        int
	read        func() ([]byte, error) // reads the chunk back from the store; nil once dropped
	data        []byte                 // read on first request
}

func newLLHLS(target time.Duration) *LLHLS {
	return &LLHLS{target: target, changed: make(chan struct{}), inits: map[int][]byte{}}
}

// notify wakes waiting requests. The caller holds l.mu.
func (l *LLHLS) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// open starts a segment with the init segment it needs and returns its
// media sequence number.
func (l *LLHLS) open(init []byte, disc bool, start time.Time) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !bytes.Equal(init, l.inits[l.initID]) {
		l.initID++
		l.inits[l.initID] = init
	}
	first := l.lastMSN == 0 // the stream's first segment: nothing before it to be discontinuous with
	l.lastMSN++
	l.segs = append(l.segs, &llSegment{msn: l.lastMSN, initID: l.initID, disc: disc && !first, start: start})
	l.ended = time.Time{}
	l.notify()
	return l.lastMSN
}

// openSegment returns the open segment, or nil. The caller holds l.mu.
func (l *LLHLS) openSegment() *llSegment {
	if n := len(l.segs); n > 0 && !l.segs[n-1].complete {
		return l.segs[n-1]
	}
	return nil
}

// addPart appends a part of size bytes, read back by read, to the open segment.
func (l *LLHLS) addPart(read func() ([]byte, error), size int, d time.Duration, independent bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.openSegment()
	if s == nil {
		return
	}
	if l.declared == 0 {
		l.declared = (d + time.Millisecond - 1).Truncate(time.Millisecond)
	}
	s.parts = append(s.parts, &llPart{duration: d, independent: independent, size: size, read: read})
	l.notify()
}

// complete ends the open segment. Parts of older segments are dropped (all
// of them when nobody is watching: a player that comes later starts from
// the open segment's parts or a stored segment), and segments beyond
// llSegments are forgotten.
func (l *LLHLS) complete(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.openSegment()
	if s == nil {
		return
	}
	if len(s.parts) == 0 {
		l.segs = l.segs[:len(l.segs)-1]
		return
	}
	s.duration, s.complete = d, true
	keep := llPartSegments
	if time.Since(l.watched) > llWatched {
		keep = 0
	}
	for i, old := range l.segs {
		if i < len(l.segs)-keep {
			old.parts = nil
		}
	}
	for len(l.segs) > llSegments {
		if l.segs[0].disc {
			l.discSeq++
		}
		l.segs = l.segs[1:]
	}
	for id := range l.inits {
		if id < l.segs[0].initID {
			delete(l.inits, id)
		}
	}
	l.notify()
}

// stored records the fragment number of segment msn.
func (l *LLHLS) stored(msn uint64, number string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.segment(msn); s != nil {
		s.number = number
		l.notify()
	}
}

// end records that the publisher session ended (its last fragment is
// complete). The parts' samples are let go; the playlist stays, and waiting
// requests keep waiting for the next session, up to their timeout.
func (l *LLHLS) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.segs {
		s.parts = nil
	}
	l.ended = time.Now()
	l.notify()
}

// idleSince reports when the last publisher ended; zero while one publishes.
func (l *LLHLS) idleSince() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ended
}

// segment returns segment msn, or nil. The caller holds l.mu.
func (l *LLHLS) segment(msn uint64) *llSegment {
	if len(l.segs) == 0 || msn < l.segs[0].msn {
		return nil
	}
	if i := msn - l.segs[0].msn; i < uint64(len(l.segs)) {
		return l.segs[i]
	}
	return nil
}

// Errors of Low-Latency HLS requests, mapped to HTTP statuses by Serve.
var (
	errLLTimeout = errors.New("not available in time")
	errLLAhead   = errors.New("too far ahead of the live edge")
	errLLMissing = errors.New("no longer available")
)

// wait holds until ready (called under l.mu) is true and returns with l.mu
// held, or returns an error without it.
func (l *LLHLS) wait(ctx context.Context, timeout time.Duration, ready func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		if ready() {
			return nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return errLLTimeout
		}
	}
}

// blockTimeout bounds a blocking request: RFC 8216bis asks servers to answer
// 503 when a request cannot be satisfied within three target durations.
func (l *LLHLS) blockTimeout() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return 3 * l.targetDuration()
}

// targetDuration is the playlist's target duration: the fragmenter's target
// rounded, or the longest listed segment's when longer. The caller holds l.mu.
func (l *LLHLS) targetDuration() time.Duration {
	t := math.Max(1, math.Round(l.target.Seconds()))
	for _, s := range l.segs {
		if s.complete {
			t = math.Max(t, math.Round(s.duration.Seconds()))
		}
	}
	return time.Duration(t) * time.Second
}

// LLView is what a playback session adds to the playlists: where its
// stored segments are and what it shows.
type LLView struct {
	// ServeSegment answers with a stored fragment's moof+mdat.
	ServeSegment func(w http.ResponseWriter, r *http.Request, number string)
	// Segments is how many completed segments the playlist lists at most.
	Segments int
	// DateTimes adds EXT-X-PROGRAM-DATE-TIME (the segment's server time).
	DateTimes bool
}

// Serve answers a request for file (index.m3u8, stream.m3u8, init.mp4,
// part.mp4, segment.mp4) of the session.
func (l *LLHLS) Serve(w http.ResponseWriter, r *http.Request, file string, v LLView) {
	l.mu.Lock()
	l.watched = time.Now()
	l.mu.Unlock()
	q := r.URL.Query()
	var err error
	switch file {
	case "index.m3u8":
		err = l.serveMultivariant(w, r)
	case "stream.m3u8":
		err = l.servePlaylist(w, r, q, v)
	case "init.mp4":
		err = l.serveInit(w, q)
	case "part.mp4":
		err = l.servePart(w, r, q)
	case "segment.mp4":
		err = l.serveSegment(w, r, q, v)
	default:
		err = errLLMissing
	}
	var status int
	switch {
	case err == nil:
		return
	case errors.Is(err, errLLAhead), errors.Is(err, errBadQuery):
		status = http.StatusBadRequest
	case errors.Is(err, errLLTimeout):
		status = http.StatusServiceUnavailable
	case errors.Is(err, errLLMissing):
		status = http.StatusNotFound
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return
	default:
		status = http.StatusInternalServerError
	}
	http.Error(w, err.Error(), status)
}

var errBadQuery = errors.New("bad _HLS_msn, _HLS_part, msn, part or v")

// uintParam parses query parameter name; ok is false when it is absent.
func uintParam(q map[string][]string, name string) (n uint64, ok bool, err error) {
	vs := q[name]
	if len(vs) == 0 {
		return 0, false, nil
	}
	n, err = strconv.ParseUint(vs[0], 10, 64)
	if err != nil {
		return 0, false, errBadQuery
	}
	return n, true, nil
}

// hasContent reports whether a playlist would list anything. The caller
// holds l.mu.
func (l *LLHLS) hasContent() bool {
	return len(l.segs) > 1 || (len(l.segs) == 1 && len(l.segs[0].parts) > 0)
}

// firstContent waits until the session has a part, returning with l.mu
// held. A publisher's first keyframe may be a GOP away.
func (l *LLHLS) firstContent(ctx context.Context) error {
	return l.wait(ctx, DefaultMaxFragmentDuration, l.hasContent)
}

func (l *LLHLS) serveMultivariant(w http.ResponseWriter, r *http.Request) error {
	if err := l.firstContent(r.Context()); err != nil {
		return err
	}
	seg := l.segs[len(l.segs)-1]
	init := l.inits[seg.initID]
	// The bandwidth is the newest parts' bit rate.
	var bytes int
	var d time.Duration
	for _, p := range seg.parts {
		d += p.duration
		bytes += p.size
	}
	l.mu.Unlock()
	info := DescribeInit(init)
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d", max(1, int64(float64(bytes*8)/math.Max(d.Seconds(), 0.04))))
	if info.Codecs != "" {
		fmt.Fprintf(&b, ",CODECS=\"%s\"", info.Codecs)
	}
	if info.Width > 0 {
		fmt.Fprintf(&b, ",RESOLUTION=%dx%d", info.Width, info.Height)
	}
	b.WriteString("\nstream.m3u8\n")
	WritePlaylist(w, b.String())
	return nil
}

// servePlaylist serves the media playlist, holding a blocking reload
// (_HLS_msn, _HLS_part) until the segment or part it names exists.
func (l *LLHLS) servePlaylist(w http.ResponseWriter, r *http.Request, q map[string][]string, v LLView) error {
	msn, hasMSN, err := uintParam(q, "_HLS_msn")
	if err != nil {
		return err
	}
	part, hasPart, err := uintParam(q, "_HLS_part")
	if err != nil || (hasPart && !hasMSN) {
		return errBadQuery
	}
	if !hasMSN {
		if err := l.firstContent(r.Context()); err != nil {
			return err
		}
	} else {
		l.mu.Lock()
		ahead := msn > l.lastMSN+2
		l.mu.Unlock()
		if ahead {
			return errLLAhead
		}
		err := l.wait(r.Context(), l.blockTimeout(), func() bool {
			s := l.segment(msn)
			if s == nil {
				return msn < l.lastMSN // (older than anything listed)
			}
			return s.complete || (hasPart && uint64(len(s.parts)) > part)
		})
		if err != nil {
			return err
		}
	}
	body := l.playlist(v)
	l.mu.Unlock()
	WritePlaylist(w, body)
	return nil
}

// playlist writes the media playlist. The caller holds l.mu.
func (l *LLHLS) playlist(v LLView) string {
	// The listed segments: the last v.Segments complete ones and the open one.
	from := 0
	complete := 0
	for i := len(l.segs) - 1; i >= 0; i-- {
		if l.segs[i].complete {
			complete++
			if v.Segments > 0 && complete > v.Segments {
				break
			}
		}
		from = i
	}
	disc := l.discSeq
	for _, s := range l.segs[:from] {
		if s.disc {
			disc++
		}
	}
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", int(l.targetDuration().Seconds()))
	declared := l.declared
	if declared == 0 {
		declared = partTarget
	}
	fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%.3f\n", (3 * declared).Seconds())
	fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%.3f\n", declared.Seconds())
	next := l.lastMSN + 1
	if len(l.segs) > 0 {
		fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", l.segs[from].msn)
		fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", disc)
	}
	initID := -1
	for _, s := range l.segs[from:] {
		if s.disc {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if s.initID != initID {
			initID = s.initID
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"init.mp4?v=%d\"\n", initID)
		}
		if v.DateTimes {
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", s.start.UTC().Format("2006-01-02T15:04:05.000Z"))
		}
		for i, p := range s.parts {
			fmt.Fprintf(&b, "#EXT-X-PART:DURATION=%.5f,URI=\"part.mp4?msn=%d&part=%d\"", p.duration.Seconds(), s.msn, i)
			if p.independent {
				b.WriteString(",INDEPENDENT=YES")
			}
			b.WriteByte('\n')
		}
		if !s.complete {
			fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part.mp4?msn=%d&part=%d\"\n", s.msn, len(s.parts))
			return b.String()
		}
		// (A stable URI: players compare reloads by it. The fragment's
		// number comes when the store has it.)
		fmt.Fprintf(&b, "#EXTINF:%.5f,\nsegment.mp4?msn=%d\n", s.duration.Seconds(), s.msn)
	}
	fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part.mp4?msn=%d&part=0\"\n", next)
	return b.String()
}

func (l *LLHLS) serveInit(w http.ResponseWriter, q map[string][]string) error {
	id, ok, err := uintParam(q, "v")
	if err != nil || !ok {
		return errBadQuery
	}
	l.mu.Lock()
	init, found := l.inits[int(id)]
	l.mu.Unlock()
	if !found {
		return errLLMissing
	}
	writeMP4(w, init, "max-age=3600")
	return nil
}

// servePart serves part.mp4?msn=M&part=P, holding a request for the next
// part (a preload hint) until it exists. A part index past a complete
// segment's last part means the next segment's first (RFC 8216bis 6.2.6).
func (l *LLHLS) servePart(w http.ResponseWriter, r *http.Request, q map[string][]string) error {
	msn, ok1, err1 := uintParam(q, "msn")
	idx, ok2, err2 := uintParam(q, "part")
	if err1 != nil || err2 != nil || !ok1 || !ok2 {
		return errBadQuery
	}
	var p *llPart
	err := l.wait(r.Context(), l.blockTimeout(), func() bool {
		if msn > l.lastMSN+1 {
			return true // too far ahead: answered below
		}
		s := l.segment(msn)
		if s != nil && s.complete && idx >= uint64(len(s.parts)) && len(s.parts) > 0 {
			msn, idx = msn+1, 0
			s = l.segment(msn)
		}
		if s == nil {
			return msn <= l.lastMSN // gone (or never was)
		}
		if idx < uint64(len(s.parts)) {
			p = s.parts[idx]
			return true
		}
		return s.complete
	})
	if err != nil {
		return err
	}
	if p == nil || p.read == nil && p.data == nil {
		ahead := msn > l.lastMSN+1
		l.mu.Unlock()
		if ahead {
			return errLLAhead
		}
		return errLLMissing
	}
	data, read := p.data, p.read
	l.mu.Unlock()
	if data == nil {
		var err error
		if data, err = read(); err != nil {
			return errLLMissing // the fragment expired meanwhile
		}
		l.mu.Lock()
		if p.read != nil {
			p.data = data // kept while the part is listed: every player asks for it
		}
		l.mu.Unlock()
	}
	writeMP4(w, data, "max-age=60")
	return nil
}

// serveSegment serves segment.mp4?msn=M, the stored fragment, waiting for
// the store when the segment has just completed.
func (l *LLHLS) serveSegment(w http.ResponseWriter, r *http.Request, q map[string][]string, v LLView) error {
	msn, ok, err := uintParam(q, "msn")
	if err != nil || !ok || v.ServeSegment == nil {
		return errBadQuery
	}
	var number string
	err = l.wait(r.Context(), l.blockTimeout(), func() bool {
		s := l.segment(msn)
		if s == nil {
			return msn <= l.lastMSN
		}
		number = s.number
		return number != ""
	})
	if err != nil {
		return err
	}
	l.mu.Unlock()
	if number == "" {
		return errLLMissing
	}
	v.ServeSegment(w, r, number)
	return nil
}

// WritePlaylist answers with an HLS playlist, never cached (archived and
// low-latency playlists alike).
func WritePlaylist(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write([]byte(body))
}

func writeMP4(w http.ResponseWriter, data []byte, cache string) {
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Cache-Control", cache)
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}
