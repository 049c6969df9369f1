package kinesis

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

// listShardsToken is what a ListShards NextToken carries.
type listShardsToken struct {
	Stream  string
	After   string
	Filter  *shardFilter `json:",omitempty"`
	Expires int64
}

const nextTokenTTL = 5 * time.Minute

func (a *API) listShards(r *awsapi.Request) (any, error) {
	var in listShardsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	limit := v.Optional("maxResults", in.MaxResults, 1000, 1, 10000)
	if err := v.Err(); err != nil {
		return nil, err
	}
	var name, after string
	filter := in.ShardFilter
	if in.NextToken != "" {
		if in.StreamName != "" || in.ExclusiveStartShardId != "" || in.ShardFilter != nil {
			return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "NextToken and StreamName, ExclusiveStartShardId or ShardFilter cannot be provided together.")
		}
		var tok listShardsToken
		b, err := base64.RawURLEncoding.DecodeString(in.NextToken)
		if err != nil || json.Unmarshal(b, &tok) != nil || tok.Stream == "" {
			return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "Invalid NextToken.")
		}
		if a.opts.Now().UnixMilli() > tok.Expires {
			return nil, awsapi.Errorf(codeExpiredToken, "The NextToken has expired; start a new ListShards call.")
		}
		name, after, filter = tok.Stream, tok.After, tok.Filter
		if err := r.Authorize(a.streamARN(name)); err != nil {
			return nil, err
		}
	} else {
		var err error
		if name, err = a.resolve(r, in.streamRef); err != nil {
			return nil, err
		}
		after = in.ExclusiveStartShardId
	}
	info, err := a.stream(name)
	if err != nil {
		return nil, err
	}
	keep, err := shardFilterFunc(filter, &after)
	if err != nil {
		return nil, err
	}
	out := listShardsOutput{Shards: []shard{}}
	more := false
	for _, s := range info.Shards {
		if after != "" && s.ID <= after {
			continue
		}
		if !keep(s) {
			continue
		}
		if len(out.Shards) == limit {
			more = true
			break
		}
		out.Shards = append(out.Shards, a.shardShape(s))
	}
	if more {
		tok, _ := json.Marshal(listShardsToken{Stream: name, After: out.Shards[len(out.Shards)-1].ShardId, Filter: filter,
			Expires: a.opts.Now().Add(nextTokenTTL).UnixMilli()})
		out.NextToken = base64.RawURLEncoding.EncodeToString(tok)
	}
	return out, nil
}

// shardFilterFunc turns a ShardFilter into a predicate (AFTER_SHARD_ID moves
// the start instead).
func shardFilterFunc(f *shardFilter, after *string) (func(streamstore.ShardInfo) bool, error) {
	all := func(streamstore.ShardInfo) bool { return true }
	if f == nil {
		return all, nil
	}
	needTime := func() error {
		if f.Timestamp == nil {
			return awsapi.Errorf(awsapi.CodeInvalidArgument, "ShardFilter type %s requires a Timestamp.", f.Type)
		}
		return nil
	}
	switch f.Type {
	case "AFTER_SHARD_ID":
		if f.ShardId == "" {
			return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "ShardFilter type AFTER_SHARD_ID requires a ShardId.")
		}
		if f.ShardId > *after {
			*after = f.ShardId
		}
		return all, nil
	case "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON":
		// Every shard still listed holds data within retention.
		return all, nil
	case "AT_LATEST":
		return func(s streamstore.ShardInfo) bool { return !s.Closed }, nil
	case "AT_TIMESTAMP":
		if err := needTime(); err != nil {
			return nil, err
		}
		t := f.Timestamp.Time
		return func(s streamstore.ShardInfo) bool {
			return !s.Created.After(t) && (!s.Closed || s.ClosedAt.After(t))
		}, nil
	case "FROM_TIMESTAMP":
		if err := needTime(); err != nil {
			return nil, err
		}
		t := f.Timestamp.Time
		return func(s streamstore.ShardInfo) bool { return !s.Closed || s.ClosedAt.After(t) }, nil
	}
	var v awsapi.Validator
	v.Fail("shardFilter.type", f.Type, "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]")
	return nil, v.Err()
}

func (a *API) splitShard(r *awsapi.Request) (any, error) {
	var in splitShardInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("shardToSplit", in.ShardToSplit != "")
	v.Required("newStartingHashKey", in.NewStartingHashKey != "")
	if err := v.Err(); err != nil {
		return nil, err
	}
	name, err := a.resolve(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	key, err := streamstore.ParseHashKey(in.NewStartingHashKey)
	if err != nil {
		return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "NewStartingHashKey %s is not a hash key in [0, 2^128-1].", in.NewStartingHashKey)
	}
	if err := a.checkShardLimit(1); err != nil {
		return nil, err
	}
	_, err = a.store.SplitShard(name, in.ShardToSplit, key)
	return struct{}{}, a.storeError(name, err)
}

func (a *API) mergeShards(r *awsapi.Request) (any, error) {
	var in mergeShardsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("shardToMerge", in.ShardToMerge != "")
	v.Required("adjacentShardToMerge", in.AdjacentShardToMerge != "")
	if err := v.Err(); err != nil {
		return nil, err
	}
	name, err := a.resolve(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	_, err = a.store.MergeShards(name, in.ShardToMerge, in.AdjacentShardToMerge)
	return struct{}{}, a.storeError(name, err)
}

func (a *API) checkShardLimit(extra int) error {
	open, _ := a.accountUsage()
	if open+extra > shardLimit {
		return awsapi.Errorf(awsapi.CodeLimitExceeded, "This request would exceed the shard limit for the account %s in %s. Limit: %d.", a.opts.Account, a.opts.Region, shardLimit)
	}
	return nil
}

func (a *API) updateShardCount(r *awsapi.Request) (any, error) {
	var in updateShardCountInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("targetShardCount", in.TargetShardCount != nil)
	v.Required("scalingType", in.ScalingType != "")
	if in.ScalingType != "" && in.ScalingType != "UNIFORM_SCALING" {
		v.Fail("scalingType", in.ScalingType, "Member must satisfy enum value set: [UNIFORM_SCALING]")
	}
	if in.TargetShardCount != nil {
		v.Range("targetShardCount", int64(*in.TargetShardCount), 1, 100000)
	}
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
	current, target := len(info.OpenShards()), *in.TargetShardCount
	if target > 2*current {
		return nil, awsapi.Errorf(awsapi.CodeLimitExceeded, "UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: %d Target shard count: %d", current, target)
	}
	if 2*target < current {
		return nil, awsapi.Errorf(awsapi.CodeLimitExceeded, "UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: %d Target shard count: %d", current, target)
	}
	if err := a.checkShardLimit(target - current); err != nil {
		return nil, err
	}
	if err := a.store.UpdateShardCount(name, target); err != nil {
		return nil, a.storeError(name, err)
	}
	return updateShardCountOutput{StreamName: name, StreamARN: a.streamARN(name), CurrentShardCount: current, TargetShardCount: target}, nil
}
