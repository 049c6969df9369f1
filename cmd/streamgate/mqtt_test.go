package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Every QoS 1 message the broker acknowledged (PUBACK) is in the stream
// after the gateway is killed with -9 under load.
func TestKill9KeepsPUBACKedMQTTMessages(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(conf, []byte("mqtt:\n  websocket_addr: \"\"\n"), 0o644)
	mqttAddr := freePort(t)
	p := startServe(t, dir, "--config", conf, "--mqtt-addr", mqttAddr)
	key := p.adminKey(t)
	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID(fmt.Sprint("dev", w)).
			SetUsername(key.ID).SetPassword(key.Secret).SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Disconnect(0)
			var sent []paho.Token
			var payloads []string
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				payload := fmt.Sprintf("dev%d-%d", w, i)
				sent, payloads = append(sent, c.Publish(fmt.Sprintf("fleet/dev%d/telemetry", w), 1, false, payload)), append(payloads, payload)
				if len(sent) < 64 {
					continue // keep 64 in flight
				}
				if sent[0].WaitTimeout(5*time.Second) && sent[0].Error() == nil {
					mu.Lock()
					acked[payloads[0]] = true
					mu.Unlock()
				} else {
					return // the server died: not acknowledged
				}
				sent, payloads = sent[1:], payloads[1:]
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	close(stop)
	wg.Wait()
	if len(acked) < 500 {
		t.Fatalf("only %d messages acknowledged before the kill", len(acked))
	}
	p2 := startServe(t, dir, "--config", conf)
	got := map[string]bool{}
	for _, data := range readStream(t, p2.client(), "mqtt") {
		got[data] = true
	}
	for payload := range acked {
		if !got[payload] {
			t.Fatalf("PUBACKed message %s lost after kill -9; %d acknowledged, %d in the stream", payload, len(acked), len(got))
		}
	}
	t.Logf("%d PUBACKed messages, all in the stream after kill -9 (%d records)", len(acked), len(got))
}
