package kvs

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/media"
	"github.com/streamgate/streamgate/streamstore"
)

// The shard every video stream has.
var videoShard = streamstore.ShardID(0)

// EnsureStream creates a video stream for a configured pull source, with the
// auto-create retention, unless it exists: its DescribeStream then shows the
// source's state before the camera ever answers.
func (a *API) EnsureStream(name string) error {
	if !validStreamName(name) {
		return fmt.Errorf("video source %q: not a valid stream name", name)
	}
	_, err := a.create(name, a.opts.AutoRetentionHours, map[string]string{labelMediaType: "", labelStorageTier: "HOT"}, nil)
	if errors.Is(err, streamstore.ErrExists) {
		return nil
	}
	return err
}

// Prepare implements media.Sink: the stream a publisher starts on must exist,
// or is created when the configuration allows.
func (a *API) Prepare(name string) (media.StreamSettings, error) {
	if _, err := a.store.Stream(namespace + name); err != nil {
		if !errors.Is(err, streamstore.ErrNotFound) {
			return media.StreamSettings{}, err
		}
		if !a.opts.AutoCreate {
			return media.StreamSettings{}, fmt.Errorf("%w: %s (publishing does not create streams)", media.ErrStreamNotFound, name)
		}
		if !validStreamName(name) {
			return media.StreamSettings{}, fmt.Errorf("%w: %q is not a valid stream name", media.ErrStreamNotFound, name)
		}
		_, err := a.create(name, a.opts.AutoRetentionHours, map[string]string{labelMediaType: "", labelStorageTier: "HOT"}, nil)
		if err != nil && !errors.Is(err, streamstore.ErrExists) {
			return media.StreamSettings{}, err
		}
		a.opts.Logger.Info("video stream created by its publisher", "stream", name, "retention_hours", a.opts.AutoRetentionHours)
	}
	d := a.opts.FragmentDuration
	if sd, ok := a.opts.StreamFragmentDurations[name]; ok {
		d = sd
	}
	return media.StreamSettings{FragmentDuration: d, MaxFragmentDuration: a.opts.MaxFragmentDuration}, nil
}

func validStreamName(name string) bool {
	var v awsapi.Validator
	validateName(&v, "StreamName", name)
	return v.Err() == nil
}

// Begin implements media.Sink: a fragment is a record of the stream's one
// shard, written as it is cut; its sequence number is the fragment number.
func (a *API) Begin(name string, f *media.Fragment) (media.FragmentWriter, error) {
	w, err := a.store.BeginRecord(namespace+name, videoShard, f.Producer.UnixNano(), f.Server.UnixNano(), media.MaxFragmentKey)
	if err != nil {
		return nil, err
	}
	return fragmentWriter{w}, nil
}

// fragmentWriter stores a fragment's metadata as its record's key.
type fragmentWriter struct{ *streamstore.RecordWriter }

func (w fragmentWriter) Commit(f *media.Fragment) (string, error) {
	res, err := w.RecordWriter.Commit(f.Meta().Key())
	if err != nil {
		return "", err
	}
	return res.Seq.String(), nil
}

type fragment struct {
	FragmentNumber               string            `json:"FragmentNumber"`
	FragmentSizeInBytes          int64             `json:"FragmentSizeInBytes"`
	ProducerTimestamp            *awsapi.Timestamp `json:"ProducerTimestamp"`
	ServerTimestamp              *awsapi.Timestamp `json:"ServerTimestamp"`
	FragmentLengthInMilliseconds int64             `json:"FragmentLengthInMilliseconds"`
}

type timestampRange struct {
	StartTimestamp *awsapi.Timestamp `json:"StartTimestamp"`
	EndTimestamp   *awsapi.Timestamp `json:"EndTimestamp"`
}

type fragmentSelector struct {
	FragmentSelectorType string          `json:"FragmentSelectorType"`
	TimestampRange       *timestampRange `json:"TimestampRange"`
}

// listToken continues a listing: the range and the last fragment returned.
type listToken struct {
	producer bool
	from, to int64
	after    uint64
}

func (t listToken) encode() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%t %d %d %d", t.producer, t.from, t.to, t.after))
}

func decodeListToken(s string) (listToken, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return listToken{}, false
	}
	var t listToken
	_, err = fmt.Sscanf(string(b), "%t %d %d %d", &t.producer, &t.from, &t.to, &t.after)
	return t, err == nil
}

