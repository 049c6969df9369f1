package main

import (
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/internal/mediatest"
)

// startVideoServe starts `streamgate serve` with RTSP over TCP on a free port.
func startVideoServe(t *testing.T, dataDir, rtspAddr string) *proc {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "video.yaml")
	os.WriteFile(conf, []byte("video:\n  rtsp_udp_rtp_addr: \"\"\n  rtsp_udp_rtcp_addr: \"\"\n"), 0o600)
	return startServe(t, dataDir, "--config", conf, "--rtsp-addr", rtspAddr)
}

func (p *proc) archived() *kinesisvideoarchivedmedia.Client {
	keys := p.keys()
	return kinesisvideoarchivedmedia.New(kinesisvideoarchivedmedia.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + p.addr),
		Credentials: credentials.NewStaticCredentialsProvider(keys.ID, keys.Secret, ""), Retryer: aws.NopRetryer{},
		HTTPClient: awsapi.SDKHTTPClient(nil)})
}

// listFragmentNumbers lists a stream's fragments, in order.
func listFragmentNumbers(t *testing.T, c *kinesisvideoarchivedmedia.Client, stream string) []string {
	t.Helper()
	out, err := c.ListFragments(bg, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	var nums []string
	for _, f := range out.Fragments {
		nums = append(nums, aws.ToString(f.FragmentNumber))
	}
	sort.Strings(nums) // equal-length decimals
	return nums
}

// A gateway killed with -9 while a camera publishes keeps every fragment it
// had listed: after a restart they are listed and decode.
func TestKill9KeepsListedFragments(t *testing.T) {
	mediatest.Need(t, "ffmpeg", "ffprobe")
	dir := t.TempDir()
	rtspAddr := freePort(t)
	p := startVideoServe(t, dir, rtspAddr)
	key := p.keys()
	clip := mediatest.Clip(t, "h264", 20)
	target := url.URL{Scheme: "rtsp", Host: rtspAddr, Path: "/yard", User: url.UserPassword(key.ID, key.Secret)}
	pub := mediatest.PublishLoop(t, clip, target.String())
	c := p.archived()
	var listed []string
	for deadline := time.Now().Add(20 * time.Second); len(listed) < 3; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no fragments listed:\n%s", p.log())
		}
		if _, err := c.ListFragments(bg, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("yard")}); err == nil {
			listed = listFragmentNumbers(t, c, "yard")
		}
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	pub.Process.Kill()

	p = startVideoServe(t, dir, rtspAddr)
	c = p.archived()
	after := listFragmentNumbers(t, c, "yard")
	have := map[string]bool{}
	for _, n := range after {
		have[n] = true
	}
	for _, n := range listed {
		if !have[n] {
			t.Fatalf("fragment %s was listed before kill -9 and is gone after restart; listed %v, after %v\n%s", n, listed, after, p.log())
		}
	}
	out, err := c.GetMediaForFragmentList(bg, &kinesisvideoarchivedmedia.GetMediaForFragmentListInput{StreamName: aws.String("yard"), Fragments: listed})
	if err != nil {
		t.Fatal(err)
	}
	mkv := mediatest.Save(t, out.Payload, "after-crash.mkv")
	mediatest.DecodeClean(t, mkv)
	if n := mediatest.Frames(t, mkv); n < 50*len(listed)-50 {
		t.Fatalf("%d listed fragments decode to %d frames", len(listed), n)
	}
	// The CLI saves the range as an MP4.
	mp4 := filepath.Join(t.TempDir(), "yard.mp4")
	runCLI(t, p, "", "clip", "yard", "--from", "10m", "-o", mp4)
	mediatest.DecodeClean(t, mp4)
	if n := mediatest.Frames(t, mp4); n < 50*len(listed)-50 {
		t.Fatalf("streamgate clip: %d frames from %d fragments", n, len(listed))
	}
}
