package firehose

import "github.com/streamgate/streamgate/gateway/awsapi"

// decodeBatchFast decodes the common shape of a PutRecordBatch body,
// {"DeliveryStreamName": "...", "Records": [{"Data": "<base64>"}, ...]}, in
// one pass into one arena: the ingestion hot path, where encoding/json cost
// a third of the CPU. Anything unusual returns false and the caller decodes
// with encoding/json, so answers never differ.
func decodeBatchFast(body []byte) (name string, recs [][]byte, ok bool) {
	s := awsapi.Scanner{B: body}
	arena := make([]byte, 0, len(body)*3/4)
	s.WS()
	if !s.Eat('{') {
		return "", nil, false
	}
	s.WS()
	if s.Eat('}') {
		return "", nil, s.End()
	}
	for {
		key, ok := s.Str()
		if !ok {
			return "", nil, false
		}
		s.WS()
		if !s.Eat(':') {
			return "", nil, false
		}
		s.WS()
		switch string(key) {
		case "DeliveryStreamName":
			if name, ok = s.Text(); !ok {
				return "", nil, false
			}
		case "Records":
			if !s.Eat('[') {
				return "", nil, false
			}
			recs = make([][]byte, 0, MaxBatch)
			s.WS()
			if !s.Eat(']') {
				for {
					var data []byte
					if arena, data, ok = record(&s, arena); !ok {
						return "", nil, false
					}
					recs = append(recs, data)
					s.WS()
					if s.Eat(']') {
						break
					}
					if !s.Eat(',') {
						return "", nil, false
					}
					s.WS()
				}
			}
		default:
			if awsapi.IsFieldFold(key, "DeliveryStreamName", "Records") || !s.Skip() {
				return "", nil, false
			}
		}
		s.WS()
		if s.Eat('}') {
			return name, recs, s.End()
		}
		if !s.Eat(',') {
			return "", nil, false
		}
		s.WS()
	}
}

// record decodes {"Data": "<base64>"}.
func record(s *awsapi.Scanner, arena []byte) ([]byte, []byte, bool) {
	var data []byte
	seen := false
	if !s.Eat('{') {
		return arena, nil, false
	}
	s.WS()
	if s.Eat('}') {
		return arena, nil, false // no Data: let encoding/json answer
	}
	for {
		key, ok := s.Str()
		if !ok {
			return arena, nil, false
		}
		s.WS()
		if !s.Eat(':') {
			return arena, nil, false
		}
		s.WS()
		switch {
		case string(key) == "Data" && !seen:
			v, ok := s.Base64Str()
			if !ok {
				return arena, nil, false
			}
			if arena, data, ok = awsapi.DecodeBase64(arena, v); !ok {
				return arena, nil, false
			}
			seen = true
		case awsapi.IsFieldFold(key, "Data") || !s.Skip():
			return arena, nil, false
		}
		s.WS()
		if s.Eat('}') {
			return arena, data, seen
		}
		if !s.Eat(',') {
			return arena, nil, false
		}
		s.WS()
	}
}
