package media

import (
	"bytes"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"
)

// A real H.264 SPS (1920x1080, baseline) and PPS, so init segments marshal.
var (
	testSPS = []byte{0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20}
	testPPS = []byte{0x68, 0xce, 0x3c, 0x80}
)

// fakeTrack is a codecTrack whose access units say what they are: au[0][0]
// is 1 for a keyframe, 2 for a keyframe with new parameters (the rest of
// au[0] ends the payload); the DTS is the PTS. Audio fake tracks are always sync with a fixed nominal duration.
type fakeTrack struct {
	video bool
	rate  int
	sps   []byte
}

func (f *fakeTrack) depacketize(*rtp.Packet) ([][][]byte, error) { return nil, nil }
func (f *fakeTrack) sample(pts int64, au [][]byte) (sample, bool, bool, error) {
	if !f.video {
		return sample{dts: pts, sync: true, payload: [][]byte{{0xaa}}, nominal: 1024}, true, false, nil
	}
	changed := au[0][0] == 2
	if changed {
		f.sps = append(bytes.Clone(testSPS[:len(testSPS)-1]), 0x21) // any different SPS bytes
	}
	return sample{dts: pts, sync: au[0][0] != 0, payload: [][]byte{{au[0][0], 0, 0, 1}, au[0][1:]}}, true, changed, nil
}
func (f *fakeTrack) codec() mp4.Codec {
	if !f.video {
		return &mp4.CodecOpus{ChannelCount: 2}
	}
	sps := f.sps
	if sps == nil {
		sps = testSPS
	}
	return &mp4.CodecH264{SPS: sps, PPS: testPPS}
}
func (f *fakeTrack) clockRate() int { return f.rate }
func (f *fakeTrack) isVideo() bool  { return f.video }
func (f *fakeTrack) name() string   { return "fake" }

// memWriter holds a fragment's record in memory, as the store holds it.
type memWriter struct {
	mu        sync.Mutex
	data      []byte
	committed bool
}

func (w *memWriter) Write(pieces ...[]byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range pieces {
		w.data = append(w.data, p...)
	}
	return nil
}

func (w *memWriter) ReadAt(p []byte, off int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(w.data)) {
		return io.ErrUnexpectedEOF
	}
	copy(p, w.data[off:])
	return nil
}

func (w *memWriter) Commit(*Fragment) (string, error) { w.committed = true; return "1", nil }
func (w *memWriter) Durable() error                   { return nil }
func (w *memWriter) Abort()                           { w.data = nil }

type collected struct{ frags []*Fragment }

func (c *collected) begin(*Fragment) (FragmentWriter, error) { return &memWriter{}, nil }
func (c *collected) emit(f *Fragment) error                  { c.frags = append(c.frags, f); return nil }

// mediaOf is a fragment's moof+mdat chunks in one slice, as the store holds them.
func mediaOf(f *Fragment) []byte {
	w := f.w.(*memWriter)
	if !bytes.Equal(w.data[:len(f.Init)], f.Init) || len(w.data) != f.Size() {
		panic("stored fragment does not start with its init segment or has the wrong size")
	}
	return w.data[len(f.Init):]
}

