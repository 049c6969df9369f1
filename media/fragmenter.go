package media

import (
	"bytes"
	"errors"
	"fmt"
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
// first track) after the target duration. A fragment is stored as it is
// cut: its init segment when it opens, then a moof+mdat chunk every
// partTarget (the Low-Latency HLS parts are these chunks), so a camera's
// memory holds one chunk, not a GOP. It is not safe for concurrent use: one
// publisher session feeds it.
type Fragmenter struct {
	target, max time.Duration
	begin       func(*Fragment) (FragmentWriter, error) // opens a fragment's record
	emit        func(*Fragment) error                   // takes a fragment whose chunks are all written

	tracks []*fragTrack
	leader *fragTrack

	started       bool      // the leader has produced its first sample
	frag          *Fragment // the open fragment; nil between fragments
	startDTS      int64
	startPTS      int64
	discontinuity bool
	seq           uint32    // moof sequence numbers, one per chunk
	init          []byte    // current init segment; nil when parameters changed
	hls           *LLHLS    // where the open fragment's Low-Latency HLS parts go; nil: off
	now           time.Time // arrival of the access unit being written
	leaderPTS     int64     // presentation time of the leader's newest sample
	failed        error     // the store failed: the session must end
}

// FragmentWriter stores one fragment as it is cut: its pieces are written
// as they come and readable back at once, and the fragment is listed from
// Commit on. The gateway's is a streamstore.RecordWriter.
type FragmentWriter interface {
	Write(pieces ...[]byte) error
	ReadAt(p []byte, off int64) error
	// Commit stores the fragment's metadata and returns its number; the
	// fragment may not be durable yet.
	Commit(f *Fragment) (string, error)
	// Durable waits until the committed fragment is on stable storage.
	Durable() error
	// Abort drops an uncommitted fragment.
	Abort()
}

// fragTrack is one track's state in the fragmenter.
type fragTrack struct {
	ct      codecTrack
	id      int
	held    *pendingSample // the newest sample: its duration is known when the next one comes
	heldDTS int64
	heldNom int64
	lastDur int64
	base    int64 // DTS of the first sample in the open fragment
	ticks   int64 // duration of its finished samples in the open fragment
	count   int   // its finished samples in the open fragment
	// firstSync: the first of them is a sync sample (a keyframe).
	firstSync bool
	// chunk is the finished samples not written yet, the first decoded
	// at base+ticks-chunkTicks.
	chunk      []*pendingSample
	chunkTicks int64
	// written locates, for a viewer joining mid-GOP, the samples already
	// written from the track's latest keyframe in the open fragment.
	written []writtenSample
}

// pendingSample is a sample not written yet: its fMP4 fields (Payload
// unset) and its payload in pieces.
type pendingSample struct {
	fmp4.Sample
	size   int
	pieces [][]byte
}

// payload returns the sample's bytes in one slice.
func (s *pendingSample) payload() []byte {
	if len(s.pieces) == 1 {
		return s.pieces[0]
	}
	return bytes.Join(s.pieces, nil)
}

// writtenSample is where a stored sample's payload is in its fragment.
type writtenSample struct {
	off  int64
	size int
	sync bool
}

// timeOffset keeps fMP4 decode times positive: the first B-frames of a
// session decode before presentation time zero.
const timeOffset = 10 // seconds

// newFragmenter returns a fragmenter for the given tracks. begin opens
// each fragment's record; emit receives each fragment once all of it is
// written, in order. An error from either is returned by Write, and every
// Write after it fails with it.
func newFragmenter(tracks []codecTrack, target, maxDur time.Duration, begin func(*Fragment) (FragmentWriter, error), emit func(*Fragment) error) *Fragmenter {
	if target <= 0 {
		target = DefaultFragmentDuration
	}
	if maxDur <= 0 {
		maxDur = DefaultMaxFragmentDuration
	}
	maxDur = max(maxDur, target)
	f := &Fragmenter{target: target, max: maxDur, begin: begin, emit: emit, discontinuity: true}
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
	return !f.started || (f.frag != nil && f.duration(f.leaderPTS-f.startPTS) >= f.target)
}

// gop returns the payloads (as stored: AVCC for H.264) of track i's samples
// in the open fragment from its latest keyframe, oldest first; nil when the
// open fragment has no keyframe of that track. A new WebRTC viewer starts
// from them instead of waiting for the next keyframe. The samples already
// written are read back from the store (the page cache, in practice).
func (f *Fragmenter) gop(i int) [][]byte {
	ft := f.tracks[i]
	if f.frag == nil {
		return nil
	}
	memory := ft.chunk
	if ft.held != nil {
		memory = append(memory[:len(memory):len(memory)], ft.held)
	}
	for k := len(memory) - 1; k >= 0; k-- {
		if !memory[k].IsNonSyncSample {
			return payloads(memory[k:])
		}
	}
	w := ft.written
	if len(w) == 0 || !w[0].sync {
		return nil
	}
	from, to := w[0].off, w[len(w)-1].off+int64(w[len(w)-1].size)
	buf := make([]byte, to-from)
	if err := f.frag.w.ReadAt(buf, from); err != nil {
		return nil // the viewer waits for the next keyframe instead
	}
	out := make([][]byte, 0, len(w)+len(memory))
	for _, s := range w {
		out = append(out, buf[s.off-from:s.off-from+int64(s.size)])
	}
	return append(out, payloads(memory)...)
}

func payloads(samples []*pendingSample) [][]byte {
	out := make([][]byte, len(samples))
	for k, s := range samples {
		out[k] = s.payload()
	}
	return out
}

// errNoTrack is returned for a track index the fragmenter does not have.
var errNoTrack = errors.New("no such track")

// Write adds an access unit of track i presented at pts (in the track's
// clock). ntp is the producer's wall clock for it (zero when unknown) and
// arrival when its first packet arrived.
func (f *Fragmenter) Write(i int, pts int64, ntp, arrival time.Time, au [][]byte) error {
	if f.failed != nil {
		return f.failed
	}
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
		if f.frag != nil {
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
		if f.frag != nil && ((s.sync && f.duration(s.pts()-f.startPTS) >= f.target) || f.duration(s.dts-f.startDTS) >= f.max) {
			if err := f.cut(ft, s); err != nil {
				return err
			}
		}
		if f.frag == nil {
			if err := f.open(s, ntp, arrival); err != nil {
				return err
			}
		}
	} else if !f.started {
		return nil // nothing before the leader's first keyframe
	}
	ft.push(s)
	if ft == f.leader {
		return f.chunkIfDue()
	}
	return nil
}

// open starts a fragment at the leader's sample s and opens its record
// with the init segment.
func (f *Fragmenter) open(s sample, ntp, arrival time.Time) error {
	if f.init == nil {
		if err := f.makeInit(); err != nil {
			return err
		}
	}
	f.started = true
	f.startDTS, f.startPTS = s.dts, s.pts()
	frag := &Fragment{Init: f.init, Producer: ntp, Server: arrival, Discontinuity: f.discontinuity}
	if ntp.IsZero() {
		frag.Producer = arrival
	}
	w, err := f.begin(frag)
	if err == nil {
		frag.w = w
		err = w.Write(f.init)
	}
	if err != nil {
		if w != nil {
			w.Abort()
		}
		return f.fail(err)
	}
	frag.size = len(f.init)
	f.frag = frag
	f.discontinuity = false
	if f.hls != nil {
		frag.hls = f.hls
		frag.hlsMSN = f.hls.open(f.init, frag.Discontinuity, frag.Server)
	}
	return nil
}

// fail makes a store error sticky: the session cannot go on without losing
// what it records.
func (f *Fragmenter) fail(err error) error {
	f.failed = fmt.Errorf("%w: %w", errStoreFailed, err)
	return f.failed
}

// chunkIfDue writes the chunk once the leading track's samples in it reach
// partTarget, give or take half a frame (so 25 and 30 fps chunks are whole
// frames of exactly 200 ms).
func (f *Fragmenter) chunkIfDue() error {
	ft := f.leader
	if len(ft.chunk) == 0 {
		return nil
	}
	if f.duration(ft.chunkTicks+int64(ft.chunk[len(ft.chunk)-1].Duration)/2) >= partTarget {
		return f.writeChunk()
	}
	return nil
}

// writeChunk writes every track's unwritten samples as one moof+mdat and
// hands it to the LL-HLS state as a part.
func (f *Fragmenter) writeChunk() error {
	var tracks []*fmp4.PartTrack
	var chunks [][]*pendingSample
	var d, longest time.Duration
	independent := false
	pieceCount := 1
	for _, ft := range f.tracks {
		if len(ft.chunk) == 0 {
			continue
		}
		clock := int64(ft.ct.clockRate())
		base := ft.base + ft.ticks - ft.chunkTicks
		samples := make([]*fmp4.Sample, len(ft.chunk))
		for k, s := range ft.chunk {
			samples[k] = &s.Sample
			pieceCount += len(s.pieces)
		}
		tracks = append(tracks, &fmp4.PartTrack{ID: ft.id, BaseTime: uint64(base + timeOffset*clock), Samples: samples})
		chunks = append(chunks, ft.chunk)
		td := time.Duration(ft.chunkTicks) * time.Second / time.Duration(clock)
		if ft == f.leader {
			d, independent = td, !ft.chunk[0].IsNonSyncSample
		}
		longest = max(longest, td)
	}
	if len(tracks) == 0 {
		return nil
	}
	f.seq++
	moof := appendMoof(make([]byte, 0, moofSize(tracks)), f.seq, tracks, func(t, i int) int { return chunks[t][i].size })
	pieces := make([][]byte, 1, pieceCount)
	pieces[0] = moof
	at := int64(f.frag.size)
	off := at + int64(len(moof))
	for k, t := range tracks {
		ft := f.tracks[t.ID-1]
		for _, s := range chunks[k] {
			pieces = append(pieces, s.pieces...)
			if !s.IsNonSyncSample {
				ft.written = ft.written[:0]
			}
			ft.written = append(ft.written, writtenSample{off, s.size, !s.IsNonSyncSample})
			off += int64(s.size)
		}
		ft.chunk, ft.chunkTicks = nil, 0
	}
	if err := f.frag.w.Write(pieces...); err != nil {
		return f.fail(err)
	}
	f.frag.size = int(off)
	if f.frag.hls != nil {
		if d == 0 {
			d = longest // (a part of other tracks only: the leader's change cut the fragment)
		}
		w, size := f.frag.w, int(off-at)
		f.frag.hls.addPart(func() ([]byte, error) {
			b := make([]byte, size)
			return b, w.ReadAt(b, at)
		}, size, d, independent)
	}
	return nil
}

func (f *Fragmenter) duration(ticks int64) time.Duration {
	return time.Duration(ticks) * time.Second / time.Duration(f.leader.ct.clockRate())
}

// push makes s the held sample, finishing the previous one.
func (ft *fragTrack) push(s sample) {
	if ft.held != nil {
		ft.finish(s.dts - ft.heldDTS)
	}
	size := 0
	for _, p := range s.payload {
		size += len(p)
	}
	ft.held = &pendingSample{Sample: fmp4.Sample{PTSOffset: s.ptsOffset, IsNonSyncSample: !s.sync}, size: size, pieces: s.payload}
	ft.heldDTS, ft.heldNom = s.dts, s.nominal
}

// finish gives the held sample its duration and adds it to the chunk.
func (ft *fragTrack) finish(d int64) {
	if d <= 0 || d > int64(ft.ct.clockRate())*DefaultMaxFragmentDuration.Nanoseconds()/1e9 {
		// Out-of-order or absurd: keep the timeline moving by the usual length.
		d = ft.guessDuration()
	}
	ft.held.Duration = uint32(d)
	ft.lastDur = d
	if ft.count == 0 {
		ft.base, ft.firstSync = ft.heldDTS, !ft.held.IsNonSyncSample
	}
	ft.chunk = append(ft.chunk, ft.held)
	ft.chunkTicks += d
	ft.ticks += d
	ft.count++
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
		d = f.duration(f.leader.base + f.leader.ticks - f.startDTS)
	case s.sync:
		d = f.duration(s.pts() - f.startPTS)
	}
	return f.flush(d)
}

// Close ends the session: the open fragment, held samples included, is
// emitted, never dropped.
func (f *Fragmenter) Close() error {
	if f.frag == nil || f.failed != nil {
		return f.failed
	}
	f.now = time.Now()
	for _, ft := range f.tracks {
		if ft.held != nil {
			ft.finish(ft.guessDuration())
		}
	}
	return f.flush(f.duration(f.leader.base + f.leader.ticks - f.startDTS))
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

// flush writes the open fragment's last chunk and emits it.
func (f *Fragmenter) flush(d time.Duration) error {
	if err := f.writeChunk(); err != nil {
		return err
	}
	frag := f.frag
	f.frag = nil
	if frag.hls != nil {
		frag.hls.complete(d)
	}
	frag.Frames = f.leader.count
	keyframe := f.leader.count == 0 || f.leader.firstSync
	n := 0
	for _, ft := range f.tracks {
		n += ft.count
		ft.count, ft.ticks, ft.written = 0, 0, ft.written[:0]
	}
	if n == 0 {
		frag.w.Abort()
		return nil
	}
	frag.Duration, frag.Keyframe, frag.Samples, frag.completed = d, keyframe, n, f.now
	if err := f.emit(frag); err != nil {
		return f.fail(err)
	}
	return nil
}
