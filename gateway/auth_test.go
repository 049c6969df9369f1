package gateway_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/streamgate/streamgate/gateway/auth"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

func (s *server) clientAs(id, secret string) *kinesis.Client {
	return kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""), Retryer: aws.NopRetryer{}, HTTPClient: awsapi.SDKHTTPClient(nil)})
}

// signedAt sends a PutRecord signed by key at a given time.
func (s *server) signedAt(t *testing.T, key auth.Key, at time.Time) (int, string) {
	body := []byte(`{"StreamName":"s","PartitionKey":"k","Data":"eA=="}`)
	req, _ := http.NewRequest("POST", s.endpoint+"/", bytes.NewReader(body))
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.PutRecord")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	sum := sha256.Sum256(body)
	v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret}, req, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", at)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func countRecords(t *testing.T, k *kinesis.Client, stream string) int {
	t.Helper()
	it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	res, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Records)
}

func TestRequestsMustBeSignedByAKnownKey(t *testing.T) {
	s := startServer(t, nil)
	admin := s.client()
	createStream(t, admin, "s", 1)

	_, err := s.clientAs(s.key.ID, "wrong-secret").PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")})
	apiError(t, err, "InvalidSignatureException")
	_, err = s.clientAs("SGAKNOTAREALKEY00000", "x").PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("x")})
	apiError(t, err, "UnrecognizedClientException")

	// A request captured and replayed 20 minutes later.
	if status, body := s.signedAt(t, s.key, time.Now().Add(-20*time.Minute)); status != 403 || !strings.Contains(body, "InvalidSignatureException") || !strings.Contains(body, "Signature expired") {
		t.Fatalf("replay: %d %s", status, body)
	}
	// No signature at all.
	resp, err := http.Post(s.endpoint+"/", "application/x-amz-json-1.1", strings.NewReader(`{"StreamName":"s","PartitionKey":"k","Data":"eA=="}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("X-Amzn-ErrorType") != "UnknownOperationException" {
		t.Fatalf("no target, no signature: %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
	req, _ := http.NewRequest("POST", s.endpoint+"/", strings.NewReader(`{"StreamName":"s","PartitionKey":"k","Data":"eA=="}`))
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.PutRecord")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("X-Amzn-ErrorType") != "MissingAuthenticationTokenException" {
		t.Fatalf("unsigned: %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
	// A signature for another region or service.
	other := s.clientAs(s.key.ID, s.key.Secret)
	_, err = other.ListStreams(ctx, &kinesis.ListStreamsInput{}, func(o *kinesis.Options) { o.Region = "eu-west-1" })
	apiError(t, err, "InvalidSignatureException")

	if n := countRecords(t, admin, "s"); n != 0 {
		t.Fatalf("%d records written by refused requests", n)
	}
	if status, body := s.signedAt(t, s.key, time.Now()); status != 200 {
		t.Fatalf("a correctly signed request: %d %s", status, body)
	}
}

// A key allowed only kinesis:PutRecord* on stream/fleet-* writes fleet
// streams, cannot read them, and cannot write others.
func TestPolicyLimitsAKeyToItsStreamsAndActions(t *testing.T) {
	s := startServer(t, nil)
	admin := s.client()
	createStream(t, admin, "fleet-a", 1)
	createStream(t, admin, "other", 1)
	device := s.addKey(t, "device-7", `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"kinesis:PutRecord*","Resource":"arn:aws:kinesis:*:*:stream/fleet-*"},
		{"Effect":"Deny","Action":"kinesis:PutRecords","Resource":"arn:aws:kinesis:*:*:stream/fleet-b"}]}`)
	k := s.clientAs(device.ID, device.Secret)
	if _, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("fleet-a"), PartitionKey: aws.String("k"), Data: []byte("ok")}); err != nil {
		t.Fatalf("allowed write refused: %v", err)
	}
	if _, err := k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("fleet-a"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("ok")}}}); err != nil {
		t.Fatalf("PutRecords (matches PutRecord*) refused: %v", err)
	}
	_, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String("fleet-a"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	apiError(t, err, "AccessDeniedException")
	_, err = k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("other"), PartitionKey: aws.String("k"), Data: []byte("no")})
	apiError(t, err, "AccessDeniedException")
	createStream(t, admin, "fleet-b", 1)
	_, err = k.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("fleet-b"), Records: []types.PutRecordsRequestEntry{{PartitionKey: aws.String("k"), Data: []byte("no")}}})
	apiError(t, err, "AccessDeniedException") // explicit Deny wins over the Allow
	_, err = k.ListStreams(ctx, &kinesis.ListStreamsInput{})
	apiError(t, err, "AccessDeniedException")
	if n := countRecords(t, admin, "other"); n != 0 {
		t.Fatalf("denied write landed: %d records", n)
	}
	if n := countRecords(t, admin, "fleet-a"); n != 2 {
		t.Fatalf("fleet-a has %d records, want 2", n)
	}
}

// The presigned (query-string) form verifies too, and expires.
func TestPresignedRequests(t *testing.T) {
	s := startServer(t, nil)
	presign := func(expires string, at time.Time) string {
		req, _ := http.NewRequest("POST", s.endpoint+"/?X-Amz-Expires="+expires, nil)
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
		u, _, err := v4.NewSigner().PresignHTTP(ctx, aws.Credentials{AccessKeyID: s.key.ID, SecretAccessKey: s.key.Secret}, req, "UNSIGNED-PAYLOAD", "kinesis", "us-east-1", at)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	call := func(u string) (int, string) {
		req, _ := http.NewRequest("POST", u, strings.NewReader("{}"))
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType")
	}
	if st, code := call(presign("300", time.Now())); st != 200 {
		t.Fatalf("presigned URL: %d %s", st, code)
	}
	if st, code := call(presign("60", time.Now().Add(-2*time.Minute))); st != 403 || code != "InvalidSignatureException" {
		t.Fatalf("expired presigned URL: %d %s", st, code)
	}
	tampered := strings.Replace(presign("300", time.Now()), "X-Amz-Expires=300", "X-Amz-Expires=299", 1)
	if st, code := call(tampered); st != 403 || code != "InvalidSignatureException" {
		t.Fatalf("tampered presigned URL: %d %s", st, code)
	}
}

// The first start writes an AWS config profile that the AWS CLI uses as is.
func TestFirstStartWritesAWSProfile(t *testing.T) {
	s := startServer(t, nil)
	_, profile := s.gw.CreatedKey()
	b, err := os.ReadFile(profile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[profile streamgate]", "aws_access_key_id = " + s.key.ID, "aws_secret_access_key = " + s.key.Secret, "endpoint_url = " + s.endpoint} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("profile lacks %q:\n%s", want, b)
		}
	}
	if st, _ := os.Stat(profile); st.Mode().Perm() != 0o600 {
		t.Fatalf("profile mode %v", st.Mode().Perm())
	}
	if st, _ := os.Stat(auth.KeysPath(s.dataDir)); st.Mode().Perm() != 0o600 {
		t.Fatalf("keys file mode %v", st.Mode().Perm())
	}
}

// A key with a rate limit gets LimitExceededException past it; others do not.
func TestPerKeyRateLimit(t *testing.T) {
	s := startServer(t, nil)
	slow := auth.NewKey("slow", auth.AdminPolicy())
	slow.RequestsPerSecond = 5
	keys, _ := auth.LoadKeys(auth.KeysPath(s.dataDir))
	if err := auth.SaveKeys(auth.KeysPath(s.dataDir), append(keys, slow)); err != nil {
		t.Fatal(err)
	}
	k := s.clientAs(slow.ID, slow.Secret)
	limited := 0
	for range 20 {
		if _, err := k.ListStreams(ctx, &kinesis.ListStreamsInput{}); err != nil {
			apiError(t, err, "LimitExceededException")
			limited++
		}
	}
	if limited < 10 || limited > 16 {
		t.Fatalf("%d of 20 quick calls limited at 5 requests/s (burst 5)", limited)
	}
	for range 20 {
		if _, err := s.client().ListStreams(ctx, &kinesis.ListStreamsInput{}); err != nil {
			t.Fatalf("unlimited admin key throttled: %v", err)
		}
	}
}

// Secrets never reach the logs, whatever fails.
func TestNoSecretsInLogs(t *testing.T) {
	var logs bytes.Buffer
	s := startServerLogging(t, &logs)
	s.clientAs(s.key.ID, "not-the-secret-but-close").ListStreams(ctx, &kinesis.ListStreamsInput{})
	s.client().ListStreams(ctx, &kinesis.ListStreamsInput{})
	s.signedAt(t, s.key, time.Now().Add(-time.Hour))
	if strings.Contains(logs.String(), s.key.Secret) || strings.Contains(logs.String(), "not-the-secret") || strings.Contains(logs.String(), "Signature=") {
		t.Fatalf("a secret or signature reached the logs:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "authentication failed") || !strings.Contains(logs.String(), "access_key="+s.key.ID) {
		t.Fatalf("failed authentications are not logged for operators:\n%s", logs.String())
	}
}
