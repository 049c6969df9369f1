package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// benchCmd is a load generator for any Kinesis-compatible endpoint. Its hot
// paths send pre-encoded bodies over raw HTTP with SigV4 signatures (payload
// hashes computed once), so the generator costs little CPU next to the server.
func benchCmd(args []string) error {
	switch {
	case len(args) > 0 && args[0] == "video":
		return benchVideoCmd(args[1:])
	case len(args) > 0 && args[0] == "rtsp-floor":
		return benchRTSPFloorCmd(args[1:])
	case len(args) > 0 && args[0] == "fragments":
		return benchFragmentsCmd(args[1:])
	case len(args) > 0 && args[0] == "llhls":
		return benchLLHLSCmd(args[1:])
	case len(args) > 0 && args[0] == "webrtc":
		return benchWebRTCCmd(args[1:])
	case len(args) > 0 && args[0] == "mqtt":
		return benchMQTTCmd(args[1:])
	case len(args) > 0 && args[0] == "firehose":
		return benchFirehoseCmd(args[1:])
	case len(args) > 0 && args[0] == "analytics":
		return benchAnalyticsCmd(args[1:])
	case len(args) > 0 && args[0] == "putmedia":
		return benchPutMediaCmd(args[1:])
	case len(args) == 0 || args[0] != "kinesis":
		return errors.New("usage: streamgate bench kinesis|video|rtsp-floor|fragments|llhls|webrtc|mqtt|firehose|analytics|putmedia [flags]")
	}
	var b bench
	fs := flag.NewFlagSet("bench kinesis", flag.ExitOnError)
	b.c.register(fs)
	fs.StringVar(&b.mode, "mode", "put", "put: PutRecords throughput; get: GetRecords drain; subscribe: put -> SubscribeToShard latency")
	fs.StringVar(&b.stream, "stream", "bench", "stream to use (created when missing)")
	fs.IntVar(&b.shards, "shards", 4, "shards of a created stream")
	fs.IntVar(&b.recordSize, "record-size", 100, "bytes of data per record")
	fs.IntVar(&b.batch, "batch", 500, "records per PutRecords call")
	fs.IntVar(&b.concurrency, "concurrency", 8, "concurrent requests")
	fs.DurationVar(&b.duration, "duration", 10*time.Second, "how long to run")
	fs.IntVar(&b.rate, "rate", 1000, "subscribe mode: records per second to put")
	fs.IntVar(&b.records, "records", 200000, "get mode: records to write first, then drain")
	fs.IntVar(&b.serverPID, "server-pid", 0, "pid of the server, to report its CPU time and RSS")
	fs.Parse(args[1:])
	b.k = b.c.kinesis()
	// The hot paths sign raw requests: resolve what the SDK client would use.
	ko := b.k.Options()
	creds, err := ko.Credentials.Retrieve(bg)
	if err != nil {
		return fmt.Errorf("bench: credentials: %w", err)
	}
	b.creds, b.endpoint, b.region = creds, aws.ToString(ko.BaseEndpoint), ko.Region
	b.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 0, DisableCompression: true}}
	if err := b.ensureStream(); err != nil {
		return err
	}
	switch b.mode {
	case "put":
		return b.put()
	case "get":
		return b.get()
	case "subscribe":
		return b.subscribe()
	}
	return fmt.Errorf("bench: unknown mode %q", b.mode)
}

type bench struct {
	c                                      clientFlags
	k                                      *kinesis.Client
	http                                   *http.Client
	mode, stream                           string
	shards, recordSize, batch, concurrency int
	rate, records, serverPID               int
	duration                               time.Duration
	signer                                 *v4.Signer
	creds                                  aws.Credentials
	endpoint, region                       string
}

func (b *bench) ensureStream() error {
	_, err := b.k.DescribeStreamSummary(bg, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(b.stream)})
	if err == nil {
		return nil
	}
	if _, err := b.k.CreateStream(bg, &kinesis.CreateStreamInput{StreamName: aws.String(b.stream), ShardCount: aws.Int32(int32(b.shards))}); err != nil {
		return err
	}
	return kinesis.NewStreamExistsWaiter(b.k, func(o *kinesis.StreamExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond }).
		Wait(bg, &kinesis.DescribeStreamInput{StreamName: aws.String(b.stream)}, 30*time.Second)
}

// request is a pre-encoded API call.
type request struct {
	target string
	body   []byte
	hash   string // hex SHA-256 of body, for SigV4
	n      int    // records in it
}

func newRequest(target string, v any) request {
	body, _ := json.Marshal(v)
	sum := sha256.Sum256(body)
	return request{target: target, body: body, hash: hex.EncodeToString(sum[:])}
}

