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
