package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

// emptyPayloadHash is what the KVS producer SDK signs as PutMedia's
// payload hash.
const emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// benchPutMediaCmd measures PutMedia ingest: N producers stream a Matroska
// file (one session per pass, timecodes starting over) as fast as the
// gateway takes it; it reports megabits and frames per second, the
// gateway's CPU, and how long after a session's last byte its last cluster
// is acknowledged PERSISTED.
func benchPutMediaCmd(args []string) error {
	fs := flag.NewFlagSet("bench putmedia", flag.ExitOnError)
	var c clientFlags
	c.register(fs)
	mkv := fs.String("mkv", "", "a Matroska file as a producer streams it (clusters at keyframes)")
	frames := fs.Int("frames", 0, "video frames in the file, to report frames per second")
	producers := fs.Int("producers", 4, "concurrent producers, one stream each")
	duration := fs.Duration("duration", 10*time.Second, "how long to stream")
	serverPID := fs.Int("server-pid", 0, "pid of the gateway, for its CPU time")
	fs.Parse(args)
	if *mkv == "" {
		return errors.New("usage: streamgate bench putmedia --mkv FILE [--frames N] [--producers N] [--duration D]")
	}
	data, err := os.ReadFile(*mkv)
	if err != nil {
		return err
	}
	r := c.resolve()
	creds, err := r.creds.Retrieve(bg)
	if err != nil {
		return err
	}
	kv := kinesisvideo.New(kinesisvideo.Options{Region: r.region, BaseEndpoint: r.endpoint, Credentials: r.creds, HTTPClient: awsapi.SDKHTTPClient(nil)})
	tag := time.Now().UnixNano()
	var mu sync.Mutex
	var sessions, sent int64
	var tails []time.Duration
	var firstErr error
	cpu0, start := procCPU(*serverPID), time.Now()
	var wg sync.WaitGroup
	for i := range *producers {
		stream := fmt.Sprintf("bench-pm-%d-%d", tag, i)
		if _, err := kv.CreateStream(bg, &kinesisvideo.CreateStreamInput{StreamName: aws.String(stream), DataRetentionInHours: aws.Int32(1)}); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < *duration {
				tail, err := putMediaSession(r.endpoint, creds, r.region, stream, data)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					sessions++
					sent += int64(len(data))
					tails = append(tails, tail)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	elapsed, cpu := time.Since(start), procCPU(*serverPID)-cpu0
	fmt.Printf("PutMedia, %d producers: %d sessions, %.0f Mbit/s", *producers, sessions, float64(sent)*8/1e6/elapsed.Seconds())
	if *frames > 0 {
		fmt.Printf(", %.0f frames/s", float64(sessions)*float64(*frames)/elapsed.Seconds())
	}
	fmt.Printf(" (server CPU %.0f%% of a core)\n", 100*cpu.Seconds()/elapsed.Seconds())
	sort.Slice(tails, func(i, j int) bool { return tails[i] < tails[j] })
	fmt.Printf("  last byte sent -> last cluster PERSISTED: %s\n", percentiles(tails))
	return nil
}

// putMediaSession streams one file as one PutMedia session and reads the
// acks; it returns how long after the last byte the last PERSISTED came.
func putMediaSession(endpoint *string, creds aws.Credentials, region, stream string, data []byte) (time.Duration, error) {
	pr, pw := io.Pipe()
	var sentAt time.Time
	go func() {
		for b := data; len(b) > 0; {
			n := min(len(b), 64<<10)
			if _, err := pw.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
		sentAt = time.Now()
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", aws.ToString(endpoint)+"/putMedia", pr)
	req.Header.Set("x-amzn-stream-name", stream)
	req.Header.Set("x-amzn-fragment-timecode-type", "RELATIVE")
	req.Header.Set("x-amzn-producer-start-timestamp", fmt.Sprintf("%.3f", float64(time.Now().UnixMilli())/1000))
	if err := v4.NewSigner().SignHTTP(bg, creds, req, emptyPayloadHash, "kinesisvideo", region, time.Now()); err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("PutMedia: %d %s", resp.StatusCode, b)
	}
	var last time.Time
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ack struct{ EventType, ErrorCode string }
		json.Unmarshal(sc.Bytes(), &ack)
		switch ack.EventType {
		case "ERROR":
			return 0, fmt.Errorf("PutMedia ack: %s", sc.Text())
		case "PERSISTED":
			last = time.Now()
		}
	}
	return last.Sub(sentAt), nil
}
