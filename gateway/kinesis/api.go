package kinesis

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

// Options configure the Kinesis API.
type Options struct {
	Region  string // default us-east-1
	Account string // default 000000000000
	// ShardWriteLimit, when set, throttles each shard like AWS provisioned
	// shards (1000 records/s, 1 MiB/s) with ProvisionedThroughputExceededException.
	ShardWriteLimit *WriteLimit
	// StreamDiskBudget gives the disk budget of a stream created by name
	// (0: none); the API itself has no such field.
	StreamDiskBudget func(name string) int64
	Logger           *slog.Logger
	Metrics          *Metrics
	Now              func() time.Time
}

// WriteLimit is a per-shard write rate.
type WriteLimit struct {
	RecordsPerSecond int64
	BytesPerSecond   int64
}

// API serves Kinesis Data Streams.
type API struct {
	store   *streamstore.Store
	opts    Options
	iterKey []byte // HMAC key of shard iterators; new per process, like AWS's 5-minute iterators

	limitMu  sync.Mutex
	limiters map[string]*limiter

	subsMu sync.Mutex
	subs   map[string]*subscription // consumer ARN + shard -> the live SubscribeToShard
}

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
	key := make([]byte, 32)
	rand.Read(key)
	return &API{store: store, opts: opts, iterKey: key, limiters: map[string]*limiter{}, subs: map[string]*subscription{}}
}

// Service returns the operations for the awsapi mux.
func (a *API) Service() *awsapi.Service {
	svc := &awsapi.Service{Prefix: "Kinesis_20131202", SigningName: "kinesis", Action: "kinesis", Ops: map[string]awsapi.Op{
		"CreateStream":                  a.createStream,
		"DeleteStream":                  a.deleteStream,
		"DescribeStream":                a.describeStream,
		"DescribeStreamSummary":         a.describeStreamSummary,
		"ListStreams":                   a.listStreams,
		"ListShards":                    a.listShards,
		"PutRecord":                     a.putRecord,
		"PutRecords":                    a.putRecords,
		"GetShardIterator":              a.getShardIterator,
		"GetRecords":                    a.getRecords,
		"SplitShard":                    a.splitShard,
		"MergeShards":                   a.mergeShards,
		"UpdateShardCount":              a.updateShardCount,
		"IncreaseStreamRetentionPeriod": a.increaseRetention,
		"DecreaseStreamRetentionPeriod": a.decreaseRetention,
		"UpdateStreamMode":              a.updateStreamMode,
		"UpdateMaxRecordSize":           a.updateMaxRecordSize,
		"AddTagsToStream":               a.addTags,
		"RemoveTagsFromStream":          a.removeTags,
		"ListTagsForStream":             a.listTags,
		"TagResource":                   a.tagResource,
		"UntagResource":                 a.untagResource,
		"ListTagsForResource":           a.listTagsForResource,
		"DescribeLimits":                a.describeLimits,
		"RegisterStreamConsumer":        a.registerConsumer,
		"DeregisterStreamConsumer":      a.deregisterConsumer,
		"DescribeStreamConsumer":        a.describeConsumer,
		"ListStreamConsumers":           a.listConsumers,
		"SubscribeToShard":              a.subscribeToShard,
	}}
	if a.opts.Metrics != nil {
		svc.Observe = a.opts.Metrics.observeCall
	}
	return svc
}

func (a *API) streamARN(name string) string {
	return fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", a.opts.Region, a.opts.Account, name)
}

// nameFromARN extracts the stream name from a stream (or consumer) ARN.
func nameFromARN(arn string) (string, bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kinesis" || !strings.HasPrefix(parts[5], "stream/") {
		return "", false
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(parts[5], "stream/"), "/")
	return name, name != ""
}

// resolve returns the stream a request names by StreamName or StreamARN
// (or both, which must agree), once the caller is allowed to act on it.
func (a *API) resolve(r *awsapi.Request, ref streamRef) (string, error) {
	name, err := a.resolveName(ref)
	if err != nil {
		return "", err
	}
	return name, r.Authorize(a.streamARN(name))
}

func (a *API) resolveName(ref streamRef) (string, error) {
	var v awsapi.Validator
	if ref.StreamName != "" {
		validateStreamName(&v, "streamName", ref.StreamName)
	}
	if ref.StreamARN != "" {
		v.Length("streamARN", ref.StreamARN, 1, 2048)
	}
	if err := v.Err(); err != nil {
		return "", err
	}
	name := ref.StreamName
	if ref.StreamARN != "" {
		fromARN, ok := nameFromARN(ref.StreamARN)
		if !ok {
			return "", awsapi.Errorf(awsapi.CodeInvalidArgument, "Invalid StreamARN %s.", ref.StreamARN)
		}
		if name != "" && name != fromARN {
			return "", awsapi.Errorf(awsapi.CodeInvalidArgument, "StreamName %s and StreamARN %s do not name the same stream.", name, ref.StreamARN)
		}
		name = fromARN
	}
	if name == "" {
		return "", awsapi.Errorf(awsapi.CodeValidation, "Either StreamName or StreamARN must be provided.")
	}
	return name, nil
}

