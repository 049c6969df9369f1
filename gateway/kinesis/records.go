package kinesis

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

// Request limits of the data plane.
const (
	maxPutRecords        = 500
	maxPutRecordsBytes   = 5 << 20
	maxPutRecordsLarge   = 10 << 20 // for streams whose records may exceed 1 MiB
	maxGetRecords        = 10000
	maxGetRecordsBytes   = 10 << 20
	maxPartitionKeyChars = 256
)

func validSeqPattern(s string) bool {
	if s == "" || len(s) > 129 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validateRecord checks one record's fields. In PutRecords (n > 0) field
// names carry the prefix AWS uses ("records.1.member.data"), built only when
// something fails: this runs for every ingested record.
func validateRecord(v *awsapi.Validator, n int, data []byte, key, explicit string, maxData int) {
	if data != nil && key != "" && len(key) <= maxPartitionKeyChars && len(data) <= maxData && (explicit == "" || validSeqPattern(explicit)) {
		return // the common case; a key of at most 256 bytes has at most 256 characters
	}
	prefix := ""
	if n > 0 {
		prefix = fmt.Sprintf("records.%d.member.", n)
	}
	v.Required(prefix+"data", data != nil)
	v.Required(prefix+"partitionKey", key != "")
	if key != "" {
		v.Length(prefix+"partitionKey", key, 1, maxPartitionKeyChars)
	}
	if len(data) > maxData {
		v.Fail(prefix+"data", "java.nio.HeapByteBuffer[pos=0 lim="+fmt.Sprint(len(data))+"]",
			fmt.Sprintf("Member must have length less than or equal to %d", maxData))
	}
	if explicit != "" && !validSeqPattern(explicit) {
		v.Fail(prefix+"explicitHashKey", explicit, "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})")
	}
}

func explicitHashKey(s string) (*streamstore.HashKey, error) {
	if s == "" {
		return nil, nil
	}
	h, err := streamstore.ParseHashKey(s)
	if err != nil {
		return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was %s", s)
	}
	return &h, nil
}

func (a *API) putRecord(r *awsapi.Request) (any, error) {
	var in putRecordInput
	if r.CBOR || !decodePutRecordFast(r.Body, &in) {
		in = putRecordInput{}
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
	}
	name, err := a.resolve(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	info, err := a.limits(name)
	if err != nil {
		return nil, err
	}
	var v awsapi.Validator
	validateRecord(&v, 0, in.Data, in.PartitionKey, in.ExplicitHashKey, info.MaxRecordKiB<<10)
	if in.SequenceNumberForOrdering != "" && !validSeqPattern(in.SequenceNumberForOrdering) {
		v.Fail("sequenceNumberForOrdering", in.SequenceNumberForOrdering, "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	h, err := explicitHashKey(in.ExplicitHashKey)
	if err != nil {
		return nil, err
	}
	// SequenceNumberForOrdering asks for a number greater than the given one;
	// numbers increase strictly within a shard, so every append satisfies it.
	entries := []streamstore.Entry{{PartitionKey: in.PartitionKey, ExplicitHashKey: h, Data: in.Data}}
	if err := a.throttle(name, entries); err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := a.store.Append(name, entries)
	if err != nil {
		return nil, a.storeError(name, err)
	}
	if res[0].Err != nil {
		return nil, a.storeError(name, res[0].Err)
	}
	a.opts.Metrics.recordPut(name, res, entries, time.Since(start))
	return putRecordOutput{ShardId: res[0].ShardID, SequenceNumber: res[0].Seq.String(), EncryptionType: "NONE"}, nil
}

func (a *API) putRecords(r *awsapi.Request) (any, error) {
	var in putRecordsInput
	if r.CBOR || !decodePutRecordsFast(r.Body, &in) {
		in.release()
		in = putRecordsInput{}
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
	}
	defer in.release() // the store copies data; nothing holds it after Append
	name, err := a.resolve(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("records", in.Records != nil)
	if in.Records != nil {
		v.Range("records", int64(len(in.Records)), 1, maxPutRecords)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	info, err := a.limits(name)
	if err != nil {
		return nil, err
	}
	maxData := info.MaxRecordKiB << 10
	total := 0
	entries := make([]streamstore.Entry, len(in.Records))
	for i, rec := range in.Records {
		validateRecord(&v, i+1, rec.Data, rec.PartitionKey, rec.ExplicitHashKey, maxData)
		total += len(rec.Data) + len(rec.PartitionKey)
		entries[i] = streamstore.Entry{PartitionKey: rec.PartitionKey, Data: rec.Data}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	limit := maxPutRecordsBytes
	if info.MaxRecordKiB > minRecordKiB {
		limit = maxPutRecordsLarge
	}
	if total > limit {
		return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "Records size exceeds %d MB limit", limit>>20)
	}
	for i, rec := range in.Records {
		if entries[i].ExplicitHashKey, err = explicitHashKey(rec.ExplicitHashKey); err != nil {
			return nil, err
		}
	}
	out := putRecordsOutput{Records: make([]putRecordsResultEntry, len(entries)), EncryptionType: "NONE"}
	// Throttled entries fail alone; the rest go through.
	allowed, throttled := a.throttleEach(name, entries)
	start := time.Now()
	res, err := a.store.Append(name, allowed)
	if err != nil {
		return nil, a.storeError(name, err)
	}
	a.opts.Metrics.recordPut(name, res, allowed, time.Since(start))
	k := 0
	for i := range entries {
		if throttled != nil && throttled[i] {
			out.FailedRecordCount++
			out.Records[i] = putRecordsResultEntry{ErrorCode: codeThroughput,
				ErrorMessage: fmt.Sprintf("Rate exceeded for shard %s in stream %s under account %s.", a.shardFor(name, entries[i]), name, a.opts.Account)}
			continue
		}
		rr := res[k]
		k++
		if rr.Err != nil {
			out.FailedRecordCount++
			out.Records[i] = a.entryError(name, rr)
			continue
		}
		out.Records[i] = putRecordsResultEntry{SequenceNumber: rr.Seq.String(), ShardId: rr.ShardID}
	}
	return out, nil
}

// entryError is a PutRecords per-record failure: ErrorCode is one of the two
// AWS documents.
func (a *API) entryError(name string, r streamstore.Appended) putRecordsResultEntry {
	if errors.Is(r.Err, streamstore.ErrNoSpace) {
		return putRecordsResultEntry{ErrorCode: codeThroughput,
			ErrorMessage: fmt.Sprintf("Rate exceeded for shard %s in stream %s under account %s: disk full or disk budget reached.", r.ShardID, name, a.opts.Account)}
	}
	return putRecordsResultEntry{ErrorCode: "InternalFailure", ErrorMessage: "Internal service failure: " + r.Err.Error()}
}

var iteratorTypes = "[AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]"

// position maps a ShardIteratorType (GetShardIterator, SubscribeToShard's
// StartingPosition) and its arguments to a store position.
func position(typ, seq string, ts *awsapi.Timestamp) (streamstore.Position, error) {
	var pos streamstore.Position
	switch typ {
	case "TRIM_HORIZON":
		pos.Type = streamstore.TrimHorizon
	case "LATEST":
		pos.Type = streamstore.Latest
	case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
		pos.Type = streamstore.AtSequence
		if typ == "AFTER_SEQUENCE_NUMBER" {
			pos.Type = streamstore.AfterSequence
		}
		if seq == "" {
			return pos, awsapi.Errorf(awsapi.CodeInvalidArgument, "The StartingSequenceNumber parameter is required for the %s shard iterator type.", typ)
		}
		if !validSeqPattern(seq) {
			var v awsapi.Validator
			v.Fail("startingSequenceNumber", seq, "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})")
			return pos, v.Err()
		}
		parsed, err := streamstore.ParseSeq(seq)
		if err != nil {
			return pos, awsapi.Errorf(awsapi.CodeInvalidArgument, "StartingSequenceNumber %s is not a sequence number of this gateway.", seq)
		}
		pos.Seq = parsed
	case "AT_TIMESTAMP":
		if ts == nil {
			return pos, awsapi.Errorf(awsapi.CodeInvalidArgument, "The timestampInMillis parameter cannot be null for ShardIteratorType: AT_TIMESTAMP")
		}
		pos.Type, pos.Time = streamstore.AtTimestamp, ts.Time
	default:
		var v awsapi.Validator
		v.Fail("shardIteratorType", typ, "Member must satisfy enum value set: "+iteratorTypes)
		return pos, v.Err()
	}
	return pos, nil
}

func (a *API) getShardIterator(r *awsapi.Request) (any, error) {
	var in getShardIteratorInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("shardId", in.ShardId != "")
	v.Required("shardIteratorType", in.ShardIteratorType != "")
	if in.ShardId != "" {
		v.Length("shardId", in.ShardId, 1, 128)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	name, err := a.resolve(r, in.streamRef)
	if err != nil {
		return nil, err
	}
	pos, err := position(in.ShardIteratorType, in.StartingSequenceNumber, in.Timestamp)
	if err != nil {
		return nil, err
	}
	info, err := a.stream(name)
	if err != nil {
		return nil, err
	}
	if _, ok := info.Shard(in.ShardId); !ok {
		return nil, awsapi.Errorf(awsapi.CodeResourceNotFound, "Shard %s in stream %s under account %s does not exist", in.ShardId, name, a.opts.Account)
	}
	index, err := a.store.Seek(name, in.ShardId, pos)
	if err != nil {
		if errors.Is(err, streamstore.ErrInvalid) || errors.Is(err, streamstore.ErrTrimmed) {
			return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "StartingSequenceNumber %s used in GetShardIterator on shard %s in stream %s under account %s is invalid because it did not come from this stream or is past the trim horizon.", in.StartingSequenceNumber, in.ShardId, name, a.opts.Account)
		}
		return nil, a.storeError(name, err)
	}
	it := a.sealIterator(shardIterator{issued: a.opts.Now(), stream: name, created: info.Created.UnixNano(), shard: in.ShardId, index: index})
	return struct{ ShardIterator string }{it}, nil
}

func (a *API) getRecords(r *awsapi.Request) (any, error) {
	var in getRecordsInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("shardIterator", in.ShardIterator != "")
	if in.ShardIterator != "" {
		v.Length("shardIterator", in.ShardIterator, 1, 512)
	}
	limit := v.Optional("limit", in.Limit, maxGetRecords, 1, maxGetRecords)
	if err := v.Err(); err != nil {
		return nil, err
	}
	it, err := a.openIterator(in.ShardIterator)
	if err != nil {
		return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "Invalid ShardIterator.")
	}
	if err := r.Authorize(a.streamARN(it.stream)); err != nil {
		return nil, err
	}
	now := a.opts.Now()
	if now.Sub(it.issued) > iteratorTTL {
		return nil, awsapi.Errorf(codeExpiredIterator, "Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of %d milliseconds.",
			it.issued.UTC().Format(time.RFC1123), now.UTC().Format(time.RFC1123), iteratorTTL.Milliseconds())
	}
	info, err := a.limits(it.stream)
	if err != nil {
		return nil, err
	}
	if info.Created.UnixNano() != it.created {
		return nil, awsapi.Errorf(awsapi.CodeResourceNotFound, "Stream %s under account %s not found.", it.stream, a.opts.Account)
	}
	start := time.Now()
	res, err := a.store.Read(it.stream, it.shard, it.index, limit, maxGetRecordsBytes)
	if err != nil {
		return nil, a.storeError(it.stream, err)
	}
	out := getRecordsOutput{Records: make([]record, len(res.Records)), MillisBehindLatest: res.Behind.Milliseconds()}
	bytes := 0
	for i, rec := range res.Records {
		out.Records[i] = record{SequenceNumber: rec.Seq.String(), ApproximateArrivalTimestamp: awsapi.FromUnixNano(rec.Arrival),
			Data: rec.Data, PartitionKey: rec.PartitionKey}
		bytes += len(rec.Data)
	}
	a.opts.Metrics.recordGet(it.stream, it.shard, len(res.Records), bytes, res.Records, time.Since(start))
	if res.EndOfShard {
		full, err := a.stream(it.stream) // the lineage, needed only at a shard's end
		if err != nil {
			return nil, err
		}
		out.ChildShards = childShards(&full, it.shard)
	} else {
		next := a.sealIterator(shardIterator{issued: now, stream: it.stream, created: it.created, shard: it.shard, index: res.Next})
		out.NextShardIterator = &next
	}
	return out, nil
}

// throttle applies the optional per-shard write limit to a single put.
func (a *API) throttle(name string, entries []streamstore.Entry) error {
	if _, throttled := a.throttleEach(name, entries); throttled != nil && throttled[0] {
		return &awsapi.Error{Code: codeThroughput, Status: http.StatusBadRequest,
			Message: fmt.Sprintf("Rate exceeded for shard %s in stream %s under account %s.", a.shardFor(name, entries[0]), name, a.opts.Account)}
	}
	return nil
}