func (a *API) listFragments(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		MaxResults       *int              `json:"MaxResults"`
		NextToken        string            `json:"NextToken"`
		FragmentSelector *fragmentSelector `json:"FragmentSelector"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	limit := v.Optional("MaxResults", in.MaxResults, 1000, 1, 1000)
	tok := listToken{from: math.MinInt64, to: math.MaxInt64}
	if s := in.FragmentSelector; s != nil {
		switch s.FragmentSelectorType {
		case "PRODUCER_TIMESTAMP":
			tok.producer = true
		case "SERVER_TIMESTAMP":
		default:
			v.Fail("FragmentSelector.FragmentSelectorType", s.FragmentSelectorType, "Member must satisfy enum value set: [PRODUCER_TIMESTAMP, SERVER_TIMESTAMP]")
		}
		if s.TimestampRange == nil || s.TimestampRange.StartTimestamp == nil || s.TimestampRange.EndTimestamp == nil {
			v.Required("FragmentSelector.TimestampRange.StartTimestamp/EndTimestamp", false)
		} else {
			tok.from, tok.to = s.TimestampRange.StartTimestamp.UnixNano(), s.TimestampRange.EndTimestamp.UnixNano()
		}
	}
	if err := validation(&v); err != nil {
		return nil, err
	}
	if tok.from > tok.to {
		return nil, invalid("The StartTimestamp must be before the EndTimestamp.")
	}
	if in.NextToken != "" {
		t, ok := decodeListToken(in.NextToken)
		if !ok {
			return nil, invalid("Invalid NextToken.")
		}
		tok = t
	}
	info, err := a.lookup(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	out := struct {
		Fragments []fragment `json:"Fragments"`
		NextToken string     `json:"NextToken,omitempty"`
	}{Fragments: []fragment{}}
	kind, from := streamstore.ArrivalTime, tok.from
	if tok.producer {
		kind = streamstore.ProducerTime
	}
	var last uint64
	more := false
	err = a.store.Headers(info.Name, videoShard, kind, from, tok.to, func(h streamstore.RecordHeader) bool {
		if tok.after != 0 && h.Seq.Index <= tok.after {
			return true
		}
		if len(out.Fragments) == limit {
			more = true
			return false
		}
		out.Fragments = append(out.Fragments, toFragment(h))
		last = h.Seq.Index
		return true
	})
	if err != nil {
		return nil, a.storeError(publicName(&info), err)
	}
	if more {
		tok.after = last
		out.NextToken = tok.encode()
	}
	return out, nil
}

func toFragment(h streamstore.RecordHeader) fragment {
	meta, _ := media.ParseFragmentMeta(h.PartitionKey)
	return fragment{
		FragmentNumber: h.Seq.String(), FragmentSizeInBytes: int64(h.Size),
		ProducerTimestamp: awsapi.FromUnixNano(h.Producer), ServerTimestamp: awsapi.FromUnixNano(h.Arrival),
		FragmentLengthInMilliseconds: meta.Duration.Milliseconds(),
	}
}

// parseFragmentNumber checks that a fragment number belongs to the stream's shard.
func parseFragmentNumber(s string) (streamstore.Seq, error) {
	seq, err := streamstore.ParseSeq(s)
	if err != nil || seq.Shard != 0 || seq.Gen != 0 || seq.Index == 0 {
		return seq, invalid("Invalid fragment number %q.", s)
	}
	return seq, nil
}

// epochMillis formats a time the way the KVS Matroska tags do: seconds with milliseconds.
func epochMillis(ns int64) string {
	ms := ns / 1e6
	return strconv.FormatInt(ms/1000, 10) + "." + fmt.Sprintf("%03d", ms%1000)
}

// readFragment reads one fragment record into buf (grown when too small;
// the record aliases what it returns); ok is false when the fragment is
// gone.
func (a *API) readFragment(name string, index uint64, buf []byte) (rec streamstore.Record, _ []byte, ok bool, err error) {
	rec, buf, err = a.store.ReadRecord(name, videoShard, index, buf)
	if errors.Is(err, streamstore.ErrNotFound) {
		return rec, buf, false, nil
	}
	return rec, buf, err == nil, err
}

// writeFragment writes one fragment record as Matroska with tags.
func writeFragment(mw *media.MKVWriter, rec streamstore.Record, tags []media.MKVTag) error {
	meta, err := media.ParseFragmentMeta(rec.PartitionKey)
	if err != nil {
		return fmt.Errorf("fragment %s: %w", rec.Seq, err)
	}
	init, body, err := media.SplitFragment(rec.Data, meta)
	if err != nil {
		return fmt.Errorf("fragment %s: %w", rec.Seq, err)
	}
	return mw.WriteFragment(init, body, meta.Discontinuity, tags)
}

func (a *API) getMediaForFragmentList(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		Fragments []string `json:"Fragments"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	if len(in.Fragments) == 0 {
		v.Required("Fragments", false)
	}
	if len(in.Fragments) > 1000 {
		v.Fail("Fragments", len(in.Fragments), "Member must have length less than or equal to 1000")
	}
	if err := validation(&v); err != nil {
		return nil, err
	}
	info, err := a.lookup(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	seqs := make([]streamstore.Seq, len(in.Fragments))
	for i, s := range in.Fragments {
		if seqs[i], err = parseFragmentNumber(s); err != nil {
			return nil, err
		}
	}
	// Every fragment must exist before the response starts: an error can
	// only be an AWS error body while nothing has been written.
	first, err := a.store.Seek(info.Name, videoShard, streamstore.Position{Type: streamstore.TrimHorizon})
	if err != nil {
		return nil, a.storeError(publicName(&info), err)
	}
	end, err := a.store.Seek(info.Name, videoShard, streamstore.Position{Type: streamstore.Latest})
	if err != nil {
		return nil, a.storeError(publicName(&info), err)
	}
	for i, s := range seqs {
		if s.Index < first || s.Index >= end {
			return nil, notFound("Fragment %s of stream %s was not found (it may have expired).", in.Fragments[i], publicName(&info))
		}
	}
	w := r.W
	w.Header().Set("Content-Type", "video/webm")
	w.WriteHeader(200)
	bw := bufio.NewWriterSize(w, responseBuffer)
	defer bw.Flush()
	mw := media.NewMKVWriter(bw)
	var buf []byte // one fragment at a time: reused
	for _, s := range seqs {
		var rec streamstore.Record
		var ok bool
		rec, buf, ok, err = a.readFragment(info.Name, s.Index, buf)
		if err == nil && !ok {
			err = errors.New("expired while being read")
		}
		if err == nil {
			err = writeFragment(mw, rec, []media.MKVTag{
				{Name: "AWS_KINESISVIDEO_FRAGMENT_NUMBER", Value: rec.Seq.String()},
				{Name: "AWS_KINESISVIDEO_SERVER_SIDE_TIMESTAMP", Value: epochMillis(rec.Arrival)},
				{Name: "AWS_KINESISVIDEO_PRODUCER_SIDE_TIMESTAMP", Value: epochMillis(rec.Producer)},
			})
		}
		if err != nil {
			a.opts.Logger.Warn("GetMediaForFragmentList stopped", "stream", publicName(&info), "fragment", s, "err", err)
			return awsapi.Streamed, nil // the client sees a truncated stream, as on AWS
		}
	}
	return awsapi.Streamed, nil
}

// responseBuffer gathers the many small writes of a media response (a
// Matroska block header, then its sample) into few large ones.
const responseBuffer = 256 << 10

// GetMedia streams a stream's fragments as Matroska from a start position,
// then follows new fragments until the client goes away.
func (a *API) getMedia(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		StartSelector *struct {
			StartSelectorType   string            `json:"StartSelectorType"`
			AfterFragmentNumber string            `json:"AfterFragmentNumber"`
			StartTimestamp      *awsapi.Timestamp `json:"StartTimestamp"`
			ContinuationToken   string            `json:"ContinuationToken"`
		} `json:"StartSelector"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if in.StartSelector == nil {
		var v awsapi.Validator
		v.Required("StartSelector", false)
		return nil, validation(&v)
	}
	info, err := a.lookup(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	name := info.Name
	sel := in.StartSelector
	var pos uint64
	switch sel.StartSelectorType {
	case "NOW":
		pos, err = a.store.Seek(name, videoShard, streamstore.Position{Type: streamstore.Latest})
	case "EARLIEST":
		pos, err = a.store.Seek(name, videoShard, streamstore.Position{Type: streamstore.TrimHorizon})
	case "FRAGMENT_NUMBER", "CONTINUATION_TOKEN":
		n := sel.AfterFragmentNumber
		if sel.StartSelectorType == "CONTINUATION_TOKEN" {
			n = sel.ContinuationToken
		}
		var s streamstore.Seq
		if s, err = parseFragmentNumber(n); err != nil {
			return nil, err
		}
		pos = s.Index + 1
	case "SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP":
		if sel.StartTimestamp == nil {
			return nil, invalid("StartTimestamp is required for StartSelectorType %s.", sel.StartSelectorType)
		}
		if sel.StartSelectorType == "SERVER_TIMESTAMP" {
			pos, err = a.store.Seek(name, videoShard, streamstore.Position{Type: streamstore.AtTimestamp, Time: sel.StartTimestamp.Time})
			break
		}
		pos, err = a.store.Seek(name, videoShard, streamstore.Position{Type: streamstore.Latest})
		from := sel.StartTimestamp.UnixNano()
		if err == nil {
			err = a.store.Headers(name, videoShard, streamstore.ProducerTime, from, math.MaxInt64, func(h streamstore.RecordHeader) bool {
				pos = h.Seq.Index
				return false
			})
		}
	default:
		var v awsapi.Validator
		v.Fail("StartSelector.StartSelectorType", sel.StartSelectorType, "Member must satisfy enum value set: [FRAGMENT_NUMBER, SERVER_TIMESTAMP, PRODUCER_TIMESTAMP, NOW, EARLIEST, CONTINUATION_TOKEN]")
		return nil, validation(&v)
	}
	if err != nil {
		return nil, a.storeError(publicName(&info), err)
	}
	if !a.acquireReader(name) {
		return nil, awsapi.Errorf("ConnectionLimitExceededException", "Too many GetMedia connections to stream %s (limit %d).", publicName(&info), maxReadersPerStream)
	}
	defer a.releaseReader(name)
	w := r.W
	w.Header().Set("Content-Type", "video/webm")
	w.WriteHeader(200)
	bw := bufio.NewWriterSize(w, responseBuffer)
	flush := func() {
		bw.Flush()
		if f, ok := w.(interface{ Flush() }); ok {
			f.Flush()
		}
	}
	flush()
	mw := media.NewMKVWriter(bw)
	ctx := r.Context()
	var buf []byte // one fragment at a time: reused
	for {
		changed, err := a.store.Changed(name, videoShard)
		if err != nil {
			return awsapi.Streamed, nil // the stream was deleted
		}
		var rec streamstore.Record
		var ok bool
		rec, buf, ok, err = a.readFragment(name, pos, buf)
		if err != nil {
			a.opts.Logger.Warn("GetMedia read failed", "stream", publicName(&info), "err", err)
			return awsapi.Streamed, nil
		}
		if !ok {
			// Expired while the reader was behind: go on from the oldest kept.
			// Else not written yet: wait for it.
			first, err := a.store.Seek(name, videoShard, streamstore.Position{Type: streamstore.TrimHorizon})
			if err != nil {
				return awsapi.Streamed, nil // the stream was deleted
			}
			if pos < first {
				pos = first
				continue
			}
			select {
			case <-ctx.Done():
				return awsapi.Streamed, nil
			case <-changed:
			}
			continue
		}
		behind := a.opts.Now().Sub(time.Unix(0, rec.Arrival)).Milliseconds()
		err = writeFragment(mw, rec, []media.MKVTag{
			{Name: "AWS_KINESISVIDEO_FRAGMENT_NUMBER", Value: rec.Seq.String()},
			{Name: "AWS_KINESISVIDEO_SERVER_TIMESTAMP", Value: epochMillis(rec.Arrival)},
			{Name: "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", Value: epochMillis(rec.Producer)},
			{Name: "AWS_KINESISVIDEO_CONTINUATION_TOKEN", Value: rec.Seq.String()},
			{Name: "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", Value: strconv.FormatInt(max(behind, 0), 10)},
		})
		if err != nil {
			if ctx.Err() == nil && !isClientGone(err) {
				a.opts.Logger.Warn("GetMedia stopped", "stream", publicName(&info), "err", err)
			}
			return awsapi.Streamed, nil
		}
		flush()
		pos = rec.Seq.Index + 1
	}
}

func isClientGone(err error) bool {
	s := err.Error()
	return strings.Contains(s, "broken pipe") || strings.Contains(s, "connection reset") || strings.Contains(s, "closed")
}

// Concurrent GetMedia readers per stream, as AWS limits connections.
const maxReadersPerStream = 10

func (a *API) acquireReader(name string) bool {
	a.readersMu.Lock()
	defer a.readersMu.Unlock()
	if a.readers == nil {
		a.readers = map[string]int{}
	}
	if a.readers[name] >= maxReadersPerStream {
		return false
	}
	a.readers[name]++
	return true
}

func (a *API) releaseReader(name string) {
	a.readersMu.Lock()
	defer a.readersMu.Unlock()
	a.readers[name]--
	if a.readers[name] == 0 {
		delete(a.readers, name)
	}
}
