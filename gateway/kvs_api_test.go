package gateway_test

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/streamgate/streamgate/internal/mediatest"
)

// The Kinesis Video control plane through aws-sdk-go-v2: create, describe,
// list with prefix and pages, versions, retention, tags, data endpoints,
// delete; errors in AWS form.
func TestKinesisVideoControlPlane(t *testing.T) {
	s := startServer(t, nil)
	c := s.videoClients().kv
	created, err := c.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("front-door"), MediaType: aws.String("video/h264"),
		DeviceName: aws.String("pi-4"), DataRetentionInHours: aws.Int32(48), Tags: map[string]string{"site": "home"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(aws.ToString(created.StreamARN), "arn:aws:kinesisvideo:us-east-1:000000000000:stream/front-door/") {
		t.Fatalf("ARN %s", aws.ToString(created.StreamARN))
	}
	_, err = c.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("front-door")})
	apiError(t, err, "ResourceInUseException")
	_, err = c.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("bad name!")})
	apiError(t, err, "InvalidArgumentException")
	for _, n := range []string{"back-door", "garage", "front-yard"} {
		if _, err := c.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String(n)}); err != nil {
			t.Fatal(err)
		}
	}
	// A data stream of the same name is a different thing.
	createStream(t, s.client(), "garage", 1)

	d, err := c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamARN: created.StreamARN})
	if err != nil {
		t.Fatal(err)
	}
	info := d.StreamInfo
	if aws.ToString(info.StreamName) != "front-door" || aws.ToString(info.MediaType) != "video/h264" || aws.ToString(info.DeviceName) != "pi-4" ||
		aws.ToInt32(info.DataRetentionInHours) != 48 || info.Status != kvtypes.StatusActive || info.CreationTime == nil || aws.ToString(info.Version) == "" {
		t.Fatalf("described %+v", info)
	}
	_, err = c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("nope")})
	apiError(t, err, "ResourceNotFoundException")

	var names []string
	in := &kinesisvideo.ListStreamsInput{MaxResults: aws.Int32(1), StreamNameCondition: &kvtypes.StreamNameCondition{
		ComparisonOperator: kvtypes.ComparisonOperatorBeginsWith, ComparisonValue: aws.String("front")}}
	for {
		out, err := c.ListStreams(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, si := range out.StreamInfoList {
			names = append(names, aws.ToString(si.StreamName))
		}
		if out.NextToken == nil {
			break
		}
		in.NextToken = out.NextToken
	}
	if strings.Join(names, ",") != "front-door,front-yard" {
		t.Fatalf("listed %v", names)
	}

	_, err = c.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamName: aws.String("front-door"), CurrentVersion: aws.String("stale"), MediaType: aws.String("video/h265")})
	apiError(t, err, "VersionMismatchException")
	if _, err := c.UpdateStream(ctx, &kinesisvideo.UpdateStreamInput{StreamName: aws.String("front-door"), CurrentVersion: info.Version, MediaType: aws.String("video/h265")}); err != nil {
		t.Fatal(err)
	}
	d, _ = c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("front-door")})
	if aws.ToString(d.StreamInfo.MediaType) != "video/h265" || aws.ToString(d.StreamInfo.Version) == aws.ToString(info.Version) {
		t.Fatalf("after UpdateStream: %+v", d.StreamInfo)
	}
	if _, err := c.UpdateDataRetention(ctx, &kinesisvideo.UpdateDataRetentionInput{StreamName: aws.String("front-door"), CurrentVersion: d.StreamInfo.Version,
		Operation: kvtypes.UpdateDataRetentionOperationDecreaseDataRetention, DataRetentionChangeInHours: aws.Int32(24)}); err != nil {
		t.Fatal(err)
	}
	d, _ = c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("front-door")})
	if aws.ToInt32(d.StreamInfo.DataRetentionInHours) != 24 {
		t.Fatalf("retention %d after decreasing 48 by 24", aws.ToInt32(d.StreamInfo.DataRetentionInHours))
	}

	if _, err := c.TagStream(ctx, &kinesisvideo.TagStreamInput{StreamName: aws.String("front-door"), Tags: map[string]string{"floor": "0"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagResource(ctx, &kinesisvideo.UntagResourceInput{ResourceARN: created.StreamARN, TagKeyList: []string{"site"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListTagsForStream(ctx, &kinesisvideo.ListTagsForStreamInput{StreamName: aws.String("front-door")})
	if err != nil || len(tags.Tags) != 1 || tags.Tags["floor"] != "0" {
		t.Fatalf("tags %v %v", tags, err)
	}
	rt, err := c.ListTagsForResource(ctx, &kinesisvideo.ListTagsForResourceInput{ResourceARN: created.StreamARN})
	if err != nil || len(rt.Tags) != 1 {
		t.Fatalf("resource tags %v %v", rt, err)
	}

	for _, api := range []kvtypes.APIName{kvtypes.APINameGetMedia, kvtypes.APINameListFragments, kvtypes.APINameGetHlsStreamingSessionUrl, kvtypes.APINamePutMedia} {
		ep, err := c.GetDataEndpoint(ctx, &kinesisvideo.GetDataEndpointInput{StreamName: aws.String("front-door"), APIName: api})
		if err != nil || aws.ToString(ep.DataEndpoint) != s.endpoint {
			t.Fatalf("data endpoint for %s: %v %v", api, ep, err)
		}
	}

	if _, err := c.DeleteStream(ctx, &kinesisvideo.DeleteStreamInput{StreamARN: created.StreamARN}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeStream(ctx, &kinesisvideo.DescribeStreamInput{StreamName: aws.String("front-door")})
	apiError(t, err, "ResourceNotFoundException")
	// The data stream named garage is untouched by the video streams, and vice versa.
	if _, err := s.client().DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("garage")}); err != nil {
		t.Fatal(err)
	}
	list, _ := s.client().ListStreams(ctx, nil)
	if len(list.StreamNames) != 1 {
		t.Fatalf("Kinesis lists video streams: %v", list.StreamNames)
	}
}

// The AWS CLI drives Kinesis Video (control plane and archived media) with
// only --endpoint-url changed.
func TestKinesisVideoAWSCLI(t *testing.T) {
	awsBin, err := exec.LookPath("aws")
	if err != nil {
		t.Fatal("the aws CLI is not installed: run `make test`, which installs it")
	}
	mediatest.Need(t, "ffmpeg", "ffprobe")
	s := startVideoServer(t, nil)
	env := clientEnv(t, s)
	run := awsCLI(t, awsBin, s)
	run("kinesisvideo", "create-stream", "--stream-name", "cli-cam", "--data-retention-in-hours", "2")
	list := run("kinesisvideo", "list-streams")
	if l, _ := list["StreamInfoList"].([]any); len(l) != 1 {
		t.Fatalf("list-streams: %v", list)
	}
	ep := run("kinesisvideo", "get-data-endpoint", "--stream-name", "cli-cam", "--api-name", "LIST_FRAGMENTS")
	if ep["DataEndpoint"] != s.endpoint {
		t.Fatalf("get-data-endpoint: %v", ep)
	}
	frags := run("kinesis-video-archived-media", "list-fragments", "--stream-name", "cli-cam",
		"--fragment-selector", "FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={StartTimestamp=2026-01-01T00:00:00Z,EndTimestamp="+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+"}")
	if f, ok := frags["Fragments"].([]any); !ok || len(f) != 0 {
		t.Fatalf("list-fragments: %v", frags)
	}
	// A camera publishes; the CLI lists its fragments and fetches them as Matroska.
	mediatest.Publish(t, mediatest.Clip(t, "h264", 4), s.rtspURL("cli-cam"), "tcp", false)
	s.waitLive(t, "cli-cam", false)
	frags = run("kinesis-video-archived-media", "list-fragments", "--stream-name", "cli-cam")
	listed, _ := frags["Fragments"].([]any)
	if len(listed) < 2 {
		t.Fatalf("list-fragments after publishing: %v", frags)
	}
	nums := []string{}
	for _, f := range listed {
		nums = append(nums, f.(map[string]any)["FragmentNumber"].(string))
	}
	mkv := filepath.Join(t.TempDir(), "cli.mkv")
	run(append([]string{"kinesis-video-archived-media", "get-media-for-fragment-list", mkv, "--stream-name", "cli-cam", "--fragments"}, nums...)...)
	if n := mediatest.Frames(t, mkv); n != 100 {
		t.Fatalf("get-media-for-fragment-list of a 4 s clip: %d frames, want 100", n)
	}
	cmd := exec.Command(awsBin, "--endpoint-url", s.endpoint, "kinesisvideo", "describe-stream", "--stream-name", "missing")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ResourceNotFoundException") {
		t.Fatalf("describe-stream of a missing stream: %v %s", err, out)
	}
}

// FuzzKVSRequests throws arbitrary bodies at every Kinesis Video operation:
// the answer is always an AWS response (or a stream), never a 5xx or a panic.
func FuzzKVSRequests(f *testing.F) {
	s := startServer(f, nil)
	ops := []string{"/createStream", "/describeStream", "/listStreams", "/deleteStream", "/updateStream", "/updateDataRetention",
		"/tagStream", "/untagStream", "/listTagsForStream", "/TagResource", "/UntagResource", "/ListTagsForResource",
		"/getDataEndpoint", "/listFragments", "/getMediaForFragmentList", "/getMedia", "/getHLSStreamingSessionURL", "/getClip", "/getDASHStreamingSessionURL", "/getImages"}
	s.restCall(f, "/createStream", []byte(`{"StreamName":"f"}`))
	f.Add(uint8(13), []byte(`{"StreamName":"f","FragmentSelector":{"FragmentSelectorType":"PRODUCER_TIMESTAMP","TimestampRange":{"StartTimestamp":1,"EndTimestamp":"x"}}}`))
	f.Add(uint8(13), []byte(`{"StreamName":"f","NextToken":"dHJ1ZSAxIDIgMw"}`))
	f.Add(uint8(14), []byte(`{"StreamName":"f","Fragments":["1","170141183460469231731687303715884105729"]}`))
	f.Add(uint8(15), []byte(`{"StreamName":"f","StartSelector":{"StartSelectorType":"CONTINUATION_TOKEN","ContinuationToken":"9"}}`))
	f.Add(uint8(1), []byte(`{"StreamARN":"arn:aws:kinesisvideo:us-east-1:000000000000:stream/f/x"}`))
	f.Add(uint8(5), []byte(`{"StreamName":"f","Operation":"DECREASE_DATA_RETENTION","DataRetentionChangeInHours":99999,"CurrentVersion":"v"}`))
	client := &http.Client{Timeout: 300 * time.Millisecond}
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		path := ops[int(op)%len(ops)]
		status, resp, err := s.signedPost(client, path, body)
		if err != nil {
			if path == "/getMedia" && strings.Contains(err.Error(), "Timeout") {
				return // a valid GetMedia streams until the client leaves
			}
			t.Fatalf("%s: %v", path, err)
		}
		if status >= 500 {
			t.Fatalf("%s status %d: %s", path, status, resp)
		}
	})
}