// parse decodes a fragment and returns, per track ID, its base time and samples.
func parse(t *testing.T, f *Fragment) map[int]*fmp4.PartTrack {
	t.Helper()
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(f.Init)); err != nil {
		t.Fatalf("init: %v", err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(mediaOf(f)); err != nil {
		t.Fatalf("media: %v", err)
	}
	// A track's samples in the chunks, which must follow on in time.
	out := map[int]*fmp4.PartTrack{}
	next := map[int]uint64{}
	for _, p := range parts {
		for _, pt := range p.Tracks {
			if out[pt.ID] == nil {
				out[pt.ID] = &fmp4.PartTrack{ID: pt.ID, BaseTime: pt.BaseTime}
			} else if pt.BaseTime != next[pt.ID] {
				t.Errorf("track %d: a chunk starts at %d, the one before ended at %d", pt.ID, pt.BaseTime, next[pt.ID])
			}
			next[pt.ID] = pt.BaseTime
			for _, s := range pt.Samples {
				next[pt.ID] += uint64(s.Duration)
			}
			out[pt.ID].Samples = append(out[pt.ID].Samples, pt.Samples...)
		}
	}
	return out
}

func TestFragmenterCutsAtKeyframesAfterTarget(t *testing.T) {
	var c collected
	video, audio := &fakeTrack{video: true, rate: 90000}, &fakeTrack{rate: 48000}
	f := newFragmenter([]codecTrack{video, audio}, 2*time.Second, 10*time.Second, c.begin, c.emit)
	t0 := time.Unix(1_800_000_000, 0)
	// 10.5 s at 25 fps with a keyframe every 50 frames, audio every 1024 samples,
	// and 3 audio frames before the first video keyframe (dropped).
	for i := range 3 {
		f.Write(1, int64(i*1024)-5000, time.Time{}, t0, [][]byte{{0}})
	}
	ai := 0
	for i := range 262 {
		pts := int64(i * 3600)
		kind := byte(0)
		if i%50 == 0 {
			kind = 1
		}
		if err := f.Write(0, pts, time.Time{}, t0.Add(time.Duration(i)*40*time.Millisecond), [][]byte{{kind}}); err != nil {
			t.Fatal(err)
		}
		for ; int64(ai*1024)*90000/48000 <= pts; ai++ {
			f.Write(1, int64(ai*1024), time.Time{}, t0, [][]byte{{0}})
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if len(c.frags) != 6 {
		t.Fatalf("%d fragments, want 5 full and the last partial", len(c.frags))
	}
	var nextVideo uint64
	videoSamples, audioSamples := 0, 0
	for i, fr := range c.frags {
		tracks := parse(t, fr)
		v := tracks[1]
		if v == nil || v.Samples[0].IsNonSyncSample || !fr.Keyframe {
			t.Fatalf("fragment %d does not start with a keyframe", i)
		}
		want := 2 * time.Second
		if i == 5 {
			want = 12 * 40 * time.Millisecond
		}
		if fr.Duration != want {
			t.Errorf("fragment %d lasts %v, want %v", i, fr.Duration, want)
		}
		if i > 0 && v.BaseTime != nextVideo {
			t.Errorf("fragment %d video starts at %d, previous ended at %d", i, v.BaseTime, nextVideo)
		}
		nextVideo = v.BaseTime
		for _, s := range v.Samples {
			nextVideo += uint64(s.Duration)
			if s.Duration != 3600 {
				t.Fatalf("video sample duration %d", s.Duration)
			}
		}
		videoSamples += len(v.Samples)
		if a := tracks[2]; a != nil {
			audioSamples += len(a.Samples)
		}
		if fr.Discontinuity != (i == 0) {
			t.Errorf("fragment %d discontinuity %v", i, fr.Discontinuity)
		}
	}
	if videoSamples != 262 {
		t.Errorf("%d video samples stored, 262 written", videoSamples)
	}
	if audioSamples != ai {
		t.Errorf("%d audio samples stored, %d written after the first keyframe", audioSamples, ai)
	}
}

func TestFragmenterHardMaximumWithoutKeyframes(t *testing.T) {
	var c collected
	f := newFragmenter([]codecTrack{&fakeTrack{video: true, rate: 90000}}, time.Second, 3*time.Second, c.begin, c.emit)
	for i := range 250 { // 10 s at 25 fps, one keyframe at the start
		kind := byte(0)
		if i == 0 {
			kind = 1
		}
		f.Write(0, int64(i*3600), time.Time{}, time.Now(), [][]byte{{kind}})
	}
	f.Close()
	if len(c.frags) != 4 {
		t.Fatalf("%d fragments from 10 s without keyframes and a 3 s maximum", len(c.frags))
	}
	for i, fr := range c.frags[:3] {
		if fr.Duration != 3*time.Second || fr.Keyframe != (i == 0) {
			t.Errorf("fragment %d: %v keyframe=%v", i, fr.Duration, fr.Keyframe)
		}
	}
}

func TestFragmenterParameterChangeStartsNewInit(t *testing.T) {
	var c collected
	f := newFragmenter([]codecTrack{&fakeTrack{video: true, rate: 90000}}, 2*time.Second, 10*time.Second, c.begin, c.emit)
	for i := range 30 {
		kind := byte(0)
		switch i {
		case 0:
			kind = 1
		case 20:
			kind = 2 // new SPS before the target duration
		}
		f.Write(0, int64(i*3600), time.Time{}, time.Now(), [][]byte{{kind}})
	}
	f.Close()
	if len(c.frags) != 2 {
		t.Fatalf("%d fragments, want a cut at the parameter change", len(c.frags))
	}
	if bytes.Equal(c.frags[0].Init, c.frags[1].Init) || !c.frags[1].Discontinuity {
		t.Fatal("the fragment after new parameters must carry a new init and a discontinuity")
	}
	if c.frags[0].Duration != 20*40*time.Millisecond {
		t.Fatalf("first fragment %v", c.frags[0].Duration)
	}
}

func TestFragmentMetaRoundTrip(t *testing.T) {
	m := FragmentMeta{Duration: 2002 * time.Millisecond, InitSize: 812, Samples: 97, Keyframe: true, Discontinuity: true, ServerNanos: 1_800_000_000_123_456_789}
	got, err := ParseFragmentMeta(m.Key())
	if err != nil || got != m {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	// The store pads a fragment's key to its reservation.
	if got, err := ParseFragmentMeta(m.Key() + strings.Repeat(" ", 20)); err != nil || got != m {
		t.Fatalf("padded key: %+v, %v", got, err)
	}
	widest := FragmentMeta{Duration: math.MaxInt64, InitSize: math.MaxInt, Samples: math.MaxInt, Keyframe: true, Discontinuity: true, ServerNanos: math.MinInt64}
	if n := len(widest.Key()); n > MaxFragmentKey {
		t.Fatalf("a key of %d bytes, reserved %d", n, MaxFragmentKey)
	}
}

func FuzzParseFragmentMeta(f *testing.F) {
	f.Add(FragmentMeta{Duration: time.Second, InitSize: 10, Samples: 3, Keyframe: true}.Key())
	f.Add("f1 1 2 3 - 4")
	f.Add("")
	f.Fuzz(func(t *testing.T, key string) {
		m, err := ParseFragmentMeta(key)
		if err != nil {
			return
		}
		if m.InitSize < 0 || m.Duration < 0 || m.Samples < 0 {
			t.Fatalf("negative field from %q: %+v", key, m)
		}
		if _, err := ParseFragmentMeta(m.Key()); err != nil {
			t.Fatalf("re-encoding %q: %v", key, err)
		}
		data := []byte(key)
		SplitFragment(data, m) // must not panic on any data
	})
}

// realFragment is a fragment the fragmenter made from fake H.264 and Opus.
func realFragment(t testing.TB) *Fragment {
	var c collected
	f := newFragmenter([]codecTrack{&fakeTrack{video: true, rate: 90000}, &fakeTrack{rate: 48000}}, time.Second, 5*time.Second, c.begin, c.emit)
	for i := range 30 {
		kind := byte(0)
		if i == 0 {
			kind = 1
		}
		f.Write(0, int64(i*3600), time.Time{}, time.Now(), [][]byte{{kind}})
		f.Write(1, int64(i*1920), time.Time{}, time.Now(), [][]byte{{0}})
	}
	f.Close()
	return c.frags[0]
}

func TestMKVFromFragment(t *testing.T) {
	fr := realFragment(t)
	var buf bytes.Buffer
	w := NewMKVWriter(&buf)
	for i := range 3 {
		if err := w.WriteFragment(fr.Init, mediaOf(fr), i == 2, []MKVTag{{"AWS_KINESISVIDEO_FRAGMENT_NUMBER", "1"}}); err != nil {
			t.Fatal(err)
		}
	}
	// One EBML header for the first two fragments (same init), a new one at the new session.
	if n := bytes.Count(buf.Bytes(), []byte{0x1a, 0x45, 0xdf, 0xa3}); n != 2 {
		t.Fatalf("%d EBML headers, want 2", n)
	}
	if n := bytes.Count(buf.Bytes(), []byte("AWS_KINESISVIDEO_FRAGMENT_NUMBER")); n != 3 {
		t.Fatalf("%d fragment tags, want 3", n)
	}
}

// FuzzMKVFromFragment feeds damaged stored fragments to the Matroska
// writer: an error, never a panic.
func FuzzMKVFromFragment(f *testing.F) {
	fr := realFragment(f)
	f.Add(fr.Init, mediaOf(fr))
	f.Add(fr.Init[:len(fr.Init)/2], mediaOf(fr)[:10])
	f.Fuzz(func(t *testing.T, init, media []byte) {
		NewMKVWriter(io.Discard).WriteFragment(init, media, false, nil)
	})
}

// FuzzTSFromFragment feeds damaged stored fragments to the MPEG-TS writer:
// an error, never a panic.
func FuzzTSFromFragment(f *testing.F) {
	fr := realFragment(f)
	f.Add(fr.Init, mediaOf(fr))
	f.Fuzz(func(t *testing.T, init, media []byte) {
		WriteTS(io.Discard, init, media)
	})
}

// countingReader counts the reads made through it.
type countingReader struct {
	r     io.ReaderAt
	reads int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.r.ReadAt(p, off)
}

// A clip planned from each chunk's moof (read in ranges) is byte for byte
// the clip planned from whole fragments.
func TestClipPlannedFromSampleTables(t *testing.T) {
	fr := realFragment(t)
	media := mediaOf(fr)
	chunks := bytes.Count(media, []byte("moof"))
	if chunks < 3 {
		t.Fatalf("a 1.2 s fragment in %d chunks", chunks)
	}
	whole := FragmentReader{Read: func(uint64) ([]byte, []byte, error) { return fr.Init, media, nil }}
	tables := whole
	counter := &countingReader{r: bytes.NewReader(media)}
	tables.Open = func(uint64) ([]byte, *io.SectionReader, error) {
		return fr.Init, io.NewSectionReader(counter, 0, int64(len(media))), nil
	}
	var a, b bytes.Buffer
	for _, c := range []struct {
		r   FragmentReader
		out *bytes.Buffer
	}{{whole, &a}, {tables, &b}} {
		clip, err := PlanClip([]uint64{1, 2, 3}, c.r)
		if err != nil {
			t.Fatal(err)
		}
		if err := clip.Write(c.out); err != nil {
			t.Fatal(err)
		}
	}
	if a.Len() == 0 || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("clips differ: %d and %d bytes", a.Len(), b.Len())
	}
	if counter.reads != 3*chunks {
		t.Fatalf("planning 3 fragments of %d chunks read %d times, want one read per chunk", chunks, counter.reads)
	}
}

// Any bytes as a PutMedia body: the Matroska reader ends with an error or
// io.EOF, never a panic or an endless loop; avcC records parse or fail.
func FuzzMKVReader(f *testing.F) {
	f.Add([]byte("\x1a\x45\xdf\xa3\x84\x42\x86\x81\x01\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff\x1f\x43\xb6\x75\x01\xff\xff\xff\xff\xff\xff\xff\xe7\x81\x00\xa3\x85\x81\x00\x00\x80\x00"))
	f.Add([]byte("\x16\x54\xae\x6b\x8c\xae\x8a\xd7\x81\x01\x86\x85V_VP8"))
	f.Add([]byte{1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 1, 2, 3, 1, 0, 2, 0x68, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newMKVReader(bytes.NewReader(data))
		for range 10000 {
			ev, err := r.next()
			if err != nil {
				break
			}
			if ev.Tracks != nil {
				putMediaTracks(ev.Tracks)
			}
		}
		parseAVCC(data)
	})
}

// A viewer joining mid-GOP gets the open fragment's samples from the latest
// keyframe: those already written read back from the store, the newest from
// memory.
func TestGOPReadsWrittenSamplesBack(t *testing.T) {
	var c collected
	f := newFragmenter([]codecTrack{&fakeTrack{video: true, rate: 90000}, &fakeTrack{rate: 48000}}, 2*time.Second, 10*time.Second, c.begin, c.emit)
	frame := func(i int, key bool) {
		kind := byte(0)
		if key {
			kind = 1
		}
		if err := f.Write(0, int64(i*3600), time.Time{}, time.Now(), [][]byte{{kind, byte(i)}}); err != nil {
			t.Fatal(err)
		}
		f.Write(1, int64(i*1920), time.Time{}, time.Now(), [][]byte{{0}})
	}
	want := func(from, to int) {
		t.Helper()
		gop := f.gop(0)
		if len(gop) != to-from+1 {
			t.Fatalf("GOP of %d frames, want %d (frames %d to %d)", len(gop), to-from+1, from, to)
		}
		for k, p := range gop {
			if len(p) != 5 || p[4] != byte(from+k) || (p[0] == 1) != (k == 0) {
				t.Fatalf("GOP frame %d is %v, want frame %d", k, p, from+k)
			}
		}
	}
	if f.gop(0) != nil {
		t.Fatal("a GOP before any frame")
	}
	for i := range 45 {
		frame(i, i == 0 || i == 20)
	}
	if w := f.tracks[0].written; len(w) == 0 || !w[0].sync {
		t.Fatalf("the keyframe of frame 20 is not written yet (%d written): the test reads nothing back", len(w))
	}
	want(20, 44)
	frame(45, true) // a keyframe still in memory
	want(45, 45)
	for i := 46; i < 50; i++ {
		frame(i, false)
	}
	want(45, 49)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.gop(0) != nil {
		t.Fatal("a GOP after the session closed")
	}
}

// A sample's length-prefixed pieces are, joined, what AVCC marshalling makes.
func TestLengthPrefixedIsAVCC(t *testing.T) {
	for _, au := range [][][]byte{{testSPS, testPPS, {0x65, 1, 2, 3}}, {{0x41}}, {{}, bytes.Repeat([]byte{9}, 70000)}} {
		want, err := h264.AVCC(au).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Join(lengthPrefixed(au), nil); !bytes.Equal(got, want) {
			t.Fatalf("%d NAL units: %x, AVCC %x", len(au), got[:min(len(got), 16)], want[:min(len(want), 16)])
		}
	}
}

// One track of a stored fragment, as DASH serves it: the same samples,
// chunk by chunk, and nothing of the other track.
func TestSelectTrackKeepsOneTracksChunks(t *testing.T) {
	fr := realFragment(t)
	init, media, err := SelectTrack(fr.Init, mediaOf(fr), 2)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := parseParts(media)
	if err != nil || len(parts) != bytes.Count(mediaOf(fr), []byte("moof")) {
		t.Fatalf("%v, %d chunks", err, len(parts))
	}
	want := parse(t, fr)[2]
	var got []*fmp4.Sample
	for _, p := range parts {
		if len(p.Tracks) != 1 || p.Tracks[0].ID != 2 {
			t.Fatalf("a chunk with tracks %v", p.Tracks)
		}
		got = append(got, p.Tracks[0].Samples...)
	}
	if !sameParts(fmp4.Parts{{Tracks: []*fmp4.PartTrack{{ID: 2, BaseTime: want.BaseTime, Samples: got}}}},
		fmp4.Parts{{Tracks: []*fmp4.PartTrack{want}}}) || parts[0].Tracks[0].BaseTime != want.BaseTime {
		t.Fatalf("track 2: %d samples, the fragment has %d", len(got), len(want.Samples))
	}
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil || len(in.Tracks) != 1 || in.Tracks[0].ID != 2 {
		t.Fatalf("init: %v", err)
	}
}
