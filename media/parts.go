package media

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// parseParts decodes the moof+mdat chunks of a stored fragment: what
// mediacommon's fmp4.Parts.Unmarshal returns, without its reflective box
// reader, which allocated 23 times per sample and took 0.35 ms per 1 MB
// fragment of one chunk and twice that for the ten chunks fragments are
// stored in (a quarter of GetMediaForFragmentList's time). Payloads alias b.
//
// It reads the boxes fragments are made of: moof (mfhd, then per track
// traf with tfhd, tfdt version 1 and truns carrying a data offset), mdat;
// other top-level boxes are skipped, and anything else is an error.
func parseParts(b []byte) (fmp4.Parts, error) {
	var parts fmp4.Parts
	budget := maxSamples
	for off := 0; off < len(b); {
		typ, box, err := nextBox(b, off)
		if err != nil {
			return nil, err
		}
		if typ == "moof" {
			p, err := parseMoof(b, off, box, &budget)
			if err != nil {
				return nil, fmt.Errorf("moof at %d: %w", off, err)
			}
			parts = append(parts, p)
		}
		off += len(box)
	}
	return parts, nil
}

var errBadBox = errors.New("malformed box")

// nextBox returns the type and the bytes (header included) of the box at off.
func nextBox(b []byte, off int) (string, []byte, error) {
	if len(b)-off < 8 {
		return "", nil, errBadBox
	}
	size := int64(binary.BigEndian.Uint32(b[off:]))
	head := int64(8)
	if size == 1 { // 64-bit size
		if len(b)-off < 16 {
			return "", nil, errBadBox
		}
		size, head = int64(binary.BigEndian.Uint64(b[off+8:])), 16
	} else if size == 0 { // to the end
		size = int64(len(b) - off)
	}
	if size < head || size > int64(len(b)-off) {
		return "", nil, errBadBox
	}
	return string(b[off+4 : off+8]), b[off : off+int(size)], nil
}

// trun and tfhd flags (ISO/IEC 14496-12 8.8.7, 8.8.8).
const (
	tfhdBaseDataOffset    = 0x01
	tfhdSampleDescription = 0x02
	tfhdDefaultDuration   = 0x08
	tfhdDefaultSize       = 0x10
	tfhdDefaultFlags      = 0x20
	trunFirstSampleFlags  = 0x04
	// maxSamples bounds the samples of one fragment (mediacommon's bound
	// per trun: 120 fps for a minute), so a few bytes claiming millions of
	// empty samples cannot exhaust memory.
	maxSamples = 120 * 160
)

func parseMoof(b []byte, moofAt int, moof []byte, budget *int) (*fmp4.Part, error) {
	p := &fmp4.Part{}
	seenMfhd := false
	for off := 8; off < len(moof); {
		typ, box, err := nextBox(moof, off)
		if err != nil {
			return nil, err
		}
		switch typ {
		case "mfhd":
			if len(box) < 16 || seenMfhd {
				return nil, errBadBox
			}
			p.SequenceNumber, seenMfhd = binary.BigEndian.Uint32(box[12:]), true
		case "traf":
			if !seenMfhd {
				return nil, errors.New("traf before mfhd")
			}
			t, err := parseTraf(b, moofAt, box, budget)
			if err != nil {
				return nil, err
			}
			p.Tracks = append(p.Tracks, t)
		}
		off += len(box)
	}
	if !seenMfhd {
		return nil, errors.New("no mfhd")
	}
	return p, nil
}

