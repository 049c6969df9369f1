package gateway_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/streamgate/streamgate/internal/mediatest"
)

// emptySHA256 is what the KVS producer SDK signs as PutMedia's payload
// hash (its body is a stream, never hashed).
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// liveMKV remuxes a test clip into Matroska as a producer streams it: a
// Segment and Clusters of unknown size, a cluster at each keyframe.
func liveMKV(t *testing.T, codec string, seconds int) string {
	t.Helper()
	clip := mediatest.Clip(t, codec, seconds)
	out := filepath.Join(t.TempDir(), "producer.mkv")
	if b, err := exec.Command("ffmpeg", "-v", "error", "-i", clip, "-c", "copy", "-f", "matroska", "-live", "1",
		"-cluster_time_limit", "1000", "-y", out).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// putMedia streams body to PutMedia as the KVS producer SDK does (chunked,
// RELATIVE timecodes, the empty payload hash signed), returning the status
// and the acknowledgements read while it sends.
func putMedia(t *testing.T, s *server, stream, secret string, body io.Reader) (int, []map[string]any) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() {
		_, err := io.CopyBuffer(pw, body, make([]byte, 32<<10))
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest("POST", s.endpoint+"/putMedia", pr)
	req.Header.Set("x-amzn-stream-name", stream)
	req.Header.Set("x-amzn-fragment-timecode-type", "RELATIVE")
	req.Header.Set("x-amzn-producer-start-timestamp", fmt.Sprintf("%.3f", float64(time.Now().UnixMilli())/1000))
	req.Header.Set("x-amzn-fragment-acknowledgment-required", "1")
	if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: s.key.ID, SecretAccessKey: secret}, req, emptySHA256, "kinesisvideo", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return sendPutMedia(t, req)
}

// sendPutMedia sends a PutMedia request and reads its acknowledgements
// while the body streams.
func sendPutMedia(t *testing.T, req *http.Request) (int, []map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var acks []map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var a map[string]any
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil && resp.StatusCode == 200 {
			t.Fatalf("ack %q: %v", sc.Text(), err)
		}
		acks = append(acks, a)
	}
	return resp.StatusCode, acks
}

// A producer streams Matroska (H.264 + AAC) to PutMedia: every cluster is
// acknowledged BUFFERING, RECEIVED and PERSISTED (with its fragment
// number), the fragments list and play back with every frame, and bad
// credentials, unknown streams and broken Matroska get KVS's errors.
func TestPutMediaFromProducer(t *testing.T) {
	mediatest.Need(t, "ffmpeg", "ffprobe")
	s := startVideoServer(t, nil)
	c := s.videoClients()
	if _, err := c.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("pi-cam"), DataRetentionInHours: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	mkv := liveMKV(t, "camera", 6)
	f, err := os.Open(mkv)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	status, acks := putMedia(t, s, "pi-cam", s.key.Secret, f)
	if status != 200 {
		t.Fatalf("PutMedia: %d %v", status, acks)
	}
	count := map[string]int{}
	for _, a := range acks {
		count[a["EventType"].(string)]++
		if a["EventType"] == "PERSISTED" && a["FragmentNumber"] == nil {
			t.Fatalf("PERSISTED without a fragment number: %v", a)
		}
	}
	t.Logf("acks: %v", count)
	if count["ERROR"] != 0 || count["BUFFERING"] < 5 || count["RECEIVED"] != count["BUFFERING"] || count["PERSISTED"] != count["BUFFERING"] {
		t.Fatalf("acks %v:\n%v", count, acks)
	}

	frags := listAll(t, c, "pi-cam", &amtypes.FragmentSelector{FragmentSelectorType: amtypes.FragmentSelectorTypeServerTimestamp,
		TimestampRange: &amtypes.TimestampRange{StartTimestamp: aws.Time(time.Now().Add(-time.Hour)), EndTimestamp: aws.Time(time.Now().Add(time.Minute))}})
	var nums []string
	for _, fr := range frags {
		nums = append(nums, aws.ToString(fr.FragmentNumber))
	}
	if len(nums) < 2 {
		t.Fatalf("%d fragments", len(nums))
	}
	out, err := c.archived.GetMediaForFragmentList(ctx, &kinesisvideoarchivedmedia.GetMediaForFragmentListInput{StreamName: aws.String("pi-cam"), Fragments: nums})
	if err != nil {
		t.Fatal(err)
	}
	got := mediatest.Save(t, out.Payload, "out.mkv")
	if n := mediatest.Frames(t, got); n != 150 {
		t.Errorf("%d frames stored, the producer sent 150", n)
	}
	if codecs := strings.Join(mediatest.Codecs(t, got), " "); codecs != "h264 aac" {
		t.Errorf("stored codecs %s", codecs)
	}
	mediatest.DecodeClean(t, got)

	// A second producer while one streams is refused, as KVS throttles the
	// newest session.
	busyR, busyW := io.Pipe()
	first := make(chan int)
	go func() {
		st, _ := putMedia(t, s, "pi-cam", s.key.Secret, busyR)
		first <- st
	}()
	head, _ := os.ReadFile(mkv)
	busyW.Write(head[:len(head)/2])
	s.waitLive(t, "pi-cam", true)
	if status, _ := putMedia(t, s, "pi-cam", s.key.Secret, strings.NewReader("x")); status != http.StatusBadRequest {
		t.Errorf("a second producer: %d", status)
	}
	busyW.Close()
	if st := <-first; st != 200 {
		t.Errorf("the first producer: %d", st)
	}

	// A wrong secret is refused before any media is read; an unknown stream
	// is not found; broken Matroska gets an ERROR ack.
	if status, _ := putMedia(t, s, "pi-cam", "wrong", strings.NewReader("x")); status != http.StatusForbidden {
		t.Errorf("wrong secret: %d", status)
	}
	if status, _ := putMedia(t, s, "nope", s.key.Secret, strings.NewReader("x")); status != http.StatusNotFound {
		t.Errorf("unknown stream: %d", status)
	}
	status, acks = putMedia(t, s, "pi-cam", s.key.Secret, strings.NewReader("\x1a\x45\xdf\xa3\x84\x42\x86\x81\x01this is not matroska"))
	if status != 200 || len(acks) == 0 || acks[len(acks)-1]["ErrorCode"] != "INVALID_MKV_DATA" || acks[len(acks)-1]["ErrorId"] != 4006.0 {
		t.Errorf("broken Matroska: %d %v", status, acks)
	}
}

