package media

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// Sink is where fragments go: the gateway stores them in the fragment store.
type Sink interface {
	// Prepare is called when a publisher starts on a stream. It creates the
	// stream when that is allowed and returns its fragmenting settings.
	Prepare(stream string) (StreamSettings, error)
	// Begin opens the record of a fragment of stream as it starts: its
	// Init, Producer, Server and Discontinuity are set.
	Begin(stream string, f *Fragment) (FragmentWriter, error)
}

// StreamSettings are a stream's fragmenting settings.
type StreamSettings struct {
	FragmentDuration    time.Duration // target; 0: DefaultFragmentDuration
	MaxFragmentDuration time.Duration // hard cut without keyframes; 0: DefaultMaxFragmentDuration
}

// StoredFragment is a fragment the sink accepted, as live readers see it.
type StoredFragment struct {
	*Fragment
	Number string
}

// writeQueue is how many committed fragments may wait for the disk (fsync).
// When it is full the publisher's packet callback blocks: back-pressure
// towards the publisher (TCP flow control), never a silent drop.
const writeQueue = 2

// publisher is one live source of a stream (an RTSP publisher or a pulled
// camera): it fragments what it receives, stores the fragments in order on
// its own goroutine, forwards packets to RTSP readers and fans fragments out
// to live subscribers.
type publisher struct {
	live   *live
	frag   *Fragmenter
	mu     sync.Mutex // serializes Write and Close on frag
	tracks map[format.Format]int
	out    []*gortsplib.ServerStream // RTSP readers, per listener
	queue  chan *Fragment
	done   chan struct{}
	closed bool
	failed atomic.Pointer[error] // from the store: the session must end
	onFail func()                // ends the session after a store failure
	hls    *LLHLS                // the stream's Low-Latency HLS state; nil when off (under mu)
	rtc    *rtcFeed              // WebRTC viewers
	// requestKeyframe asks the source for a keyframe (WebRTC publishers);
	// nil when it cannot be asked (RTSP).
	requestKeyframe func()
	lastAsk         atomic.Int64 // unix ns of the last keyframe request
	log             *slog.Logger
	m               *Metrics
}

// newPublisher builds a publisher for a session description. Tracks of
// unsupported codecs are logged and skipped; with none left it fails.
func newPublisher(l *live, desc *description.Session, settings StreamSettings, out []*gortsplib.ServerStream, m *Metrics, log *slog.Logger) (*publisher, error) {
	p := &publisher{live: l, tracks: map[format.Format]int{}, out: out, queue: make(chan *Fragment, writeQueue), done: make(chan struct{}), log: log, m: m}
	var cts []codecTrack
	for _, medi := range desc.Medias {
		for _, forma := range medi.Formats {
			ct, err := newCodecTrack(forma)
			if err != nil {
				log.Warn("track not recorded", "stream", l.name, "media", medi.Type, "err", err)
				continue
			}
			p.tracks[forma] = len(cts)
			cts = append(cts, ct)
			break // one format per media is recorded
		}
	}
	if len(cts) == 0 {
		return nil, ErrNoSupportedTrack
	}
	begin := func(f *Fragment) (FragmentWriter, error) { return l.sink.Begin(l.name, f) }
	p.frag = newFragmenter(cts, settings.FragmentDuration, settings.MaxFragmentDuration, begin, p.enqueue)
	p.rtc = newRTCFeed(cts, m)
	go p.writer()
	return p, nil
}

// ErrNoSupportedTrack is returned for a session with no codec the recorder supports.
var ErrNoSupportedTrack = errors.New("no track with a supported codec (H264, H265, MPEG-4 Audio, Opus)")

