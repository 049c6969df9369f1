package kinesis

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

var fastSeeds = []string{
	`{"StreamName":"s","Records":[{"Data":"aGVsbG8=","PartitionKey":"k"},{"Data":"","PartitionKey":"k2","ExplicitHashKey":"5"}]}`,
	`{"Records":[],"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s"}`,
	` { "StreamName" : "s" , "Other": {"a":[1,2.5e3,-0.1,true,false,null,"x"]}, "Records" : [ { "Data" : "eA==" , "PartitionKey" : "k" } ] } `,
	`{"streamname":"s","Records":[]}`,
	`{"StreamName":"s\u0041","Records":[]}`,
	`{"StreamName":"s","Records":[{"Data":null,"PartitionKey":"k"}]}`,
	`{"StreamName":"s","Records":[{"Data":"!!","PartitionKey":"k"}]}`,
	`{"StreamName":"s","Records":[{"Data":"eA==","PartitionKey":"k","X":01}]}`,
	`{"StreamName":"s"}x`,
	`{"StreamName":"s","Data":"eA==","PartitionKey":"k","SequenceNumberForOrdering":"1"}`,
}

// The fast decoder either declines or produces exactly what encoding/json does.
func FuzzFastPutRecordsMatchesEncodingJSON(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var fast putRecordsInput
		if decodePutRecordsFast(body, &fast) {
			var std putRecordsInput
			if err := json.Unmarshal(body, &std); err != nil {
				t.Fatalf("fast path accepted what encoding/json rejects (%v): %q", err, body)
			}
			if !equalPutRecords(fast, std) {
				t.Fatalf("fast %+v != std %+v for %q", fast, std, body)
			}
		}
		var one putRecordInput
		if decodePutRecordFast(body, &one) {
			var std putRecordInput
			if err := json.Unmarshal(body, &std); err != nil {
				t.Fatalf("fast PutRecord accepted what encoding/json rejects (%v): %q", err, body)
			}
			if !bytes.Equal(one.Data, std.Data) || (one.Data == nil) != (std.Data == nil) || one.streamRef != std.streamRef ||
				one.PartitionKey != std.PartitionKey || one.ExplicitHashKey != std.ExplicitHashKey || one.SequenceNumberForOrdering != std.SequenceNumberForOrdering {
				t.Fatalf("fast %+v != std %+v for %q", one, std, body)
			}
		}
	})
}

func equalPutRecords(a, b putRecordsInput) bool {
	if a.streamRef != b.streamRef || len(a.Records) != len(b.Records) || (a.Records == nil) != (b.Records == nil) {
		return false
	}
	for i := range a.Records {
		x, y := a.Records[i], b.Records[i]
		if !bytes.Equal(x.Data, y.Data) || (x.Data == nil) != (y.Data == nil) || x.PartitionKey != y.PartitionKey || x.ExplicitHashKey != y.ExplicitHashKey {
			return false
		}
	}
	return reflect.DeepEqual(len(a.Records), len(b.Records))
}

func TestFastDecoderTakesTheCommonShape(t *testing.T) {
	var in putRecordsInput
	if !decodePutRecordsFast([]byte(fastSeeds[0]), &in) || len(in.Records) != 2 || string(in.Records[0].Data) != "hello" || in.Records[1].Data == nil {
		t.Fatalf("common body not decoded: %+v", in)
	}
	var one putRecordInput
	if !decodePutRecordFast([]byte(fastSeeds[len(fastSeeds)-1]), &one) || string(one.Data) != "x" || one.StreamName != "s" {
		t.Fatalf("PutRecord body not decoded: %+v", one)
	}
	for _, declined := range fastSeeds[3:9] {
		if decodePutRecordsFast([]byte(declined), &in) {
			t.Errorf("fast path took %s", declined)
		}
	}
}

func TestPutRecordsOutputEncodesLikeEncodingJSON(t *testing.T) {
	out := putRecordsOutput{FailedRecordCount: 1, EncryptionType: "NONE", Records: []putRecordsResultEntry{
		{SequenceNumber: "170141183460469231731687303715884105729", ShardId: "shardId-000000000000"},
		{ErrorCode: "ProvisionedThroughputExceededException", ErrorMessage: `Rate "exceeded" <for> shard`},
	}}
	fast, _ := json.Marshal(out)
	type plain putRecordsOutput // no MarshalJSON method
	std, _ := json.Marshal(plain(out))
	if !bytes.Equal(fast, std) {
		t.Fatalf("fast %s\n std %s", fast, std)
	}
}
