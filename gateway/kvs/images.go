package kvs

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/media"
	"github.com/streamgate/streamgate/streamstore"
)

// maxSeam is how far past a fragment's end a sampled time still shows it.
const maxSeam = time.Second

type image struct {
	TimeStamp    *awsapi.Timestamp `json:"TimeStamp"`
	Error        string            `json:"Error,omitempty"`
	ImageContent string            `json:"ImageContent,omitempty"` // base64, as encoding/json writes []byte
}

// getImages samples pictures from a time range at an interval and returns
// them as JPEG or PNG. Decoding is ffmpeg's job (an optional dependency):
// without it the call fails with a clear error.
func (a *API) getImages(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		ImageSelectorType string            `json:"ImageSelectorType"`
		StartTimestamp    *awsapi.Timestamp `json:"StartTimestamp"`
		EndTimestamp      *awsapi.Timestamp `json:"EndTimestamp"`
		SamplingInterval  *int              `json:"SamplingInterval"`
		Format            string            `json:"Format"`
		FormatConfig      map[string]string `json:"FormatConfig"`
		WidthPixels       *int              `json:"WidthPixels"`
		HeightPixels      *int              `json:"HeightPixels"`
		MaxResults        *int              `json:"MaxResults"`
		NextToken         string            `json:"NextToken"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	kind := streamstore.ArrivalTime
	switch in.ImageSelectorType {
	case "SERVER_TIMESTAMP":
	case "PRODUCER_TIMESTAMP":
		kind = streamstore.ProducerTime
	default:
		v.Fail("ImageSelectorType", in.ImageSelectorType, "Member must satisfy enum value set: [PRODUCER_TIMESTAMP, SERVER_TIMESTAMP]")
	}
	v.Required("StartTimestamp", in.StartTimestamp != nil)
	v.Required("EndTimestamp", in.EndTimestamp != nil)
	interval := v.Optional("SamplingInterval", in.SamplingInterval, 3000, 200, 20000)
	format := media.ImageFormat(in.Format)
	if format != media.JPEG && format != media.PNG {
		v.Fail("Format", in.Format, "Member must satisfy enum value set: [JPEG, PNG]")
	}
	width := v.Optional("WidthPixels", in.WidthPixels, 0, 1, 3840)
	height := v.Optional("HeightPixels", in.HeightPixels, 0, 1, 2160)
	limit := v.Optional("MaxResults", in.MaxResults, 25, 1, 100)
	quality := 80
	if q, ok := in.FormatConfig["JPEGQuality"]; ok {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > 100 {
			v.Fail("FormatConfig.JPEGQuality", q, "Member must be an integer from 1 to 100")
		}
		quality = n
	}
	if err := validation(&v); err != nil {
		return nil, err
	}
	from, to := in.StartTimestamp.Time, in.EndTimestamp.Time
	if !from.Before(to) {
		return nil, invalid("The StartTimestamp must be before the EndTimestamp.")
	}
	if to.Sub(from) > 24*time.Hour {
		return nil, invalid("The time range of GetImages must not exceed 24 hours.")
	}
	if in.NextToken != "" {
		ns, err := strconv.ParseInt(in.NextToken, 10, 64)
		if err != nil || ns < from.UnixNano() || ns > to.UnixNano() {
			return nil, invalid("Invalid NextToken.")
		}
		from = time.Unix(0, ns)
	}
	info, err := a.lookup(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	// The fragments that may hold the sampled times: those starting up to a
	// maximum fragment length before the range.
	type frag struct {
		index uint64
		start time.Time
		dur   time.Duration
	}
	var frags []frag
	err = a.store.Headers(info.Name, videoShard, kind, from.Add(-a.opts.MaxFragmentDuration).UnixNano(), to.UnixNano(), func(h streamstore.RecordHeader) bool {
		m, err := media.ParseFragmentMeta(h.PartitionKey)
		if err == nil {
			at := h.Arrival
			if kind == streamstore.ProducerTime {
				at = h.Producer
			}
			frags = append(frags, frag{h.Seq.Index, time.Unix(0, at), m.Duration})
		}
		return true
	})
	if err != nil {
		return nil, a.storeError(publicName(&info), err)
	}
	if len(frags) == 0 {
		return nil, notFound("No fragments found in the stream for the images request.")
	}
	out := struct {
		Images    []image `json:"Images"`
		NextToken string  `json:"NextToken,omitempty"`
	}{Images: []image{}}
	step := time.Duration(interval) * time.Millisecond
	t := from
	for ; t.Before(to) && len(out.Images) < limit; t = t.Add(step) {
		img := image{TimeStamp: awsapi.NewTimestamp(t)}
		// The fragment showing t: the last one starting at or before it. Server
		// timestamps are arrival times, so consecutive fragments may leave a
		// few hundred milliseconds between one's end and the next's start; a
		// time in such a seam shows the earlier fragment's last picture. A
		// longer gap (the camera was away) has no media.
		var f *frag
		for i := range frags {
			if !frags[i].start.After(t) {
				f = &frags[i]
			}
		}
		if f != nil && !t.Before(f.start.Add(f.dur+maxSeam)) {
			f = nil
		}
		if f == nil {
			img.Error = "NO_MEDIA"
			out.Images = append(out.Images, img)
			continue
		}
		init, body, err := a.fragmentParts(info.Name, f.index)
		if err == nil {
			var pic []byte
			at := min(t.Sub(f.start), max(f.dur-100*time.Millisecond, 0))
			pic, err = media.Snapshot(r.Context(), init, body, at, format, width, height, quality)
			if errors.Is(err, media.ErrNoDecoder) {
				return nil, &awsapi.Error{Code: awsapi.CodeServiceUnavailable, Message: err.Error(), Status: http.StatusServiceUnavailable}
			}
			if err == nil {
				img.ImageContent = base64.StdEncoding.EncodeToString(pic)
			}
		}
		if err != nil {
			a.opts.Logger.Debug("GetImages: no picture", "stream", publicName(&info), "at", t, "err", err)
			img.Error = "MEDIA_ERROR"
		}
		out.Images = append(out.Images, img)
	}
	if t.Before(to) {
		out.NextToken = strconv.FormatInt(t.UnixNano(), 10)
	}
	return out, nil
}

// fragmentParts reads a stored fragment's init segment and moof+mdat.
func (a *API) fragmentParts(name string, index uint64) ([]byte, []byte, error) {
	rec, _, ok, err := a.readFragment(name, index, nil)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, errExpired
	}
	meta, err := media.ParseFragmentMeta(rec.PartitionKey)
	if err != nil {
		return nil, nil, err
	}
	return media.SplitFragment(rec.Data, meta)
}
