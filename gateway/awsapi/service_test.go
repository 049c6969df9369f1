package awsapi

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The mux never handles more request-body bytes at once than its bound.
func TestInflightBytesAreBounded(t *testing.T) {
	var now, peak atomic.Int64
	svc := &Service{Prefix: "Test_1", Ops: map[string]Op{"Slow": func(r *Request) (any, error) {
		n := now.Add(int64(len(r.Body)))
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		now.Add(-int64(len(r.Body)))
		return struct{}{}, nil
	}}}
	const body = 1000
	m := NewMux(slog.New(slog.NewTextHandler(io.Discard, nil)), body, 3*body, svc)
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest("POST", "/", bytes.NewReader(make([]byte, body)))
			req.Header.Set("X-Amz-Target", "Test_1.Slow")
			w := httptest.NewRecorder()
			m.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				t.Errorf("status %d: %s", w.Code, w.Body)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 3*body || p < body {
		t.Fatalf("peak in-flight body bytes %d, bound %d", p, 3*body)
	}
}

// A panicking operation answers InternalFailure instead of killing the connection.
func TestPanicBecomesInternalFailure(t *testing.T) {
	svc := &Service{Prefix: "Test_1", Ops: map[string]Op{"Boom": func(r *Request) (any, error) { panic("bug") }}}
	m := NewMux(slog.New(slog.NewTextHandler(io.Discard, nil)), 1<<20, 1<<20, svc)
	req := httptest.NewRequest("POST", "/", bytes.NewReader([]byte("{}")))
	req.Header.Set("X-Amz-Target", "Test_1.Boom")
	w := httptest.NewRecorder()
	m.ServeHTTP(w, req)
	if w.Code != 500 || !bytes.Contains(w.Body.Bytes(), []byte(`"__type":"InternalFailure"`)) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
}

func TestValidatorMessages(t *testing.T) {
	var v Validator
	v.Length("streamName", "", 1, 128)
	v.Range("shardCount", 0, 1, 100000)
	err := v.Err().(*Error)
	want := "2 validation errors detected: Value '' at 'streamName' failed to satisfy constraint: Member must have length greater than or equal to 1; Value '0' at 'shardCount' failed to satisfy constraint: Member must have value greater than or equal to 1"
	if err.Code != CodeValidation || err.Message != want {
		t.Fatalf("%s: %s", err.Code, err.Message)
	}
}

// SDKHTTPClient sends the same body, rewindable, as a bytes.Reader.
func TestSDKHTTPClientBuffersBodies(t *testing.T) {
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		if r.ContentLength != int64(len(got)) {
			t.Errorf("Content-Length %d for %d bytes", r.ContentLength, len(got))
		}
	}))
	defer srv.Close()
	body := bytes.Repeat([]byte("x"), 10000)
	req, _ := http.NewRequest("POST", srv.URL, io.NopCloser(io.MultiReader(bytes.NewReader(body))))
	req.ContentLength = int64(len(body))
	resp, err := SDKHTTPClient(nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("server got %d bytes, want %d", len(got), len(body))
	}
}

// A client that sends its headers and then trickles (or stalls) its body is
// cut off after BodyTimeout instead of holding the request open.
func TestSlowBodyIsCutOff(t *testing.T) {
	svc := &Service{Prefix: "Test_1", Ops: map[string]Op{"Op": func(r *Request) (any, error) { return struct{}{}, nil }}}
	m := NewMux(slog.New(slog.NewTextHandler(io.Discard, nil)), 1<<20, 1<<20, svc)
	m.BodyTimeout = 200 * time.Millisecond
	srv := httptest.NewServer(m)
	defer srv.Close()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Test_1.Op\r\nContent-Length: 1000\r\n\r\n{\"partial\":")
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("stalled body answered %d", resp.StatusCode)
		}
	}
	if waited := time.Since(start); waited > 3*time.Second {
		t.Fatalf("stalled body held the request for %v", waited)
	}
}