func validateStreamName(v *awsapi.Validator, field, name string) {
	v.Length(field, name, 1, 128)
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			v.Fail(field, name, "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+")
			return
		}
	}
}

// stream fetches a stream's description, as a Kinesis error when missing.
func (a *API) stream(name string) (streamstore.StreamInfo, error) {
	info, err := a.store.Stream(name)
	if err != nil {
		return info, a.storeError(name, err)
	}
	return info, nil
}

// limits fetches what the data path needs of a stream (no copy of its shards).
func (a *API) limits(name string) (streamstore.Limits, error) {
	l, err := a.store.StreamLimits(name)
	if err != nil {
		return l, a.storeError(name, err)
	}
	return l, nil
}

// storeError translates store errors to Kinesis errors: the one table of it.
func (a *API) storeError(name string, err error) error {
	var ae *awsapi.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		return err
	case errors.Is(err, streamstore.ErrNotFound):
		if strings.Contains(err.Error(), "shard") {
			return awsapi.Errorf(awsapi.CodeResourceNotFound, "Could not find shard %s in stream %s under account %s.", shardOf(err), name, a.opts.Account)
		}
		return awsapi.Errorf(awsapi.CodeResourceNotFound, "Stream %s under account %s not found.", name, a.opts.Account)
	case errors.Is(err, streamstore.ErrExists):
		return awsapi.Errorf(awsapi.CodeResourceInUse, "Stream %s under account %s already exists.", name, a.opts.Account)
	case errors.Is(err, streamstore.ErrShardClosed):
		return awsapi.Errorf(awsapi.CodeResourceInUse, "%s in stream %s under account %s has already been merged or split, and thus is not eligible for merging or splitting.", shardOf(err), name, a.opts.Account)
	case errors.Is(err, streamstore.ErrInvalid), errors.Is(err, streamstore.ErrTrimmed):
		return awsapi.Errorf(awsapi.CodeInvalidArgument, "%s.", sentence(err))
	case errors.Is(err, streamstore.ErrLimit):
		return awsapi.Errorf(awsapi.CodeLimitExceeded, "%s.", sentence(err))
	case errors.Is(err, streamstore.ErrNoSpace):
		return awsapi.Errorf(codeThroughput, "Rate exceeded for stream %s under account %s: the gateway's disk is full or its disk budget is reached.", name, a.opts.Account)
	case errors.Is(err, streamstore.ErrFaulted), errors.Is(err, streamstore.ErrClosed):
		return &awsapi.Error{Code: "InternalFailureException", Message: err.Error(), Status: http.StatusInternalServerError}
	}
	return err
}

// sentence turns a store error into AWS-style prose: capitalised, without
// the sentinel's suffix.
func sentence(err error) string {
	msg := err.Error()
	for _, s := range []error{streamstore.ErrInvalid, streamstore.ErrTrimmed, streamstore.ErrLimit} {
		msg = strings.TrimSuffix(msg, ": "+s.Error())
	}
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	return msg
}

// shardOf digs the shard id out of a store error message, for AWS-style text.
func shardOf(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "shardId-"); i >= 0 {
		end := i + len("shardId-000000000000")
		if end <= len(msg) {
			return msg[i:end]
		}
	}
	return "shard"
}

const (
	codeThroughput      = "ProvisionedThroughputExceededException"
	codeExpiredIterator = "ExpiredIteratorException"
	codeExpiredToken    = "ExpiredNextTokenException"
)

func streamMode(info *streamstore.StreamInfo) streamModeDetails {
	if info.OnDemand {
		return streamModeDetails{"ON_DEMAND"}
	}
	return streamModeDetails{"PROVISIONED"}
}

func (a *API) shardShape(s streamstore.ShardInfo) shard {
	out := shard{
		ShardId:               s.ID,
		ParentShardId:         s.Parent,
		AdjacentParentShardId: s.AdjacentParent,
		HashKeyRange:          hashKeyRange{s.HashStart.String(), s.HashEnd.String()},
		SequenceNumberRange:   sequenceNumberRange{StartingSequenceNumber: s.StartSeq().String()},
	}
	if s.Closed {
		out.SequenceNumberRange.EndingSequenceNumber = s.EndSeq().String()
	}
	return out
}

// childShards lists the children of a closed shard.
func childShards(info *streamstore.StreamInfo, parent string) []childShard {
	var out []childShard
	for _, s := range info.Shards {
		if s.Parent == parent || s.AdjacentParent == parent {
			parents := []string{s.Parent}
			if s.AdjacentParent != "" {
				parents = append(parents, s.AdjacentParent)
			}
			out = append(out, childShard{s.ID, parents, hashKeyRange{s.HashStart.String(), s.HashEnd.String()}})
		}
	}
	return out
}
