package media

import (
	"errors"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
)

// Fragmenting defaults.
const (
	DefaultFragmentDuration = 2 * time.Second
	// DefaultMaxFragmentDuration cuts streams whose keyframes are rare or
	// missing. Matroska block times are 16-bit milliseconds, so it must stay
	// well under 32 s.
	DefaultMaxFragmentDuration = 10 * time.Second
)

// Fragmenter cuts the access units of a session's tracks into fragments at
// the first keyframe of the leading track (the first video track, else the
// first track) after the target duration. It is not safe for concurrent use:
// one publisher session feeds it.
type Fragmenter struct {
	target, max time.Duration
	emit        func(*Fragment) error

	tracks []*fragTrack
	leader *fragTrack

	started       bool // the leader has produced its first sample
	open          bool // a fragment has samples
	startDTS      int64
	startPTS      int64
	producer      time.Time
	server        time.Time
	discontinuity bool
	seq           uint32
	init          []byte    // current init segment; nil when parameters changed
	hls           *LLHLS    // where the open fragment's Low-Latency HLS parts go; nil: off
	hlsMSN        uint64    // the open fragment's media sequence number there
	now           time.Time // arrival of the access unit being written
	leaderPTS     int64     // presentation time of the leader's newest sample
}

// fragTrack is one track's state in the fragmenter.
type fragTrack struct {
	ct      codecTrack
	id      int
	held    *fmp4.Sample // the newest sample: its duration is known when the next one comes
	heldDTS int64
	heldNom int64
	lastDur int64
	base    int64 // DTS of the first sample in the open fragment
	samples []*fmp4.Sample
	// The open LL-HLS part starts at samples[partFrom], decoded at partBase
	// (base when partFrom is 0).
	partFrom int
	partBase int64
}

// timeOffset keeps fMP4 decode times positive: the first B-frames of a
// session decode before presentation time zero.
const timeOffset = 10 // seconds

// NewFragmenter returns a fragmenter for the given tracks. emit receives each
// completed fragment, in order; an error from emit is returned by Write.
func newFragmenter(tracks []codecTrack, target, maxDur time.Duration, emit func(*Fragment) error) *Fragmenter {
	if target <= 0 {
		target = DefaultFragmentDuration
	}
	if maxDur <= 0 {
		maxDur = DefaultMaxFragmentDuration
	}
	maxDur = max(maxDur, target)
	f := &Fragmenter{target: target, max: maxDur, emit: emit, discontinuity: true}
	for i, ct := range tracks {
		ft := &fragTrack{ct: ct, id: i + 1}
		f.tracks = append(f.tracks, ft)
		if f.leader == nil && ct.isVideo() {
			f.leader = ft
		}
	}
	if f.leader == nil && len(f.tracks) > 0 {
		f.leader = f.tracks[0]
	}
	return f
}

// keyframeDue reports whether the fragmenter waits for a keyframe: none has
// come yet, or the open fragment has reached its target duration. A
// publisher that can be asked for keyframes (WebRTC) is asked then.
func (f *Fragmenter) keyframeDue() bool {
	return !f.started || (f.open && f.duration(f.leaderPTS-f.startPTS) >= f.target)
}

// gop returns the payloads (as stored: AVCC for H.264) of track i's samples
// in the open fragment from its latest keyframe, oldest first; nil when the
// open fragment has no keyframe of that track. A new WebRTC viewer starts
// from them instead of waiting for the next keyframe.
func (f *Fragmenter) gop(i int) [][]byte {
	ft := f.tracks[i]
	samples := ft.samples
	if ft.held != nil {
		samples = append(samples[:len(samples):len(samples)], ft.held)
	}
	for k := len(samples) - 1; k >= 0; k-- {
		if !samples[k].IsNonSyncSample {
			out := make([][]byte, 0, len(samples)-k)
			for _, s := range samples[k:] {
				out = append(out, s.Payload)
			}
			return out
		}
	}
	return nil
}

// errNoTrack is returned for a track index the fragmenter does not have.
var errNoTrack = errors.New("no such track")

