// Package kinesis serves the Kinesis Data Streams API (AWS JSON 1.1 and CBOR,
// X-Amz-Target Kinesis_20131202.*) over the shard log: stream and shard
// management, PutRecord(s), shard iterators, GetRecords and SubscribeToShard.
package kinesis
