package kvs

import (
	"bufio"
	"errors"
	"io"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/media"
	"github.com/streamgate/streamgate/streamstore"
)

// Limits of GetClip, as AWS's.
const (
	maxClipFragments = 200
	maxClipBytes     = 100 << 20
)

// getClip answers an MP4 (moov first) of the fragments in a time range. The
// clip is planned from the fragments' sample tables and written as it is
// read: no copy of the whole clip is held.
func (a *API) getClip(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		ClipFragmentSelector *struct {
			FragmentSelectorType string          `json:"FragmentSelectorType"`
			TimestampRange       *timestampRange `json:"TimestampRange"`
		} `json:"ClipFragmentSelector"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	sel := in.ClipFragmentSelector
	if sel == nil || sel.TimestampRange == nil || sel.TimestampRange.StartTimestamp == nil || sel.TimestampRange.EndTimestamp == nil {
		v.Required("ClipFragmentSelector.TimestampRange.StartTimestamp/EndTimestamp", false)
		return nil, validation(&v)
	}
	kind := streamstore.ArrivalTime
	switch sel.FragmentSelectorType {
	case "SERVER_TIMESTAMP":
	case "PRODUCER_TIMESTAMP":
		kind = streamstore.ProducerTime
	default:
		v.Fail("ClipFragmentSelector.FragmentSelectorType", sel.FragmentSelectorType, "Member must satisfy enum value set: [PRODUCER_TIMESTAMP, SERVER_TIMESTAMP]")
		return nil, validation(&v)
	}
	from, to := sel.TimestampRange.StartTimestamp.UnixNano(), sel.TimestampRange.EndTimestamp.UnixNano()
	if from >= to {
		return nil, invalid("The StartTimestamp must be before the EndTimestamp.")
	}
	info, err := a.lookup(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	// The fragments that start in the range, up to AWS's limits.
	var indexes []uint64
	size := 0
	err = a.store.Headers(info.Name, videoShard, kind, from, to-1, func(h streamstore.RecordHeader) bool {
		if len(indexes) == maxClipFragments || size+h.Size > maxClipBytes {
			return false
		}
		indexes = append(indexes, h.Seq.Index)
		size += h.Size
		return true
	})
	if err != nil {
		return nil, a.storeError(publicName(&info), err)
	}
	if len(indexes) == 0 {
		return nil, notFound("No fragments found in the stream for the clip request.")
	}
	clip, err := media.PlanClip(indexes, media.FragmentReader{
		Read: func(index uint64) ([]byte, []byte, error) { return a.fragmentParts(info.Name, index) },
		Open: func(index uint64) ([]byte, *io.SectionReader, error) { return a.openFragment(info.Name, index) },
	})
	if err != nil {
		return nil, invalid("The fragments of the range cannot be joined into one clip: %v", err)
	}
	r.W.Header().Set("Content-Type", "video/mp4")
	r.W.WriteHeader(200)
	bw := bufio.NewWriterSize(r.W, responseBuffer)
	err = clip.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		a.opts.Logger.Warn("GetClip stopped", "stream", publicName(&info), "err", err)
	}
	return awsapi.Streamed, nil
}

var errExpired = notFound("A fragment expired while it was being read.")

// openFragment reads a fragment's init segment and opens its moof+mdat
// chunks for reading in ranges.
func (a *API) openFragment(name string, index uint64) ([]byte, *io.SectionReader, error) {
	h, data, err := a.store.RecordData(name, videoShard, index)
	if err != nil {
		return nil, nil, err
	}
	meta, err := media.ParseFragmentMeta(h.PartitionKey)
	if err != nil {
		return nil, nil, err
	}
	if int64(meta.InitSize) > data.Size() {
		return nil, nil, errors.New("fragment data does not match its metadata")
	}
	init := make([]byte, meta.InitSize)
	if _, err := data.ReadAt(init, 0); err != nil {
		return nil, nil, err
	}
	return init, io.NewSectionReader(data, int64(meta.InitSize), data.Size()-int64(meta.InitSize)), nil
}
