package media

import (
	"bytes"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startH264Publisher starts an RTSP/TCP publisher of one H.264 track (the
// test SPS/PPS) on a stream of s, returning the client, its session and an
// RTP encoder for its access units.
func startH264Publisher(t *testing.T, s *Server, stream string) (*gortsplib.Client, *description.Session, *rtph264.Encoder) {
	t.Helper()
	h264 := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: testSPS, PPS: testPPS}
	desc := &description.Session{Medias: []*description.Media{{Type: description.MediaTypeVideo, Formats: []format.Format{h264}}}}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tcp}
	if err := c.StartRecording("rtsp://"+s.Addr().String()+"/"+stream, desc); err != nil {
		t.Fatal(err)
	}
	enc, err := h264.CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	return c, desc, enc
}

// slowSink stores fragments in memory, taking delay for each: a disk that
// cannot keep up with the camera.
type slowSink struct {
	delay time.Duration
	mu    sync.Mutex
	frags []*Fragment
}

func (s *slowSink) Prepare(string) (StreamSettings, error) {
	return StreamSettings{FragmentDuration: time.Second}, nil
}

func (s *slowSink) Begin(string, *Fragment) (FragmentWriter, error) {
	return &slowWriter{sink: s}, nil
}

// slowWriter takes the sink's delay to make a fragment durable.
type slowWriter struct {
	memWriter
	sink *slowSink
	frag *Fragment
}

func (w *slowWriter) Commit(f *Fragment) (string, error) { w.frag = f; return "1", nil }

func (w *slowWriter) Durable() error {
	time.Sleep(w.sink.delay)
	w.sink.mu.Lock()
	defer w.sink.mu.Unlock()
	w.sink.frags = append(w.sink.frags, w.frag)
	return nil
}

func (s *slowSink) frames() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.frags {
		n += f.Frames
	}
	return n
}

// A publisher pushing as fast as TCP allows into a store far slower than
// real time is held back, and every frame it sent is stored: back-pressure,
// never a silent drop.
func TestSlowStoreBackPressuresPublisherWithoutLoss(t *testing.T) {
	sink := &slowSink{delay: 150 * time.Millisecond}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	s := NewServer(Config{RTSPAddress: "127.0.0.1:0", Sink: sink, Metrics: m, Logger: quietLogger()})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	c, desc, enc := startH264Publisher(t, s, "cam")
	const frames = 300 // 12 s of 25 fps video, keyframe every second, sent in well under a second
	start := time.Now()
	for i := range frames {
		nalu := bytes.Repeat([]byte{byte(i)}, 20000)
		nalu[0] = 0x41 // non-IDR slice
		au := [][]byte{nalu}
		if i%25 == 0 {
			nalu[0] = 0x65 // IDR slice
			au = [][]byte{testSPS, testPPS, nalu}
		}
		pkts, err := enc.Encode(au)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			p.Timestamp = uint32(i * 3600)
			// The client's queue fills when the server stops reading: that is
			// the back-pressure; a camera waits, so does this one.
			for {
				err := c.WritePacketRTP(desc.Medias[0], p)
				if err == nil {
					break
				}
				if !strings.Contains(err.Error(), "queue is full") {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
	}
	sent := time.Since(start)
	time.Sleep(2 * time.Second) // the client's queue drains; Close drops what is still in it
	c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for sink.frames() < frames && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := sink.frames(); got != frames {
		t.Fatalf("%d of %d frames stored", got, frames)
	}
	if held := testutil.ToFloat64(m.backpressure); held <= 0 {
		t.Fatalf("publisher sent everything in %v without being held back (back-pressure %.3fs)", sent, held)
	}
	for i, f := range sink.frags {
		if !f.Keyframe {
			t.Errorf("fragment %d does not start with a keyframe", i)
		}
	}
}

// numberingSink stores fragments in memory and numbers them.
type numberingSink struct {
	mu sync.Mutex
	n  int
}

func (s *numberingSink) Prepare(string) (StreamSettings, error) {
	return StreamSettings{FragmentDuration: 200 * time.Millisecond}, nil
}

func (s *numberingSink) Begin(string, *Fragment) (FragmentWriter, error) {
	return &numberingWriter{sink: s}, nil
}

type numberingWriter struct {
	memWriter
	sink *numberingSink
}

func (w *numberingWriter) Commit(*Fragment) (string, error) {
	w.sink.mu.Lock()
	defer w.sink.mu.Unlock()
	w.sink.n++
	return strconv.Itoa(w.sink.n), nil
}

// Durable takes a disk's time: the burst below arrives at a pace a reader keeps.
func (w *numberingWriter) Durable() error { time.Sleep(5 * time.Millisecond); return nil }

// Live subscribers get each stored fragment with its number, in order; one
// that does not read is dropped without holding up the recording or the others.
func TestLiveSubscriptions(t *testing.T) {
	sink := &numberingSink{}
	s := NewServer(Config{RTSPAddress: "127.0.0.1:0", Sink: sink, Logger: quietLogger()})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, desc, enc := startH264Publisher(t, s, "cam")
	defer c.Close()
	if _, ok := s.Subscribe("nobody"); ok {
		t.Fatal("subscribed to a stream that is not live")
	}
	reader, ok := s.Subscribe("cam")
	if !ok {
		t.Fatal("no live stream after RECORD")
	}
	idle, _ := s.Subscribe("cam") // never reads
	go func() {
		for i := range 400 { // 16 s at 25 fps, a keyframe every 5 frames, sent fast
			nalu := bytes.Repeat([]byte{1}, 500)
			nalu[0] = 0x41
			if i%5 == 0 {
				nalu[0] = 0x65
			}
			pkts, _ := enc.Encode([][]byte{nalu})
			for _, p := range pkts {
				p.Timestamp = uint32(i * 3600)
				for c.WritePacketRTP(desc.Medias[0], p) != nil {
					time.Sleep(time.Millisecond)
				}
			}
		}
	}()
	want := 1
	for want <= subscriberQueue+5 {
		select {
		case f, ok := <-reader.C:
			if !ok {
				t.Fatalf("the reading subscriber was dropped (after fragment %d)", want-1)
			}
			if f.Number != strconv.Itoa(want) || !f.Keyframe {
				t.Fatalf("fragment %d: number %s, keyframe %v", want, f.Number, f.Keyframe)
			}
			want++
		case <-time.After(10 * time.Second):
			t.Fatalf("no fragment %d", want)
		}
	}
	if !idle.Dropped() {
		t.Fatalf("a subscriber that never reads was not dropped after %d fragments", want-1)
	}
	reader.Close()
}

// Without a certificate there is no RTSPS listener, and the plain one is
// not reported as one.
func TestListenerAddresses(t *testing.T) {
	s := NewServer(Config{RTSPAddress: "127.0.0.1:0", RTSPSAddress: "127.0.0.1:0", Sink: &numberingSink{}, Logger: quietLogger()})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Addr() == nil || s.TLSAddr() != nil {
		t.Fatalf("plain %v, TLS %v: want a plain listener only", s.Addr(), s.TLSAddr())
	}
}
