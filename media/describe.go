package media

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// InitInfo is what a playlist says about a stream: RFC 6381 codec strings
// and the picture size.
type InitInfo struct {
	Codecs        string // e.g. "avc1.64001f,mp4a.40.2"; empty when a track's string is unknown
	Width, Height int
	Tracks        []TrackInfo
}

// TrackInfo describes one track of an init segment.
type TrackInfo struct {
	ID    int
	Video bool
	Codec string // RFC 6381; "" when unknown
}

// DescribeInit reads an init segment's tracks.
func DescribeInit(init []byte) InitInfo {
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		return InitInfo{}
	}
	var info InitInfo
	var codecs []string
	complete := true
	for _, t := range in.Tracks {
		n := len(codecs)
		switch c := t.Codec.(type) {
		case *mp4.CodecH264:
			if len(c.SPS) >= 4 {
				codecs = append(codecs, fmt.Sprintf("avc1.%02x%02x%02x", c.SPS[1], c.SPS[2], c.SPS[3]))
			}
			var sps h264.SPS
			if sps.Unmarshal(c.SPS) == nil {
				info.Width, info.Height = sps.Width(), sps.Height()
			}
		case *mp4.CodecH265:
			complete = false // the hvc1 string needs the whole profile_tier_level; players read it from the init segment
			var sps h265.SPS
			if sps.Unmarshal(c.SPS) == nil {
				info.Width, info.Height = sps.Width(), sps.Height()
			}
		case *mp4.CodecMPEG4Audio:
			codecs = append(codecs, fmt.Sprintf("mp4a.40.%d", int(c.Config.Type)))
		case *mp4.CodecOpus:
			codecs = append(codecs, "opus")
		default:
			complete = false
		}
		ti := TrackInfo{ID: t.ID, Video: t.Codec.IsVideo()}
		if len(codecs) > n {
			ti.Codec = codecs[n]
		}
		info.Tracks = append(info.Tracks, ti)
	}
	if complete {
		info.Codecs = strings.Join(codecs, ",")
	}
	return info
}

// SelectTrack rewrites a stored fragment as one track's init segment and
// moof+mdat (for players that want a representation per track, as DASH's do).
func SelectTrack(init, media []byte, id int) ([]byte, []byte, error) {
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		return nil, nil, fmt.Errorf("init segment: %w", err)
	}
	var one fmp4.Init
	for _, t := range in.Tracks {
		if t.ID == id {
			one.Tracks = append(one.Tracks, t)
		}
	}
	if len(one.Tracks) == 0 {
		return nil, nil, fmt.Errorf("no track %d", id)
	}
	parts, err := parseParts(media)
	if err != nil {
		return nil, nil, fmt.Errorf("fragment: %w", err)
	}
	// The track's samples of each chunk, then one allocation for all of them.
	selected := make([][]*fmp4.PartTrack, len(parts))
	size := 0
	for i, p := range parts {
		for _, pt := range p.Tracks {
			if pt.ID == id {
				selected[i] = append(selected[i], pt)
			}
		}
		if len(selected[i]) > 0 {
			size += partSize(selected[i])
		}
	}
	mb := make([]byte, 0, size)
	for i, p := range parts {
		if len(selected[i]) > 0 {
			mb = appendPart(mb, p.SequenceNumber, selected[i])
		}
	}
	var ib seekablebuffer.Buffer
	if err := one.Marshal(&ib); err != nil {
		return nil, nil, err
	}
	return ib.Bytes(), mb, nil
}
