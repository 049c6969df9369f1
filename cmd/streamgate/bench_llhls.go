package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
)

// A 1920x1080 baseline H.264 SPS and PPS for the synthetic camera.
var (
	benchSPS = []byte{0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20}
	benchPPS = []byte{0x68, 0xce, 0x3c, 0x80}
)

// benchLLHLSCmd measures Low-Latency HLS: a synthetic camera publishes
// 25 fps H.264 over RTSP in real time, remembering when it sent each
// keyframe; the LIVE session's low-latency playlist is polled, and each new
// independent part is timed against its keyframe's sending.
func benchLLHLSCmd(args []string) error {
	fs := flag.NewFlagSet("bench llhls", flag.ExitOnError)
	var c clientFlags
	c.register(fs)
	rtspBase := fs.String("rtsp", "", "RTSP base URL with credentials")
	duration := fs.Duration("duration", 30*time.Second, "measured time")
	gop := fs.Int("gop", 50, "frames per keyframe (25 fps)")
	fs.Parse(args)
	if *rtspBase == "" {
		return errors.New("usage: streamgate bench llhls --rtsp URL [--endpoint URL]")
	}
	stream := fmt.Sprintf("llhls-%d", time.Now().Unix())
	h264 := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: benchSPS, PPS: benchPPS}
	desc := &description.Session{Medias: []*description.Media{{Type: description.MediaTypeVideo, Formats: []format.Format{h264}}}}
	tcp := gortsplib.TransportTCP
	pub := gortsplib.Client{Transport: &tcp}
	publishStart := time.Now()
	if err := pub.StartRecording(strings.TrimSuffix(*rtspBase, "/")+"/"+stream, desc); err != nil {
		return err
	}
	defer pub.Close()
	enc, err := h264.CreateEncoder()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var keyframes []time.Time
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		frame := make([]byte, 8000)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Until(publishStart.Add(time.Duration(i) * 40 * time.Millisecond))):
			}
			frame[0] = 0x41
			if i%*gop == 0 {
				frame[0] = 0x65
				mu.Lock()
				keyframes = append(keyframes, time.Now())
				mu.Unlock()
			}
			pkts, err := enc.Encode([][]byte{frame})
			if err != nil {
				return
			}
			for _, p := range pkts {
				p.Timestamp = uint32(i * 3600)
				pub.WritePacketRTP(desc.Medias[0], p)
			}
		}
	}()

	am := c.archivedMedia()
	var sessionURL string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, err := am.GetHLSStreamingSessionURL(bg, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
			StreamName: aws.String(stream), PlaybackMode: amtypes.HLSPlaybackModeLive})
		if err == nil {
			sessionURL = aws.ToString(out.HLSStreamingSessionURL)
			break
		}
		if time.Now().After(deadline) {
			return err
		}
	}
	resp, err := http.Get(sessionURL)
	if err != nil {
		return err
	}
	master, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	firstPlaylist := time.Since(publishStart)
	line := regexp.MustCompile(`(?m)^[^#\s].*\.m3u8.*$`).Find(master)
	if line == nil {
		return fmt.Errorf("no variant in the LIVE master playlist:\n%s", master)
	}
	media, err := resp.Request.URL.Parse(string(line))
	if err != nil {
		return err
	}
	partRE := regexp.MustCompile(`#EXT-X-PART:[^\n]*URI="([^"]+)"[^\n]*INDEPENDENT=YES`)
	seen := map[string]bool{}
	var lat []time.Duration
	end := time.Now().Add(*duration)
	for first := true; time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		body, err := get(media)
		if err != nil {
			return err
		}
		at := time.Now()
		for _, m := range partRE.FindAllSubmatch(body, -1) {
			uri := string(m[1])
			if seen[uri] {
				continue
			}
			seen[uri] = true
			if first {
				continue // parts that existed before polling began
			}
			mu.Lock()
			var sent time.Time
			for _, k := range keyframes {
				if !k.After(at) {
					sent = k
				}
			}
			mu.Unlock()
			lat = append(lat, at.Sub(sent))
		}
		first = false
	}
	fmt.Printf("LL-HLS, 25 fps H.264, keyframe every %d frames: keyframe sent -> its independent part in the playlist: %s\n", *gop, percentiles(lat))
	fmt.Printf("  publish -> first LIVE master playlist served: %.0f ms (it waits for the first complete segment: one GOP after the first keyframe)\n", float64(firstPlaylist.Milliseconds()))
	return nil
}

func get(u *url.URL) ([]byte, error) {
	resp, err := http.Get(u.String())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: HTTP %d: %s", u.Path, resp.StatusCode, bytes.TrimSpace(b))
	}
	return b, err
}
