package kinesis

import (
	"encoding/base64"
	"sort"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

// Account-level limits, as AWS's defaults.
const (
	shardLimit         = 10000
	onDemandLimit      = 50
	onDemandShards     = 4
	maxTagsPerStream   = 50
	maxTagsPerCall     = 10
	minRecordKiB       = 1024
	maxRecordKiB       = 10240
	maxConsumersStream = 20
)

func (a *API) createStream(r *awsapi.Request) (any, error) {
	var in createStreamInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("streamName", in.StreamName != "")
	if in.StreamName != "" {
		validateStreamName(&v, "streamName", in.StreamName)
	}
	onDemand := false
	if in.StreamModeDetails != nil {
		switch in.StreamModeDetails.StreamMode {
		case "ON_DEMAND":
			onDemand = true
		case "PROVISIONED":
		default:
			v.Fail("streamModeDetails.streamMode", in.StreamModeDetails.StreamMode, "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]")
		}
	}
	if in.ShardCount != nil {
		v.Range("shardCount", int64(*in.ShardCount), 1, 100000)
	}
	recordKiB := minRecordKiB
	if in.MaxRecordSizeInKiB != nil {
		v.Range("maxRecordSizeInKiB", int64(*in.MaxRecordSizeInKiB), minRecordKiB, maxRecordKiB)
		recordKiB = *in.MaxRecordSizeInKiB
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := r.Authorize(a.streamARN(in.StreamName)); err != nil {
		return nil, err
	}
	shards := onDemandShards
	if !onDemand {
		if in.ShardCount == nil {
			return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "ShardCount is required for a stream in PROVISIONED mode.")
		}
		shards = *in.ShardCount
	} else if in.ShardCount != nil {
		shards = *in.ShardCount
	}
	if len(in.Tags) > maxTagsPerStream {
		return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "A stream cannot have more than %d tags.", maxTagsPerStream)
	}
	open, onDemandCount := a.accountUsage()
	if open+shards > shardLimit {
		return nil, awsapi.Errorf(awsapi.CodeLimitExceeded,
			"This request would exceed the shard limit for the account %s in %s. Current shard count for the account: %d. Limit: %d. Number of additional shards that would have resulted from this request: %d.",
			a.opts.Account, a.opts.Region, open, shardLimit, shards)
	}
	if onDemand && onDemandCount >= onDemandLimit {
		return nil, awsapi.Errorf(awsapi.CodeLimitExceeded, "Account %s already has %d on-demand streams, the limit.", a.opts.Account, onDemandCount)
	}
	var budget int64
	if a.opts.StreamDiskBudget != nil {
		budget = a.opts.StreamDiskBudget(in.StreamName)
	}
	_, err := a.store.CreateStream(streamstore.StreamConfig{
		Name: in.StreamName, Shards: shards, OnDemand: onDemand, MaxRecordKiB: recordKiB, Tags: in.Tags, DiskBudget: budget,
	})
	if err != nil {
		return nil, a.storeError(in.StreamName, err)
	}
	return struct{}{}, nil
}

// dataStreams lists the store's data streams, without the namespaced
// (video) streams that share the store.
func (a *API) dataStreams() []streamstore.StreamInfo {
	all := a.store.Streams()
	out := all[:0]
	for _, s := range all {
		if streamstore.Namespace(s.Name) == "" {
			out = append(out, s)
		}
	}
	return out
}

// accountUsage counts open shards and on-demand streams.
func (a *API) accountUsage() (openShards, onDemand int) {
	for _, s := range a.dataStreams() {
		openShards += len(s.OpenShards())
		if s.OnDemand {
			onDemand++
		}
	}
	return
}

