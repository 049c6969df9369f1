package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/streamgate/streamgate/gateway/auth"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

var serveBin string

// TestMain builds the real binary once; the tests run it as users do.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "streamgate-bin")
	if err != nil {
		panic(err)
	}
	serveBin = filepath.Join(dir, "streamgate")
	if out, err := exec.Command("go", "build", "-o", serveBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a running `streamgate serve`.
type proc struct {
	cmd     *exec.Cmd
	addr    string
	dataDir string
	stderr  *bytes.Buffer
	out     *bytes.Buffer
	mu      *sync.Mutex
}

func startServe(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	addr := freePort(t)
	args := append([]string{"serve", "--data-dir", dataDir, "--http-addr", addr, "--rtsp-addr", "", "--mqtt-addr", "", "--webrtc-addr", ""}, extra...)
	cmd := exec.Command(serveBin, args...)
	p := &proc{cmd: cmd, addr: addr, dataDir: dataDir, stderr: &bytes.Buffer{}, out: &bytes.Buffer{}, mu: &sync.Mutex{}}
	cmd.Stderr = lockedWriter{p.stderr, p.mu}
	cmd.Stdout = lockedWriter{p.out, p.mu}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
	}
	t.Fatalf("server did not become healthy:\n%s", p.log())
	return nil
}

func (p *proc) log() string    { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }
func (p *proc) stdout() string { p.mu.Lock(); defer p.mu.Unlock(); return p.out.String() }

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}

// adminKey is the key the server made on its first start.
func (p *proc) adminKey(t *testing.T) auth.Key {
	t.Helper()
	keys, err := auth.LoadKeys(auth.KeysPath(p.dataDir))
	if err != nil || len(keys) == 0 {
		t.Fatalf("no admin key: %v", err)
	}
	return keys[0]
}

// keys is the admin key, read from the data directory.
func (p *proc) keys() auth.Key {
	keys, _ := auth.LoadKeys(auth.KeysPath(p.dataDir))
	if len(keys) == 0 {
		return auth.Key{}
	}
	return keys[0]
}

func (p *proc) client() *kinesis.Client {
	key := p.keys()
	return kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + p.addr),
		Credentials: credentials.NewStaticCredentialsProvider(key.ID, key.Secret, ""), Retryer: aws.NopRetryer{},
		HTTPClient: awsapi.SDKHTTPClient(nil)})
}

