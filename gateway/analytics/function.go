package analytics

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

// This gateway has no Lambda: where KDA takes a Lambda function (input
// preprocessing, LambdaOutput) it takes the http(s) URL of an endpoint
// that speaks the same contract, as its ResourceARN (as Firehose's Lambda
// processor does).

// functionURL checks that a Lambda resource is such a URL.
func functionURL(r *Resource) (string, error) {
	if r == nil || (!strings.HasPrefix(r.ResourceARN, "http://") && !strings.HasPrefix(r.ResourceARN, "https://")) {
		arn := ""
		if r != nil {
			arn = r.ResourceARN
		}
		return "", fmt.Errorf("ResourceARN %q must be the http(s) URL of a function speaking the Lambda contract (there is no Lambda here)", arn)
	}
	return r.ResourceARN, nil
}

// functionBatch bounds one invocation, as Lambda's 6 MB payload does.
const functionBatch = 4 << 20

type functionRecord struct {
	RecordID string `json:"recordId"`
	Result   string `json:"result,omitempty"`
	Data     string `json:"data,omitempty"`
	Kinesis  *struct {
		SequenceNumber string `json:"sequenceNumber"`
		PartitionKey   string `json:"partitionKey"`
		ShardID        string `json:"shardId"`
		Arrival        int64  `json:"approximateArrivalTimestamp"`
	} `json:"kinesisStreamRecordMetadata,omitempty"`
	Firehose *struct {
		Arrival int64 `json:"approximateArrivalTimestamp"`
	} `json:"firehoseRecordMetadata,omitempty"`
	Delivery *struct {
		RetryHint int `json:"retryHint"`
	} `json:"lambdaDeliveryRecordMetadata,omitempty"`
}

// preprocess runs a shard's read batch through the input's preprocessing
// function: each record comes back Ok (with new data), Dropped, or
// ProcessingFailed (to the error stream). An invocation that fails three
// times fails its records. The function must be deterministic for replays
// after a restart to compute the same windows.
func (r *runner) preprocess(ctx context.Context, sr *shardReader, recs []streamstore.Record) []streamstore.Record {
	in := sr.input
	out := recs[:0:0]
	for start := 0; start < len(recs); {
		end, size := start, 0
		for end < len(recs) && (end == start || size+len(recs[end].Data)*4/3 < functionBatch) {
			size += len(recs[end].Data)*4/3 + 200
			end++
		}
		batch := recs[start:end]
		start = end
		event := make([]functionRecord, len(batch))
		for i, rec := range batch {
			fr := functionRecord{RecordID: strconv.Itoa(i), Data: base64.StdEncoding.EncodeToString(rec.Data)}
			if in.in.KinesisStreamsInput != nil {
				fr.Kinesis = &struct {
					SequenceNumber string `json:"sequenceNumber"`
					PartitionKey   string `json:"partitionKey"`
					ShardID        string `json:"shardId"`
					Arrival        int64  `json:"approximateArrivalTimestamp"`
				}{rec.Seq.String(), rec.PartitionKey, sr.shard, rec.Arrival / 1e6}
			} else {
				fr.Firehose = &struct {
					Arrival int64 `json:"approximateArrivalTimestamp"`
				}{rec.Arrival / 1e6}
			}
			event[i] = fr
		}
		arn := in.in.KinesisStreamsInput
		if arn == nil {
			arn = in.in.KinesisFirehoseInput
		}
		body, _ := json.Marshal(map[string]any{"invocationId": uuid.NewString(), "applicationArn": r.arn, "streamArn": arn.ResourceARN, "records": event})
		var res struct {
			Records []functionRecord `json:"records"`
		}
		var err error
		for attempt := range 3 {
			if attempt > 0 && !sleep(ctx, time.Duration(attempt)*time.Second) {
				break
			}
			if err = awsapi.InvokeFunction(ctx, r.s.http, in.preprocessor, body, &res); err == nil {
				break
			}
			r.s.log.Warn("analytics preprocessing function failed", "application", r.app, "attempt", attempt+1, "err", err)
		}
		results := make([]*functionRecord, len(batch))
		if err == nil {
			for k := range res.Records {
				if i, cerr := strconv.Atoi(res.Records[k].RecordID); cerr == nil && i >= 0 && i < len(batch) {
					results[i] = &res.Records[k]
				}
			}
		}
		for i, rec := range batch {
			fr := results[i]
			switch {
			case err != nil:
				r.eng.fail("ProcessingFailed", "", "the preprocessing function failed: "+err.Error(), string(rec.Data), rec.Arrival/1e6)
			case fr == nil:
				r.eng.fail("ProcessingFailed", "", "the preprocessing function did not return record "+strconv.Itoa(i), string(rec.Data), rec.Arrival/1e6)
			case fr.Result == "Dropped":
			case fr.Result == "Ok":
				data, derr := base64.StdEncoding.DecodeString(fr.Data)
				if derr != nil {
					r.eng.fail("ProcessingFailed", "", "the preprocessing function returned data that is not base64", string(rec.Data), rec.Arrival/1e6)
					continue
				}
				rec.Data = data
				out = append(out, rec)
			default:
				r.eng.fail("ProcessingFailed", "", fmt.Sprintf("the preprocessing function's result for the record: %q", fr.Result), string(rec.Data), rec.Arrival/1e6)
			}
		}
	}
	return out
}

// deliver sends an output's rows to its function until each is Ok:
// records the function reports DeliveryFailed are sent again (with a
// growing retryHint), with backoff from 1 s to 30 s, for as long as it
// takes (or the application stops).
func (r *runner) deliver(ctx context.Context, o *outputRun) error {
	pending := o.pending
	for hint, wait := 0, time.Second; len(pending) > 0; hint++ {
		var failed []streamstore.Entry
		for start := 0; start < len(pending); {
			end, size := start, 0
			for end < len(pending) && (end == start || size+len(pending[end].Data)*4/3 < functionBatch) {
				size += len(pending[end].Data)*4/3 + 100
				end++
			}
			batch := pending[start:end]
			start = end
			event := make([]functionRecord, len(batch))
			for i, e := range batch {
				event[i] = functionRecord{RecordID: e.PartitionKey, Data: base64.StdEncoding.EncodeToString(e.Data),
					Delivery: &struct {
						RetryHint int `json:"retryHint"`
					}{hint}}
			}
			body, _ := json.Marshal(map[string]any{"invocationId": uuid.NewString(), "applicationArn": r.arn, "records": event})
			var res struct {
				Records []functionRecord `json:"records"`
			}
			if err := awsapi.InvokeFunction(ctx, r.s.http, o.url, body, &res); err != nil {
				r.s.log.Warn("analytics output function failed", "application", r.app, "output", o.out.OutputID, "err", err)
				failed = append(failed, batch...)
				continue
			}
			ok := map[string]bool{}
			for _, fr := range res.Records {
				ok[fr.RecordID] = fr.Result == "Ok"
			}
			for _, e := range batch {
				if !ok[e.PartitionKey] {
					failed = append(failed, e)
				}
			}
		}
		pending = failed
		if len(pending) > 0 {
			if !sleep(ctx, wait) {
				return ctx.Err()
			}
			wait = min(2*wait, 30*time.Second)
		}
	}
	return nil
}
