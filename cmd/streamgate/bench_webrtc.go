package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	"github.com/streamgate/streamgate/internal/rtctest"
)

// clockSEI marks the access units of the synthetic camera: an H.264 SEI
// (user data unregistered) whose payload is this UUID and the send time.
var clockSEI = []byte("streamgate-clock")

// seiClock returns the sending time carried by an access unit, if any.
func seiClock(au [][]byte) (time.Time, bool) {
	for _, n := range au {
		if len(n) >= 3+16+8 && n[0]&0x1f == 6 && n[1] == 5 && bytes.Equal(n[3:19], clockSEI) {
			return time.Unix(0, int64(binary.BigEndian.Uint64(n[19:27]))), true
		}
	}
	return time.Time{}, false
}

// benchWebRTCCmd measures WHEP: a synthetic RTSP camera (30 fps H.264 at a
// set bitrate, GOP 2 s, each frame carrying its send time in an SEI) feeds
// the gateway, and pion viewers on loopback watch it. It reports RTSP-in ->
// WHEP-out latency (next to RTSP-in -> RTSP-out, the same chain without
// WebRTC), a new viewer's time to its first keyframe, and the gateway's CPU
// with many viewers.
func benchWebRTCCmd(args []string) error {
	fs := flag.NewFlagSet("bench webrtc", flag.ExitOnError)
	endpoint := fs.String("endpoint", "http://127.0.0.1:4566", "gateway HTTP URL")
	rtspBase := fs.String("rtsp", "", "RTSP base URL with credentials")
	token := fs.String("token", "", "bearer token ACCESS_KEY_ID:SECRET")
	viewers := fs.Int("viewers", 200, "concurrent viewers in the fan-out run")
	bitrate := fs.Int("bitrate", 4_000_000, "camera bitrate, bit/s")
	joins := fs.Int("joins", 30, "viewers started one after another for the first-frame figure")
	duration := fs.Duration("duration", 10*time.Second, "measured time of each run")
	serverPID := fs.Int("server-pid", 0, "pid of the gateway, for its CPU time and RSS")
	fs.Parse(args)
	if *rtspBase == "" {
		return errors.New("usage: streamgate bench webrtc --rtsp URL --token ID:SECRET [--endpoint URL] [--viewers N]")
	}
	stream := fmt.Sprintf("whep-%d", time.Now().Unix())
	rtspURL := strings.TrimSuffix(*rtspBase, "/") + "/" + stream
	stop := make(chan struct{})
	defer close(stop)
	if err := syntheticCamera(rtspURL, *bitrate, stop); err != nil {
		return err
	}
	time.Sleep(2500 * time.Millisecond) // a GOP in the fragmenter
	whep := strings.TrimSuffix(*endpoint, "/") + "/whep/" + stream
	ctx := context.Background()

	// Latency: one WHEP viewer and one RTSP reader, side by side.
	var mu sync.Mutex
	var rtcLat, rtspLat []time.Duration
	var rtcSent []time.Time
	v, err := rtctest.Play(ctx, whep, *token, rtctest.ViewerOptions{OnAU: func(au [][]byte) {
		if at, ok := seiClock(au); ok {
			mu.Lock()
			rtcLat, rtcSent = append(rtcLat, time.Since(at)), append(rtcSent, at)
			mu.Unlock()
		}
	}})
	if err != nil {
		return err
	}
	reader, err := rtspReader(rtspURL, func(au [][]byte) {
		if at, ok := seiClock(au); ok {
			mu.Lock()
			rtspLat = append(rtspLat, time.Since(at))
			mu.Unlock()
		}
	})
	if err != nil {
		v.Close()
		return err
	}
	time.Sleep(*duration)
	reader.Close()
	v.Close()
	mu.Lock()
	// The GOP a viewer starts with was sent before it connected: catch-up,
	// not latency.
	connected := v.Start.Add(time.Duration(v.FirstKeyframe.Load()))
	live := rtcLat[:0]
	for i, at := range rtcSent {
		if at.After(connected) {
			live = append(live, rtcLat[i])
		}
	}
	rtcLat = live
	fmt.Printf("WHEP, synthetic camera 30 fps H.264 %.1f Mbit/s over RTSP/TCP, pion viewer on loopback\n", float64(*bitrate)/1e6)
	fmt.Printf("  RTSP in -> WHEP out, per frame:  %s\n", percentiles(rtcLat))
	fmt.Printf("  RTSP in -> RTSP out (reference): %s\n", percentiles(rtspLat))
	mu.Unlock()

	// First frame: viewers joining at random points of the GOP.
	var first []time.Duration
	for i := 0; i < *joins; i++ {
		time.Sleep(time.Duration(137*i%700) * time.Millisecond)
		v, err := rtctest.Play(ctx, whep, *token, rtctest.ViewerOptions{})
		if err != nil {
			return err
		}
		for deadline := time.Now().Add(5 * time.Second); v.FirstKeyframe.Load() == 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		}
		if d := v.FirstKeyframe.Load(); d > 0 {
			first = append(first, time.Duration(d))
		}
		v.Close()
	}
	fmt.Printf("  new viewer: POST of the offer -> first complete keyframe received: %s\n", percentiles(first))

	// Fan-out: many viewers at once.
	var all []*rtctest.Viewer
	defer func() {
		for _, v := range all {
			v.Close()
		}
	}()
	for i := 0; i < *viewers; i++ {
		v, err := rtctest.Play(ctx, whep, *token, rtctest.ViewerOptions{CountOnly: true})
		if err != nil {
			return fmt.Errorf("viewer %d: %w", i+1, err)
		}
		all = append(all, v)
	}
	time.Sleep(3 * time.Second)
	bytes0 := make([]int64, len(all))
	for i, v := range all {
		bytes0[i] = v.VideoBytes.Load()
	}
	cpu0, self0, start := procCPU(*serverPID), selfCPU(), time.Now()
	time.Sleep(*duration)
	cpu1, self1, elapsed := procCPU(*serverPID), selfCPU(), time.Since(start)
	var rates []float64
	starved := 0
	for i, v := range all {
		r := float64(v.VideoBytes.Load()-bytes0[i]) * 8 / elapsed.Seconds()
		rates = append(rates, r)
		if r < 0.9*float64(*bitrate) {
			starved++
		}
	}
	serverPct := 100 * (cpu1 - cpu0).Seconds() / elapsed.Seconds()
	fmt.Printf("  %d viewers: gateway CPU %.0f%% of one core (%.2f%% per viewer), RSS %s; viewers' process (pion, decrypting) %.0f%%\n",
		len(all), serverPct, serverPct/float64(len(all)), procRSS(*serverPID), 100*(self1-self0).Seconds()/elapsed.Seconds())
	fmt.Printf("  video received per viewer: median %.2f Mbit/s; %d of %d viewers under 90%% of the camera's bitrate\n",
		median(rates)/1e6, starved, len(all))
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// syntheticCamera publishes 30 fps H.264 over RTSP/TCP in real time until
// stop: a keyframe every 60 frames, random slice bytes at the bitrate, and a
// clock SEI in every access unit.
func syntheticCamera(url string, bitrate int, stop chan struct{}) error {
	h264 := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: benchSPS, PPS: benchPPS}
	desc := &description.Session{Medias: []*description.Media{{Type: description.MediaTypeVideo, Formats: []format.Format{h264}}}}
	tcp := gortsplib.TransportTCP
	pub := &gortsplib.Client{Transport: &tcp}
	if err := pub.StartRecording(url, desc); err != nil {
		return err
	}
	enc, err := h264.CreateEncoder()
	if err != nil {
		pub.Close()
		return err
	}
	frame := make([]byte, max(bitrate/8/30, 100))
	rand.Read(frame)
	for i := range frame {
		if frame[i] == 0 {
			frame[i] = 1 // no start-code look-alikes
		}
	}
	go func() {
		defer pub.Close()
		start := time.Now()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Until(start.Add(time.Duration(i) * time.Second / 30))):
			}
			frame[0] = 0x41
			au := [][]byte{nil, frame}
			if i%60 == 0 {
				frame[0] = 0x65
				au = [][]byte{benchSPS, benchPPS, nil, frame}
			}
			sei := make([]byte, 0, 28)
			sei = append(sei, 6, 5, 24)
			sei = append(sei, clockSEI...)
			sei = binary.BigEndian.AppendUint64(sei, uint64(time.Now().UnixNano()))
			au[len(au)-2] = append(sei, 0x80)
			pkts, err := enc.Encode(au)
			if err != nil {
				return
			}
			for _, p := range pkts {
				p.Timestamp = uint32(i * 3000)
				if pub.WritePacketRTP(desc.Medias[0], p) != nil {
					return
				}
			}
		}
	}()
	return nil
}

// rtspReader plays a stream over RTSP/TCP and hands over its access units.
func rtspReader(url string, onAU func([][]byte)) (*gortsplib.Client, error) {
	u, err := base.ParseURL(url)
	if err != nil {
		return nil, err
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp}
	if err := c.Start2(); err != nil {
		return nil, err
	}
	desc, _, err := c.Describe(u)
	if err != nil {
		c.Close()
		return nil, err
	}
	var forma *format.H264
	medi := desc.FindFormat(&forma)
	if medi == nil {
		c.Close()
		return nil, errors.New("no H.264 track")
	}
	dec, err := forma.CreateDecoder()
	if err != nil {
		c.Close()
		return nil, err
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
		c.Close()
		return nil, err
	}
	c.OnPacketRTP(medi, forma, func(pkt *rtp.Packet) {
		if au, err := dec.Decode(pkt); err == nil && au != nil {
			onAU(au)
		}
	})
	if _, err := c.Play(nil); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
