// Package kvs serves the Kinesis Video Streams APIs (control plane, media and
// archived media, REST-JSON) over the fragment store, and is the media
// server's sink: fragments from cameras become records of video streams.
package kvs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/media"
	"github.com/streamgate/streamgate/streamstore"
)

// Options configure the API.
type Options struct {
	Region  string
	Account string
	// AutoCreate lets a publisher create the stream it publishes to, with
	// AutoRetentionHours of retention.
	AutoCreate         bool
	AutoRetentionHours int
	// FragmentDuration and MaxFragmentDuration are the defaults of new streams.
	FragmentDuration    time.Duration
	MaxFragmentDuration time.Duration
	// StreamFragmentDurations overrides FragmentDuration by stream name.
	StreamFragmentDurations map[string]time.Duration
	// MaxFragmentBytes is the largest fragment a stream stores (default 50 MiB).
	MaxFragmentBytes int
	// SessionKey signs playback session URLs (HLS); the gateway keeps it in
	// its data directory so URLs survive a restart. Random when empty.
	SessionKey []byte
	// StreamDiskBudget gives the disk budget of a stream by name (0: none).
	StreamDiskBudget func(name string) int64
	Logger           *slog.Logger
	Now              func() time.Time
}

// LiveState is what the API asks the media server.
type LiveState interface {
	IsLive(stream string) bool
	SourceStates() map[string]media.SourceState
	// LowLatencyHLS returns a stream's Low-Latency HLS state (nil: none): its
	// publisher's, or for a while its last publisher's.
	LowLatencyHLS(stream string) *media.LLHLS
}

// API serves Kinesis Video Streams.
type API struct {
	store *streamstore.Store
	opts  Options
	// mu serializes control-plane changes that read, check and write a
	// stream's metadata (versions).
	mu sync.Mutex

	readersMu sync.Mutex
	readers   map[string]int // GetMedia connections per stream

	live LiveState // nil until SetLive
}

// SetLive connects the API to the media server, so DescribeStream can show
// a stream's publisher and pull source.
func (a *API) SetLive(l LiveState) { a.live = l }

// StreamARN is the ARN a caller's policy is checked against for a stream by
// name: the stream's own when it exists, else one whose creation part is "*".
func (a *API) StreamARN(name string) string {
	if info, err := a.store.Stream(namespace + name); err == nil {
		return a.streamARN(&info)
	}
	return a.resourceARN(name)
}

// Store namespace of video streams: a video stream and a data stream may
// share a name, as on AWS.
const namespace = "video/"

// Limits of the API (AWS's where it has them).
const (
	MaxRetentionHours       = 87600
	DefaultMaxFragmentBytes = 50 << 20
	maxTags                 = 50
)

// New makes the API over a store.
func New(store *streamstore.Store, opts Options) *API {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "000000000000"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.SessionKey) == 0 {
		opts.SessionKey = make([]byte, 32)
		rand.Read(opts.SessionKey)
	}
	if opts.MaxFragmentBytes <= 0 {
		opts.MaxFragmentBytes = DefaultMaxFragmentBytes
	}
	if opts.FragmentDuration <= 0 {
		opts.FragmentDuration = media.DefaultFragmentDuration
	}
	if opts.MaxFragmentDuration <= 0 {
		opts.MaxFragmentDuration = media.DefaultMaxFragmentDuration
	}
	return &API{store: store, opts: opts}
}

// Service is the REST-JSON service: the control plane, kinesis-video-media
// and kinesis-video-archived-media share one host and one signing name.
func (a *API) Service() *awsapi.Service {
	ops := map[string]awsapi.Op{
		"CreateStream":               a.createStream,
		"DescribeStream":             a.describeStream,
		"ListStreams":                a.listStreams,
		"DeleteStream":               a.deleteStream,
		"UpdateStream":               a.updateStream,
		"UpdateDataRetention":        a.updateDataRetention,
		"TagStream":                  a.tagStream,
		"UntagStream":                a.untagStream,
		"ListTagsForStream":          a.listTagsForStream,
		"TagResource":                a.tagResource,
		"UntagResource":              a.untagResource,
		"ListTagsForResource":        a.listTagsForResource,
		"GetDataEndpoint":            a.getDataEndpoint,
		"ListFragments":              a.listFragments,
		"GetMediaForFragmentList":    a.getMediaForFragmentList,
		"GetMedia":                   a.getMedia,
		"GetHLSStreamingSessionURL":  a.getHLSStreamingSessionURL,
		"GetClip":                    a.getClip,
		"GetImages":                  a.getImages,
		"GetDASHStreamingSessionURL": a.getDASHStreamingSessionURL,
	}
	paths := map[string]string{}
	for op := range ops {
		path := "/" + strings.ToLower(op[:1]) + op[1:]
		if strings.HasSuffix(op, "Resource") {
			path = "/" + op // the tagging operations keep their capital letter
		}
		paths[path] = op
	}
	return &awsapi.Service{Prefix: "KinesisVideo", Paths: paths, SigningName: "kinesisvideo", Action: "kinesisvideo", Ops: ops}
}

