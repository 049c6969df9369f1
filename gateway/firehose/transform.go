package firehose

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

// Data transformation with the Lambda contract: records go to the function
// in invocations of at most lambdaBatchBytes; each comes back Ok (new data,
// and partition keys in metadata), Dropped, or ProcessingFailed.

const lambdaBatchBytes = 1 << 20

// transformed is a record after the function.
type transformed struct {
	rec    streamstore.Record
	data   []byte
	keys   map[string]string
	failed string // the error, for ProcessingFailed and failed invocations
	drop   bool
}

type lambdaRecord struct {
	RecordID string `json:"recordId"`
	Result   string `json:"result,omitempty"`
	Arrival  int64  `json:"approximateArrivalTimestamp,omitempty"`
	Data     string `json:"data"`
	Metadata *struct {
		PartitionKeys map[string]string `json:"partitionKeys"`
	} `json:"metadata,omitempty"`
}

// transform runs the function over a read batch of records.
func (s *Service) transform(ctx context.Context, ds *DeliveryStream, p procs, recs []streamstore.Record) []transformed {
	out := make([]transformed, 0, len(recs))
	for start := 0; start < len(recs); {
		end, size := start, 0
		for end < len(recs) && (end == start || size+len(recs[end].Data)*4/3 < lambdaBatchBytes) {
			size += len(recs[end].Data) * 4 / 3
			end++
		}
		out = append(out, s.invoke(ctx, ds, p, recs[start:end])...)
		start = end
	}
	return out
}

func (s *Service) invoke(ctx context.Context, ds *DeliveryStream, p procs, recs []streamstore.Record) []transformed {
	in := make([]lambdaRecord, len(recs))
	for i, r := range recs {
		in[i] = lambdaRecord{RecordID: strconv.Itoa(i), Arrival: r.Arrival / 1e6, Data: base64.StdEncoding.EncodeToString(r.Data)}
	}
	body, _ := json.Marshal(map[string]any{"invocationId": uuid.NewString(), "deliveryStreamArn": s.arn(ds.Name), "region": s.region, "records": in})
	var res struct {
		Records []lambdaRecord `json:"records"`
	}
	var err error
	for attempt := 0; attempt <= p.retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				attempt = p.retries
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		if err = awsapi.InvokeFunction(ctx, s.http, p.lambda, body, &res); err == nil {
			break
		}
		s.m.failures.WithLabelValues(ds.Name, "lambda").Inc()
		s.log.Warn("transformation function failed", "delivery_stream", ds.Name, "attempt", attempt+1, "err", err)
	}
	out := make([]transformed, len(recs))
	for i, r := range recs {
		out[i] = transformed{rec: r}
		if err != nil {
			out[i].failed = "Lambda.InvokeFailed: " + err.Error()
		} else {
			out[i].failed = "Lambda.MissingRecordId: the function did not return record " + strconv.Itoa(i)
		}
	}
	if err != nil {
		return out
	}
	for _, lr := range res.Records {
		i, cerr := strconv.Atoi(lr.RecordID)
		if cerr != nil || i < 0 || i >= len(recs) {
			continue // a mismatched record id fails its record (left failed above)
		}
		t := &out[i]
		t.failed = ""
		switch lr.Result {
		case "Ok":
			data, derr := base64.StdEncoding.DecodeString(lr.Data)
			if derr != nil {
				t.failed = "Lambda.InvalidReturnedData: " + derr.Error()
				continue
			}
			t.data = data
			if lr.Metadata != nil {
				t.keys = lr.Metadata.PartitionKeys
			}
		case "Dropped":
			t.drop = true
		case "ProcessingFailed":
			t.failed = "Lambda.ProcessingFailed"
		default:
			t.failed = fmt.Sprintf("Lambda.InvalidResult: %q", lr.Result)
		}
	}
	return out
}
