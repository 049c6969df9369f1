package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/streamgate/streamgate/gateway"
	"github.com/streamgate/streamgate/mqtt"
)

// mosquitto runs a real Mosquitto broker on a loopback port until stopped.
type mosquitto struct {
	t    *testing.T
	addr string
	conf string
	cmd  *exec.Cmd
}

func startMosquitto(t *testing.T, addr string) *mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr != nil {
			t.Fatal("mosquitto is not installed: run `make test`, which installs it")
		}
		bin = "/usr/sbin/mosquitto"
	}
	m := &mosquitto{t: t, addr: addr, conf: filepath.Join(t.TempDir(), "mosquitto.conf")}
	_, port, _ := strings.Cut(addr, ":")
	os.WriteFile(m.conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\n"), 0o644)
	m.cmd = exec.Command(bin, "-c", m.conf)
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	waitFor(t, 10*time.Second, "mosquitto to listen", func() bool { return mosquittoPub(t, m.args("-t", "ping", "-m", "x")...).Run() == nil })
	return m
}

// mosquittoPub is a mosquitto_pub command killed after 30 s: at QoS 1 it
// waits for the broker's acknowledgement and has no timeout of its own.
func mosquittoPub(t testing.TB, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return exec.CommandContext(ctx, "mosquitto_pub", args...)
}

func (m *mosquitto) args(extra ...string) []string {
	host, port, _ := strings.Cut(m.addr, ":")
	return append([]string{"-h", host, "-p", port}, extra...)
}

// publish sends messages to Mosquitto with mosquitto_pub at QoS 1.
func (m *mosquitto) publish(topic string, payloads ...string) {
	m.t.Helper()
	for _, p := range payloads {
		if out, err := mosquittoPub(m.t, m.args("-q", "1", "-t", topic, "-m", p)...).CombinedOutput(); err != nil {
			m.t.Fatalf("mosquitto_pub: %v %s", err, out)
		}
	}
}

func (m *mosquitto) stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill()
		m.cmd.Wait()
		m.cmd = nil
	}
}

