package gateway_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/streamgate/streamgate/gateway"
)

// BenchmarkPutRecordsHandler measures the server's CPU per PutRecords call
// (JSON decoding, routing, framing, writing), without the network.
func BenchmarkPutRecordsHandler(b *testing.B) {
	for _, size := range []int{100, 10240} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			s := startServer(b, func(c *gateway.Config) { c.Storage.Fsync = "never" })
			s.rawCall(b, "Kinesis_20131202.CreateStream", "application/x-amz-json-1.1", []byte(`{"StreamName":"b","ShardCount":4}`))
			n := 500
			if size > 1000 {
				n = 400
			}
			type entry struct {
				Data         []byte
				PartitionKey string
			}
			entries := make([]entry, n)
			for i := range entries {
				entries[i].Data = make([]byte, size)
				rand.Read(entries[i].Data)
				entries[i].PartitionKey = fmt.Sprint("key-", i)
			}
			body, _ := json.Marshal(map[string]any{"StreamName": "b", "Records": entries})
			h := s.gw.Handler()
			b.SetBytes(int64(n * size))
			b.ResetTimer()
			for b.Loop() {
				req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
				req.Header.Set("X-Amz-Target", "Kinesis_20131202.PutRecords")
				req.Header.Set("Content-Type", "application/x-amz-json-1.1")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}
