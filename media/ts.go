package media

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
)

// WriteTS writes one stored fragment as an MPEG transport stream (an HLS
// MPEG_TS segment): the same samples and times, Annex-B video and ADTS
// audio, in decode order across tracks.
func WriteTS(w io.Writer, init, media []byte) error {
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		return fmt.Errorf("init segment: %w", err)
	}
	parts, err := parseParts(media)
	if err != nil {
		return fmt.Errorf("fragment: %w", err)
	}
	type tsTrack struct {
		t         *mpegts.Track
		codec     mp4.Codec
		timeScale int64
	}
	tracks := map[int]*tsTrack{}
	var list []*mpegts.Track
	for _, it := range in.Tracks {
		var c mpegts.Codec
		switch ic := it.Codec.(type) {
		case *mp4.CodecH264:
			c = &mpegts.CodecH264{}
		case *mp4.CodecH265:
			c = &mpegts.CodecH265{}
		case *mp4.CodecMPEG4Audio:
			c = &mpegts.CodecMPEG4Audio{Config: ic.Config}
		case *mp4.CodecOpus:
			c = &mpegts.CodecOpus{ChannelCount: ic.ChannelCount}
		default:
			continue // no MPEG-TS mapping: the track is left out
		}
		t := &mpegts.Track{Codec: c}
		tracks[it.ID] = &tsTrack{t: t, codec: it.Codec, timeScale: int64(it.TimeScale)}
		list = append(list, t)
	}
	if len(list) == 0 {
		return errors.New("no track can be carried in MPEG-TS")
	}
	type tsSample struct {
		tr       *tsTrack
		dts, pts int64 // 90 kHz
		payload  []byte
	}
	var samples []tsSample
	for _, part := range parts {
		for _, pt := range part.Tracks {
			tr := tracks[pt.ID]
			if tr == nil {
				continue
			}
			dts := int64(pt.BaseTime)
			for _, s := range pt.Samples {
				to90k := func(v int64) int64 { return v * 90000 / tr.timeScale }
				samples = append(samples, tsSample{tr, to90k(dts), to90k(dts + int64(s.PTSOffset)), s.Payload})
				dts += int64(s.Duration)
			}
		}
	}
	slices.SortStableFunc(samples, func(a, b tsSample) int { return cmp.Compare(a.dts, b.dts) })
	tw := &mpegts.Writer{W: w, Tracks: list}
	if err := tw.Initialize(); err != nil {
		return err
	}
	for _, s := range samples {
		var err error
		switch s.tr.codec.(type) {
		case *mp4.CodecH264, *mp4.CodecH265:
			var au h264.AVCC
			if err = au.Unmarshal(s.payload); err != nil {
				return err
			}
			if _, h265 := s.tr.codec.(*mp4.CodecH265); h265 {
				err = tw.WriteH265(s.tr.t, s.pts, s.dts, au)
			} else {
				err = tw.WriteH264(s.tr.t, s.pts, s.dts, au)
			}
		case *mp4.CodecMPEG4Audio:
			err = tw.WriteMPEG4Audio(s.tr.t, s.pts, [][]byte{s.payload})
		case *mp4.CodecOpus:
			err = tw.WriteOpus(s.tr.t, s.pts, [][]byte{s.payload})
		}
		if err != nil {
			return err
		}
	}
	return nil
}
