package auth

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The chunk-signed upload of the SigV4 documentation (Amazon S3, "Signature
// calculation: transfer payload in multiple chunks"): its published seed
// and chunk signatures verify, and a changed byte does not.
func TestVerifyStreamingChunkedExample(t *testing.T) {
	dir := t.TempDir()
	if err := SaveKeys(KeysPath(dir), []Key{{ID: "AKIAIOSFODNN7EXAMPLE", Secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", Name: "example",
		Policy: Policy{Statement: []Statement{{Effect: "Allow", Action: stringList{"*"}, Resource: stringList{"*"}}}}}}); err != nil {
		t.Fatal(err)
	}
	store, _, err := OpenStore(dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Keys: store, Region: "us-east-1", Now: func() time.Time { return time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC) }}
	chunk := func(data []byte, sig string) string {
		return fmt.Sprintf("%x;chunk-signature=%s\r\n%s\r\n", len(data), sig, data)
	}
	body := chunk(bytes.Repeat([]byte("a"), 65536), "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648") +
		chunk(bytes.Repeat([]byte("a"), 1024), "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497") +
		chunk(nil, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9")
	request := func(body string) *http.Request {
		r, _ := http.NewRequest("PUT", "http://s3.amazonaws.com/examplebucket/chunkObject.txt", strings.NewReader(body))
		r.Host = "s3.amazonaws.com"
		r.ContentLength = 66824
		for k, v := range map[string]string{"Content-Encoding": "aws-chunked", "X-Amz-Content-Sha256": streamingPayload, "X-Amz-Date": "20130524T000000Z",
			"X-Amz-Decoded-Content-Length": "66560", "X-Amz-Storage-Class": "REDUCED_REDUNDANCY",
			"Authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"} {
			r.Header.Set(k, v)
		}
		return r
	}
	_, payload, err := v.VerifyStreaming(request(body), "s3")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(payload)
	if err != nil || len(got) != 66560 || strings.Trim(string(got), "a") != "" {
		t.Fatalf("decoded %d bytes, %v", len(got), err)
	}
	tampered := strings.Replace(body, "aaaa\r\n", "aaab\r\n", 1)
	_, payload, err = v.VerifyStreaming(request(tampered), "s3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(payload); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("a changed chunk read without error: %v", err)
	}
	r := request(body)
	r.Header.Set("X-Amz-Storage-Class", "STANDARD")
	if _, _, err := v.VerifyStreaming(r, "s3"); err == nil {
		t.Fatal("a changed signed header was accepted")
	}
}
