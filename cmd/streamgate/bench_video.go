package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	amtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideomedia"
	kvmtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideomedia/types"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/streamgate/streamgate/streamstore"
)

// benchVideoCmd measures video ingest: N looped `ffmpeg -c copy` RTSP
// publishers against a running gateway, reporting the server's CPU and RSS
// per camera, frames sent against frames stored, and how soon a finished
// fragment is listable.
func benchVideoCmd(args []string) error {
	fs := flag.NewFlagSet("bench video", flag.ExitOnError)
	rtspBase := fs.String("rtsp", "", "RTSP base URL with credentials, e.g. rtsp://KEY:SECRET@127.0.0.1:8554")
	clip := fs.String("clip", "", "video file each camera publishes in a loop (-c copy, real time)")
	cameras := fs.Int("cameras", 1, "publishers, each on its own stream")
	duration := fs.Duration("duration", 20*time.Second, "measured time, after a warm-up")
	warmup := fs.Duration("warmup", 6*time.Second, "time before measuring (publishers connect, first fragments)")
	serverPID := fs.Int("server-pid", 0, "pid of the gateway, for its CPU time and RSS")
	stagger := fs.Duration("stagger", 0, "spread the publishers' starts over this long (e.g. the GOP), so their keyframes do not align as they do when all start at once")
	metricsURL := fs.String("metrics", "", "the gateway's /metrics URL; without it (against `bench rtsp-floor`) only CPU and RSS are reported")
	fs.Parse(args)
	if *rtspBase == "" || *clip == "" || *serverPID == 0 {
		return errors.New("usage: streamgate bench video --rtsp URL --clip FILE --cameras N --server-pid PID [--metrics URL]")
	}
	var m0 metrics
	if *metricsURL != "" {
		var err error
		if m0, err = scrape(*metricsURL); err != nil {
			return err
		}
	}
	rss0 := procRSSKiB(*serverPID)
	pubs := make([]*publisherProc, *cameras)
	for i := range pubs {
		if i > 0 {
			time.Sleep(*stagger / time.Duration(*cameras))
		}
		p, err := startPublisher(*clip, fmt.Sprintf("%s/bench-%03d", strings.TrimSuffix(*rtspBase, "/"), i))
		if err != nil {
			return err
		}
		pubs[i] = p
	}
	time.Sleep(*warmup)
	c0 := procCPU(*serverPID)
	t0 := time.Now()
	var peak int64
	for time.Since(t0) < *duration {
		time.Sleep(500 * time.Millisecond)
		peak = max(peak, procRSSKiB(*serverPID))
	}
	cpu := procCPU(*serverPID) - c0
	elapsed := time.Since(t0)
	sent := 0
	for _, p := range pubs {
		sent += p.stop()
	}
	coreShare := cpu.Seconds() / elapsed.Seconds() * 100
	fmt.Printf("%d cameras for %.0fs: server CPU %.2f%% of one core in all, %.3f%% per camera; RSS %d MB (idle %d MB), %.2f MB per camera\n",
		*cameras, elapsed.Seconds(), coreShare, coreShare/float64(*cameras), peak/1024, rss0/1024, float64(peak-rss0)/1024/float64(*cameras))
	if *metricsURL == "" {
		fmt.Printf("  frames sent %d (not counted by the server)\n", sent)
		return nil
	}
	time.Sleep(2 * time.Second) // the last fragments are stored after the publishers leave
	m1, err := scrape(*metricsURL)
	if err != nil {
		return err
	}
	stored := int(m1.counter("streamgate_video_frames_stored_total") - m0.counter("streamgate_video_frames_stored_total"))
	fmt.Printf("  frames sent %d, stored %d, dropped %d; fragments lost %0.f, decode errors %0.f, back-pressure %.2fs\n",
		sent, stored, sent-stored,
		m1.counter("streamgate_video_fragments_lost_total")-m0.counter("streamgate_video_fragments_lost_total"),
		m1.counter("streamgate_video_decode_errors_total")-m0.counter("streamgate_video_decode_errors_total"),
		m1.counter("streamgate_video_backpressure_seconds_total")-m0.counter("streamgate_video_backpressure_seconds_total"))
	h := m1.histogram("streamgate_video_fragment_visible_seconds").minus(m0.histogram("streamgate_video_fragment_visible_seconds"))
	fmt.Printf("  fragment listable after its last packet: p50 <= %s, p99 <= %s, max <= %s (n=%d, histogram bucket bounds)\n",
		h.quantile(0.5), h.quantile(0.99), h.quantile(1), h.count)
	return nil
}

