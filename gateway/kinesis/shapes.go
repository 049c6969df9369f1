package kinesis

import "github.com/streamgate/streamgate/gateway/awsapi"

// Request and response shapes, named and spelled as in the Kinesis API
// reference. CBOR uses the same keys (fxamacker/cbor reads json tags).

type streamRef struct {
	StreamName string `json:",omitempty"`
	StreamARN  string `json:",omitempty"`
}

type streamModeDetails struct {
	StreamMode string
}

type hashKeyRange struct {
	StartingHashKey string
	EndingHashKey   string
}

type sequenceNumberRange struct {
	StartingSequenceNumber string
	EndingSequenceNumber   string `json:",omitempty"`
}

type shard struct {
	ShardId               string
	ParentShardId         string `json:",omitempty"`
	AdjacentParentShardId string `json:",omitempty"`
	HashKeyRange          hashKeyRange
	SequenceNumberRange   sequenceNumberRange
}

type childShard struct {
	ShardId      string
	ParentShards []string
	HashKeyRange hashKeyRange
}

type enhancedMetrics struct {
	ShardLevelMetrics []string
}

type createStreamInput struct {
	StreamName          string
	ShardCount          *int
	StreamModeDetails   *streamModeDetails
	Tags                map[string]string
	MaxRecordSizeInKiB  *int
	WarmThroughputMiBps *int
}

type streamDescription struct {
	StreamName              string
	StreamARN               string
	StreamStatus            string
	StreamModeDetails       streamModeDetails
	Shards                  []shard
	HasMoreShards           bool
	RetentionPeriodHours    int
	StreamCreationTimestamp *awsapi.Timestamp
	EnhancedMonitoring      []enhancedMetrics
	EncryptionType          string
	MaxRecordSizeInKiB      int `json:",omitempty"`
}

type describeStreamInput struct {
	streamRef
	Limit                 *int
	ExclusiveStartShardId string
}

type streamDescriptionSummary struct {
	StreamName              string
	StreamARN               string
	StreamStatus            string
	StreamModeDetails       streamModeDetails
	RetentionPeriodHours    int
	StreamCreationTimestamp *awsapi.Timestamp
	EnhancedMonitoring      []enhancedMetrics
	EncryptionType          string
	OpenShardCount          int
	ConsumerCount           int
	MaxRecordSizeInKiB      int
}

type listStreamsInput struct {
	Limit                    *int
	ExclusiveStartStreamName string
	NextToken                string
}

type streamSummary struct {
	StreamName              string
	StreamARN               string
	StreamStatus            string
	StreamModeDetails       streamModeDetails
	StreamCreationTimestamp *awsapi.Timestamp
}

type listStreamsOutput struct {
	StreamNames     []string
	HasMoreStreams  bool
	NextToken       string `json:",omitempty"`
	StreamSummaries []streamSummary
}

type shardFilter struct {
	Type      string
	ShardId   string
	Timestamp *awsapi.Timestamp
}

type listShardsInput struct {
	streamRef
	NextToken               string
	ExclusiveStartShardId   string
	MaxResults              *int
	StreamCreationTimestamp *awsapi.Timestamp
	ShardFilter             *shardFilter
}

type listShardsOutput struct {
	Shards    []shard
	NextToken string `json:",omitempty"`
}

type putRecordInput struct {
	streamRef
	Data                      []byte
	PartitionKey              string
	ExplicitHashKey           string
	SequenceNumberForOrdering string
}

type putRecordOutput struct {
	ShardId        string
	SequenceNumber string
	EncryptionType string
}

type putRecordsEntry struct {
	Data            []byte
	ExplicitHashKey string
	PartitionKey    string
}

type putRecordsInput struct {
	streamRef
	Records []putRecordsEntry

	pooled *[]byte // the data arena of the fast decoder, returned by release
}

type putRecordsResultEntry struct {
	SequenceNumber string `json:",omitempty"`
	ShardId        string `json:",omitempty"`
	ErrorCode      string `json:",omitempty"`
	ErrorMessage   string `json:",omitempty"`
}

type putRecordsOutput struct {
	FailedRecordCount int
	Records           []putRecordsResultEntry
	EncryptionType    string
}

type getShardIteratorInput struct {
	streamRef
	ShardId                string
	ShardIteratorType      string
	StartingSequenceNumber string
	Timestamp              *awsapi.Timestamp
}

type getRecordsInput struct {
	ShardIterator string
	Limit         *int
	StreamARN     string
}

type record struct {
	SequenceNumber              string
	ApproximateArrivalTimestamp *awsapi.Timestamp
	Data                        []byte
	PartitionKey                string
}

type getRecordsOutput struct {
	Records            []record
	NextShardIterator  *string
	MillisBehindLatest int64
	ChildShards        []childShard `json:",omitempty"`
}

type splitShardInput struct {
	streamRef
	ShardToSplit       string
	NewStartingHashKey string
}

type mergeShardsInput struct {
	streamRef
	ShardToMerge         string
	AdjacentShardToMerge string
}

type updateShardCountInput struct {
	streamRef
	TargetShardCount *int
	ScalingType      string
}

type updateShardCountOutput struct {
	StreamName        string
	StreamARN         string
	CurrentShardCount int
	TargetShardCount  int
}

type retentionInput struct {
	streamRef
	RetentionPeriodHours *int
}

type updateStreamModeInput struct {
	StreamARN         string
	StreamModeDetails *streamModeDetails
}

type updateMaxRecordSizeInput struct {
	StreamARN          string
	MaxRecordSizeInKiB *int
}

// tagsInput serves the four tagging operations (by stream or by ARN).
type tagsInput struct {
	streamRef
	ResourceARN string
	Tags        map[string]string
	TagKeys     []string
}

type listTagsInput struct {
	streamRef
	ExclusiveStartTagKey string
	Limit                *int
}

type tag struct {
	Key   string
	Value string
}

type listTagsOutput struct {
	Tags        []tag
	HasMoreTags bool
}

type describeLimitsOutput struct {
	ShardLimit               int
	OpenShardCount           int
	OnDemandStreamCount      int
	OnDemandStreamCountLimit int
}

type consumer struct {
	ConsumerName              string
	ConsumerARN               string
	ConsumerStatus            string
	ConsumerCreationTimestamp *awsapi.Timestamp
	StreamARN                 string `json:",omitempty"`
}

type consumerInput struct {
	StreamARN    string
	ConsumerName string
	ConsumerARN  string
	Tags         map[string]string
}

type listConsumersInput struct {
	StreamARN               string
	MaxResults              *int
	NextToken               string
	StreamCreationTimestamp *awsapi.Timestamp
}

type startingPosition struct {
	Type           string
	SequenceNumber string
	Timestamp      *awsapi.Timestamp
}

type subscribeInput struct {
	ConsumerARN      string
	ShardId          string
	StartingPosition *startingPosition
}

type subscribeEvent struct {
	Records                    []record
	ContinuationSequenceNumber string
	MillisBehindLatest         int64
	ChildShards                []childShard `json:",omitempty"`
}
