package firehose

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The fast decoder agrees with encoding/json whenever it accepts a body.
func FuzzDecodeBatchFast(f *testing.F) {
	f.Add([]byte(`{"DeliveryStreamName":"s","Records":[{"Data":"aGVsbG8="},{"Data":""}]}`))
	f.Add([]byte(`{"Records":[{"Data":"aGk=","x":1}],"DeliveryStreamName":"a"}`))
	f.Add([]byte(`{"deliverystreamname":"s","Records":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		name, recs, ok := decodeBatchFast(body)
		if !ok {
			return
		}
		var want struct {
			DeliveryStreamName string
			Records            []batchRecord
		}
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatalf("fast decoder accepted what encoding/json refuses (%v): %q", err, body)
		}
		if name != want.DeliveryStreamName || len(recs) != len(want.Records) {
			t.Fatalf("fast %q %d records, encoding/json %q %d: %q", name, len(recs), want.DeliveryStreamName, len(want.Records), body)
		}
		for i := range recs {
			if !bytes.Equal(recs[i], want.Records[i].Data) {
				t.Fatalf("record %d differs: %q", i, body)
			}
		}
	})
}
