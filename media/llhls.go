package media

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
)

// lowLatency is a live stream's Low-Latency HLS muxer (gohlslib), fed with
// the publisher's access units as they arrive while players use it: a
// keyframe is in the playlist as soon as its part is. Parts and segments live in dir (not
// in memory) and are removed with the publisher.
type lowLatency struct {
	used   atomic.Int64 // Unix ns of the last request
	m      *gohlslib.Muxer
	tracks []*gohlslib.Track // by codec track index; nil: not carried
	dir    string
}

// newLowLatency starts a muxer for the publisher's tracks, or returns nil
// when none can be carried yet (codec parameters missing from the SDP).
func newLowLatency(cts []codecTrack, dir string, log *slog.Logger) *lowLatency {
	l := &lowLatency{tracks: make([]*gohlslib.Track, len(cts)), dir: dir}
	var tracks []*gohlslib.Track
	for i, ct := range cts {
		var c codecs.Codec
		switch t := ct.(type) {
		case *h264Track:
			if t.sps != nil && t.pps != nil {
				c = &codecs.H264{SPS: t.sps, PPS: t.pps}
			}
		case *h265Track:
			if t.vps != nil && t.sps != nil && t.pps != nil {
				c = &codecs.H265{VPS: t.vps, SPS: t.sps, PPS: t.pps}
			}
		case *aacTrack:
			c = &codecs.MPEG4Audio{Config: t.config}
		case *opusTrack:
			c = &codecs.Opus{ChannelCount: t.channels}
		}
		if c == nil {
			continue
		}
		l.tracks[i] = &gohlslib.Track{Codec: c, ClockRate: ct.clockRate()}
		tracks = append(tracks, l.tracks[i])
	}
	if len(tracks) == 0 {
		return nil
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Warn("low-latency HLS off for this publisher", "err", err)
			return nil
		}
	}
	l.m = &gohlslib.Muxer{
		Tracks: tracks, Variant: gohlslib.MuxerVariantLowLatency, SegmentCount: 7,
		SegmentMinDuration: time.Second, PartMinDuration: 200 * time.Millisecond, Directory: dir,
		OnEncodeError: func(err error) { log.Debug("low-latency HLS", "err", err) },
	}
	if err := l.m.Start(); err != nil {
		log.Warn("low-latency HLS off for this publisher", "err", err)
		return nil
	}
	return l
}

// write hands an access unit of codec track i to the muxer.
func (l *lowLatency) write(i int, ct codecTrack, ntp time.Time, pts int64, au [][]byte) {
	t := l.tracks[i]
	if t == nil {
		return
	}
	var err error
	switch c := ct.(type) {
	case *h264Track:
		err = l.m.WriteH264(t, ntp, pts, c.inband(au))
	case *h265Track:
		err = l.m.WriteH265(t, ntp, pts, c.inband(au))
	case *aacTrack:
		err = l.m.WriteMPEG4Audio(t, ntp, pts, au)
	case *opusTrack:
		err = l.m.WriteOpus(t, ntp, pts, au)
	default:
		err = errors.New("codec not carried")
	}
	_ = err // gohlslib reports encoding problems through OnEncodeError
}

func (l *lowLatency) close() {
	l.m.Close()
	if l.dir != "" {
		os.RemoveAll(l.dir)
	}
}

// Handle serves the muxer's playlists, parts and segments.
func (l *lowLatency) Handle(w http.ResponseWriter, r *http.Request) {
	l.used.Store(time.Now().UnixNano())
	l.m.Handle(w, r)
}
