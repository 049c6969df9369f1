package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"
)

// Clip is a progressive MP4 (moov before mdat) of consecutive stored
// fragments. PlanClip reads each fragment once for its sample tables; Write
// reads them again as the payloads are written, holding at most two in
// memory, so a 100 MB clip never sits in memory whole.
type Clip struct {
	p     pmp4.Presentation
	ids   []uint64
	read  func(uint64) (init, media []byte, err error)
	cache [2]cachedFragment
}

type cachedFragment struct {
	id    uint64
	valid bool
	parts fmp4.Parts
}

// Gaps in a track's timeline up to this long are kept as a longer previous
// sample; longer ones are a new session and are closed up.
const maxClipGap = 5 // seconds

// FragmentReader reads a stored fragment whole, or opens it: its init
// segment and a reader of its moof+mdat chunks that reads only what is
// asked (the sample tables).
type FragmentReader struct {
	Read func(id uint64) (init, media []byte, err error)
	Open func(id uint64) (init []byte, media *io.SectionReader, err error)
}

// PlanClip plans a clip of the fragments ids. It stops at the first
// fragment whose init segment differs (new codec parameters): one MP4 track
// cannot change them.
func PlanClip(ids []uint64, r FragmentReader) (*Clip, error) {
	if len(ids) == 0 {
		return nil, errors.New("no fragments")
	}
	read := r.Read
	c := &Clip{read: read}
	var tables sampleTables
	type trackState struct {
		t        *pmp4.Track
		firstDTS int64
		firstPTS int64
		started  bool
		next     int64 // expected next DTS
	}
	tracks := map[int]*trackState{}
	var firstInit []byte
	for k, id := range ids {
		init, body, err := tables.read(id, r)
		if err != nil {
			return nil, err
		}
		if k == 0 {
			var in fmp4.Init
			if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
				return nil, fmt.Errorf("init segment: %w", err)
			}
			for _, it := range in.Tracks {
				t := &pmp4.Track{ID: it.ID, TimeScale: it.TimeScale, Codec: it.Codec}
				tracks[it.ID] = &trackState{t: t}
				c.p.Tracks = append(c.p.Tracks, t)
			}
			firstInit = init
		} else if !bytes.Equal(init, firstInit) {
			break // new codec parameters: the clip ends before them
		}
		parts, err := parseParts(body)
		if err != nil {
			return nil, fmt.Errorf("fragment %d: %w", id, err)
		}
		for pi, part := range parts {
			for _, pt := range part.Tracks {
				st := tracks[pt.ID]
				if st == nil || len(pt.Samples) == 0 {
					continue
				}
				dts := int64(pt.BaseTime)
				if !st.started {
					st.started, st.firstDTS, st.firstPTS = true, dts, dts+int64(pt.Samples[0].PTSOffset)
				} else if gap := dts - st.next; gap > 0 && gap < maxClipGap*int64(st.t.TimeScale) {
					st.t.Samples[len(st.t.Samples)-1].Duration += uint32(gap)
				}
				for j, s := range pt.Samples {
					st.t.Samples = append(st.t.Samples, &pmp4.Sample{
						Duration: s.Duration, PTSOffset: s.PTSOffset, IsNonSyncSample: s.IsNonSyncSample,
						PayloadSize: uint32(len(s.Payload)), GetPayload: c.payload(id, pi, pt.ID, j),
					})
					dts += int64(s.Duration)
				}
				st.next = dts
			}
		}
		c.ids = append(c.ids, id)
	}
	// Presentation starts at the leading (video) track's first picture; other
	// tracks are delayed or trimmed relative to it with edit lists.
	var lead *trackState
	for _, t := range c.p.Tracks {
		if st := tracks[t.ID]; st.started && (lead == nil || (t.Codec.IsVideo() && !lead.t.Codec.IsVideo())) {
			lead = st
		}
	}
	if lead == nil {
		return nil, errors.New("the fragments hold no samples")
	}
	startSec := float64(lead.firstPTS) / float64(lead.t.TimeScale)
	var kept []*pmp4.Track
	for _, t := range c.p.Tracks {
		st := tracks[t.ID]
		if !st.started {
			continue // an MP4 track without samples breaks players
		}
		t.TimeOffset = int32((float64(st.firstDTS)/float64(t.TimeScale) - startSec) * float64(t.TimeScale))
		kept = append(kept, t)
	}
	c.p.Tracks = kept
	return c, nil
}