// Write adds an access unit of track i presented at pts (in the track's
// clock). ntp is the producer's wall clock for it (zero when unknown) and
// arrival when its first packet arrived.
func (f *Fragmenter) Write(i int, pts int64, ntp, arrival time.Time, au [][]byte) error {
	if i < 0 || i >= len(f.tracks) {
		return errNoTrack
	}
	ft := f.tracks[i]
	f.now = arrival
	s, ok, changed, err := ft.ct.sample(pts, au)
	if err != nil || !ok {
		return err
	}
	if changed {
		// The open fragment ends with the old parameters (its init was made
		// when it opened); the next one gets a new init.
		if f.open {
			if err := f.cut(ft, s); err != nil {
				return err
			}
			f.discontinuity = true
		}
		f.init = nil
	}
	if ft == f.leader {
		f.leaderPTS = s.pts()
		// A keyframe's presentation time measures the fragment exactly; decode
		// times are compressed at a session's start while the DTS extractor
		// learns the B-frame reordering.
		if f.open && ((s.sync && f.duration(s.pts()-f.startPTS) >= f.target) || f.duration(s.dts-f.startDTS) >= f.max) {
			if err := f.cut(ft, s); err != nil {
				return err
			}
		}
		if !f.open {
			if f.init == nil {
				if err := f.makeInit(); err != nil {
					return err
				}
			}
			f.open, f.started = true, true
			f.startDTS, f.startPTS, f.server = s.dts, s.pts(), arrival
			f.producer = ntp
			if ntp.IsZero() {
				f.producer = arrival
			}
			if f.hls != nil {
				f.hlsMSN = f.hls.open(f.init, f.discontinuity, f.server)
			}
		}
	} else if !f.started {
		return nil // nothing before the leader's first keyframe
	}
	ft.push(s)
	if f.hls != nil && ft == f.leader {
		f.partIfDue()
	}
	return nil
}

// partIfDue ends the open LL-HLS part once the leading track's samples in
// it reach partTarget, give or take half a frame (so 25 and 30 fps parts
// are whole frames of exactly 200 ms).
func (f *Fragmenter) partIfDue() {
	ft := f.leader
	samples := ft.samples[ft.partFrom:]
	if len(samples) == 0 {
		return
	}
	var ticks int64
	for _, s := range samples {
		ticks += int64(s.Duration)
	}
	if f.duration(ticks+int64(samples[len(samples)-1].Duration)/2) >= partTarget {
		f.cutPart()
	}
}

// cutPart hands every track's samples since the last part to the LL-HLS
// state as a part, with the decode times the fragment will have.
func (f *Fragmenter) cutPart() {
	var tracks []*fmp4.PartTrack
	var d, longest time.Duration
	independent := false
	for _, ft := range f.tracks {
		samples := ft.samples[ft.partFrom:]
		if len(samples) == 0 {
			continue
		}
		base := ft.partBase
		if ft.partFrom == 0 {
			base = ft.base
		}
		var ticks int64
		for _, s := range samples {
			ticks += int64(s.Duration)
		}
		clock := int64(ft.ct.clockRate())
		tracks = append(tracks, &fmp4.PartTrack{ID: ft.id, BaseTime: uint64(base + timeOffset*clock), Samples: samples[:len(samples):len(samples)]})
		td := time.Duration(ticks) * time.Second / time.Duration(clock)
		if ft == f.leader {
			d, independent = td, !samples[0].IsNonSyncSample
		}
		longest = max(longest, td)
		ft.partFrom, ft.partBase = len(ft.samples), base+ticks
	}
	if len(tracks) == 0 {
		return
	}
	if d == 0 {
		d = longest // (a part of other tracks only: the leader's change cut the fragment)
	}
	f.hls.addPart(tracks, d, independent)
}

func (f *Fragmenter) duration(ticks int64) time.Duration {
	return time.Duration(ticks) * time.Second / time.Duration(f.leader.ct.clockRate())
}

// push makes s the held sample, finishing the previous one.
func (ft *fragTrack) push(s sample) {
	if ft.held != nil {
		ft.finish(s.dts - ft.heldDTS)
	}
	ft.held = &fmp4.Sample{PTSOffset: s.ptsOffset, IsNonSyncSample: !s.sync, Payload: s.payload}
	ft.heldDTS, ft.heldNom = s.dts, s.nominal
}