func (a *API) deleteStream(r *awsapi.Request) (any, error) {
	var in struct {
		streamRef
		EnforceConsumerDeletion bool
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	name, err := a.resolve(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	info, err := a.stream(name)
	if err != nil {
		return nil, err
	}
	if len(info.Consumers) > 0 && !in.EnforceConsumerDeletion {
		return nil, awsapi.Errorf(awsapi.CodeResourceInUse,
			"Stream %s under account %s has registered consumers. Deregister them or set EnforceConsumerDeletion.", name, a.opts.Account)
	}
	a.endSubscriptions(name)
	return struct{}{}, a.storeError(name, a.store.DeleteStream(name))
}

func (a *API) describeStream(r *awsapi.Request) (any, error) {
	var in describeStreamInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	limit := v.Optional("limit", in.Limit, 100, 1, 10000)
	if err := v.Err(); err != nil {
		return nil, err
	}
	name, err := a.resolve(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	info, err := a.stream(name)
	if err != nil {
		return nil, err
	}
	shards := info.Shards
	start := 0
	if in.ExclusiveStartShardId != "" {
		for start < len(shards) && shards[start].ID <= in.ExclusiveStartShardId {
			start++
		}
	}
	end := min(start+limit, len(shards))
	desc := streamDescription{
		StreamName:              info.Name,
		StreamARN:               a.streamARN(info.Name),
		StreamStatus:            "ACTIVE",
		StreamModeDetails:       streamMode(&info),
		Shards:                  make([]shard, 0, end-start),
		HasMoreShards:           end < len(shards),
		RetentionPeriodHours:    info.RetentionHours,
		StreamCreationTimestamp: awsapi.NewTimestamp(info.Created),
		EnhancedMonitoring:      []enhancedMetrics{{ShardLevelMetrics: []string{}}},
		EncryptionType:          "NONE",
		MaxRecordSizeInKiB:      info.MaxRecordKiB,
	}
	for _, s := range shards[start:end] {
		desc.Shards = append(desc.Shards, a.shardShape(s))
	}
	return struct{ StreamDescription streamDescription }{desc}, nil
}

func (a *API) describeStreamSummary(r *awsapi.Request) (any, error) {
	var in streamRef
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	name, err := a.resolve(r, in)
	if err != nil {
		return nil, err
	}
	info, err := a.stream(name)
	if err != nil {
		return nil, err
	}
	return struct{ StreamDescriptionSummary streamDescriptionSummary }{streamDescriptionSummary{
		StreamName:              info.Name,
		StreamARN:               a.streamARN(info.Name),
		StreamStatus:            "ACTIVE",
		StreamModeDetails:       streamMode(&info),
		RetentionPeriodHours:    info.RetentionHours,
		StreamCreationTimestamp: awsapi.NewTimestamp(info.Created),
		EnhancedMonitoring:      []enhancedMetrics{{ShardLevelMetrics: []string{}}},
		EncryptionType:          "NONE",
		OpenShardCount:          len(info.OpenShards()),
		ConsumerCount:           len(info.Consumers),
		MaxRecordSizeInKiB:      info.MaxRecordKiB,
	}}, nil
}

func (a *API) listStreams(r *awsapi.Request) (any, error) {
	var in listStreamsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	limit := v.Optional("limit", in.Limit, 100, 1, 10000)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := r.Authorize("*"); err != nil {
		return nil, err
	}
	after := in.ExclusiveStartStreamName
	if in.NextToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(in.NextToken)
		if err != nil {
			return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "Invalid NextToken.")
		}
		after = string(b)
	}
	streams := a.dataStreams()
	i := sort.Search(len(streams), func(i int) bool { return streams[i].Name > after })
	out := listStreamsOutput{StreamNames: []string{}, StreamSummaries: []streamSummary{}}
	for ; i < len(streams) && len(out.StreamNames) < limit; i++ {
		s := streams[i]
		out.StreamNames = append(out.StreamNames, s.Name)
		out.StreamSummaries = append(out.StreamSummaries, streamSummary{
			StreamName: s.Name, StreamARN: a.streamARN(s.Name), StreamStatus: "ACTIVE",
			StreamModeDetails: streamMode(&s), StreamCreationTimestamp: awsapi.NewTimestamp(s.Created),
		})
	}
	out.HasMoreStreams = i < len(streams)
	if out.HasMoreStreams {
		out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(out.StreamNames[len(out.StreamNames)-1]))
	}
	return out, nil
}

