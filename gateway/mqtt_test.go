package gateway_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/streamgate/streamgate/gateway"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

// startMQTTServer is a server with the broker on a loopback port (TCP only).
func startMQTTServer(t testing.TB, tweak func(*gateway.Config)) *server {
	t.Helper()
	return startServer(t, func(c *gateway.Config) {
		c.MQTTAddr = "127.0.0.1:0"
		c.MQTT.WebSocketAddr = ""
		if tweak != nil {
			tweak(c)
		}
	})
}

// mqttClient connects a paho (MQTT 3.1.1) client with the given credentials.
func mqttClient(t testing.TB, s *server, clientID, user, pass string) (paho.Client, error) {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker("tcp://" + s.gw.MQTTAddr()).SetClientID(clientID).
		SetUsername(user).SetPassword(pass).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// record is a stream record as a test sees it.
type record struct{ key, data string }

// drain reads every record of every shard of a stream from the start.
func drain(t testing.TB, k *kinesis.Client, stream string) []record {
	t.Helper()
	shards, err := k.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	var out []record
	for _, sh := range shards.Shards {
		it, err := k.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: sh.ShardId,
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			res, err := k.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res.Records {
				out = append(out, record{aws.ToString(r.PartitionKey), string(r.Data)})
			}
			if len(res.Records) == 0 && aws.ToInt64(res.MillisBehindLatest) == 0 {
				break
			}
			iter = res.NextShardIterator
		}
	}
	return out
}

// paho publishers at QoS 0, 1 and 2 and mosquitto_pub send telemetry; the
// default rule puts every message in stream "mqtt" exactly once, keyed by
// its topic. The broker is a full broker: a subscriber gets what devices
// publish (under a flood a slow subscriber may miss messages, as with
// Mosquitto and mochi; the stream never does).
func TestMQTTPublishersIntoTheDefaultStream(t *testing.T) {
	t.Parallel()
	s := startMQTTServer(t, nil)
	sub, err := mqttClient(t, s, "dashboard", s.key.ID, s.key.Secret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	if tok := sub.Subscribe("fleet/+/status", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		seen[string(m.Payload())]++
		mu.Unlock()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	const perQoS = 200
	want := map[string]string{} // payload -> topic
	var wg sync.WaitGroup
	var wantMu sync.Mutex
	for qos := byte(0); qos <= 2; qos++ {
		c, err := mqttClient(t, s, fmt.Sprintf("device-%d", qos), s.key.ID, s.key.Secret)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("fleet/dev%d/telemetry", qos)
			var toks []paho.Token
			for i := range perQoS {
				payload := fmt.Sprintf(`{"qos":%d,"n":%d,"temp":21.5}`, qos, i)
				wantMu.Lock()
				want[payload] = topic
				wantMu.Unlock()
				toks = append(toks, c.Publish(topic, qos, false, payload)) // pipelined: no wait between
			}
			for _, tok := range toks {
				if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
					t.Errorf("QoS %d publish: %v", qos, tok.Error())
					return
				}
			}
		}()
	}
	wg.Wait()
	out, err := mosquittoPub(t, "-h", "127.0.0.1", "-p", strings.Split(s.gw.MQTTAddr(), ":")[1], "-u", s.key.ID, "-P", s.key.Secret,
		"-i", "shell", "-q", "1", "-t", "fleet/shell/telemetry", "-m", `{"from":"mosquitto_pub"}`).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	want[`{"from":"mosquitto_pub"}`] = "fleet/shell/telemetry"

	k := s.client()
	var got []record
	waitFor(t, 10*time.Second, "every message in the stream", func() bool {
		got = drain(t, k, "mqtt")
		return len(got) >= len(want)
	})
	count := map[string]int{}
	for _, r := range got {
		count[r.data]++
		if topic, ok := want[r.data]; !ok || r.key != topic {
			t.Errorf("record %q with partition key %q: want key %q", r.data, r.key, topic)
		}
	}
	for payload := range want {
		if count[payload] != 1 {
			t.Errorf("message %s is in the stream %d times, want once", payload, count[payload])
		}
	}
	c, err := mqttClient(t, s, "device-status", s.key.ID, s.key.Secret)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if tok := c.Publish("fleet/dev1/status", 1, false, fmt.Sprintf("online %d", i)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	waitFor(t, 5*time.Second, "the subscriber to get every status message", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 20
	})
}