func parseTraf(b []byte, moofAt int, traf []byte, budget *int) (*fmp4.PartTrack, error) {
	t := &fmp4.PartTrack{}
	var tfhdFlags, defDuration, defSize, defFlags uint32
	seenTfhd, seenTfdt, seenTrun := false, false, false
	for off := 8; off < len(traf); {
		typ, box, err := nextBox(traf, off)
		if err != nil {
			return nil, err
		}
		off += len(box)
		switch typ {
		case "tfhd":
			if len(box) < 16 || seenTfhd {
				return nil, errBadBox
			}
			seenTfhd = true
			tfhdFlags = binary.BigEndian.Uint32(box[8:]) & 0xffffff
			t.ID = int(binary.BigEndian.Uint32(box[12:]))
			rest := box[16:]
			for _, f := range []struct {
				flag uint32
				n    int
				dst  *uint32
			}{{tfhdBaseDataOffset, 8, nil}, {tfhdSampleDescription, 4, nil}, {tfhdDefaultDuration, 4, &defDuration},
				{tfhdDefaultSize, 4, &defSize}, {tfhdDefaultFlags, 4, &defFlags}} {
				if tfhdFlags&f.flag == 0 {
					continue
				}
				if len(rest) < f.n {
					return nil, errBadBox
				}
				if f.dst != nil {
					*f.dst = binary.BigEndian.Uint32(rest)
				}
				rest = rest[f.n:]
			}
		case "tfdt":
			if len(box) < 20 || seenTfdt || box[8] != 1 {
				return nil, errors.New("tfdt: not version 1")
			}
			seenTfdt = true
			t.BaseTime = binary.BigEndian.Uint64(box[12:])
		case "trun":
			if !seenTfhd {
				return nil, errors.New("trun before tfhd")
			}
			seenTrun = true
			samples, err := parseTrun(b, moofAt, box, defDuration, defSize, defFlags, budget)
			if err != nil {
				return nil, err
			}
			t.Samples = append(t.Samples, samples...)
		}
	}
	if !seenTfhd || !seenTfdt || !seenTrun {
		return nil, errors.New("traf without tfhd, tfdt or trun")
	}
	return t, nil
}

func parseTrun(b []byte, moofAt int, trun []byte, defDuration, defSize, defFlags uint32, budget *int) ([]*fmp4.Sample, error) {
	if len(trun) < 16 {
		return nil, errBadBox
	}
	version := trun[8]
	flags := binary.BigEndian.Uint32(trun[8:]) & 0xffffff
	count := binary.BigEndian.Uint32(trun[12:])
	if flags&trunDataOffset == 0 {
		return nil, errors.New("trun without a data offset")
	}
	if int64(count) > int64(*budget) {
		return nil, fmt.Errorf("more than %d samples in a fragment", maxSamples)
	}
	*budget -= int(count)
	rest := trun[16:]
	if len(rest) < 4 {
		return nil, errBadBox
	}
	data := int64(moofAt) + int64(int32(binary.BigEndian.Uint32(rest)))
	rest = rest[4:]
	firstFlags, hasFirst := uint32(0), flags&trunFirstSampleFlags != 0
	if hasFirst {
		if len(rest) < 4 {
			return nil, errBadBox
		}
		firstFlags, rest = binary.BigEndian.Uint32(rest), rest[4:]
	}
	entry := 0
	for _, f := range []uint32{trunSampleDuration, trunSampleSize, trunSampleFlags, trunSampleCTO} {
		if flags&f != 0 {
			entry += 4
		}
	}
	if int64(len(rest)) < int64(count)*int64(entry) {
		return nil, errBadBox
	}
	if data < 0 || data > int64(len(b)) {
		return nil, errors.New("data offset outside the fragment")
	}
	ptr := b[data:]
	samples := make([]*fmp4.Sample, count)
	backing := make([]fmp4.Sample, count)
	for i := range samples {
		s := &backing[i]
		duration, size, sflags := defDuration, defSize, defFlags
		if i == 0 && hasFirst {
			sflags = firstFlags
		}
		if flags&trunSampleDuration != 0 {
			duration, rest = binary.BigEndian.Uint32(rest), rest[4:]
		}
		if flags&trunSampleSize != 0 {
			size, rest = binary.BigEndian.Uint32(rest), rest[4:]
		}
		if flags&trunSampleFlags != 0 {
			sflags, rest = binary.BigEndian.Uint32(rest), rest[4:]
		}
		if flags&trunSampleCTO != 0 {
			cto := binary.BigEndian.Uint32(rest)
			rest = rest[4:]
			if version == 0 && cto > 1<<31-1 {
				return nil, errors.New("unsigned composition offset out of range")
			}
			s.PTSOffset = int32(cto)
		}
		if uint64(size) > uint64(len(ptr)) {
			return nil, errors.New("sample past the end of the fragment")
		}
		s.Duration, s.IsNonSyncSample, s.Payload = duration, sflags&sampleNonSync != 0, ptr[:size:size]
		ptr = ptr[size:]
		samples[i] = s
	}
	return samples, nil
}
