package kvs

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/media"
	"github.com/streamgate/streamgate/streamstore"
)

type hlsSelector struct {
	FragmentSelectorType string          `json:"FragmentSelectorType"`
	TimestampRange       *timestampRange `json:"TimestampRange"`
}

// getHLSStreamingSessionURL issues a signed, expiring URL for HLS playback
// of one stream: the archive between two times (ON_DEMAND), from a time on
// (LIVE_REPLAY) or at the live edge (LIVE).
func (a *API) getHLSStreamingSessionURL(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		PlaybackMode                    string       `json:"PlaybackMode"`
		HLSFragmentSelector             *hlsSelector `json:"HLSFragmentSelector"`
		ContainerFormat                 string       `json:"ContainerFormat"`
		DiscontinuityMode               string       `json:"DiscontinuityMode"`
		DisplayFragmentTimestamp        string       `json:"DisplayFragmentTimestamp"`
		Expires                         *int         `json:"Expires"`
		MaxMediaPlaylistFragmentResults *int         `json:"MaxMediaPlaylistFragmentResults"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	s, err := a.sessionFrom(r, in.streamRef, in.PlaybackMode, in.HLSFragmentSelector, in.ContainerFormat, in.DiscontinuityMode,
		in.DisplayFragmentTimestamp, in.Expires, in.MaxMediaPlaylistFragmentResults)
	if err != nil {
		return nil, err
	}
	return struct {
		HLSStreamingSessionURL string `json:"HLSStreamingSessionURL"`
	}{baseURL(r.R) + "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=" + url.QueryEscape(a.sign(s))}, nil
}

// sessionFrom validates a session request, authorizes it, checks that the
// stream has fragments to play, and returns the session to sign.
func (a *API) sessionFrom(r *awsapi.Request, ref streamRef, mode string, sel *hlsSelector, container, disc, display string, expires, maxResults *int) (session, error) {
	var v awsapi.Validator
	if mode == "" {
		mode = "LIVE"
	}
	switch mode {
	case "LIVE", "LIVE_REPLAY", "ON_DEMAND":
	default:
		v.Fail("PlaybackMode", mode, "Member must satisfy enum value set: [LIVE, LIVE_REPLAY, ON_DEMAND]")
	}
	if container == "" {
		container = "FRAGMENTED_MP4"
	}
	switch container {
	case "FRAGMENTED_MP4", "MPEG_TS":
	default:
		v.Fail("ContainerFormat", container, "Member must satisfy enum value set: [FRAGMENTED_MP4, MPEG_TS]")
	}
	if disc == "" {
		disc = "ALWAYS"
	}
	switch disc {
	case "ALWAYS", "NEVER", "ON_DISCONTINUITY":
	default:
		v.Fail("DiscontinuityMode", disc, "Member must satisfy enum value set: [ALWAYS, NEVER, ON_DISCONTINUITY]")
	}
	switch display {
	case "", "NEVER", "ALWAYS":
	default:
		v.Fail("DisplayFragmentTimestamp", display, "Member must satisfy enum value set: [ALWAYS, NEVER]")
	}
	if expires != nil {
		v.Range("Expires", int64(*expires), minExpires, maxExpires)
	}
	defMax := 1000
	if mode == "LIVE" {
		defMax = 5
	}
	maxN := v.Optional("MaxMediaPlaylistFragmentResults", maxResults, defMax, 1, 5000)
	s := session{Mode: mode, Container: container, Disc: disc, Display: display == "ALWAYS", Max: maxN, Expires: expiry(a.opts.Now(), expires)}
	if sel != nil {
		switch sel.FragmentSelectorType {
		case "", "SERVER_TIMESTAMP":
		case "PRODUCER_TIMESTAMP":
			s.Producer = true
		default:
			v.Fail("HLSFragmentSelector.FragmentSelectorType", sel.FragmentSelectorType, "Member must satisfy enum value set: [PRODUCER_TIMESTAMP, SERVER_TIMESTAMP]")
		}
		if tr := sel.TimestampRange; tr != nil {
			if tr.StartTimestamp != nil {
				s.Start = tr.StartTimestamp.UnixNano()
			}
			if tr.EndTimestamp != nil {
				s.End = tr.EndTimestamp.UnixNano()
			}
		}
	}
	if err := validation(&v); err != nil {
		return session{}, err
	}
	switch {
	case mode == "LIVE" && sel != nil && sel.TimestampRange != nil:
		return session{}, invalid("A TimestampRange cannot be used with PlaybackMode LIVE.")
	case mode == "ON_DEMAND" && (s.Start == 0 || s.End == 0):
		return session{}, invalid("PlaybackMode ON_DEMAND needs a TimestampRange with StartTimestamp and EndTimestamp.")
	case mode == "LIVE_REPLAY" && s.Start == 0:
		return session{}, invalid("PlaybackMode LIVE_REPLAY needs a StartTimestamp.")
	case s.End != 0 && s.End <= s.Start:
		return session{}, invalid("The StartTimestamp must be before the EndTimestamp.")
	case mode == "ON_DEMAND" && time.Duration(s.End-s.Start) > 24*time.Hour:
		return session{}, invalid("The timestamp range of an ON_DEMAND session must not exceed 24 hours.")
	}
	info, err := a.lookup(r, ref)
	if err != nil {
		return session{}, err
	}
	s.Stream, s.Created = publicName(&info), info.Created.UnixMilli()
	// A session with nothing to play is an error now rather than an empty playlist.
	found := false
	if err := a.sessionFragments(s, func(streamstore.RecordHeader) bool { found = true; return false }); err != nil {
		return session{}, a.storeError(s.Stream, err)
	}
	if !found && !(mode == "LIVE" && a.lowLatencyLive(s.Stream)) {
		// (A LIVE session of a stream whose publisher just started plays its
		// Low-Latency HLS parts, which exist before the first fragment is stored.)
		return session{}, notFound("No fragments found in the stream for the streaming request.")
	}
	return s, nil
}

// sessionFragments calls fn with the fragments a session's media playlist
// lists now, in order, at most Max of them.
func (a *API) sessionFragments(s session, fn func(streamstore.RecordHeader) bool) error {
	name := namespace + s.Stream
	n := 0
	each := func(h streamstore.RecordHeader) bool {
		n++
		return fn(h) && n < s.Max
	}
	switch s.Mode {
	case "LIVE":
		tip, err := a.store.Seek(name, videoShard, streamstore.Position{Type: streamstore.Latest})
		if err != nil {
			return err
		}
		from := uint64(1)
		if tip > uint64(s.Max) {
			from = tip - uint64(s.Max)
		}
		return a.store.HeadersFrom(name, videoShard, from, each)
	default:
		kind := streamstore.ArrivalTime
		if s.Producer {
			kind = streamstore.ProducerTime
		}
		end := s.End
		if end == 0 {
			end = math.MaxInt64
		}
		return a.store.Headers(name, videoShard, kind, s.Start, end, each)
	}
}

// HLSHandler serves the playback URLs under /hls/v1/: GET, authenticated by
// their session token alone.
func (a *API) HLSHandler() http.Handler {
	archive := a.playbackHandler("/hls/v1/", map[string]func(http.ResponseWriter, *http.Request, session) error{
		"getHLSMasterPlaylist.m3u8": a.masterPlaylist,
		"getHLSMediaPlaylist.m3u8":  a.mediaPlaylist,
		"getMP4InitFragment.mp4":    func(w http.ResponseWriter, r *http.Request, s session) error { return a.fragmentPart(w, r, s, true) },
		"getMP4MediaFragment.mp4":   func(w http.ResponseWriter, r *http.Request, s session) error { return a.fragmentPart(w, r, s, false) },
		"getTSFragment.ts":          a.tsFragment,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/hls/v1/ll/"); ok {
			a.lowLatency(w, r, rest)
			return
		}
		archive.ServeHTTP(w, r)
	})
}

// lowLatencyLive reports whether a LIVE session plays Low-Latency HLS: the
// stream has LL-HLS state, which it has while a publisher is on and for a
// while after (a player that opens while the camera is briefly away waits
// for it on the playlist it will keep).
func (a *API) lowLatencyLive(stream string) bool {
	return a.live != nil && a.live.LowLatencyHLS(stream) != nil
}

// lowLatency serves a LIVE session from the publisher's Low-Latency HLS
// parts. The token is a path element here, so the relative URLs of the
// playlists (parts, init segments, with their blocking-reload queries) all
// carry it; stored segments are the archive's fragment URLs.
func (a *API) lowLatency(w http.ResponseWriter, r *http.Request, rest string) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	token, file, _ := strings.Cut(rest, "/")
	s, err := a.openSession(token)
	var h *media.LLHLS
	if err == nil {
		if a.live != nil {
			h = a.live.LowLatencyHLS(s.Stream)
		}
		if h == nil {
			err = notFound("Stream %s has no live publisher now.", s.Stream)
		}
	}
	if err != nil {
		var ae *awsapi.Error
		errors.As(err, &ae)
		awsapi.WriteError(w, r, ae)
		return
	}
	h.Serve(w, r, file, media.LLView{
		ServeSegment: func(w http.ResponseWriter, r *http.Request, number string) {
			if err := a.writeFragment(w, r, s, number, false); err != nil {
				var ae *awsapi.Error
				if !errors.As(err, &ae) {
					ae = &awsapi.Error{Code: "ClientLimitExceededException", Message: "The fragment could not be read.", Status: http.StatusInternalServerError}
				}
				awsapi.WriteError(w, r, ae)
			}
		},
		Segments: s.Max, DateTimes: s.Display,
	})
}

// playbackHandler serves session-token URLs under prefix: GET (or HEAD)
// only, the token verified before anything is read, errors in AWS form.
func (a *API) playbackHandler(prefix string, routes map[string]func(http.ResponseWriter, *http.Request, session) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Browsers play these URLs from any page (hls.js, dash.js): the token,
		// not the origin, is the credential, as with AWS's playback URLs.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			w.Header().Set("Access-Control-Allow-Methods", "GET, HEAD")
			w.Header().Set("Access-Control-Allow-Headers", "Range")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			awsapi.WriteError(w, r, &awsapi.Error{Code: "InvalidArgumentException", Message: "Playback URLs take GET.", Status: http.StatusMethodNotAllowed})
			return
		}
		s, err := a.openSession(r.URL.Query().Get("SessionToken"))
		if err == nil {
			if route := routes[strings.TrimPrefix(r.URL.Path, prefix)]; route != nil {
				err = route(w, r, s)
			} else {
				err = notFound("No such playback resource: %s.", r.URL.Path)
			}
		}
		if err != nil {
			var ae *awsapi.Error
			if !errors.As(err, &ae) {
				a.opts.Logger.Error("playback failed", "path", r.URL.Path, "err", err)
				ae = &awsapi.Error{Code: "ClientLimitExceededException", Message: "The fragment could not be read.", Status: http.StatusInternalServerError}
			}
			awsapi.WriteError(w, r, ae)
		}
	})
}

func (a *API) masterPlaylist(w http.ResponseWriter, r *http.Request, s session) error {
	if s.Mode == "LIVE" && s.Container == "FRAGMENTED_MP4" && a.lowLatencyLive(s.Stream) {
		// At the live edge while a publisher is on: Low-Latency HLS from
		// memory (players without LL-HLS play it as ordinary HLS).
		http.Redirect(w, r, "ll/"+url.PathEscape(r.URL.Query().Get("SessionToken"))+"/index.m3u8", http.StatusFound)
		return nil
	}
	token := url.QueryEscape(r.URL.Query().Get("SessionToken"))
	// The variant's codecs and size come from the newest listed fragment's init segment.
	var last streamstore.RecordHeader
	if err := a.sessionFragments(s, func(h streamstore.RecordHeader) bool { last = h; return true }); err != nil {
		return a.storeError(s.Stream, err)
	}
	if last.Seq.Index == 0 {
		return notFound("No fragments found in the stream for the streaming request.")
	}
	init, err := a.fragmentInit(s, last.Seq.Index)
	if err != nil {
		return err
	}
	meta, _ := media.ParseFragmentMeta(last.PartitionKey)
	v := media.DescribeInit(init)
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	bandwidth := int64(float64(last.Size*8) / math.Max(meta.Duration.Seconds(), 0.1))
	fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d", max(bandwidth, 1))
	if v.Codecs != "" {
		fmt.Fprintf(&b, ",CODECS=\"%s\"", v.Codecs)
	}
	if v.Width > 0 {
		fmt.Fprintf(&b, ",RESOLUTION=%dx%d", v.Width, v.Height)
	}
	fmt.Fprintf(&b, "\ngetHLSMediaPlaylist.m3u8?SessionToken=%s\n", token)
	media.WritePlaylist(w, b.String())
	return nil
}

func (a *API) mediaPlaylist(w http.ResponseWriter, r *http.Request, s session) error {
	type entry struct {
		h    streamstore.RecordHeader
		meta media.FragmentMeta
	}
	var entries []entry
	err := a.sessionFragments(s, func(h streamstore.RecordHeader) bool {
		m, err := media.ParseFragmentMeta(h.PartitionKey)
		if err == nil {
			entries = append(entries, entry{h, m})
		}
		return true
	})
	if err != nil {
		return a.storeError(s.Stream, err)
	}
	token := url.QueryEscape(r.URL.Query().Get("SessionToken"))
	target := 1.0
	for _, e := range entries {
		target = math.Max(target, math.Ceil(e.meta.Duration.Seconds()))
	}
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", int(target))
	seq := uint64(0)
	if len(entries) > 0 {
		seq = entries[0].h.Seq.Index
	}
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", seq)
	switch {
	case s.Mode == "ON_DEMAND":
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	case s.Mode == "LIVE_REPLAY":
		b.WriteString("#EXT-X-PLAYLIST-TYPE:EVENT\n")
	}
	for i, e := range entries {
		num := e.h.Seq.String()
		newInit := i == 0 || e.meta.Discontinuity
		if i > 0 && (s.Disc == "ALWAYS" || (s.Disc == "ON_DISCONTINUITY" && e.meta.Discontinuity)) {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if newInit && s.Container == "FRAGMENTED_MP4" {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken=%s&FragmentNumber=%s\"\n", token, num)
		}
		if s.Display {
			at := e.h.Arrival
			if s.Producer {
				at = e.h.Producer
			}
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", time.Unix(0, at).UTC().Format("2006-01-02T15:04:05.000Z"))
		}
		segment := "getMP4MediaFragment.mp4"
		if s.Container == "MPEG_TS" {
			segment = "getTSFragment.ts"
		}
		fmt.Fprintf(&b, "#EXTINF:%.3f,\n%s?SessionToken=%s&FragmentNumber=%s\n", e.meta.Duration.Seconds(), segment, token, num)
	}
	if s.Mode == "ON_DEMAND" || (s.End != 0 && len(entries) > 0 && s.endReached(entries[len(entries)-1].h)) {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	media.WritePlaylist(w, b.String())
	return nil
}

// endReached reports whether a LIVE_REPLAY session with an end has listed
// its last fragment.
func (s session) endReached(h streamstore.RecordHeader) bool {
	t := h.Arrival
	if s.Producer {
		t = h.Producer
	}
	return t >= s.End
}

// sessionFragment reads a fragment of the session's stream by number and
// returns its init segment and moof+mdat.
func (a *API) sessionFragment(number string, s session) (init, body []byte, err error) {
	seq, err := parseFragmentNumber(number)
	if err != nil {
		return nil, nil, err
	}
	init, body, err = a.fragmentParts(namespace+s.Stream, seq.Index)
	if err != nil {
		return nil, nil, a.storeError(s.Stream, err)
	}
	return init, body, nil
}

// tsFragment serves a fragment as an MPEG-TS segment.
func (a *API) tsFragment(w http.ResponseWriter, r *http.Request, s session) error {
	init, body, err := a.sessionFragment(r.URL.Query().Get("FragmentNumber"), s)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := media.WriteTS(&buf, init, body); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "video/mp2t")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Header().Set("Cache-Control", "max-age=3600")
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
	return nil
}

// fragmentPart serves the init segment or the moof+mdat of the fragment
// the request names.
func (a *API) fragmentPart(w http.ResponseWriter, r *http.Request, s session, init bool) error {
	return a.writeFragment(w, r, s, r.URL.Query().Get("FragmentNumber"), init)
}

// writeFragment serves a fragment's init segment or its moof+mdat.
func (a *API) writeFragment(w http.ResponseWriter, r *http.Request, s session, number string, init bool) error {
	in, body, err := a.sessionFragment(number, s)
	if err != nil {
		return err
	}
	if t := r.URL.Query().Get("TrackNumber"); t != "" {
		// One track of the fragment (DASH representations).
		id, err := strconv.Atoi(t)
		if err != nil {
			return invalid("Invalid TrackNumber %q.", t)
		}
		if in, body, err = media.SelectTrack(in, body, id); err != nil {
			return notFound("Track %d of this fragment: %v.", id, err)
		}
	}
	if init {
		body = in
	}
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "max-age=3600") // a fragment never changes
	if r.Method == http.MethodHead {
		return nil
	}
	w.Write(body)
	return nil
}