func readStream(t *testing.T, k *kinesis.Client, stream string) map[string]string {
	t.Helper()
	got := map[string]string{}
	shards, err := k.ListShards(bg, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards.Shards {
		it, err := k.GetShardIterator(bg, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for {
			res, err := k.GetRecords(bg, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Records {
				got[aws.ToString(r.SequenceNumber)] = string(r.Data)
			}
			if len(res.Records) == 0 || res.NextShardIterator == nil {
				break
			}
			iter = res.NextShardIterator
		}
	}
	return got
}

func TestSIGTERMShutsDownCleanly(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	k := p.client()
	if _, err := k.CreateStream(bg, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	out, err := k.PutRecord(bg, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("kept")})
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.log())
	}
	if !strings.Contains(p.log(), "stopped cleanly") {
		t.Fatalf("no clean-stop line:\n%s", p.log())
	}
	p2 := startServe(t, dir)
	if got := readStream(t, p2.client(), "s"); got[aws.ToString(out.SequenceNumber)] != "kept" {
		t.Fatalf("after restart: %v", got)
	}
}

// Records acknowledged over the API survive kill -9 of the server.
func TestKill9KeepsAcknowledgedRecordsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	k := p.client()
	if _, err := k.CreateStream(bg, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(4)}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var entries []types.PutRecordsRequestEntry
				for j := range 50 {
					entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(w, i, j)), Data: []byte(fmt.Sprintf("w%d-%d-%d", w, i, j))})
				}
				out, err := k.PutRecords(bg, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
				if err != nil {
					return // the server died mid-request: not acknowledged
				}
				mu.Lock()
				for j, r := range out.Records {
					if r.ErrorCode == nil {
						acked[aws.ToString(r.SequenceNumber)] = string(entries[j].Data)
					}
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	close(stop)
	wg.Wait()
	if len(acked) < 500 {
		t.Fatalf("only %d records acknowledged before the kill", len(acked))
	}
	p2 := startServe(t, dir)
	got := readStream(t, p2.client(), "s")
	for seq, data := range acked {
		if got[seq] != data {
			t.Fatalf("acknowledged record %s (%q) lost after kill -9; %d of %d present", seq, data, len(got), len(acked))
		}
	}
	t.Logf("%d acknowledged records, all present after kill -9 (%d in the log)", len(acked), len(got))
}

func runCLI(t *testing.T, p *proc, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(serveBin, args...)
	k := p.adminKey(t)
	cmd.Env = append(os.Environ(), "STREAMGATE_ENDPOINT=http://"+p.addr, "AWS_ACCESS_KEY_ID="+k.ID, "AWS_SECRET_ACCESS_KEY="+k.Secret)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("streamgate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestClientCommands(t *testing.T) {
	p := startServe(t, t.TempDir())
	runCLI(t, p, "", "streams", "create", "--shards", "2", "cli")
	if out := runCLI(t, p, "", "streams", "list"); strings.TrimSpace(out) != "cli" {
		t.Fatalf("streams list: %q", out)
	}
	if out := runCLI(t, p, "", "streams", "describe", "cli"); !strings.Contains(out, `"OpenShardCount": 2`) {
		t.Fatalf("streams describe: %s", out)
	}
	runCLI(t, p, "", "put", "cli", "--partition-key", "k1", `{"temp":21.5}`)
	runCLI(t, p, "line one\nline two\n", "put", "cli", "--partition-key", "k2", "--lines", "-")

	tail := exec.Command(serveBin, "tail", "cli", "--from", "trim-horizon")
	k := p.adminKey(t)
	tail.Env = append(os.Environ(), "STREAMGATE_ENDPOINT=http://"+p.addr, "AWS_ACCESS_KEY_ID="+k.ID, "AWS_SECRET_ACCESS_KEY="+k.Secret)
	stdout, _ := tail.StdoutPipe()
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var lines []string
	for len(lines) < 3 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	// A record put while tailing shows up too.
	runCLI(t, p, "", "put", "cli", "--partition-key", "k3", "live")
	if sc.Scan() {
		lines = append(lines, sc.Text())
	}
	tail.Process.Signal(os.Interrupt)
	tail.Wait()
	all := strings.Join(lines, "\n")
	for _, want := range []string{`"data":"{\"temp\":21.5}"`, `"data":"line one"`, `"data":"line two"`, `"data":"live"`} {
		if !strings.Contains(all, want) {
			t.Fatalf("tail output lacks %s:\n%s", want, all)
		}
	}
	runCLI(t, p, "", "streams", "delete", "cli")
	if out := runCLI(t, p, "", "streams", "list"); strings.TrimSpace(out) != "" {
		t.Fatalf("streams list after delete: %q", out)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	out, err := exec.Command(serveBin, "serve", "--fsync", "sometimes", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "storage.fsync") {
		t.Fatalf("bad fsync accepted: %v %s", err, out)
	}
}

func TestAuthNoneOnlyOnLoopback(t *testing.T) {
	out, err := exec.Command(serveBin, "serve", "--auth", "none", "--http-addr", ":0", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "auth none") {
		t.Fatalf("auth none on all interfaces accepted: %v %s", err, out)
	}
	p := startServe(t, t.TempDir(), "--auth", "none")
	// The client commands work with no AWS credentials configured at all.
	cmd := exec.Command(serveBin, "streams", "create", "open")
	env := []string{"STREAMGATE_ENDPOINT=http://" + p.addr, "HOME=" + t.TempDir(), "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent"}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "AWS_") && !strings.HasPrefix(e, "HOME=") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("client without credentials against auth none: %v %s", err, out)
	}
	resp, err := http.Post("http://"+p.addr+"/", "application/x-amz-json-1.1", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 { // UnknownOperation: no target, but no auth demanded either
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// A key made with `streamgate keys create` works at once against a running
// server, and stops working after `keys delete`.
func TestKeysCommandsHotReload(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	if !strings.Contains(p.stdout(), "SecretAccessKey") {
		// the admin key is printed once at first start
		t.Fatalf("first start did not print the admin key: %q", p.stdout())
	}
	out := runCLI(t, p, "", "keys", "create", "ci", "--data-dir", dir)
	var id, secret string
	fmt.Sscanf(strings.Split(out, "\n")[0], "AccessKeyId: %s", &id)
	fmt.Sscanf(strings.Split(out, "\n")[1], "SecretAccessKey: %s", &secret)
	use := func() error {
		cmd := exec.Command(serveBin, "streams", "list")
		cmd.Env = append(os.Environ(), "STREAMGATE_ENDPOINT=http://"+p.addr, "AWS_ACCESS_KEY_ID="+id, "AWS_SECRET_ACCESS_KEY="+secret)
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, b)
		}
		return nil
	}
	if err := use(); err != nil {
		t.Fatalf("new key refused: %v", err)
	}
	if list := runCLI(t, p, "", "keys", "list", "--data-dir", dir); !strings.Contains(list, id) || !strings.Contains(list, "admin") {
		t.Fatalf("keys list: %s", list)
	}
	runCLI(t, p, "", "keys", "delete", id, "--data-dir", dir)
	deadline := time.Now().Add(5 * time.Second)
	for use() == nil {
		if time.Now().After(deadline) {
			t.Fatal("deleted key still accepted after 5 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readFragmentTags counts fragment-number tags however the reads cut them.
func TestReadFragmentTagsCountsAcrossReads(t *testing.T) {
	var stream []byte
	for i := range 5 {
		stream = append(stream, bytes.Repeat([]byte{byte(i)}, 40+i*13)...)
		stream = append(stream, "AWS_KINESISVIDEO_FRAGMENT_NUMBER"...)
	}
	for name, r := range map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(stream) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
		"halves":   func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
	} {
		if err := readFragmentTags(r(), 5); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if err := readFragmentTags(r(), 6); err == nil {
			t.Errorf("%s: six fragments found in a stream of five", name)
		}
	}
}