func (a *API) increaseRetention(r *awsapi.Request) (any, error) { return a.changeRetention(r, true) }
func (a *API) decreaseRetention(r *awsapi.Request) (any, error) { return a.changeRetention(r, false) }

func (a *API) changeRetention(r *awsapi.Request, increase bool) (any, error) {
	var in retentionInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("retentionPeriodHours", in.RetentionPeriodHours != nil)
	if err := v.Err(); err != nil {
		return nil, err
	}
	name, err := a.resolve(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	hours := *in.RetentionPeriodHours
	if hours < streamstore.MinRetentionHours {
		return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "Minimum allowed retention period is %d hours. Requested retention period (%d hours) is too short.", streamstore.MinRetentionHours, hours)
	}
	if hours > streamstore.MaxRetentionHours {
		return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "Maximum allowed retention period is %d hours. Requested retention period (%d hours) is too long.", streamstore.MaxRetentionHours, hours)
	}
	_, err = a.store.UpdateStream(name, func(info *streamstore.StreamInfo) error {
		if increase && hours < info.RetentionHours {
			return awsapi.Errorf(awsapi.CodeInvalidArgument, "Requested retention period (%d hours) for stream %s can not be shorter than existing retention period (%d hours). Use DecreaseRetentionPeriod API.", hours, name, info.RetentionHours)
		}
		if !increase && hours > info.RetentionHours {
			return awsapi.Errorf(awsapi.CodeInvalidArgument, "Requested retention period (%d hours) for stream %s can not be longer than existing retention period (%d hours). Use IncreaseRetentionPeriod API.", hours, name, info.RetentionHours)
		}
		info.RetentionHours = hours
		return nil
	})
	return struct{}{}, a.storeError(name, err)
}