// publisherProc is one ffmpeg publishing in a loop; it reports frames sent.
type publisherProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	frames int
	done   chan struct{}
}

func startPublisher(clip, target string) (*publisherProc, error) {
	cmd := exec.Command("ffmpeg", "-nostats", "-loglevel", "error", "-progress", "pipe:1", "-re", "-stream_loop", "-1", "-i", clip,
		"-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", target)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ffmpeg: %w", err)
	}
	p := &publisherProc{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "frame="); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				p.mu.Lock()
				p.frames = n
				p.mu.Unlock()
			}
		}
	}()
	return p, nil
}

// stop ends ffmpeg gracefully (it finishes the session) and returns the
// frames it sent.
func (p *publisherProc) stop() int {
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frames
}

// metrics is a scrape of /metrics.
type metrics map[string]*dto.MetricFamily

func scrape(url string) (metrics, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

func (m metrics) counter(name string) float64 {
	if f := m[name]; f != nil && len(f.Metric) > 0 {
		return f.Metric[0].GetCounter().GetValue()
	}
	return 0
}

type histogram struct {
	bounds []float64
	counts []uint64 // cumulative
	count  uint64
}

func (m metrics) histogram(name string) histogram {
	var h histogram
	if f := m[name]; f != nil && len(f.Metric) > 0 {
		hi := f.Metric[0].GetHistogram()
		for _, b := range hi.Bucket {
			h.bounds = append(h.bounds, b.GetUpperBound())
			h.counts = append(h.counts, b.GetCumulativeCount())
		}
		h.count = hi.GetSampleCount()
	}
	return h
}

func (h histogram) minus(o histogram) histogram {
	out := histogram{bounds: h.bounds, counts: make([]uint64, len(h.counts)), count: h.count - o.count}
	for i := range h.counts {
		out.counts[i] = h.counts[i]
		if i < len(o.counts) {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h histogram) quantile(q float64) string {
	if h.count == 0 {
		return "-"
	}
	want := uint64(math.Ceil(q * float64(h.count)))
	for i, c := range h.counts {
		if c >= want {
			return fmt.Sprintf("%.1fms", h.bounds[i]*1000)
		}
	}
	return "+Inf"
}

func procRSSKiB(pid int) int64 {
	v := strings.TrimSuffix(procRSS(pid), " kB")
	n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return n
}

// benchFragmentsCmd measures the fragment index at scale. "fill" writes N
// copies of a stored fragment into a new stream of a stopped gateway's data
// directory, 2 s apart, ending now; "query" times ListFragments over the
// last hour and GetMediaForFragmentList of 30 s against a running gateway.
func benchFragmentsCmd(args []string) error {
	if len(args) == 0 || (args[0] != "fill" && args[0] != "query") {
		return errors.New("usage: streamgate bench fragments fill --data-dir D --template S --count N | query --stream S [--endpoint URL]")
	}
	fs := flag.NewFlagSet("bench fragments", flag.ExitOnError)
	var c clientFlags
	c.register(fs)
	dataDir := fs.String("data-dir", "./data", "fill: data directory of a stopped gateway")
	template := fs.String("template", "", "fill: video stream whose first fragment is copied")
	count := fs.Int("count", 1000, "fill: fragments to write")
	stream := fs.String("stream", "", "query: video stream to query")
	rounds := fs.Int("rounds", 50, "query: repetitions of each query")
	window := fs.Duration("window", time.Hour, "query: list the fragments of this last stretch of time")
	fs.Parse(args[1:])
	if args[0] == "fill" {
		return fillFragments(*dataDir, *template, *count)
	}
	return queryFragments(c, *stream, *rounds, *window)
}

func fillFragments(dataDir, template string, count int) error {
	store, err := streamstore.Open(streamstore.Options{Dir: filepath.Clean(dataDir), Fsync: streamstore.FsyncNever})
	if err != nil {
		return err
	}
	defer store.Close()
	src := "video/" + template
	first, err := store.Seek(src, streamstore.ShardID(0), streamstore.Position{Type: streamstore.TrimHorizon})
	if err != nil {
		return err
	}
	res, err := store.Read(src, streamstore.ShardID(0), first, 1, math.MaxInt32)
	if err != nil || len(res.Records) == 0 {
		return fmt.Errorf("template stream %s has no fragment: %v", template, err)
	}
	tmpl := res.Records[0]
	tinfo, _ := store.Stream(src)
	name := fmt.Sprintf("%s-%d", template, count)
	if _, err := store.CreateStream(streamstore.StreamConfig{Name: "video/" + name, Shards: 1, RetentionHours: 87600,
		MaxRecordKiB: tinfo.MaxRecordKiB, Labels: tinfo.Labels}); err != nil {
		return err
	}
	start := time.Now().Add(-time.Duration(count) * 2 * time.Second)
	began := time.Now()
	const batch = 100
	for i := 0; i < count; i += batch {
		var entries []streamstore.Entry
		for j := i; j < min(i+batch, count); j++ {
			at := start.Add(time.Duration(j) * 2 * time.Second).UnixNano()
			entries = append(entries, streamstore.Entry{PartitionKey: tmpl.PartitionKey, Data: tmpl.Data, Producer: at, Arrival: at})
		}
		out, err := store.Append("video/"+name, entries)
		if err != nil {
			return err
		}
		for _, a := range out {
			if a.Err != nil {
				return a.Err
			}
		}
	}
	fmt.Printf("filled %s: %d fragments of %d bytes in %.1fs\n", name, count, len(tmpl.Data), time.Since(began).Seconds())
	return nil
}

func queryFragments(c clientFlags, stream string, rounds int, window time.Duration) error {
	am, vm := c.archivedMedia(), c.videoMedia()
	now := time.Now()
	var listLat, rawLat, getLat, catchLat, clipLat, hlsLat []time.Duration
	r := c.resolve()
	creds, err := r.creds.Retrieve(bg)
	if err != nil {
		return err
	}
	signer := v4.NewSigner()
	listed := 0
	for range rounds {
		t0 := time.Now()
		var frags []amtypes.Fragment
		in := &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String(stream), FragmentSelector: &amtypes.FragmentSelector{
			FragmentSelectorType: amtypes.FragmentSelectorTypeServerTimestamp,
			TimestampRange:       &amtypes.TimestampRange{StartTimestamp: aws.Time(now.Add(-window)), EndTimestamp: aws.Time(now)}}}
		for {
			out, err := am.ListFragments(bg, in)
			if err != nil {
				return err
			}
			frags = append(frags, out.Fragments...)
			if out.NextToken == nil {
				break
			}
			in.NextToken = out.NextToken
		}
		listLat = append(listLat, time.Since(t0))
		listed = len(frags)

		// The same listing over raw HTTP: the server's share, without the SDK's decoding.
		body := fmt.Appendf(nil, `{"StreamName":%q,"MaxResults":1000,"FragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":%d,"EndTimestamp":%d}}}`,
			stream, now.Add(-window).Unix(), now.Unix()+1)
		tr := time.Now()
		for token := ""; ; {
			b := body
			if token != "" {
				b = fmt.Appendf(nil, `{"StreamName":%q,"MaxResults":1000,"NextToken":%q}`, stream, token)
			}
			req, _ := http.NewRequest("POST", aws.ToString(r.endpoint)+"/listFragments", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			sum := sha256.Sum256(b)
			if err := signer.SignHTTP(bg, creds, req, hex.EncodeToString(sum[:]), "kinesisvideo", r.region, time.Now()); err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			var page struct{ NextToken string }
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if err != nil || page.NextToken == "" {
				break
			}
			token = page.NextToken
		}
		rawLat = append(rawLat, time.Since(tr))
		if len(frags) < 15 {
			return fmt.Errorf("only %d fragments in the last %v of %s", len(frags), window, stream)
		}
		sort.Slice(frags, func(i, j int) bool {
			return aws.ToString(frags[i].FragmentNumber) < aws.ToString(frags[j].FragmentNumber)
		})
		var nums []string
		for _, f := range frags[len(frags)-15:] { // the last 30 s
			nums = append(nums, aws.ToString(f.FragmentNumber))
		}
		t1 := time.Now()
		out, err := am.GetMediaForFragmentList(bg, &kinesisvideoarchivedmedia.GetMediaForFragmentListInput{StreamName: aws.String(stream), Fragments: nums})
		if err != nil {
			return err
		}
		io.Copy(io.Discard, out.Payload)
		out.Payload.Close()
		getLat = append(getLat, time.Since(t1))

		// GetMedia catching up over the same 30 s: until the 15th fragment's
		// tags (they follow its cluster).
		t4 := time.Now()
		gm, err := vm.GetMedia(bg, &kinesisvideomedia.GetMediaInput{StreamName: aws.String(stream),
			StartSelector: &kvmtypes.StartSelector{StartSelectorType: kvmtypes.StartSelectorTypeFragmentNumber,
				AfterFragmentNumber: frags[len(frags)-16].FragmentNumber}})
		if err != nil {
			return err
		}
		err = readFragmentTags(gm.Payload, 15)
		gm.Payload.Close()
		if err != nil {
			return fmt.Errorf("GetMedia: %w", err)
		}
		catchLat = append(catchLat, time.Since(t4))

		// GetClip of the same 30 s, as a fast-start MP4, read to the end.
		t2 := time.Now()
		lastTS := aws.ToTime(frags[len(frags)-1].ServerTimestamp)
		clip, err := am.GetClip(bg, &kinesisvideoarchivedmedia.GetClipInput{StreamName: aws.String(stream),
			ClipFragmentSelector: &amtypes.ClipFragmentSelector{FragmentSelectorType: amtypes.ClipFragmentSelectorTypeServerTimestamp,
				TimestampRange: &amtypes.ClipTimestampRange{StartTimestamp: aws.Time(lastTS.Add(-29 * time.Second)), EndTimestamp: aws.Time(lastTS.Add(time.Second))}}})
		if err != nil {
			return err
		}
		io.Copy(io.Discard, clip.Payload)
		clip.Payload.Close()
		clipLat = append(clipLat, time.Since(t2))

		// An ON_DEMAND HLS session over the window: its media playlist.
		sess, err := am.GetHLSStreamingSessionURL(bg, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{StreamName: aws.String(stream),
			PlaybackMode: amtypes.HLSPlaybackModeOnDemand, MaxMediaPlaylistFragmentResults: aws.Int64(5000),
			HLSFragmentSelector: &amtypes.HLSFragmentSelector{FragmentSelectorType: amtypes.HLSFragmentSelectorTypeServerTimestamp,
				TimestampRange: &amtypes.HLSTimestampRange{StartTimestamp: aws.Time(now.Add(-window)), EndTimestamp: aws.Time(now)}}})
		if err != nil {
			return err
		}
		mediaURL := strings.Replace(aws.ToString(sess.HLSStreamingSessionURL), "getHLSMasterPlaylist", "getHLSMediaPlaylist", 1)
		t3 := time.Now()
		resp, err := http.Get(mediaURL)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		hlsLat = append(hlsLat, time.Since(t3))
	}
	fmt.Printf("%s: ListFragments of the last %v (%d fragments, all pages): %s\n", stream, window, listed, percentiles(listLat))
	fmt.Printf("%s: ... the same over raw signed HTTP (no SDK decoding): %s\n", stream, percentiles(rawLat))
	fmt.Printf("%s: GetMediaForFragmentList of 30 s (15 fragments, read to the end): %s\n", stream, percentiles(getLat))
	fmt.Printf("%s: GetMedia from a fragment number, until 15 fragments (30 s) are read: %s\n", stream, percentiles(catchLat))
	fmt.Printf("%s: GetClip of 30 s (MP4, read to the end): %s\n", stream, percentiles(clipLat))
	fmt.Printf("%s: ON_DEMAND HLS media playlist of the last %v (%d fragments): %s\n", stream, window, listed, percentiles(hlsLat))
	return nil
}

// readFragmentTags reads a GetMedia stream until n fragments have been
// read whole: each fragment's Tags, which hold its fragment number, follow
// its Cluster.
func readFragmentTags(r io.Reader, n int) error {
	name := []byte("AWS_KINESISVIDEO_FRAGMENT_NUMBER")
	buf := make([]byte, 256<<10)
	var tail []byte // the last bytes before this read: a name the read boundary cut
	seen := 0
	for seen < n {
		m, err := r.Read(buf)
		seen += bytes.Count(buf[:m], name)
		joint := append(tail, buf[:min(m, len(name)-1)]...)
		seen += bytes.Count(joint, name)
		if m >= len(name)-1 {
			tail = append(tail[:0], buf[m-len(name)+1:m]...)
		} else {
			tail = append(tail[:0], joint[max(0, len(joint)-len(name)+1):]...)
		}
		if err != nil && seen < n {
			return fmt.Errorf("%d of %d fragments before %w", seen, n, err)
		}
	}
	return nil
}