// rawMQTT5 is a hand-driven MQTT 5 connection, for reason codes paho (3.1.1)
// cannot show and for malformed input.
type rawMQTT5 struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func mqttString(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

func mqttPacket(header byte, body []byte) []byte {
	out := []byte{header}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

// dialMQTT5 connects and returns the CONNACK reason code.
func dialMQTT5(t testing.TB, addr, clientID, user, pass string) (*rawMQTT5, byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	body := append(mqttString("MQTT"), 5, 0xc2, 0, 60, 0) // v5, user+password+clean start, keepalive 60, no properties
	body = append(append(append(body, mqttString(clientID)...), mqttString(user)...), mqttString(pass)...)
	conn.Write(mqttPacket(0x10, body))
	c := &rawMQTT5{t: t, conn: conn, r: bufio.NewReader(conn)}
	typ, pkt := c.read()
	if typ != 2 || len(pkt) < 2 {
		t.Fatalf("CONNACK expected, got type %d %x", typ, pkt)
	}
	return c, pkt[1]
}

// read returns the next packet's type and body (nil body at EOF).
func (c *rawMQTT5) read() (byte, []byte) {
	h, err := c.r.ReadByte()
	if err != nil {
		return 0, nil
	}
	n, mult := 0, 1
	for {
		b, err := c.r.ReadByte()
		if err != nil {
			return 0, nil
		}
		n += int(b&0x7f) * mult
		if b&0x80 == 0 {
			break
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil
	}
	return h >> 4, body
}

// publish1 sends a QoS 1 PUBLISH and returns the PUBACK's reason code.
func (c *rawMQTT5) publish1(id uint16, topic string, payload []byte) byte {
	c.t.Helper()
	body := append(append(mqttString(topic), byte(id>>8), byte(id), 0), payload...)
	c.conn.Write(mqttPacket(0x32, body))
	typ, pkt := c.read()
	if typ != 4 || len(pkt) < 2 || uint16(pkt[0])<<8|uint16(pkt[1]) != id {
		c.t.Fatalf("PUBACK for %d expected, got type %d %x", id, typ, pkt)
	}
	if len(pkt) == 2 {
		return 0
	}
	return pkt[2]
}

// Clients authenticate with the access keys; a device's policy limits it to
// its own topics (policy variable ${iot:ClientId}).
func TestMQTTAuthenticationAndTopicACLs(t *testing.T) {
	t.Parallel()
	s := startMQTTServer(t, nil)
	if _, err := mqttClient(t, s, "x", s.key.ID, "wrong"); err == nil {
		t.Error("a wrong password was accepted")
	}
	if _, err := mqttClient(t, s, "x", "", ""); err == nil {
		t.Error("an anonymous client was accepted")
	}
	if _, code := dialMQTT5(t, s.gw.MQTTAddr(), "x", s.key.ID, "wrong"); code != 0x86 {
		t.Errorf("MQTT 5 CONNACK for a wrong password: %#x, want 0x86 (bad user name or password)", code)
	}
	dev := s.addKey(t, "dev7", `{"Statement":[
		{"Effect":"Allow","Action":"iot:Connect","Resource":"arn:aws:iot:*:*:client/${iot:ClientId}"},
		{"Effect":"Allow","Action":["iot:Publish"],"Resource":"arn:aws:iot:*:*:topic/fleet/${iot:ClientId}/*"},
		{"Effect":"Allow","Action":["iot:Subscribe"],"Resource":"arn:aws:iot:*:*:topicfilter/fleet/${iot:ClientId}/*"}]}`)
	c, code := dialMQTT5(t, s.gw.MQTTAddr(), "dev7", dev.ID, dev.Secret)
	if code != 0 {
		t.Fatalf("device CONNACK %#x", code)
	}
	if rc := c.publish1(1, "fleet/dev7/telemetry", []byte("mine")); rc != 0 {
		t.Errorf("publishing to its own topic: reason %#x", rc)
	}
	if rc := c.publish1(2, "fleet/dev8/telemetry", []byte("foreign")); rc != 0x87 {
		t.Errorf("publishing to another device's topic: reason %#x, want 0x87 (not authorized)", rc)
	}
	p, err := mqttClient(t, s, "dev7-paho", dev.ID, dev.Secret)
	if err != nil {
		t.Fatal(err)
	}
	tok := p.Subscribe("fleet/#", 1, nil)
	tok.WaitTimeout(5 * time.Second)
	if res := tok.(*paho.SubscribeToken).Result()["fleet/#"]; res != 0x80 {
		t.Errorf("subscribing to every device's topics: SUBACK %#x, want 0x80", res)
	}
	recs := drain(t, s.client(), "mqtt")
	if len(recs) != 1 || recs[0].data != "mine" {
		t.Errorf("stream has %v, want only the allowed message", recs)
	}
}

// Oversized payloads, malformed packets and a full store: each gets its
// protocol's answer, and the broker keeps serving everyone else.
func TestMQTTBadInput(t *testing.T) {
	t.Parallel()
	s := startMQTTServer(t, func(c *gateway.Config) {
		c.MQTT.MaxPayloadBytes = 1 << 10
		c.Storage.StreamDiskBudgets = map[string]gateway.ByteSize{"mqtt": 1 << 10}
	})
	good, err := mqttClient(t, s, "good", s.key.ID, s.key.Secret)
	if err != nil {
		t.Fatal(err)
	}
	// MQTT 5: reason code 0x95 for a payload over the limit.
	c, _ := dialMQTT5(t, s.gw.MQTTAddr(), "big5", s.key.ID, s.key.Secret)
	if rc := c.publish1(1, "t/big", make([]byte, 2<<10)); rc != 0x95 {
		t.Errorf("oversized payload over MQTT 5: reason %#x, want 0x95 (packet too large)", rc)
	}
	// MQTT 3.1.1 has no reason codes: the client is disconnected.
	big, err := mqttClient(t, s, "big3", s.key.ID, s.key.Secret)
	if err != nil {
		t.Fatal(err)
	}
	tok := big.Publish("t/big", 1, false, make([]byte, 2<<10))
	tok.WaitTimeout(5 * time.Second)
	waitFor(t, 5*time.Second, "the oversized 3.1.1 publisher to be disconnected", func() bool { return !big.IsConnected() })
	// A malformed packet (a remaining length over four bytes) ends that connection only.
	bad, _ := dialMQTT5(t, s.gw.MQTTAddr(), "bad", s.key.ID, s.key.Secret)
	bad.conn.Write([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f})
	if typ, _ := bad.read(); typ != 0 && typ != 14 {
		t.Errorf("after a malformed packet: got packet type %d, want the connection closed (or a DISCONNECT)", typ)
	}
	// The store refuses once the stream's disk budget is used: reason 0x97.
	full, _ := dialMQTT5(t, s.gw.MQTTAddr(), "full", s.key.ID, s.key.Secret)
	codes := map[byte]int{}
	for i := range 8 {
		codes[full.publish1(uint16(i+1), "t/fill", make([]byte, 900))]++
	}
	if codes[0x97] == 0 {
		t.Errorf("a stream over its disk budget: reason codes %v, want 0x97 (quota exceeded) once it is full", codes)
	}
	// Everyone else was served throughout.
	if tok := good.Publish("t/ok", 0, false, "still here"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil || !good.IsConnected() {
		t.Errorf("the well-behaved client was affected: %v", tok.Error())
	}
}

// issueClient makes a client certificate with the given common name.
func (ca *testCA) issueClient(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func freeTCPAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// MQTT over TLS with a password or with a client certificate whose CN
// names an access key (mutual TLS), and MQTT over WebSocket.
func TestMQTTOverTLSMutualTLSAndWebSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, ca.pem, 0o644)
	ca.issue(t, 100, certFile, keyFile)
	wsAddr := freeTCPAddr(t)
	s := startMQTTServer(t, func(c *gateway.Config) {
		c.TLS = gateway.TLSConfig{CertFile: certFile, KeyFile: keyFile}
		c.MQTT.TLSAddr, c.MQTT.ClientCAFile, c.MQTT.WebSocketAddr = "127.0.0.1:0", caFile, wsAddr
	})
	s.addKey(t, "sensor-42", `{"Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}`)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	connect := func(url, clientID, user, pass string, certs []tls.Certificate) (paho.Client, error) {
		opts := paho.NewClientOptions().AddBroker(url).SetClientID(clientID).SetUsername(user).SetPassword(pass).
			SetTLSConfig(&tls.Config{RootCAs: pool, Certificates: certs}).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
		c := paho.NewClient(opts)
		tok := c.Connect()
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return nil, fmt.Errorf("connect %s: %v", url, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c, nil
	}
	publish := func(c paho.Client, payload string) {
		t.Helper()
		if tok := c.Publish("fleet/"+payload, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", payload, tok.Error())
		}
	}
	tlsURL := "ssl://" + s.gw.MQTTTLSAddr()
	c, err := connect(tlsURL, "pw", s.key.ID, s.key.Secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(c, "over-tls")
	c, err = connect(tlsURL, "sensor-42", "", "", []tls.Certificate{ca.issueClient(t, "sensor-42")})
	if err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	publish(c, "over-mtls")
	if _, err := connect(tlsURL, "stranger", "", "", []tls.Certificate{ca.issueClient(t, "nobody")}); err == nil {
		t.Error("a certificate naming no access key was accepted")
	}
	if _, err := connect(tlsURL, "anon", "", "", nil); err == nil {
		t.Error("a TLS client with neither certificate nor password was accepted")
	}
	c, err = connect("ws://"+wsAddr, "browser", s.key.ID, s.key.Secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	publish(c, "over-websocket")
	s.endpoint = strings.Replace(s.endpoint, "http://", "https://", 1)
	k := s.client(func(o *kinesis.Options) {
		o.HTTPClient = awsapi.SDKHTTPClient(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}})
	})
	got := map[string]bool{}
	for _, r := range drain(t, k, "mqtt") {
		got[r.data] = true
	}
	for _, want := range []string{"over-tls", "over-mtls", "over-websocket"} {
		if !got[want] {
			t.Errorf("message %q is not in the stream (have %v)", want, got)
		}
	}
}

// The broker keeps retained messages for later subscribers and publishes a
// client's will when it vanishes.
func TestMQTTRetainedAndWillMessages(t *testing.T) {
	t.Parallel()
	s := startMQTTServer(t, nil)
	pub, err := mqttClient(t, s, "station", s.key.ID, s.key.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if tok := pub.Publish("site/config", 1, true, "v42"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	sub, err := mqttClient(t, s, "late", s.key.ID, s.key.Secret)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	sub.Subscribe("site/#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() + "=" + string(m.Payload()) }).WaitTimeout(5 * time.Second)
	select {
	case m := <-got:
		if m != "site/config=v42" {
			t.Errorf("retained: %s", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a new subscriber did not get the retained message")
	}
	// A device with a will drops its TCP connection without DISCONNECT.
	conn, err := net.Dial("tcp", s.gw.MQTTAddr())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	body := append(mqttString("MQTT"), 4, 0xc6, 0, 60) // 3.1.1, user+password, will (QoS 0), clean session
	body = append(append(append(append(append(body, mqttString("sensor9")...), mqttString("site/sensor9/status")...), mqttString("offline")...),
		mqttString(s.key.ID)...), mqttString(s.key.Secret)...)
	conn.Write(mqttPacket(0x10, body))
	ack := make([]byte, 4)
	io.ReadFull(conn, ack)
	if ack[3] != 0 {
		t.Fatalf("CONNACK %x", ack)
	}
	conn.Close()
	select {
	case m := <-got:
		if m != "site/sensor9/status=offline" {
			t.Errorf("will: %s", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the will message was not published")
	}
}