// packet handles one RTP packet of the session: forwarded to RTSP readers
// at once, then depacketized into the fragmenter.
func (p *publisher) packet(medi *description.Media, forma format.Format, pkt *rtp.Packet, pts int64, ptsOK bool, ntp time.Time) {
	arrival := time.Now()
	at := ntp
	if at.IsZero() {
		at = arrival
	}
	if p.live.readers.Load() > 0 {
		for _, out := range p.out {
			out.WritePacketRTPWithNTP(medi, pkt, at) //nolint:errcheck // a reader's problem is the reader's
		}
	}
	i, ok := p.tracks[forma]
	if !ok || !ptsOK {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	defer p.keyframeIfDue(i)
	ct := p.frag.tracks[i].ct
	aus, err := ct.depacketize(pkt)
	if err != nil {
		p.m.decodeErrors.Inc()
		return
	}
	for _, au := range aus {
		if err := p.frag.Write(i, pts, ntp, arrival, au); err != nil {
			if errors.Is(err, errStoreFailed) {
				p.storeFailed(err)
				return
			}
			p.m.decodeErrors.Inc()
		}
		p.rtc.write(i, ct, pts, au)
		if held := p.frag.tracks[i].heldNom; held > 0 {
			pts += held // the next access unit of the same packet follows this one
		}
	}
}

var errStoreFailed = errors.New("fragment store failed")

// keyframeIfDue asks a source that takes requests for a keyframe when the
// fragmenter waits for one after a sample of track i (its leading track).
func (p *publisher) keyframeIfDue(i int) {
	if p.requestKeyframe != nil && p.frag.tracks[i] == p.frag.leader && p.frag.keyframeDue() {
		p.askKeyframe()
	}
}

// keyframeInterval spaces keyframe requests: an encoder answers one within
// a round trip, and each keyframe costs bandwidth.
const keyframeInterval = 500 * time.Millisecond

// askKeyframe requests a keyframe from the source, at most once per
// keyframeInterval.
func (p *publisher) askKeyframe() {
	if p.requestKeyframe == nil {
		return
	}
	now := time.Now().UnixNano()
	last := p.lastAsk.Load()
	if now-last < int64(keyframeInterval) || !p.lastAsk.CompareAndSwap(last, now) {
		return
	}
	p.m.keyframeRequests.Inc()
	p.requestKeyframe()
}

// joinRTC adds a WebRTC viewer and returns the packets of the current GOP
// it starts with; false when the publisher has ended.
func (p *publisher) joinRTC(v *rtcViewer) ([]*rtp.Packet, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false
	}
	var gop [][]byte
	if p.rtc.video != nil {
		gop = p.frag.gop(p.rtc.video.index)
	}
	return p.rtc.join(v, gop)
}

// storeErr is the store's failure, if any.
func (p *publisher) storeErr() error {
	if e := p.failed.Load(); e != nil {
		return *e
	}
	return nil
}

// storeFailed ends the session after the store failed (once).
func (p *publisher) storeFailed(err error) {
	if p.failed.CompareAndSwap(nil, &err) {
		p.m.fragmentsLost.Inc()
		p.log.Error("storing fragment failed; ending the publisher's session", "stream", p.live.name, "err", err)
		if p.onFail != nil {
			go p.onFail()
		}
	}
}

// enqueue commits a fragment whose chunks are all written and hands it to
// the writer goroutine to wait for the disk, blocking while the queue is
// full (the disk is slower than the camera).
func (p *publisher) enqueue(f *Fragment) error {
	num, err := f.w.Commit(f)
	if err != nil {
		return err
	}
	f.number = num
	select {
	case p.queue <- f:
	default:
		start := time.Now()
		p.queue <- f
		p.m.backpressure.Add(time.Since(start).Seconds())
	}
	return nil
}

// writer waits for committed fragments to be durable, in order, and
// publishes them to live subscribers.
func (p *publisher) writer() {
	defer close(p.done)
	for f := range p.queue {
		if p.storeErr() != nil {
			p.m.fragmentsLost.Inc()
			continue
		}
		start := time.Now()
		if err := f.w.Durable(); err != nil {
			p.storeFailed(fmt.Errorf("%w: %w", errStoreFailed, err))
			continue
		}
		num := f.number
		if f.hls != nil {
			f.hls.stored(f.hlsMSN, num)
		}
		p.m.fragments.Inc()
		p.m.frames.Add(float64(f.Frames))
		p.m.fragmentBytes.Add(float64(f.Size()))
		p.m.storeSeconds.Observe(time.Since(start).Seconds())
		if !f.completed.IsZero() {
			p.m.visibleSeconds.Observe(time.Since(f.completed).Seconds())
		}
		p.live.broadcast(StoredFragment{Fragment: f, Number: num})
	}
}

// attachHLS makes the publisher feed the stream's Low-Latency HLS state,
// from its next fragment on. It is attached once the publisher is the
// stream's (a publisher refused as a second one must not touch it).
func (p *publisher) attachHLS(h *LLHLS) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hls, p.frag.hls = h, h
}

// close ends the session: the open fragment is emitted and everything
// queued is stored before close returns.
func (p *publisher) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.done
		return nil
	}
	p.closed = true
	p.rtc.close()
	err := p.frag.Close()
	if errors.Is(err, errStoreFailed) {
		p.storeFailed(err)
	}
	close(p.queue)
	p.mu.Unlock()
	<-p.done
	p.mu.Lock()
	h := p.hls
	p.mu.Unlock()
	if h != nil {
		h.end()
	}
	if ferr := p.storeErr(); ferr != nil {
		return fmt.Errorf("storing fragments: %w", ferr)
	}
	if errors.Is(err, errStoreFailed) {
		err = nil
	}
	return err
}