func (a *API) updateStreamMode(r *awsapi.Request) (any, error) {
	var in updateStreamModeInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("streamARN", in.StreamARN != "")
	v.Required("streamModeDetails", in.StreamModeDetails != nil)
	if in.StreamModeDetails != nil && in.StreamModeDetails.StreamMode != "ON_DEMAND" && in.StreamModeDetails.StreamMode != "PROVISIONED" {
		v.Fail("streamModeDetails.streamMode", in.StreamModeDetails.StreamMode, "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	name, err := a.resolve(r, streamRef{StreamARN: in.StreamARN})
	if err != nil {
		return nil, err
	}
	_, err = a.store.UpdateStream(name, func(info *streamstore.StreamInfo) error {
		info.OnDemand = in.StreamModeDetails.StreamMode == "ON_DEMAND"
		return nil
	})
	return struct{}{}, a.storeError(name, err)
}

func (a *API) updateMaxRecordSize(r *awsapi.Request) (any, error) {
	var in updateMaxRecordSizeInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("streamARN", in.StreamARN != "")
	v.Required("maxRecordSizeInKiB", in.MaxRecordSizeInKiB != nil)
	if in.MaxRecordSizeInKiB != nil {
		v.Range("maxRecordSizeInKiB", int64(*in.MaxRecordSizeInKiB), minRecordKiB, maxRecordKiB)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	name, err := a.resolve(r, streamRef{StreamARN: in.StreamARN})
	if err != nil {
		return nil, err
	}
	_, err = a.store.UpdateStream(name, func(info *streamstore.StreamInfo) error {
		info.MaxRecordKiB = *in.MaxRecordSizeInKiB
		return nil
	})
	return struct{}{}, a.storeError(name, err)
}

func (a *API) describeLimits(r *awsapi.Request) (any, error) {
	if err := r.Authorize("*"); err != nil {
		return nil, err
	}
	open, onDemand := a.accountUsage()
	return describeLimitsOutput{ShardLimit: shardLimit, OpenShardCount: open, OnDemandStreamCount: onDemand, OnDemandStreamCountLimit: onDemandLimit}, nil
}

// Tags. AddTagsToStream/RemoveTagsFromStream name the stream; TagResource/
// UntagResource name it by ARN. All four change the same tag map.

func (a *API) addTags(r *awsapi.Request) (any, error)       { return a.changeTags(r, true) }
func (a *API) removeTags(r *awsapi.Request) (any, error)    { return a.changeTags(r, false) }
func (a *API) tagResource(r *awsapi.Request) (any, error)   { return a.changeTags(r, true) }
func (a *API) untagResource(r *awsapi.Request) (any, error) { return a.changeTags(r, false) }

func (a *API) changeTags(r *awsapi.Request, add bool) (any, error) {
	var in tagsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var name string
	var err error
	if in.ResourceARN != "" {
		if name, err = a.resourceStream(in.ResourceARN); err == nil {
			err = r.Authorize(a.streamARN(name))
		}
	} else {
		name, err = a.resolve(r, in.streamRef)
	}
	if err != nil {
		return nil, err
	}
	if add {
		return struct{}{}, a.setTags(name, in.Tags, nil)
	}
	if in.TagKeys == nil {
		in.TagKeys = []string{}
	}
	return struct{}{}, a.setTags(name, nil, in.TagKeys)
}

func (a *API) setTags(name string, add map[string]string, remove []string) error {
	var v awsapi.Validator
	if add != nil || remove == nil {
		v.Range("tags", int64(len(add)), 1, maxTagsPerCall)
	}
	if remove != nil {
		v.Range("tagKeys", int64(len(remove)), 1, maxTagsPerCall)
	}
	for k, val := range add {
		v.Length("tags.key", k, 1, 128)
		v.Length("tags.value", val, 0, 256)
	}
	for _, k := range remove {
		v.Length("tagKeys.member", k, 1, 128)
	}
	if err := v.Err(); err != nil {
		return err
	}
	_, err := a.store.UpdateStream(name, func(info *streamstore.StreamInfo) error {
		tags := map[string]string{}
		for k, val := range info.Tags {
			tags[k] = val
		}
		for k, val := range add {
			tags[k] = val
		}
		for _, k := range remove {
			delete(tags, k)
		}
		if len(tags) > maxTagsPerStream {
			return awsapi.Errorf(awsapi.CodeInvalidArgument, "Failed to add tags to stream %s under account %s because a given stream cannot have more than %d tags associated with it.", name, a.opts.Account, maxTagsPerStream)
		}
		info.Tags = tags
		return nil
	})
	return a.storeError(name, err)
}

func (a *API) listTags(r *awsapi.Request) (any, error) {
	var in listTagsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	limit := v.Optional("limit", in.Limit, maxTagsPerStream, 1, maxTagsPerCall)
	if err := v.Err(); err != nil {
		return nil, err
	}
	name, err := a.resolve(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	info, err := a.stream(name)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(info.Tags))
	for k := range info.Tags {
		if k > in.ExclusiveStartTagKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := listTagsOutput{Tags: []tag{}}
	for _, k := range keys {
		if len(out.Tags) == limit {
			out.HasMoreTags = true
			break
		}
		out.Tags = append(out.Tags, tag{k, info.Tags[k]})
	}
	return out, nil
}

func (a *API) resourceStream(arn string) (string, error) {
	name, ok := nameFromARN(arn)
	if !ok {
		return "", awsapi.Errorf(awsapi.CodeInvalidArgument, "Invalid ResourceARN %s.", arn)
	}
	return name, nil
}

func (a *API) listTagsForResource(r *awsapi.Request) (any, error) {
	var in tagsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	name, err := a.resourceStream(in.ResourceARN)
	if err != nil {
		return nil, err
	}
	if err := r.Authorize(a.streamARN(name)); err != nil {
		return nil, err
	}
	info, err := a.stream(name)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(info.Tags))
	for k := range info.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tags := make([]tag, 0, len(keys))
	for _, k := range keys {
		tags = append(tags, tag{k, info.Tags[k]})
	}
	return struct{ Tags []tag }{tags}, nil
}
