package gateway_test

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/streamgate/streamgate/gateway"
)

// BenchmarkPutRecordsHandler measures the server's CPU per PutRecords call
// (JSON decoding, routing, framing, writing), without the network.
func BenchmarkPutRecordsHandler(b *testing.B) {
	for _, c := range []struct {
		size int
		auth string
	}{{100, "none"}, {100, "sigv4"}, {10240, "none"}, {10240, "sigv4"}} {
		size := c.size
		b.Run(fmt.Sprintf("%dB/auth-%s", size, c.auth), func(b *testing.B) {
			s := startServer(b, func(cfg *gateway.Config) { cfg.Storage.Fsync = "never"; cfg.Auth = c.auth })
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
			// Sign once: the signature stays valid for 15 minutes, and replaying
			// it measures the server's verification alone.
			signed := httptest.NewRequest("POST", "http://localhost:4566/", bytes.NewReader(body))
			signed.Header.Set("X-Amz-Target", "Kinesis_20131202.PutRecords")
			signed.Header.Set("Content-Type", "application/x-amz-json-1.1")
			sum := sha256.Sum256(body)
			v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: s.key.ID, SecretAccessKey: s.key.Secret}, signed, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", time.Now())
			b.SetBytes(int64(n * size))
			b.ResetTimer()
			for b.Loop() {
				req := httptest.NewRequest("POST", "http://localhost:4566/", bytes.NewReader(body))
				req.Header = signed.Header.Clone()
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