// Fragments is how many fragments the clip holds.
func (c *Clip) Fragments() int { return len(c.ids) }

// Write writes the MP4.
func (c *Clip) Write(w io.Writer) error { return c.p.Marshal(w) }

// payload returns the loader of one sample's bytes.
func (c *Clip) payload(id uint64, part, track, sample int) func() ([]byte, error) {
	return func() ([]byte, error) {
		parts, err := c.fragment(id)
		if err != nil {
			return nil, err
		}
		if part >= len(parts) {
			return nil, errors.New("fragment changed while the clip was written")
		}
		for _, pt := range parts[part].Tracks {
			if pt.ID == track && sample < len(pt.Samples) {
				return pt.Samples[sample].Payload, nil
			}
		}
		return nil, errors.New("fragment changed while the clip was written")
	}
}

// fragment returns a fragment's parsed parts, keeping the two most recent:
// samples are written in time order, which alternates between at most two
// neighbouring fragments at a boundary.
func (c *Clip) fragment(id uint64) (fmp4.Parts, error) {
	for _, f := range c.cache {
		if f.valid && f.id == id {
			return f.parts, nil
		}
	}
	_, body, err := c.read(id)
	if err != nil {
		return nil, err
	}
	parts, err := parseParts(body)
	if err != nil {
		return nil, err
	}
	c.cache[1] = c.cache[0]
	c.cache[0] = cachedFragment{id: id, valid: true, parts: parts}
	return parts, nil
}

// sampleTables reads fragments for planning: each chunk's moof and mdat
// header, not the samples.
type sampleTables struct {
	buf []byte // reused: the moofs at their offsets, room for the mdats between
}

// tablesRead is how much a plan reads at each chunk: a chunk's moof (a few
// hundred bytes for a fifth of a second of video and audio) and the mdat
// header after it fit; a larger moof is read in a second step.
const tablesRead = 4 << 10

func (t *sampleTables) read(id uint64, r FragmentReader) (init, media []byte, err error) {
	if r.Open == nil {
		return r.Read(id)
	}
	init, body, err := r.Open(id)
	if err != nil {
		return nil, nil, err
	}
	size := body.Size()
	if int64(cap(t.buf)) < size {
		t.buf = make([]byte, size)
	}
	// The mdats' bytes are whatever the buffer holds: a plan reads only the
	// samples' sizes and times, and the payloads are read again when written.
	buf := t.buf[:size]
	for off := int64(0); off < size; {
		n := min(tablesRead, size-off)
		if _, err := body.ReadAt(buf[off:off+n], off); err != nil {
			return nil, nil, err
		}
		if n < 8 || string(buf[off+4:off+8]) != "moof" {
			return nil, nil, fmt.Errorf("fragment %d: no moof at %d", id, off)
		}
		moof := int64(binary.BigEndian.Uint32(buf[off:]))
		if moof < 8 || off+moof+8 > size {
			return nil, nil, fmt.Errorf("fragment %d: bad moof at %d", id, off)
		}
		if moof+8 > n {
			if _, err := body.ReadAt(buf[off+n:off+moof+8], off+n); err != nil {
				return nil, nil, err
			}
		}
		mdat := int64(binary.BigEndian.Uint32(buf[off+moof:]))
		if string(buf[off+moof+4:off+moof+8]) != "mdat" || mdat < 8 || off+moof+mdat > size {
			return nil, nil, fmt.Errorf("fragment %d: bad mdat at %d", id, off+moof)
		}
		off += moof + mdat
	}
	return init, buf, nil
}