// finish gives the held sample its duration and adds it to the fragment.
func (ft *fragTrack) finish(d int64) {
	if d <= 0 || d > int64(ft.ct.clockRate())*DefaultMaxFragmentDuration.Nanoseconds()/1e9 {
		// Out-of-order or absurd: keep the timeline moving by the usual length.
		d = ft.guessDuration()
	}
	ft.held.Duration = uint32(d)
	ft.lastDur = d
	if len(ft.samples) == 0 {
		ft.base = ft.heldDTS
	}
	ft.samples = append(ft.samples, ft.held)
	ft.held = nil
}

func (ft *fragTrack) guessDuration() int64 {
	switch {
	case ft.heldNom > 0:
		return ft.heldNom
	case ft.lastDur > 0:
		return ft.lastDur
	}
	return int64(ft.ct.clockRate() / 30)
}

// cut closes the open fragment before sample s of track by. The leader's
// held sample ends where s begins; other tracks keep theirs for the next
// fragment. The fragment lasts until s is presented when s is a keyframe,
// else until it is decoded.
func (f *Fragmenter) cut(by *fragTrack, s sample) error {
	if by == f.leader && f.leader.held != nil {
		f.leader.finish(s.dts - f.leader.heldDTS)
	}
	d := f.duration(s.dts - f.startDTS)
	switch {
	case by != f.leader:
		d = f.duration(f.leader.base + f.leader.total() - f.startDTS)
	case s.sync:
		d = f.duration(s.pts() - f.startPTS)
	}
	return f.flush(d)
}

// Close ends the session: the open fragment, held samples included, is
// emitted, never dropped.
func (f *Fragmenter) Close() error {
	if !f.open {
		return nil
	}
	f.now = time.Now()
	for _, ft := range f.tracks {
		if ft.held != nil {
			ft.finish(ft.guessDuration())
		}
	}
	return f.flush(f.duration(f.leader.base + f.leader.total() - f.startDTS))
}

func (ft *fragTrack) total() int64 {
	var n int64
	for _, s := range ft.samples {
		n += int64(s.Duration)
	}
	return n
}

// makeInit encodes the init segment of the tracks' current parameters.
func (f *Fragmenter) makeInit() error {
	in := fmp4.Init{}
	for _, ft := range f.tracks {
		in.Tracks = append(in.Tracks, &fmp4.InitTrack{ID: ft.id, TimeScale: uint32(ft.ct.clockRate()), Codec: ft.ct.codec()})
	}
	var buf seekablebuffer.Buffer
	if err := in.Marshal(&buf); err != nil {
		return err
	}
	f.init = buf.Bytes()
	return nil
}

// flush encodes and emits the open fragment.
func (f *Fragmenter) flush(d time.Duration) error {
	f.open = false
	f.seq++
	hls := f.hls
	if hls != nil && f.hlsMSN == 0 {
		hls = nil // the fragment opened before LL-HLS was attached
	}
	if hls != nil {
		f.cutPart()
		hls.complete(d)
	}
	var tracks []*fmp4.PartTrack
	n, frames := 0, len(f.leader.samples)
	keyframe := true
	for _, ft := range f.tracks {
		if len(ft.samples) == 0 {
			continue
		}
		if ft == f.leader && ft.samples[0].IsNonSyncSample {
			keyframe = false
		}
		tracks = append(tracks, &fmp4.PartTrack{
			ID: ft.id, BaseTime: uint64(ft.base + timeOffset*int64(ft.ct.clockRate())), Samples: ft.samples,
		})
		n += len(ft.samples)
		ft.samples, ft.partFrom = nil, 0
	}
	if n == 0 {
		return nil
	}
	// The moof is encoded; the samples stay where they are, and the store
	// writes them after it (a megabyte copy and allocation per fragment
	// saved, and the allocation was what kept idle heap high).
	media := make([][]byte, 1, 1+n)
	media[0] = appendMoof(make([]byte, 0, moofSize(tracks)), f.seq, tracks)
	for _, t := range tracks {
		for _, s := range t.Samples {
			media = append(media, s.Payload)
		}
	}
	frag := &Fragment{
		Init: f.init, Media: media, Producer: f.producer, Server: f.server, Duration: d,
		Keyframe: keyframe, Discontinuity: f.discontinuity, Samples: n, Frames: frames, completed: f.now, hls: hls, hlsMSN: f.hlsMSN,
	}
	f.discontinuity = false
	return f.emit(frag)
}
