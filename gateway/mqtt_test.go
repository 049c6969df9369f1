package gateway_test

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/streamgate/streamgate/gateway"
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
	out, err := exec.Command("mosquitto_pub", "-h", "127.0.0.1", "-p", strings.Split(s.gw.MQTTAddr(), ":")[1], "-u", s.key.ID, "-P", s.key.Secret,
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
