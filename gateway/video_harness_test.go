package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideomedia"
	"github.com/bluenviron/gortsplib/v4"
	"github.com/streamgate/streamgate/gateway"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

// freeUDPPair finds an even UDP port whose successor is free too, for RTP and RTCP.
func freeUDPPair(t testing.TB) (string, string) {
	t.Helper()
	for range 100 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if port%2 != 0 || port > 65000 {
			continue
		}
		a, err1 := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		b, err2 := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port+1))
		if a != nil {
			a.Close()
		}
		if b != nil {
			b.Close()
		}
		if err1 == nil && err2 == nil {
			return fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", port+1)
		}
	}
	t.Fatal("no free UDP port pair")
	return "", ""
}

// startVideoServer starts a gateway with RTSP (TCP and UDP) on loopback.
func startVideoServer(t testing.TB, tweak func(*gateway.Config)) *server {
	t.Helper()
	rtp, rtcp := freeUDPPair(t)
	return startServer(t, func(c *gateway.Config) {
		c.RTSPAddr = "127.0.0.1:0"
		c.Video.RTSPUDPRTPAddr, c.Video.RTSPUDPRTCPAddr = rtp, rtcp
		if tweak != nil {
			tweak(c)
		}
	})
}

// rtspURL is the server's RTSP URL for a stream, with the admin key as credentials.
func (s *server) rtspURL(stream string) string {
	u := url.URL{Scheme: "rtsp", Host: s.gw.RTSPAddr(), Path: "/" + stream, User: url.UserPassword(s.key.ID, s.key.Secret)}
	return u.String()
}

// videoClients are the SDK clients a KVS user makes.
type videoClients struct {
	kv       *kinesisvideo.Client
	archived *kinesisvideoarchivedmedia.Client
	media    *kinesisvideomedia.Client
}

func (s *server) videoClients() videoClients {
	creds := credentials.NewStaticCredentialsProvider(s.key.ID, s.key.Secret, "")
	return videoClients{
		kv: kinesisvideo.New(kinesisvideo.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.endpoint), Credentials: creds,
			Retryer: aws.NopRetryer{}, HTTPClient: awsapi.SDKHTTPClient(nil)}),
		archived: kinesisvideoarchivedmedia.New(kinesisvideoarchivedmedia.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.endpoint),
			Credentials: creds, Retryer: aws.NopRetryer{}, HTTPClient: awsapi.SDKHTTPClient(nil)}),
		media: kinesisvideomedia.New(kinesisvideomedia.Options{Region: "us-east-1", BaseEndpoint: aws.String(s.endpoint),
			Credentials: creds, Retryer: aws.NopRetryer{}, HTTPClient: awsapi.SDKHTTPClient(nil)}),
	}
}

// signedPost posts a REST-JSON body to a Kinesis Video path, signed with
// the admin key, and returns the status and response body.
func (s *server) signedPost(client *http.Client, path string, body []byte) (int, []byte, error) {
	req, _ := http.NewRequest("POST", s.endpoint+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: s.key.ID, SecretAccessKey: s.key.Secret}, req, hex.EncodeToString(sum[:]), "kinesisvideo", "us-east-1", time.Now()); err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// restCall is signedPost for tests that expect an answer.
func (s *server) restCall(t testing.TB, path string, body []byte) (int, []byte) {
	t.Helper()
	status, b, err := s.signedPost(http.DefaultClient, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, b
}

// describeRaw returns DescribeStream's StreamInfo with the gateway's own
// fields (Live, Source) that the SDK shape does not model.
func (s *server) describeRaw(t testing.TB, stream string) map[string]any {
	t.Helper()
	status, body := s.restCall(t, "/describeStream", jsonBody(map[string]string{"StreamName": stream}))
	if status != 200 {
		return nil
	}
	var out struct{ StreamInfo map[string]any }
	json.Unmarshal(body, &out)
	return out.StreamInfo
}

// waitLive waits until a stream's publisher state is want.
func (s *server) waitLive(t testing.TB, stream string, want bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if info := s.describeRaw(t, stream); info != nil && info["Live"] == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("stream %s: Live never became %v", stream, want)
}

// listAll lists every fragment of a stream, paginating, sorted by number.
func listAll(t testing.TB, c videoClients, stream string, sel *amtypes.FragmentSelector) []amtypes.Fragment {
	t.Helper()
	var all []amtypes.Fragment
	in := &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String(stream), FragmentSelector: sel, MaxResults: aws.Int64(7)}
	for {
		out, err := c.archived.ListFragments(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, out.Fragments...)
		if out.NextToken == nil {
			break
		}
		in.NextToken = out.NextToken
	}
	sort.Slice(all, func(i, j int) bool { return fragNum(all[i]).Cmp(fragNum(all[j])) < 0 })
	return all
}

func fragNum(f amtypes.Fragment) *bigInt {
	n, _ := new(bigInt).SetString(aws.ToString(f.FragmentNumber), 10)
	return n
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

func transportTCP() *gortsplib.Transport {
	t := gortsplib.TransportTCP
	return &t
}

// A real H.264 SPS (1920x1080) and PPS for hand-made session descriptions.
var (
	testSPSBytes = []byte{0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20}
	testPPSBytes = []byte{0x68, 0xce, 0x3c, 0x80}
)