// hmacHex and deriveKey sign aws-chunked chunks as the SigV4 documentation
// describes (the server's verifier is checked against the documentation's
// own example in gateway/auth).
func hmacSHA(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// chunkSigned streams body as aws-chunked, each chunk signed after the
// one before, starting from the request's seed signature.
func chunkSigned(body io.Reader, secret, date, seed string) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		day := date[:8]
		key := hmacSHA(hmacSHA(hmacSHA(hmacSHA([]byte("AWS4"+secret), day), "us-east-1"), "kinesisvideo"), "aws4_request")
		scope := day + "/us-east-1/kinesisvideo/aws4_request"
		prev := seed
		buf := make([]byte, 16<<10)
		for {
			n, err := io.ReadFull(body, buf)
			chunk := buf[:n]
			sum := sha256.Sum256(chunk)
			sig := hex.EncodeToString(hmacSHA(key, "AWS4-HMAC-SHA256-PAYLOAD\n"+date+"\n"+scope+"\n"+prev+"\n"+emptySHA256+"\n"+hex.EncodeToString(sum[:])))
			fmt.Fprintf(pw, "%x;chunk-signature=%s\r\n%s\r\n", n, sig, chunk)
			prev = sig
			if n == 0 {
				pw.Close()
				return
			}
			if err != nil && n > 0 {
				continue // the next read returns 0: the final chunk
			}
		}
	}()
	return pr
}

// The chunk-signed form (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) of PutMedia:
// a valid chain records; a chunk changed in flight ends the session.
func TestPutMediaChunkSigned(t *testing.T) {
	mediatest.Need(t, "ffmpeg", "ffprobe")
	s := startVideoServer(t, nil)
	c := s.videoClients()
	if _, err := c.kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("signed"), DataRetentionInHours: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	mkv, err := os.ReadFile(liveMKV(t, "camera", 4))
	if err != nil {
		t.Fatal(err)
	}
	send := func(tamper bool) []map[string]any {
		req, _ := http.NewRequest("POST", s.endpoint+"/putMedia", nil)
		req.Header.Set("x-amzn-stream-name", "signed")
		req.Header.Set("x-amzn-fragment-timecode-type", "RELATIVE")
		req.Header.Set("x-amzn-producer-start-timestamp", fmt.Sprintf("%.3f", float64(time.Now().UnixMilli())/1000))
		req.Header.Set("Content-Encoding", "aws-chunked")
		req.Header.Set("X-Amz-Content-Sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
		now := time.Now()
		if err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: s.key.ID, SecretAccessKey: s.key.Secret}, req,
			"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "kinesisvideo", "us-east-1", now); err != nil {
			t.Fatal(err)
		}
		_, seed, _ := strings.Cut(req.Header.Get("Authorization"), "Signature=")
		body := chunkSigned(bytes.NewReader(mkv), s.key.Secret, req.Header.Get("X-Amz-Date"), seed)
		if tamper {
			body = io.MultiReader(io.LimitReader(body, 40000), strings.NewReader("garbage"), body)
		}
		req.Body = io.NopCloser(body)
		_, acks := sendPutMedia(t, req)
		return acks
	}
	acks := send(false)
	persisted := 0
	for _, a := range acks {
		if a["EventType"] == "PERSISTED" {
			persisted++
		}
		if a["EventType"] == "ERROR" {
			t.Fatalf("acks %v", acks)
		}
	}
	if persisted < 3 {
		t.Fatalf("%d clusters persisted: %v", persisted, acks)
	}
	acks = send(true)
	if len(acks) == 0 || acks[len(acks)-1]["EventType"] != "ERROR" {
		t.Fatalf("a tampered chunk: %v", acks)
	}
}
