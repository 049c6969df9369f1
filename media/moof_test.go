package media

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
)

// randomTracks makes tracks of samples from a seed: sizes, durations,
// composition offsets (negative too) and sync flags all vary.
func randomTracks(r *rand.Rand) []*fmp4.PartTrack {
	var tracks []*fmp4.PartTrack
	for id := 1; id <= 1+r.IntN(3); id++ {
		t := &fmp4.PartTrack{ID: id, BaseTime: r.Uint64()}
		for range r.IntN(40) {
			s := &fmp4.Sample{Duration: r.Uint32N(10000), Payload: make([]byte, r.IntN(3000))}
			for i := range s.Payload {
				s.Payload[i] = byte(r.Uint32())
			}
			if r.IntN(3) == 0 {
				s.PTSOffset = r.Int32N(20000) - 10000
			}
			s.IsNonSyncSample = r.IntN(2) == 0
			t.Samples = append(t.Samples, s)
		}
		tracks = append(tracks, t)
	}
	return tracks
}

func marshalPart(t testing.TB, seq uint32, tracks []*fmp4.PartTrack) []byte {
	var buf seekablebuffer.Buffer
	if err := (&fmp4.Part{SequenceNumber: seq, Tracks: tracks}).Marshal(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// appendPart writes exactly what mediacommon's fmp4.Part.Marshal writes.
func TestAppendPartMatchesMediacommon(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 7))
		tracks := randomTracks(r)
		seq := r.Uint32()
		want := marshalPart(t, seq, tracks)
		got := appendPart([]byte("prefix"), seq, tracks)
		if !bytes.Equal(got[6:], want) {
			t.Fatalf("seed %d: %d bytes, mediacommon %d", seed, len(got)-6, len(want))
		}
		if partSize(tracks) != len(want) {
			t.Fatalf("seed %d: partSize %d, written %d", seed, partSize(tracks), len(want))
		}
	}
}

func FuzzAppendPart(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		r := rand.New(rand.NewPCG(a, b))
		tracks := randomTracks(r)
		if got, want := appendPart(nil, 9, tracks), marshalPart(t, 9, tracks); !bytes.Equal(got, want) {
			t.Fatalf("%d bytes, mediacommon %d", len(got), len(want))
		}
	})
}

// A 2 s, 4 Mbit/s fragment (60 video frames, 94 audio frames).
func BenchmarkPartEncoding(b *testing.B) {
	video := &fmp4.PartTrack{ID: 1, BaseTime: 900000}
	for i := range 60 {
		video.Samples = append(video.Samples, &fmp4.Sample{Duration: 3000, PTSOffset: 3000, IsNonSyncSample: i > 0, Payload: make([]byte, 16600)})
	}
	audio := &fmp4.PartTrack{ID: 2, BaseTime: 480000}
	for range 94 {
		audio.Samples = append(audio.Samples, &fmp4.Sample{Duration: 1024, Payload: make([]byte, 300)})
	}
	tracks := []*fmp4.PartTrack{video, audio}
	b.Run("mediacommon", func(b *testing.B) {
		for b.Loop() {
			marshalPart(b, 1, tracks)
		}
	})
	b.Run("appendPart", func(b *testing.B) {
		buf := make([]byte, 0, partSize(tracks))
		for b.Loop() {
			buf = appendPart(buf[:0], 1, tracks)
		}
	})
}

// samePart compares decoded parts field by field, payloads by content.
func sameParts(a, b fmp4.Parts) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].SequenceNumber != b[i].SequenceNumber || len(a[i].Tracks) != len(b[i].Tracks) {
			return false
		}
		for j, ta := range a[i].Tracks {
			tb := b[i].Tracks[j]
			if ta.ID != tb.ID || ta.BaseTime != tb.BaseTime || len(ta.Samples) != len(tb.Samples) {
				return false
			}
			for k, sa := range ta.Samples {
				sb := tb.Samples[k]
				if sa.Duration != sb.Duration || sa.PTSOffset != sb.PTSOffset || sa.IsNonSyncSample != sb.IsNonSyncSample || !bytes.Equal(sa.Payload, sb.Payload) {
					return false
				}
			}
		}
	}
	return true
}

// parseParts decodes what mediacommon decodes, for one chunk and for runs
// of them as fragments are stored.
func TestParsePartsMatchesMediacommon(t *testing.T) {
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 11))
		var b []byte
		for c := range 1 + r.IntN(4) {
			var tracks []*fmp4.PartTrack
			for _, t := range randomTracks(r) {
				if len(t.Samples) > 0 { // mediacommon cannot read back the trun-less traf it writes for none
					tracks = append(tracks, t)
				}
			}
			b = appendPart(b, uint32(c+1), tracks)
		}
		var want fmp4.Parts
		if err := want.Unmarshal(b); err != nil {
			t.Fatalf("seed %d: mediacommon: %v", seed, err)
		}
		got, err := parseParts(b)
		if err != nil || !sameParts(got, want) {
			t.Fatalf("seed %d: %v, %d parts, mediacommon %d", seed, err, len(got), len(want))
		}
	}
}

// Any bytes: an error or parts that encode back to what they say, never
// a panic.
func FuzzParseParts(f *testing.F) {
	small := func(base uint64) []*fmp4.PartTrack {
		return []*fmp4.PartTrack{
			{ID: 1, BaseTime: base, Samples: []*fmp4.Sample{{Duration: 3000, PTSOffset: -3000, Payload: []byte{1, 2}}, {Duration: 3000, IsNonSyncSample: true, Payload: []byte{3}}}},
			{ID: 2, BaseTime: base / 2, Samples: []*fmp4.Sample{{Duration: 1024, Payload: []byte{4, 5, 6}}}},
		}
	}
	f.Add(appendPart(appendPart(nil, 1, small(0)), 2, small(6000)))
	f.Add([]byte{0, 0, 0, 8, 'm', 'o', 'o', 'f'})
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, err := parseParts(b)
		if err != nil {
			return
		}
		var again []byte
		for _, p := range parts {
			again = appendPart(again, p.SequenceNumber, p.Tracks)
		}
		back, err := parseParts(again)
		if err != nil || !sameParts(parts, back) {
			t.Fatalf("re-encoded parts do not decode the same: %v", err)
		}
	})
}

// Decoding a 2 s, 4 Mbit/s fragment stored in ten chunks.
func BenchmarkParseParts(b *testing.B) {
	var data []byte
	for c := range 10 {
		video := &fmp4.PartTrack{ID: 1, BaseTime: uint64(c * 18000)}
		for i := range 6 {
			video.Samples = append(video.Samples, &fmp4.Sample{Duration: 3000, PTSOffset: 3000, IsNonSyncSample: c+i > 0, Payload: make([]byte, 16600)})
		}
		audio := &fmp4.PartTrack{ID: 2, BaseTime: uint64(c * 9600)}
		for range 9 {
			audio.Samples = append(audio.Samples, &fmp4.Sample{Duration: 1024, Payload: make([]byte, 300)})
		}
		data = appendPart(data, uint32(c+1), []*fmp4.PartTrack{video, audio})
	}
	b.Run("mediacommon", func(b *testing.B) {
		for b.Loop() {
			var p fmp4.Parts
			if err := p.Unmarshal(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parseParts", func(b *testing.B) {
		for b.Loop() {
			if _, err := parseParts(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