func (b *bench) do(r request) ([]byte, error) {
	req, _ := http.NewRequest("POST", b.endpoint+"/", bytes.NewReader(r.body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+r.target)
	if b.signer == nil {
		b.signer = v4.NewSigner()
	}
	if err := b.signer.SignHTTP(bg, b.creds, req, r.hash, "kinesis", b.region, time.Now()); err != nil {
		return nil, err
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return body, fmt.Errorf("%s: HTTP %d: %s", r.target, resp.StatusCode, body)
	}
	return body, nil
}

type putEntry struct {
	Data         []byte
	PartitionKey string
}

// putBodies pre-encodes distinct PutRecords bodies with random keys and data.
func (b *bench) putBodies(n int) []request {
	reqs := make([]request, n)
	for i := range reqs {
		entries := make([]putEntry, b.batch)
		for j := range entries {
			data := make([]byte, b.recordSize)
			rand.Read(data)
			key := make([]byte, 12)
			rand.Read(key)
			entries[j] = putEntry{data, base64.RawURLEncoding.EncodeToString(key)}
		}
		reqs[i] = newRequest("PutRecords", map[string]any{"StreamName": b.stream, "Records": entries})
		reqs[i].n = b.batch
	}
	return reqs
}

// cpu is a snapshot of process CPU time.
type cpu struct{ self, server time.Duration }

func (b *bench) cpuNow() cpu {
	c := cpu{self: selfCPU()}
	if b.serverPID > 0 {
		c.server = procCPU(b.serverPID)
	}
	return c
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU reads utime+stime of a process from /proc (clock ticks of 10 ms).
func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func procRSS(pid int) string {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:"))
		}
	}
	return "?"
}

func percentiles(lat []time.Duration) string {
	if len(lat) == 0 {
		return "no samples"
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }
	return fmt.Sprintf("p50 %s  p99 %s  p999 %s  max %s  (n=%d)", ms(p(0.50)), ms(p(0.99)), ms(p(0.999)), ms(lat[len(lat)-1]), len(lat))
}

func (b *bench) report(name string, records int64, bytes int64, elapsed time.Duration, lat []time.Duration, c0, c1 cpu) {
	secs := elapsed.Seconds()
	fmt.Printf("%s: %d records in %.1fs: %.0f records/s, %.1f MB/s\n", name, records, secs, float64(records)/secs, float64(bytes)/secs/1e6)
	fmt.Printf("  latency per request: %s\n", percentiles(lat))
	perM := func(d time.Duration) float64 { return d.Seconds() / float64(max(records, 1)) * 1e6 }
	fmt.Printf("  client CPU %.2fs (%.2f s per million records)", (c1.self - c0.self).Seconds(), perM(c1.self-c0.self))
	if b.serverPID > 0 {
		fmt.Printf("; server CPU %.2fs (%.2f s per million records), server RSS %s", (c1.server - c0.server).Seconds(), perM(c1.server-c0.server), procRSS(b.serverPID))
	}
	fmt.Println()
}

