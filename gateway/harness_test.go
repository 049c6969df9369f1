package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/streamgate/streamgate/gateway/auth"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	"github.com/streamgate/streamgate/gateway"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

var ctx = context.Background()

// server is a gateway started for one test on a loopback port.
type server struct {
	gw       *gateway.Gateway
	endpoint string
	dataDir  string
	key      auth.Key // the admin key made on first start (zero with auth none)
}

func startServer(t testing.TB, tweak func(*gateway.Config)) *server {
	t.Helper()
	return startServerWith(t, tweak, nil)
}

// startServerLogging starts a server whose debug-level logs go to w.
func startServerLogging(t testing.TB, w io.Writer) *server {
	t.Helper()
	return startServerWith(t, func(c *gateway.Config) { c.LogLevel = "debug" }, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

func startServerWith(t testing.TB, tweak func(*gateway.Config), log *slog.Logger) *server {
	t.Helper()
	cfg := gateway.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.RTSPAddr, cfg.MQTTAddr, cfg.WebRTCAddr, cfg.Video.RTSPSAddr = "", "", "", ""
	if tweak != nil {
		tweak(&cfg)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
		if testing.Verbose() {
			log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
		}
	}
	gw, err := gateway.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, gw) })
	s := &server{gw: gw, endpoint: "http://" + gw.HTTPAddr(), dataDir: cfg.DataDir}
	if k, _ := gw.CreatedKey(); k != nil {
		s.key = *k
	} else {
		s.key = auth.Key{ID: "AKIDEXAMPLE", Secret: "secret"}
	}
	return s
}

// shutdown stops a gateway, and fails the test with every goroutine's
// stack if that takes more than half a minute: a hang shows where it is
// instead of running into the test binary's timeout.
func shutdown(t testing.TB, gw *gateway.Gateway) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- gw.Shutdown(sctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		var stacks strings.Builder
		pprof.Lookup("goroutine").WriteTo(&stacks, 2)
		t.Fatalf("shutdown did not return in 30 s; goroutines:\n%s", stacks.String())
	}
}

// readAdminKey is the first key of the server's key file.
func (s *server) readAdminKey(t testing.TB) auth.Key {
	t.Helper()
	keys, err := auth.LoadKeys(auth.KeysPath(s.dataDir))
	if err != nil || len(keys) == 0 {
		t.Fatalf("no admin key: %v", err)
	}
	return keys[0]
}

// metrics is the server's Prometheus text.
func (s *server) metrics(t testing.TB) string {
	t.Helper()
	res, err := http.Get(s.endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// addKey adds an access key with an IAM-style policy to the server's key
// store (picked up at once) and returns it.
func (s *server) addKey(t testing.TB, name, policyJSON string) auth.Key {
	t.Helper()
	policy, err := auth.ParsePolicy([]byte(policyJSON))
	if err != nil {
		t.Fatal(err)
	}
	k := auth.NewKey(name, policy)
	keys, _ := auth.LoadKeys(auth.KeysPath(s.dataDir))
	if err := auth.SaveKeys(auth.KeysPath(s.dataDir), append(keys, k)); err != nil {
		t.Fatal(err)
	}
	return k
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// client is an aws-sdk-go-v2 Kinesis client for the server, as a user would
// configure it: only the endpoint changes.
func (s *server) client(opts ...func(*kinesis.Options)) *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(s.key.ID, s.key.Secret, ""),
		Retryer:      aws.NopRetryer{},
		HTTPClient:   awsapi.SDKHTTPClient(nil),
	}, opts...)
}

// apiError asserts err is an AWS API error with the given code.
func apiError(t testing.TB, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want API error %s", err, code)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("got %s (%s), want %s", ae.ErrorCode(), ae.ErrorMessage(), code)
	}
	if ae.ErrorMessage() == "" {
		t.Fatalf("%s without a message", code)
	}
}

// rawCall posts a body with a target and returns status, headers and body.
func (s *server) rawCall(t testing.TB, target, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	return s.rawCallAs(t, "kinesis", target, contentType, body)
}

// rawCallAs is rawCall signed for another service's signing name.
func (s *server) rawCallAs(t testing.TB, service, target, contentType string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.endpoint+"/", bytes.NewReader(body))
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	req.Header.Set("Content-Type", contentType)
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: s.key.ID, SecretAccessKey: s.key.Secret}, req, hex.EncodeToString(sum[:]), service, "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func jsonBody(v any) []byte { b, _ := json.Marshal(v); return b }

type bigInt = big.Int

var bigOne = big.NewInt(1)
