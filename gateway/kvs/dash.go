package kvs

import (
	"encoding/xml"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/media"
	"github.com/streamgate/streamgate/streamstore"
)

// getDASHStreamingSessionURL issues a signed, expiring URL of an MPEG-DASH
// manifest, with the same modes and selectors as HLS.
func (a *API) getDASHStreamingSessionURL(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		PlaybackMode               string       `json:"PlaybackMode"`
		DASHFragmentSelector       *hlsSelector `json:"DASHFragmentSelector"`
		DisplayFragmentTimestamp   string       `json:"DisplayFragmentTimestamp"`
		DisplayFragmentNumber      string       `json:"DisplayFragmentNumber"`
		Expires                    *int         `json:"Expires"`
		MaxManifestFragmentResults *int         `json:"MaxManifestFragmentResults"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	switch in.DisplayFragmentNumber {
	case "", "ALWAYS", "NEVER":
	default:
		var v awsapi.Validator
		v.Fail("DisplayFragmentNumber", in.DisplayFragmentNumber, "Member must satisfy enum value set: [ALWAYS, NEVER]")
		return nil, validation(&v)
	}
	s, err := a.sessionFrom(r, in.streamRef, in.PlaybackMode, in.DASHFragmentSelector, "FRAGMENTED_MP4", "ON_DISCONTINUITY",
		in.DisplayFragmentTimestamp, in.Expires, in.MaxManifestFragmentResults)
	if err != nil {
		return nil, err
	}
	return struct {
		DASHStreamingSessionURL string `json:"DASHStreamingSessionURL"`
	}{baseURL(r.R) + "/dash/v1/getDASHManifest.mpd?SessionToken=" + url.QueryEscape(a.sign(s))}, nil
}

// The MPD elements the gateway writes (ISO/IEC 23009-1): one Period per run
// of fragments sharing an init segment, an AdaptationSet per track (DASH
// players want one track per representation; the stored fragments are
// split per track on request), segments listed in order.
type mpd struct {
	XMLName                   xml.Name    `xml:"urn:mpeg:dash:schema:mpd:2011 MPD"`
	Profiles                  string      `xml:"profiles,attr"`
	Type                      string      `xml:"type,attr"`
	MinBufferTime             string      `xml:"minBufferTime,attr"`
	MediaPresentationDuration string      `xml:"mediaPresentationDuration,attr,omitempty"`
	AvailabilityStartTime     string      `xml:"availabilityStartTime,attr,omitempty"`
	PublishTime               string      `xml:"publishTime,attr,omitempty"`
	MinimumUpdatePeriod       string      `xml:"minimumUpdatePeriod,attr,omitempty"`
	TimeShiftBufferDepth      string      `xml:"timeShiftBufferDepth,attr,omitempty"`
	Periods                   []mpdPeriod `xml:"Period"`
}

type mpdPeriod struct {
	ID             string             `xml:"id,attr"`
	Start          string             `xml:"start,attr"`
	AdaptationSets []mpdAdaptationSet `xml:"AdaptationSet"`
}

type mpdAdaptationSet struct {
	MimeType         string            `xml:"mimeType,attr"`
	SegmentAlignment bool              `xml:"segmentAlignment,attr"`
	Representation   mpdRepresentation `xml:"Representation"`
}

type mpdRepresentation struct {
	ID          string         `xml:"id,attr"`
	Codecs      string         `xml:"codecs,attr,omitempty"`
	Bandwidth   int64          `xml:"bandwidth,attr"`
	Width       int            `xml:"width,attr,omitempty"`
	Height      int            `xml:"height,attr,omitempty"`
	SegmentList mpdSegmentList `xml:"SegmentList"`
}

type mpdSegmentList struct {
	Timescale      int             `xml:"timescale,attr"`
	Duration       int64           `xml:"duration,attr"`
	Initialization mpdURL          `xml:"Initialization"`
	Segments       []mpdSegmentURL `xml:"SegmentURL"`
}

type mpdURL struct {
	SourceURL string `xml:"sourceURL,attr"`
}

type mpdSegmentURL struct {
	Media string `xml:"media,attr"`
}

// segmentURL is a playback URL of one fragment's track, relative to the manifest.
func segmentURL(resource, token, fragment string, track int) string {
	return resource + "?SessionToken=" + token + "&FragmentNumber=" + fragment + "&TrackNumber=" + strconv.Itoa(track)
}

func isoDuration(d time.Duration) string { return fmt.Sprintf("PT%.3fS", d.Seconds()) }

// DASHHandler serves /dash/v1/: the manifest and, as for HLS, the stored
// fragments' halves, authenticated by the session token.
func (a *API) DASHHandler() http.Handler {
	return a.playbackHandler("/dash/v1/", map[string]func(http.ResponseWriter, *http.Request, session) error{
		"getDASHManifest.mpd":     a.dashManifest,
		"getMP4InitFragment.mp4":  func(w http.ResponseWriter, r *http.Request, s session) error { return a.fragmentPart(w, r, s, true) },
		"getMP4MediaFragment.mp4": func(w http.ResponseWriter, r *http.Request, s session) error { return a.fragmentPart(w, r, s, false) },
	})
}

func (a *API) dashManifest(w http.ResponseWriter, r *http.Request, s session) error {
	type entry struct {
		h    streamstore.RecordHeader
		meta media.FragmentMeta
	}
	var entries []entry
	if err := a.sessionFragments(s, func(h streamstore.RecordHeader) bool {
		if m, err := media.ParseFragmentMeta(h.PartitionKey); err == nil {
			entries = append(entries, entry{h, m})
		}
		return true
	}); err != nil {
		return a.storeError(s.Stream, err)
	}
	if len(entries) == 0 {
		return notFound("No fragments found in the stream for the streaming request.")
	}
	token := url.QueryEscape(r.URL.Query().Get("SessionToken"))
	m := mpd{Profiles: "urn:mpeg:dash:profile:isoff-live:2011", MinBufferTime: "PT2S", Type: "static"}
	if s.Mode != "ON_DEMAND" {
		now := a.opts.Now().UTC()
		m.Type = "dynamic"
		m.AvailabilityStartTime = time.Unix(0, entries[0].h.Arrival).UTC().Format(time.RFC3339Nano)
		m.PublishTime = now.Format(time.RFC3339Nano)
		m.MinimumUpdatePeriod = "PT2S"
		m.TimeShiftBufferDepth = "PT60S"
	}
	var elapsed time.Duration
	var cur *mpdPeriod
	for _, e := range entries {
		num := e.h.Seq.String()
		if cur == nil || e.meta.Discontinuity {
			// A new init segment (or session): a new Period.
			init, err := a.fragmentInit(s, e.h.Seq.Index)
			if err != nil {
				return err
			}
			info := media.DescribeInit(init)
			p := mpdPeriod{ID: strconv.Itoa(len(m.Periods)), Start: isoDuration(elapsed)}
			for _, tr := range info.Tracks {
				as := mpdAdaptationSet{MimeType: "audio/mp4", SegmentAlignment: true, Representation: mpdRepresentation{
					ID: strconv.Itoa(tr.ID), Codecs: tr.Codec,
					Bandwidth:   max(int64(float64(e.h.Size*8)/math.Max(e.meta.Duration.Seconds(), 0.1)), 1),
					SegmentList: mpdSegmentList{Timescale: 1000, Initialization: mpdURL{segmentURL("getMP4InitFragment.mp4", token, num, tr.ID)}},
				}}
				if tr.Video {
					as.MimeType, as.Representation.Width, as.Representation.Height = "video/mp4", info.Width, info.Height
				}
				p.AdaptationSets = append(p.AdaptationSets, as)
			}
			m.Periods = append(m.Periods, p)
			cur = &m.Periods[len(m.Periods)-1]
		}
		for i := range cur.AdaptationSets {
			rep := &cur.AdaptationSets[i].Representation
			id, _ := strconv.Atoi(rep.ID)
			rep.SegmentList.Duration = max(rep.SegmentList.Duration, e.meta.Duration.Milliseconds())
			rep.SegmentList.Segments = append(rep.SegmentList.Segments, mpdSegmentURL{segmentURL("getMP4MediaFragment.mp4", token, num, id)})
		}
		elapsed += e.meta.Duration
	}
	if s.Mode == "ON_DEMAND" {
		m.MediaPresentationDuration = isoDuration(elapsed)
	}
	body, err := xml.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	body = append([]byte(xml.Header), body...)
	w.Header().Set("Content-Type", "application/dash+xml")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
	return nil
}

// fragmentInit reads a fragment's init segment.
func (a *API) fragmentInit(s session, index uint64) ([]byte, error) {
	init, _, err := a.fragmentParts(namespace+s.Stream, index)
	if err != nil {
		return nil, a.storeError(s.Stream, err)
	}
	return init, nil
}