// Error codes of Kinesis Video Streams.
const (
	codeNotFound      = "ResourceNotFoundException"
	codeInUse         = "ResourceInUseException"
	codeInvalidArg    = "InvalidArgumentException"
	codeVersion       = "VersionMismatchException"
	codeClientLimit   = "ClientLimitExceededException"
	codeTagLimit      = "TagsPerResourceExceededLimitException"
	codeInvalidFormat = "InvalidResourceFormatException"
	codeNoData        = "NoDataRetentionException"
)

func notFound(format string, args ...any) error {
	return &awsapi.Error{Code: codeNotFound, Message: fmt.Sprintf(format, args...), Status: http.StatusNotFound}
}

func invalid(format string, args ...any) error {
	return awsapi.Errorf(codeInvalidArg, format, args...)
}

// validation turns collected constraint violations into the
// InvalidArgumentException that Kinesis Video uses for them.
func validation(v *awsapi.Validator) error {
	err := v.Err()
	var ae *awsapi.Error
	if errors.As(err, &ae) {
		ae.Code = codeInvalidArg
	}
	return err
}

// ARN of a stream: arn:aws:kinesisvideo:<region>:<account>:stream/<name>/<creation ms>.
func (a *API) streamARN(info *streamstore.StreamInfo) string {
	return fmt.Sprintf("arn:aws:kinesisvideo:%s:%s:stream/%s/%d", a.opts.Region, a.opts.Account, publicName(info), info.Created.UnixMilli())
}

// resourceARN is what a caller's policy is checked against before the
// stream is known (or when it does not exist): the ARN without its creation time.
func (a *API) resourceARN(name string) string {
	return fmt.Sprintf("arn:aws:kinesisvideo:%s:%s:stream/%s/*", a.opts.Region, a.opts.Account, name)
}

func publicName(info *streamstore.StreamInfo) string {
	return strings.TrimPrefix(info.Name, namespace)
}

// streamRef is how requests name a stream.
type streamRef struct {
	StreamName string `json:"StreamName"`
	StreamARN  string `json:"StreamARN"`
}

// parseARN returns the stream name and creation ms of a KVS stream ARN.
func parseARN(arn string) (string, int64, bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kinesisvideo" || !strings.HasPrefix(parts[5], "stream/") {
		return "", 0, false
	}
	name, created, ok := strings.Cut(strings.TrimPrefix(parts[5], "stream/"), "/")
	ms, err := strconv.ParseInt(created, 10, 64)
	if !ok || err != nil || name == "" {
		return "", 0, false
	}
	return name, ms, true
}

// lookup resolves a request's stream reference and authorizes the caller on
// it. A missing stream is ResourceNotFoundException, after authorization, so
// a caller learns nothing about streams it may not touch.
func (a *API) lookup(r *awsapi.Request, ref streamRef) (streamstore.StreamInfo, error) {
	name, ms := ref.StreamName, int64(-1)
	if ref.StreamARN != "" {
		n, created, ok := parseARN(ref.StreamARN)
		if !ok {
			return streamstore.StreamInfo{}, awsapi.Errorf(codeInvalidFormat, "Invalid stream ARN %q.", ref.StreamARN)
		}
		if name != "" && name != n {
			return streamstore.StreamInfo{}, invalid("StreamName %s and StreamARN %s do not name the same stream.", name, ref.StreamARN)
		}
		name, ms = n, created
	}
	if name == "" {
		return streamstore.StreamInfo{}, invalid("Either StreamName or StreamARN must be provided.")
	}
	var v awsapi.Validator
	validateName(&v, "StreamName", name)
	if err := validation(&v); err != nil {
		return streamstore.StreamInfo{}, err
	}
	info, err := a.store.Stream(namespace + name)
	if err != nil {
		if authErr := r.Authorize(a.resourceARN(name)); authErr != nil {
			return info, authErr
		}
		return info, a.storeError(name, err)
	}
	if err := r.Authorize(a.streamARN(&info)); err != nil {
		return info, err
	}
	if ms >= 0 && ms != info.Created.UnixMilli() {
		return info, notFound("The requested stream %s is not found or not active.", ref.StreamARN)
	}
	return info, nil
}

func validateName(v *awsapi.Validator, field, name string) {
	v.Length(field, name, 1, 256)
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			v.Fail(field, name, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
			return
		}
	}
}

// storeError maps store failures to Kinesis Video errors.
func (a *API) storeError(name string, err error) error {
	var ae *awsapi.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		return err
	case errors.Is(err, streamstore.ErrNotFound):
		return notFound("The requested stream %s is not found or not active.", name)
	case errors.Is(err, streamstore.ErrExists):
		return awsapi.Errorf(codeInUse, "The stream %s already exists.", name)
	case errors.Is(err, streamstore.ErrInvalid), errors.Is(err, streamstore.ErrTrimmed):
		return invalid("%v", err)
	case errors.Is(err, streamstore.ErrNoSpace):
		return awsapi.Errorf(codeClientLimit, "The gateway's disk is full or the stream's disk budget is reached.")
	}
	return err
}

// labels kept on a video stream's store entry.
const (
	labelMediaType   = "kvs.media_type"
	labelDevice      = "kvs.device_name"
	labelKMS         = "kvs.kms_key_id"
	labelVersion     = "kvs.version"
	labelFragment    = "kvs.fragment_duration"
	labelStorageTier = "kvs.storage_tier"
)

func newVersion() string {
	var b [10]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
