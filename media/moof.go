package media

import (
	"encoding/binary"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// trun flags and the sample flag fmp4.Part.Marshal writes.
const (
	trunDataOffset     = 0x01
	trunSampleDuration = 0x100
	trunSampleSize     = 0x200
	trunSampleFlags    = 0x400
	trunSampleCTO      = 0x800
	sampleNonSync      = 1 << 16
)

// partSize is the size of the moof+mdat appendPart writes.
func partSize(tracks []*fmp4.PartTrack) int {
	n := moofSize(tracks)
	for _, t := range tracks {
		for _, s := range t.Samples {
			n += len(s.Payload)
		}
	}
	return n
}

// moofSize is the size of the moof and mdat header appendMoof writes.
func moofSize(tracks []*fmp4.PartTrack) int {
	n := 8 + 16 + 8 // moof, mfhd, mdat headers
	for _, t := range tracks {
		n += 8 + 16 + 20 + trunSize(t)
	}
	return n
}

// trunFlags returns a track's trun flags: sample flags and composition
// offsets only when a sample needs them.
func trunFlags(t *fmp4.PartTrack) uint32 {
	flags := uint32(trunDataOffset | trunSampleDuration | trunSampleSize)
	for _, s := range t.Samples {
		if s.IsNonSyncSample {
			flags |= trunSampleFlags
		}
		if s.PTSOffset != 0 {
			flags |= trunSampleCTO
		}
	}
	return flags
}

func trunSize(t *fmp4.PartTrack) int {
	flags := trunFlags(t)
	entry := 8
	if flags&trunSampleFlags != 0 {
		entry += 4
	}
	if flags&trunSampleCTO != 0 {
		entry += 4
	}
	return 8 + 4 + 4 + 4 + entry*len(t.Samples)
}

// appendPart appends tracks as one moof+mdat, byte for byte what
// fmp4.Part.Marshal writes (a test holds it to that). Marshal copies every
// payload twice, through a temporary mdat as large as the fragment, and
// writes the boxes by reflection: at 16 cameras that was an eighth of the
// server's CPU. This copies each payload once.
func appendPart(b []byte, seq uint32, tracks []*fmp4.PartTrack) []byte {
	b = appendMoof(b, seq, tracks, func(t, i int) int { return len(tracks[t].Samples[i].Payload) })
	for _, t := range tracks {
		for _, s := range t.Samples {
			b = append(b, s.Payload...)
		}
	}
	return b
}

// appendMoof appends the moof and the mdat header of appendPart's output;
// the samples' payloads, track after track, complete it. Fragments are
// stored that way, the payloads written from where they are. size(t, i)
// is the size of sample i of tracks[t] (the fragmenter's samples keep
// their payloads in pieces, not in Payload).
func appendMoof(b []byte, seq uint32, tracks []*fmp4.PartTrack, size func(t, i int) int) []byte {
	moofStart := len(b)
	b = appendBoxHeader(b, 0, "moof") // size patched below
	b = appendBoxHeader(b, 16, "mfhd")
	b = binary.BigEndian.AppendUint32(b, 0) // version, flags
	b = binary.BigEndian.AppendUint32(b, seq)
	dataOffsets := make([]int, len(tracks)) // where each trun's data_offset goes
	for i, t := range tracks {
		trun := trunSize(t)
		b = appendBoxHeader(b, uint32(8+16+20+trun), "traf")
		b = appendBoxHeader(b, 16, "tfhd")
		b = binary.BigEndian.AppendUint32(b, 0x020000) // default-base-is-moof
		b = binary.BigEndian.AppendUint32(b, uint32(t.ID))
		b = appendBoxHeader(b, 20, "tfdt")
		b = binary.BigEndian.AppendUint32(b, 1<<24) // version 1
		b = binary.BigEndian.AppendUint64(b, t.BaseTime)
		flags := trunFlags(t)
		b = appendBoxHeader(b, uint32(trun), "trun")
		b = binary.BigEndian.AppendUint32(b, 1<<24|flags)
		b = binary.BigEndian.AppendUint32(b, uint32(len(t.Samples)))
		dataOffsets[i] = len(b)
		b = binary.BigEndian.AppendUint32(b, 0)
		for k, s := range t.Samples {
			b = binary.BigEndian.AppendUint32(b, s.Duration)
			b = binary.BigEndian.AppendUint32(b, uint32(size(i, k)))
			if flags&trunSampleFlags != 0 {
				var sf uint32
				if s.IsNonSyncSample {
					sf = sampleNonSync
				}
				b = binary.BigEndian.AppendUint32(b, sf)
			}
			if flags&trunSampleCTO != 0 {
				b = binary.BigEndian.AppendUint32(b, uint32(s.PTSOffset))
			}
		}
	}
	binary.BigEndian.PutUint32(b[moofStart:], uint32(len(b)-moofStart))
	mdatStart := len(b)
	b = appendBoxHeader(b, 0, "mdat")
	at := len(b) - moofStart // data offsets are relative to the moof (default-base-is-moof)
	for i, t := range tracks {
		binary.BigEndian.PutUint32(b[dataOffsets[i]:], uint32(at))
		for k := range t.Samples {
			at += size(i, k)
		}
	}
	binary.BigEndian.PutUint32(b[mdatStart:], uint32(at-(mdatStart-moofStart)))
	return b
}

func appendBoxHeader(b []byte, size uint32, typ string) []byte {
	return append(binary.BigEndian.AppendUint32(b, size), typ...)
}
