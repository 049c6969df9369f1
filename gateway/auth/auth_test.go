package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

func TestPolicyEvaluation(t *testing.T) {
	p, err := ParsePolicy([]byte(`{"Statement":[
		{"Effect":"Allow","Action":["kinesis:Get*","kinesis:DescribeStream?ummary"],"Resource":"arn:aws:kinesis:us-east-1:*:stream/cam-*"},
		{"Effect":"Deny","Action":"kinesis:GetRecords","Resource":"arn:aws:kinesis:us-east-1:*:stream/cam-secret"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		action, resource string
		want             bool
	}{
		{"kinesis:GetRecords", "arn:aws:kinesis:us-east-1:000000000000:stream/cam-1", true},
		{"kinesis:getshardIterator", "arn:aws:kinesis:us-east-1:000000000000:stream/cam-1", true}, // actions fold case
		{"kinesis:DescribeStreamSummary", "arn:aws:kinesis:us-east-1:000000000000:stream/cam-1", true},
		{"kinesis:GetRecords", "arn:aws:kinesis:us-east-1:000000000000:stream/cam-secret", false}, // Deny wins
		{"kinesis:GetShardIterator", "arn:aws:kinesis:us-east-1:000000000000:stream/cam-secret", true},
		{"kinesis:PutRecord", "arn:aws:kinesis:us-east-1:000000000000:stream/cam-1", false},
		{"kinesis:GetRecords", "arn:aws:kinesis:us-east-1:000000000000:stream/CAM-1", false}, // resources do not fold
		{"kinesis:GetRecords", "arn:aws:kinesis:eu-west-1:000000000000:stream/cam-1", false},
		{"kinesis:GetRecords", "arn:aws:kinesis:us-east-1:000000000000:stream/cam-1/consumer/x:1", true}, // * crosses /
	}
	for _, c := range cases {
		if got := p.Allows(c.action, c.resource); got != c.want {
			t.Errorf("%s on %s: %v, want %v", c.action, c.resource, got, c.want)
		}
	}
	for _, bad := range []string{`{}`, `{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"PutRecord","Resource":"*"}]}`, `{"Statement":[{"Effect":"Allow","Action":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{}}]}`} {
		if _, err := ParsePolicy([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func benchVerifier(b testing.TB) (*Verifier, Key) {
	store, created, err := OpenStore(b.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	return &Verifier{Keys: store, Region: "us-east-1"}, *created
}

// BenchmarkVerify is the cost of SigV4 verification of one request: a small
// body (the signature itself) and a PutRecords-sized 70 KB body (its SHA-256
// included).
func BenchmarkVerify(b *testing.B) {
	v, key := benchVerifier(b)
	for _, size := range []int{100, 70 << 10} {
		body := bytes.Repeat([]byte("x"), size)
		sum := sha256.Sum256(body)
		req, _ := http.NewRequest("POST", "http://localhost:4566/", bytes.NewReader(body))
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.PutRecords")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret}, req, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", time.Now())
		b.Run(fmt.Sprintf("body-%dB", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := v.Verify(req, body, "kinesis"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
