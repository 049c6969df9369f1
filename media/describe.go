package media

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
)

// InitInfo is what a playlist says about a stream: RFC 6381 codec strings
// and the picture size.
type InitInfo struct {
	Codecs        string // e.g. "avc1.64001f,mp4a.40.2"; empty when a track's string is unknown
	Width, Height int
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
		switch c := t.Codec.(type) {
		case *fmp4.CodecH264:
			if len(c.SPS) >= 4 {
				codecs = append(codecs, fmt.Sprintf("avc1.%02x%02x%02x", c.SPS[1], c.SPS[2], c.SPS[3]))
			}
			var sps h264.SPS
			if sps.Unmarshal(c.SPS) == nil {
				info.Width, info.Height = sps.Width(), sps.Height()
			}
		case *fmp4.CodecH265:
			complete = false // the hvc1 string needs the whole profile_tier_level; players read it from the init segment
			var sps h265.SPS
			if sps.Unmarshal(c.SPS) == nil {
				info.Width, info.Height = sps.Width(), sps.Height()
			}
		case *fmp4.CodecMPEG4Audio:
			codecs = append(codecs, fmt.Sprintf("mp4a.40.%d", int(c.Config.Type)))
		case *fmp4.CodecOpus:
			codecs = append(codecs, "opus")
		default:
			complete = false
		}
	}
	if complete {
		info.Codecs = strings.Join(codecs, ",")
	}
	return info
}
