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
	mode := fs.String("mode", "ll", "ll: Low-Latency HLS parts; hls: LIVE HLS from the archive (MPEG-TS); dash: LIVE DASH")
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
	if *mode != "ll" {
		return benchLiveArchive(am, stream, *mode, *duration, *gop, &mu, &keyframes)
	}
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
	line := regexp.MustCompile(`(?m)^[^#\s].*\.m3u8.*$`).Find(master)
	if line == nil {
		return fmt.Errorf("no variant in the LIVE master playlist:\n%s", master)
	}
	media, err := resp.Request.URL.Parse(string(line))
	if err != nil {
		return err
	}
	partRE := regexp.MustCompile(`#EXT-X-PART:[^\n]*URI="([^"]+)"[^\n]*INDEPENDENT=YES`)
	// The first playlist counts once it lists something to play.
	var firstPlaylist time.Duration
	for deadline := time.Now().Add(20 * time.Second); firstPlaylist == 0; time.Sleep(10 * time.Millisecond) {
		if body, err := get(media); err == nil && bytes.Contains(body, []byte("#EXT-X-PART:")) {
			firstPlaylist = time.Since(publishStart)
		} else if time.Now().After(deadline) {
			return fmt.Errorf("no LL-HLS playlist with a part: %v", err)
		}
	}
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
	fmt.Printf("  publish -> first LIVE media playlist with a part: %.0f ms (session URL, master playlist, media playlist)\n", float64(firstPlaylist.Milliseconds()))
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

// benchLiveArchive measures LIVE HLS (MPEG-TS, served from the fragment
// index rather than the Low-Latency HLS parts) or LIVE DASH: the playlist or
// manifest is polled every 100 ms, and each new segment (a fragment: one
// GOP, from a keyframe to the next) is timed against the sending of its
// first and of its last frame. A player adds its own buffer on top.
func benchLiveArchive(am *kinesisvideoarchivedmedia.Client, stream, mode string, duration time.Duration, gop int, mu *sync.Mutex, keyframes *[]time.Time) error {
	var playlist *url.URL
	segRE := regexp.MustCompile(`(?m)^[^#\s].*$`)
	for deadline := time.Now().Add(20 * time.Second); playlist == nil; time.Sleep(100 * time.Millisecond) {
		var u string
		var err error
		if mode == "dash" {
			var out *kinesisvideoarchivedmedia.GetDASHStreamingSessionURLOutput
			out, err = am.GetDASHStreamingSessionURL(bg, &kinesisvideoarchivedmedia.GetDASHStreamingSessionURLInput{
				StreamName: aws.String(stream), PlaybackMode: amtypes.DASHPlaybackModeLive})
			if err == nil {
				u = aws.ToString(out.DASHStreamingSessionURL)
			}
		} else {
			var out *kinesisvideoarchivedmedia.GetHLSStreamingSessionURLOutput
			out, err = am.GetHLSStreamingSessionURL(bg, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
				StreamName: aws.String(stream), PlaybackMode: amtypes.HLSPlaybackModeLive, ContainerFormat: amtypes.ContainerFormatMpegTs})
			if err == nil {
				u = aws.ToString(out.HLSStreamingSessionURL)
			}
		}
		if err != nil {
			if time.Now().After(deadline) {
				return err
			}
			continue
		}
		playlist, _ = url.Parse(u)
		if mode == "hls" {
			master, err := get(playlist)
			if err != nil { // no fragment stored yet
				if time.Now().After(deadline) {
					return err
				}
				playlist = nil
				continue
			}
			line := regexp.MustCompile(`(?m)^[^#\s].*\.m3u8.*$`).Find(master)
			if line == nil {
				return fmt.Errorf("no variant in the LIVE master playlist:\n%s", master)
			}
			if playlist, err = playlist.Parse(string(line)); err != nil {
				return err
			}
		}
	}
	if mode == "dash" {
		segRE = regexp.MustCompile(`media="([^"]*getMP4MediaFragment[^"]*)"`)
	}
	seen := map[string]bool{}
	var firstFrame, lastFrame []time.Duration
	end := time.Now().Add(duration)
	for first := true; time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		body, err := get(playlist)
		if err != nil && first {
			continue // a session issued before its first fragment was stored
		}
		if err != nil {
			return err
		}
		at := time.Now()
		for _, m := range segRE.FindAllSubmatch(body, -1) {
			uri := string(m[len(m)-1])
			if seen[uri] {
				continue
			}
			seen[uri] = true
			if first {
				continue // segments listed before polling began
			}
			mu.Lock()
			k := len(*keyframes) - 1
			for k >= 0 && (*keyframes)[k].After(at) {
				k--
			}
			if k >= 1 { // the segment runs from keyframe k-1 to the frame before keyframe k
				firstFrame = append(firstFrame, at.Sub((*keyframes)[k-1]))
				lastFrame = append(lastFrame, at.Sub((*keyframes)[k].Add(-40*time.Millisecond)))
			}
			mu.Unlock()
		}
		first = false
	}
	name := map[string]string{"hls": "LIVE HLS (MPEG-TS, from the archive)", "dash": "LIVE DASH"}[mode]
	fmt.Printf("%s, 25 fps, keyframe every %d frames, playlist polled every 100 ms:\n", name, gop)
	fmt.Printf("  a segment's first frame sent -> segment listed: %s\n", percentiles(firstFrame))
	fmt.Printf("  a segment's last frame sent -> segment listed: %s\n", percentiles(lastFrame))
	return nil
}