func payloads(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// The bridge takes in what is published at a real Mosquitto; it reconnects
// when Mosquitto restarts; and messages published while the gateway is down
// wait in its persistent session and arrive after the restart.
func TestMQTTBridgeFromMosquitto(t *testing.T) {
	t.Parallel()
	mq := startMosquitto(t, freeTCPAddr(t))
	start := bridgeTo(t, mq.addr)
	stop := func(s *server) { shutdown(t, s.gw) }
	have := func(s *server) map[string]string {
		got := map[string]string{}
		for _, r := range drain(t, s.client(), "mqtt") {
			got[r.data] = r.key
		}
		return got
	}
	expect := func(s *server, want []string) {
		t.Helper()
		var got map[string]string
		waitFor(t, 40*time.Second, fmt.Sprintf("%d bridged messages in the stream", len(want)), func() bool {
			got = have(s)
			for _, p := range want {
				if got[p] != "plant/sensors/boiler" {
					return false
				}
			}
			return true
		})
	}

	s := start()
	waitFor(t, 10*time.Second, "the bridge to connect", bridgeUp(t, s))
	first := payloads("first", 20)
	mq.publish("sensors/boiler", first...)
	expect(s, first)

	// Mosquitto restarts (losing its state): the bridge reconnects and subscribes again.
	mq.stop()
	waitFor(t, 10*time.Second, "the bridge to notice", func() bool { return !bridgeUp(t, s)() })
	mq = startMosquitto(t, mq.addr)
	waitFor(t, 20*time.Second, "the bridge to reconnect", bridgeUp(t, s))
	second := payloads("second", 20)
	mq.publish("sensors/boiler", second...)
	expect(s, second)

	// The gateway is down while messages are published: the broker keeps
	// them for the gateway's persistent session.
	stop(s)
	offline := payloads("offline", 30)
	mq.publish("sensors/boiler", offline...)
	s = start()
	defer stop(s)
	expect(s, append(append(first, second...), offline...))
	if got := have(s); len(got) != len(first)+len(second)+len(offline) {
		t.Errorf("%d distinct messages in the stream, want %d", len(got), len(first)+len(second)+len(offline))
	}
}

// bridgeTo returns a function that starts a gateway (on the same data
// directory every time) bridging sensors/# from the broker at addr.
func bridgeTo(t *testing.T, addr string) func() *server {
	cfg := gateway.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr, cfg.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RTSPAddr, cfg.WebRTCAddr, cfg.Video.RTSPSAddr, cfg.MQTT.WebSocketAddr = "", "", "", ""
	cfg.MQTT.Bridges = map[string]mqtt.BridgeConfig{"plant": {URL: "tcp://" + addr, Topics: []string{"sensors/#"}, QoS: 1, TopicPrefix: "plant/"}}
	return func() *server {
		gw, err := gateway.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := gw.Start(); err != nil {
			t.Fatal(err)
		}
		s := &server{gw: gw, endpoint: "http://" + gw.HTTPAddr(), dataDir: cfg.DataDir}
		s.key = s.readAdminKey(t)
		return s
	}
}

// bridgeUp reports whether the gateway's bridge is connected.
func bridgeUp(t *testing.T, s *server) func() bool {
	return func() bool { return strings.Contains(s.metrics(t), `streamgate_mqtt_bridge_up{bridge="plant"} 1`) }
}

// The broker goes away while bridged messages are on their way into the
// store, again and again: acknowledgements of messages that became durable
// after their connection was gone must not wedge or crash the bridge, and
// the gateway still stores what is published after and shuts down cleanly.
func TestMQTTBridgeLosesTheBrokerMidFlow(t *testing.T) {
	t.Parallel()
	mq := startMosquitto(t, freeTCPAddr(t))
	s := bridgeTo(t, mq.addr)()
	defer shutdown(t, s.gw)
	var floods sync.WaitGroup
	defer floods.Wait()
	for round := range 3 {
		waitFor(t, 20*time.Second, "the bridge to connect", bridgeUp(t, s))
		pub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + mq.addr).SetClientID(fmt.Sprintf("flood-%d", round)).
			SetAutoReconnect(false).SetWriteTimeout(time.Second))
		if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("round %d: connect to mosquitto: %v", round, tok.Error())
		}
		// Published until the broker is gone; paho's Publish can take a
		// while to notice, so the test goes on without waiting for it.
		floods.Add(1)
		go func() {
			defer floods.Done()
			defer pub.Disconnect(0)
			for i := 0; pub.IsConnectionOpen(); i++ {
				pub.Publish("sensors/flood", 1, false, fmt.Sprintf("flood-%d-%d", round, i))
				if i%50 == 49 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
		before := bridged(t, s)
		waitFor(t, 20*time.Second, "the bridge to take in 200 messages", func() bool { return bridged(t, s) >= before+200 })
		mq.stop() // mid-flow: messages are between the bridge's receipt and their acknowledgement
		waitFor(t, 10*time.Second, "the bridge to notice", func() bool { return !bridgeUp(t, s)() })
		mq = startMosquitto(t, mq.addr)
	}
	waitFor(t, 20*time.Second, "the bridge to reconnect", bridgeUp(t, s))
	mq.publish("sensors/boiler", "after")
	waitFor(t, 20*time.Second, "the message published after the losses", func() bool {
		for _, r := range drain(t, s.client(), "mqtt") {
			if r.data == "after" {
				return true
			}
		}
		return false
	})
}

// bridged is how many messages the bridge has taken in.
func bridged(t *testing.T, s *server) int {
	for _, line := range strings.Split(s.metrics(t), "\n") {
		if v, ok := strings.CutPrefix(line, `streamgate_mqtt_bridge_messages_total{bridge="plant"} `); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}
