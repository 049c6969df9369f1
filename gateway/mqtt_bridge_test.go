package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	waitFor(t, 10*time.Second, "mosquitto to listen", func() bool { return exec.Command("mosquitto_pub", m.args("-t", "ping", "-m", "x")...).Run() == nil })
	return m
}

func (m *mosquitto) args(extra ...string) []string {
	host, port, _ := strings.Cut(m.addr, ":")
	return append([]string{"-h", host, "-p", port}, extra...)
}

// publish sends messages to Mosquitto with mosquitto_pub at QoS 1.
func (m *mosquitto) publish(topic string, payloads ...string) {
	m.t.Helper()
	for _, p := range payloads {
		if out, err := exec.Command("mosquitto_pub", m.args("-q", "1", "-t", topic, "-m", p)...).CombinedOutput(); err != nil {
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
	cfg := gateway.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr, cfg.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RTSPAddr, cfg.WebRTCAddr, cfg.Video.RTSPSAddr, cfg.MQTT.WebSocketAddr = "", "", "", ""
	cfg.MQTT.Bridges = map[string]mqtt.BridgeConfig{"plant": {URL: "tcp://" + mq.addr, Topics: []string{"sensors/#"}, QoS: 1, TopicPrefix: "plant/"}}
	start := func() *server {
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
	stop := func(s *server) {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.gw.Shutdown(sctx); err != nil {
			t.Error(err)
		}
	}
	bridgeUp := func(s *server) func() bool {
		return func() bool { return strings.Contains(s.metrics(t), `streamgate_mqtt_bridge_up{bridge="plant"} 1`) }
	}
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
	waitFor(t, 10*time.Second, "the bridge to connect", bridgeUp(s))
	first := payloads("first", 20)
	mq.publish("sensors/boiler", first...)
	expect(s, first)

	// Mosquitto restarts (losing its state): the bridge reconnects and subscribes again.
	mq.stop()
	waitFor(t, 10*time.Second, "the bridge to notice", func() bool { return !bridgeUp(s)() })
	mq = startMosquitto(t, mq.addr)
	waitFor(t, 20*time.Second, "the bridge to reconnect", bridgeUp(s))
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