func (b *bench) put() error {
	reqs := b.putBodies(64)
	var records, bytesSent, failed atomic.Int64
	lats := make([][]time.Duration, b.concurrency)
	var firstErr atomic.Value
	c0 := b.cpuNow()
	start := time.Now()
	deadline := start.Add(b.duration)
	var wg sync.WaitGroup
	for w := range b.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i++ {
				r := reqs[i%len(reqs)]
				t0 := time.Now()
				resp, err := b.do(r)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					failed.Add(int64(r.n))
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
				ok := int64(r.n)
				if !bytes.Contains(resp, []byte(`"FailedRecordCount":0`)) {
					var out struct{ FailedRecordCount int64 }
					json.Unmarshal(resp, &out)
					ok -= out.FailedRecordCount
					failed.Add(out.FailedRecordCount)
				}
				records.Add(ok)
				bytesSent.Add(ok * int64(b.recordSize))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	c1 := b.cpuNow()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	b.report(fmt.Sprintf("PutRecords %d x %d B, %d shards, concurrency %d", b.batch, b.recordSize, b.shards, b.concurrency), records.Load(), bytesSent.Load(), elapsed, all, c0, c1)
	if failed.Load() > 0 {
		fmt.Printf("  failed records: %d (first error: %v)\n", failed.Load(), firstErr.Load())
	}
	return nil
}

func (b *bench) get() error {
	// Fill, then drain every shard from TRIM_HORIZON with GetRecords.
	reqs := b.putBodies(16)
	for written := 0; written < b.records; {
		var wg sync.WaitGroup
		for i := 0; i < b.concurrency && written < b.records; i++ {
			r := reqs[(written/b.batch)%len(reqs)]
			written += r.n
			wg.Add(1)
			go func() { defer wg.Done(); b.do(r) }()
		}
		wg.Wait()
	}
	shards, err := b.k.ListShards(bg, &kinesis.ListShardsInput{StreamName: aws.String(b.stream)})
	if err != nil {
		return err
	}
	var records, bytesRead atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	c0 := b.cpuNow()
	start := time.Now()
	var wg sync.WaitGroup
	for _, sh := range shards.Shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			it, err := b.k.GetShardIterator(bg, &kinesis.GetShardIteratorInput{StreamName: aws.String(b.stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
			if err != nil {
				return
			}
			iter := aws.ToString(it.ShardIterator)
			for {
				t0 := time.Now()
				resp, err := b.do(newRequest("GetRecords", map[string]any{"ShardIterator": iter, "Limit": 10000}))
				if err != nil {
					fmt.Fprintln(os.Stderr, "get:", err)
					return
				}
				var out struct {
					Records []struct {
						Data []byte
					}
					NextShardIterator *string
				}
				if err := json.Unmarshal(resp, &out); err != nil {
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
				if len(out.Records) == 0 || out.NextShardIterator == nil {
					return
				}
				records.Add(int64(len(out.Records)))
				for _, r := range out.Records {
					bytesRead.Add(int64(len(r.Data)))
				}
				iter = *out.NextShardIterator
			}
		}()
	}
	wg.Wait()
	b.report(fmt.Sprintf("GetRecords drain of %d shards", len(shards.Shards)), records.Load(), bytesRead.Load(), time.Since(start), lat, c0, b.cpuNow())
	return nil
}

func (b *bench) subscribe() error {
	sum, err := b.k.DescribeStreamSummary(bg, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(b.stream)})
	if err != nil {
		return err
	}
	arn := sum.StreamDescriptionSummary.StreamARN
	name := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	reg, err := b.k.RegisterStreamConsumer(bg, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String(name)})
	if err != nil {
		return err
	}
	defer b.k.DeregisterStreamConsumer(bg, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: reg.Consumer.ConsumerARN})
	shards, err := b.k.ListShards(bg, &kinesis.ListShardsInput{StreamName: aws.String(b.stream), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var lat []time.Duration
	var received atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, sh := range shards.Shards {
		// One client per subscription: aws-sdk-go-v2 shares one event-stream
		// decoder across a client's streams (aws/smithy-go#714, a data race).
		sub, err := b.c.kinesis().SubscribeToShard(bg, &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN, ShardId: sh.ShardId,
			StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sub.GetStream().Close()
			for {
				select {
				case <-done:
					return
				case ev, ok := <-sub.GetStream().Events():
					if !ok {
						return
					}
					now := time.Now().UnixNano()
					e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
					if !ok {
						continue
					}
					mu.Lock()
					for _, r := range e.Value.Records {
						if len(r.Data) >= 8 {
							lat = append(lat, time.Duration(now-int64(binary.BigEndian.Uint64(r.Data))))
						}
					}
					mu.Unlock()
					received.Add(int64(len(e.Value.Records)))
				}
			}
		}()
	}
	// Put at the target rate in small batches; each record carries its send time.
	const tick = 10 * time.Millisecond
	perTick := max(1, b.rate*int(tick)/int(time.Second))
	sent := 0
	c0 := b.cpuNow()
	start := time.Now()
	t := time.NewTicker(tick)
	for time.Since(start) < b.duration {
		<-t.C
		entries := make([]putEntry, perTick)
		now := time.Now().UnixNano()
		for i := range entries {
			data := make([]byte, max(8, b.recordSize))
			binary.BigEndian.PutUint64(data, uint64(now))
			entries[i] = putEntry{data, strconv.Itoa(sent + i)}
		}
		if _, err := b.do(newRequest("PutRecords", map[string]any{"StreamName": b.stream, "Records": entries})); err != nil {
			return err
		}
		sent += perTick
	}
	t.Stop()
	for deadline := time.Now().Add(5 * time.Second); received.Load() < int64(sent) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	close(done)
	elapsed := time.Since(start)
	c1 := b.cpuNow()
	mu.Lock()
	fmt.Printf("SubscribeToShard at %d records/s over %d shards: %d sent, %d received\n", b.rate, len(shards.Shards), sent, received.Load())
	fmt.Printf("  put -> event latency: %s\n", percentiles(lat))
	mu.Unlock()
	b.report("  (load)", int64(sent), int64(sent*b.recordSize), elapsed, nil, c0, c1)
	wg.Wait()
	return nil
}
