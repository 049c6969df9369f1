package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Fragment is one keyframe-aligned piece of a stream: an fMP4 initialization
// segment (ftyp+moov) for its tracks and its samples as moof+mdat chunks of
// about partTarget each. It is self-contained: a player needs no other
// fragment to decode it. Its bytes are in the store, written as they were
// cut; this is what is known about it.
type Fragment struct {
	Init []byte // ftyp+moov

	Producer      time.Time     // the producer's clock at the first sample (RTCP sender reports, else the server's anchored clock)
	Server        time.Time     // when the first packet of the first sample arrived
	Duration      time.Duration // of the leading track
	Keyframe      bool          // starts with a video keyframe (or has no video)
	Discontinuity bool          // codec parameters changed or a new publisher session began
	Samples       int           // all tracks
	Frames        int           // samples of the leading track (video frames)

	w         FragmentWriter // where its bytes are
	number    string         // its fragment number, once committed
	size      int            // bytes written: init and chunks
	completed time.Time      // when the packet that completed the fragment arrived
	hls       *LLHLS         // the LL-HLS state it is a segment of (nil: none)
	hlsMSN    uint64         // its media sequence number there
}

// Size is the stored fragment's length in bytes.
func (f *Fragment) Size() int { return f.size }

// FragmentMeta is what a fragment record's key says about it, so a listing
// reads no video: "f1 <duration µs> <init bytes> <samples> <flags> <server ns>",
// at most MaxFragmentKey bytes (the store reserves that much before the
// fragment's metadata is known, and may pad the key with spaces).
type FragmentMeta struct {
	Duration      time.Duration
	InitSize      int
	Samples       int
	Keyframe      bool
	Discontinuity bool
	ServerNanos   int64 // Server time; the store's own arrival time is when the fragment became durable
}

// Meta returns the fragment's metadata.
func (f *Fragment) Meta() FragmentMeta {
	return FragmentMeta{Duration: f.Duration, InitSize: len(f.Init), Samples: f.Samples,
		Keyframe: f.Keyframe, Discontinuity: f.Discontinuity, ServerNanos: f.Server.UnixNano()}
}

// Key encodes the metadata as a record key.
func (m FragmentMeta) Key() string {
	flags := ""
	if m.Keyframe {
		flags += "k"
	}
	if m.Discontinuity {
		flags += "d"
	}
	if flags == "" {
		flags = "-"
	}
	return fmt.Sprintf("f1 %d %d %d %s %d", m.Duration.Microseconds(), m.InitSize, m.Samples, flags, m.ServerNanos)
}

// MaxFragmentKey bounds the length of FragmentMeta.Key.
const MaxFragmentKey = 96

var errBadMeta = errors.New("not a fragment key")

// ParseFragmentMeta decodes a record key written by Key.
func ParseFragmentMeta(key string) (FragmentMeta, error) {
	f := strings.Fields(key)
	if len(f) != 6 || f[0] != "f1" {
		return FragmentMeta{}, errBadMeta
	}
	var n [3]int64
	for i := range n {
		v, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil || v < 0 {
			return FragmentMeta{}, errBadMeta
		}
		n[i] = v
	}
	server, err := strconv.ParseInt(f[5], 10, 64)
	if err != nil {
		return FragmentMeta{}, errBadMeta
	}
	return FragmentMeta{
		Duration: time.Duration(n[0]) * time.Microsecond, InitSize: int(n[1]), Samples: int(n[2]),
		Keyframe: strings.Contains(f[4], "k"), Discontinuity: strings.Contains(f[4], "d"), ServerNanos: server,
	}, nil
}

// SplitFragment splits stored fragment data into its init and media parts.
func SplitFragment(data []byte, m FragmentMeta) (init, media []byte, err error) {
	if m.InitSize > len(data) || !hasBox(data, "ftyp") || !hasBox(data[m.InitSize:], "moof") {
		return nil, nil, errors.New("fragment data does not match its metadata")
	}
	return data[:m.InitSize], data[m.InitSize:], nil
}

func hasBox(b []byte, typ string) bool {
	return len(b) >= 8 && string(b[4:8]) == typ && binary.BigEndian.Uint32(b) >= 8
}
