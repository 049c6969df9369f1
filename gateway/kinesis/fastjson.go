package kinesis

import (
	"encoding/json"
	"strconv"
	"sync"

	"github.com/streamgate/streamgate/gateway/awsapi"
)

// decodePutRecordsFast decodes the common shape of a PutRecords (or
// PutRecord, with single set) JSON body in one pass, base64-decoding data
// straight into one arena. It is the hot path of ingestion: encoding/json
// scans such bodies three times and costs several times more CPU.
//
// It accepts only what it fully understands: any escape sequence, null,
// duplicate-cased key or other surprise returns false, and the caller decodes
// with encoding/json instead, so behaviour and error messages never differ.
func decodePutRecordsFast(body []byte, in *putRecordsInput) bool {
	s := scanner{Scanner: awsapi.Scanner{B: body}}
	arena := in.arena(len(body) * 3 / 4)
	s.WS()
	if !s.Eat('{') {
		return false
	}
	s.WS()
	if s.Eat('}') {
		return s.End()
	}
	for {
		key, ok := s.Str()
		if !ok {
			return false
		}
		s.WS()
		if !s.Eat(':') {
			return false
		}
		s.WS()
		switch string(key) {
		case "StreamName", "StreamARN":
			v, ok := s.Text()
			if !ok {
				return false
			}
			if string(key) == "StreamName" {
				in.StreamName = v
			} else {
				in.StreamARN = v
			}
		case "Records":
			if !s.Eat('[') {
				return false
			}
			recs := make([]putRecordsEntry, 0, 500)
			s.WS()
			if !s.Eat(']') {
				for {
					var rec putRecordsEntry
					if arena, ok = s.record(&rec, arena); !ok {
						return false
					}
					recs = append(recs, rec)
					s.WS()
					if s.Eat(']') {
						break
					}
					if !s.Eat(',') {
						return false
					}
					s.WS()
				}
			}
			in.Records = recs
		default:
			if awsapi.IsFieldFold(key, "StreamName", "StreamARN", "Records") || !s.Skip() {
				return false
			}
		}
		s.WS()
		if s.Eat('}') {
			return s.End()
		}
		if !s.Eat(',') {
			return false
		}
		s.WS()
	}
}

// decodePutRecordFast decodes a PutRecord body the same way.
func decodePutRecordFast(body []byte, in *putRecordInput) bool {
	// A PutRecord body is a record object with stream fields: reuse the
	// record decoder over the whole object.
	s := scanner{Scanner: awsapi.Scanner{B: body}}
	s.WS()
	var rec putRecordsEntry
	arena := make([]byte, 0, len(body)*3/4)
	var ok bool
	s.extra = func(key []byte) bool {
		switch string(key) {
		case "StreamName":
			in.StreamName, ok = s.Text()
		case "StreamARN":
			in.StreamARN, ok = s.Text()
		case "SequenceNumberForOrdering":
			in.SequenceNumberForOrdering, ok = s.Text()
		default:
			return false
		}
		return ok
	}
	if _, ok := s.record(&rec, arena); !ok || !s.End() {
		return false
	}
	in.Data, in.PartitionKey, in.ExplicitHashKey = rec.Data, rec.PartitionKey, rec.ExplicitHashKey
	return true
}

// scanner reads PutRecords bodies; extra, when set, decodes keys a record
// object may carry besides its own (PutRecord's stream fields).
type scanner struct {
	awsapi.Scanner
	extra func(key []byte) bool
}

// record decodes {"Data": base64, "PartitionKey": s, "ExplicitHashKey": s}.
func (s *scanner) record(rec *putRecordsEntry, arena []byte) ([]byte, bool) {
	if !s.Eat('{') {
		return arena, false
	}
	s.WS()
	if s.Eat('}') {
		return arena, true
	}
	for {
		key, ok := s.Str()
		if !ok {
			return arena, false
		}
		s.WS()
		if !s.Eat(':') {
			return arena, false
		}
		s.WS()
		switch string(key) {
		case "Data":
			v, ok := s.Base64Str()
			if !ok {
				return arena, false
			}
			if arena, rec.Data, ok = awsapi.DecodeBase64(arena, v); !ok {
				return arena, false
			}
		case "PartitionKey":
			if rec.PartitionKey, ok = s.Text(); !ok {
				return arena, false
			}
		case "ExplicitHashKey":
			if rec.ExplicitHashKey, ok = s.Text(); !ok {
				return arena, false
			}
		default:
			if awsapi.IsFieldFold(key, "Data", "PartitionKey", "ExplicitHashKey", "StreamName", "StreamARN", "SequenceNumberForOrdering") {
				// An exact stream field of PutRecord, or a differently-cased
				// known key (encoding/json folds case): let extra decide.
				if s.extra == nil || !s.extra(key) {
					return arena, false
				}
			} else if !s.Skip() {
				return arena, false
			}
		}
		s.WS()
		if s.Eat('}') {
			return arena, true
		}
		if !s.Eat(',') {
			return arena, false
		}
		s.WS()
	}
}

// MarshalJSON writes a PutRecords response without reflection: it is sent
// once per ingested batch.
func (o putRecordsOutput) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64+len(o.Records)*90)
	b = append(b, `{"FailedRecordCount":`...)
	b = strconv.AppendInt(b, int64(o.FailedRecordCount), 10)
	b = append(b, `,"Records":[`...)
	for i, r := range o.Records {
		if i > 0 {
			b = append(b, ',')
		}
		if r.ErrorCode != "" {
			// Rare, and messages are free text: let encoding/json quote them.
			e, err := json.Marshal(r)
			if err != nil {
				return nil, err
			}
			b = append(b, e...)
			continue
		}
		b = append(b, `{"SequenceNumber":"`...)
		b = append(b, r.SequenceNumber...) // digits
		b = append(b, `","ShardId":"`...)
		b = append(b, r.ShardId...) // shardId-NNN
		b = append(b, `"}`...)
	}
	b = append(b, `],"EncryptionType":"`...)
	b = append(b, o.EncryptionType...)
	return append(b, `"}`...), nil
}

// arenas recycles the buffers decoded record data lives in between calls:
// PutRecords bodies are megabytes, and zeroing fresh ones showed in profiles.
var arenas sync.Pool

func (in *putRecordsInput) arena(n int) []byte {
	if p, ok := arenas.Get().(*[]byte); ok && cap(*p) >= n {
		in.pooled = p
		return (*p)[:0]
	} else if ok {
		arenas.Put(p)
	}
	b := make([]byte, 0, n)
	in.pooled = &b
	return b
}

// release returns the arena once nothing refers to the records' data.
func (in *putRecordsInput) release() {
	if in.pooled != nil && cap(*in.pooled) <= 16<<20 {
		arenas.Put(in.pooled)
	}
	in.pooled = nil
}
