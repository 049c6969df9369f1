package gateway_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/streamgate/streamgate/internal/mediatest"
)

// TestRTSPPublishToFragments publishes a 20 s H.264+AAC clip over RTSP (TCP
// and UDP, and an H.265 one) with ffmpeg; the fragments listed through the
// SDK are contiguous, add up to the clip, and GetMediaForFragmentList's
// Matroska decodes to every frame.
func TestRTSPPublishToFragments(t *testing.T) {
	mediatest.Need(t, "ffmpeg", "ffprobe")
	for _, tc := range []struct {
		name, codec, transport string
		realtime               bool
	}{
		{"h264-tcp", "h264", "tcp", false},
		{"h264-udp", "h264", "udp", true},
		{"h265-tcp", "h265", "tcp", false},
		{"h264-opus-tcp", "h264-opus", "tcp", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const seconds = 20
			clip := mediatest.Clip(t, tc.codec, seconds)
			s := startVideoServer(t, nil)
			c := s.videoClients()
			mediatest.Publish(t, clip, s.rtspURL("cam1"), tc.transport, tc.realtime)
			s.waitLive(t, "cam1", false)

			frags := listAll(t, c, "cam1", nil)
			if len(frags) < seconds/2-1 {
				t.Fatalf("%d fragments for a %d s clip", len(frags), seconds)
			}
			var total int64
			for i, f := range frags {
				total += f.FragmentLengthInMilliseconds
				if i > 0 && fragNum(f).Cmp(new(bigInt).Add(fragNum(frags[i-1]), bigOne)) != 0 {
					t.Fatalf("fragment %d is %s after %s: not contiguous", i, aws.ToString(f.FragmentNumber), aws.ToString(frags[i-1].FragmentNumber))
				}
			}
			if d := total - seconds*1000; d < -2000 || d > 2000 {
				t.Fatalf("fragments add up to %d ms, clip is %d s", total, seconds)
			}
			nums := make([]string, len(frags))
			for i, f := range frags {
				nums[i] = aws.ToString(f.FragmentNumber)
			}
			out, err := c.archived.GetMediaForFragmentList(ctx, &kinesisvideoarchivedmedia.GetMediaForFragmentListInput{StreamName: aws.String("cam1"), Fragments: nums})
			if err != nil {
				t.Fatal(err)
			}
			mkv := mediatest.Save(t, out.Payload, "out.mkv")
			if n := mediatest.Frames(t, mkv); n != seconds*25 {
				t.Errorf("GetMediaForFragmentList has %d frames, clip has %d", n, seconds*25)
			}
			mediatest.DecodeClean(t, mkv)
			wantCodecs := map[string]string{"h264": "h264 aac", "h265": "hevc aac", "h264-opus": "h264 opus"}[tc.codec]
			if got := strings.Join(mediatest.Codecs(t, mkv), " "); got != wantCodecs {
				t.Errorf("GetMediaForFragmentList streams: %s, want %s", got, wantCodecs)
			}
			if _, err := exec.LookPath("mkvinfo"); err == nil {
				if b, err := exec.Command("mkvinfo", "--all", mkv).CombinedOutput(); err != nil || !strings.Contains(string(b), "AWS_KINESISVIDEO_FRAGMENT_NUMBER") {
					t.Errorf("mkvinfo: %v\n%s", err, b)
				}
			}
			// By time: a millisecond around the middle fragment's server time
			// lists it (and, when the clip arrived faster than real time, the
			// fragments that arrived in the same millisecond).
			mid := frags[len(frags)/2]
			sel := &amtypes.FragmentSelector{FragmentSelectorType: amtypes.FragmentSelectorTypeServerTimestamp,
				TimestampRange: &amtypes.TimestampRange{StartTimestamp: mid.ServerTimestamp, EndTimestamp: aws.Time(mid.ServerTimestamp.Add(time.Millisecond))}}
			got := listAll(t, c, "cam1", sel)
			if !slices.ContainsFunc(got, func(f amtypes.Fragment) bool {
				return aws.ToString(f.FragmentNumber) == aws.ToString(mid.FragmentNumber)
			}) {
				t.Errorf("server-time listing around fragment %s got %d fragments, not it", aws.ToString(mid.FragmentNumber), len(got))
			}
			for _, f := range got {
				if f.ServerTimestamp.Before(*mid.ServerTimestamp) || f.ServerTimestamp.After(mid.ServerTimestamp.Add(time.Millisecond)) {
					t.Errorf("server-time listing of [%v, +1 ms] has a fragment of %v", *mid.ServerTimestamp, *f.ServerTimestamp)
				}
			}
		})
	}
}
