package gateway_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	fhtypes "github.com/aws/aws-sdk-go-v2/service/firehose/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/streamgate/streamgate/gateway"
	"github.com/streamgate/streamgate/gateway/rules"
)

// Topic rules made with `aws iot create-topic-rule`: SQL selects hot
// readings with nested fields and functions into a stream keyed by a
// template that uses an AS alias, and republishes them; a payload that is
// not JSON fails the rule's partition key (logged, counted, sent to the
// errorAction's stream) while the broker keeps serving; a bad topic filter
// is refused with the SQL's position.
func TestMQTTTopicRulesWithTheAWSCLI(t *testing.T) {
	t.Parallel()
	awsBin, err := exec.LookPath("aws")
	if err != nil {
		t.Fatal("the aws CLI is not installed: run `make test`, which installs it")
	}
	s := startMQTTServer(t, func(c *gateway.Config) { c.MQTT.DefaultStream = "" })
	k := s.client()
	createStream(t, k, "alerts", 2)
	createStream(t, k, "rule-errors", 1)
	cli := awsCLI(t, awsBin, s)
	payload, _ := json.Marshal(map[string]any{
		"sql":              "SELECT reading.temp AS temp, topic(2) AS device, upper(site) AS site FROM 'fleet/+/telemetry' WHERE reading.temp > 30",
		"awsIotSqlVersion": "2016-03-23",
		"actions": []any{
			map[string]any{"kinesis": map[string]any{"streamName": "alerts", "partitionKey": "${device}-${site}", "roleArn": "arn:aws:iam::000000000000:role/x"}},
			map[string]any{"republish": map[string]any{"topic": "alerts/${device}", "qos": 1, "roleArn": "arn:aws:iam::000000000000:role/x"}},
		},
		"errorAction": map[string]any{"kinesis": map[string]any{"streamName": "rule-errors", "roleArn": "arn:aws:iam::000000000000:role/x"}},
	})
	cli("iot", "create-topic-rule", "--rule-name", "hot", "--topic-rule-payload", string(payload))
	got := cli("iot", "get-topic-rule", "--rule-name", "hot")
	if rule, _ := got["rule"].(map[string]any); rule["sql"] == nil || !strings.HasSuffix(fmt.Sprint(got["ruleArn"]), ":rule/hot") {
		t.Fatalf("get-topic-rule: %v", got)
	}
	if list := cli("iot", "list-topic-rules"); !strings.Contains(fmt.Sprint(list["rules"]), "fleet/+/telemetry") {
		t.Fatalf("list-topic-rules: %v", list)
	}
	// A topic filter with a wildcard inside a level is refused, with its position.
	bad, _ := json.Marshal(map[string]any{"sql": "SELECT * FROM 'fleet/a+/x'", "actions": []any{map[string]any{"republish": map[string]any{"topic": "x", "roleArn": "arn:aws:iam::000000000000:role/x"}}}})
	cmd := exec.Command(awsBin, "--endpoint-url", s.endpoint, "iot", "create-topic-rule", "--rule-name", "bad", "--topic-rule-payload", string(bad))
	cmd.Env = clientEnv(t, s)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "SqlParseException") {
		t.Errorf("a bad topic filter: %v %s", err, out)
	}
	cmd = exec.Command(awsBin, "--endpoint-url", s.endpoint, "iot", "create-topic-rule", "--rule-name", "bad",
		"--topic-rule-payload", `{"sql": "SELECT temp FROM WHERE", "actions": [{"republish": {"topic": "x", "roleArn": "arn:aws:iam::000000000000:role/x"}}]}`)
	cmd.Env = clientEnv(t, s)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "line 1, column 18") {
		t.Errorf("bad SQL: %v %s", err, out)
	}

	sub, err := mqttClient(t, s, "ops", s.key.ID, s.key.Secret)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var alerts []string
	if tok := sub.Subscribe("alerts/+", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		alerts = append(alerts, m.Topic()+" "+string(m.Payload()))
		mu.Unlock()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	dev, err := mqttClient(t, s, "dev", s.key.ID, s.key.Secret)
	if err != nil {
		t.Fatal(err)
	}
	for i, temp := range []float64{20, 35.5, 31, 12} {
		body := fmt.Sprintf(`{"reading": {"temp": %v, "hum": 40}, "site": "north", "seq": %d}`, temp, i)
		if tok := dev.Publish(fmt.Sprintf("fleet/pump%d/telemetry", i), 1, false, body); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	// Not JSON, so ${device} is fine but reading.temp is undefined: WHERE is
	// false and nothing happens; a rule keyed by a JSON field fails instead.
	keyed, _ := json.Marshal(map[string]any{"sql": "SELECT * FROM 'raw/#'",
		"actions":     []any{map[string]any{"kinesis": map[string]any{"streamName": "alerts", "partitionKey": "${serial}", "roleArn": "arn:aws:iam::000000000000:role/x"}}},
		"errorAction": map[string]any{"kinesis": map[string]any{"streamName": "rule-errors", "roleArn": "arn:aws:iam::000000000000:role/x"}}})
	cli("iot", "create-topic-rule", "--rule-name", "raw", "--topic-rule-payload", string(keyed))
	if tok := dev.Publish("raw/bytes", 1, false, []byte{0xde, 0xad, 0xbe, 0xef}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("a message whose rule fails must still be acknowledged: %v", tok.Error())
	}

	var recs []record
	waitFor(t, 10*time.Second, "the two hot readings in stream alerts", func() bool { recs = drain(t, k, "alerts"); return len(recs) >= 2 })
	want := map[string]string{"pump1-NORTH": `{"device":"pump1","site":"NORTH","temp":35.5}`, "pump2-NORTH": `{"device":"pump2","site":"NORTH","temp":31}`}
	if len(recs) != 2 {
		t.Fatalf("alerts has %v", recs)
	}
	for _, r := range recs {
		if want[r.key] != r.data {
			t.Errorf("alert record key %q data %s, want %s", r.key, r.data, want[r.key])
		}
	}
	waitFor(t, 5*time.Second, "two republished alerts", func() bool { mu.Lock(); defer mu.Unlock(); return len(alerts) == 2 })
	mu.Lock()
	if !strings.HasPrefix(strings.Join(alerts, ";"), "alerts/pump1 ") {
		t.Errorf("republished: %v", alerts)
	}
	mu.Unlock()
	var errs []record
	waitFor(t, 5*time.Second, "the raw rule's failure in rule-errors", func() bool { errs = drain(t, k, "rule-errors"); return len(errs) == 1 })
	var doc map[string]any
	json.Unmarshal([]byte(errs[0].data), &doc)
	if doc["ruleName"] != "raw" || doc["topic"] != "raw/bytes" || doc["base64OriginalPayload"] != "3q2+7w==" || !strings.Contains(fmt.Sprint(doc["failures"]), "KinesisAction") {
		t.Errorf("error action document: %s", errs[0].data)
	}
	if m := s.metrics(t); !strings.Contains(m, `streamgate_mqtt_rule_errors_total{rule="raw"} 1`) || !strings.Contains(m, `streamgate_mqtt_rule_messages_total{rule="hot"} 2`) {
		t.Errorf("rule metrics missing:\n%s", grepLines(m, "streamgate_mqtt_rule"))
	}
	cli("iot", "disable-topic-rule", "--rule-name", "hot")
	cli("iot", "delete-topic-rule", "--rule-name", "raw")
	if list := cli("iot", "list-topic-rules"); strings.Contains(fmt.Sprint(list), "raw") || !strings.Contains(fmt.Sprint(list), "ruleDisabled:true") {
		t.Errorf("after disable and delete: %v", list)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A downlink publishes a stream's records to per-device command topics.
func TestMQTTDownlinkFromAStream(t *testing.T) {
	t.Parallel()
	s := startMQTTServer(t, func(c *gateway.Config) {
		c.MQTT.Downlinks = map[string]rules.DownlinkConfig{"cmd": {Stream: "commands", Topic: "devices/${partitionKey()}/${kind}", QoS: 1, Start: "trim_horizon"}}
	})
	k := s.client()
	createStream(t, k, "commands", 2)
	dev, err := mqttClient(t, s, "dev7", s.key.ID, s.key.Secret)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	if tok := dev.Subscribe("devices/dev7/#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() + " " + string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	for _, cmd := range []string{`{"kind":"reboot"}`, `{"kind":"config","interval":5}`} {
		if _, err := k.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("commands"), PartitionKey: aws.String("dev7"), Data: []byte(cmd)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{`devices/dev7/reboot {"kind":"reboot"}`, `devices/dev7/config {"kind":"config","interval":5}`} {
		select {
		case m := <-got:
			if m != want {
				t.Errorf("got %s, want %s", m, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("no downlink message (want %s)", want)
		}
	}
}

// A rule's firehose action feeds a Direct PUT delivery stream: telemetry
// lands in the bucket as newline-separated JSON.
func TestMQTTRuleIntoFirehose(t *testing.T) {
	t.Parallel()
	s := startMQTTServer(t, func(c *gateway.Config) {
		c.MQTT.DefaultStream = ""
		c.MQTT.Rules = map[string]rules.Rule{"archive": {SQL: "SELECT temp, topic(2) AS device FROM 'fleet/+/telemetry'",
			Actions: []rules.Action{{Firehose: &rules.FirehoseAction{DeliveryStreamName: "archive", Separator: "\n"}}}}}
	})
	f := s.firehose()
	if _, err := f.CreateDeliveryStream(ctx, &firehose.CreateDeliveryStreamInput{DeliveryStreamName: aws.String("archive"),
		ExtendedS3DestinationConfiguration: &fhtypes.ExtendedS3DestinationConfiguration{BucketARN: aws.String("arn:aws:s3:::cold"),
			RoleARN: aws.String("arn:aws:iam::000000000000:role/x"), BufferingHints: &fhtypes.BufferingHints{SizeInMBs: aws.Int32(1), IntervalInSeconds: aws.Int32(1)}}}); err != nil {
		t.Fatal(err)
	}
	dev, err := mqttClient(t, s, "d", s.key.ID, s.key.Secret)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if tok := dev.Publish(fmt.Sprintf("fleet/d%d/telemetry", i), 1, false, fmt.Sprintf(`{"temp": %d}`, 20+i)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	var text string
	waitFor(t, 15*time.Second, "three records in the bucket", func() bool {
		text = ""
		filepath.Walk(filepath.Join(s.dataDir, "firehose-buckets", "cold"), func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				b, _ := os.ReadFile(p)
				text += string(b)
			}
			return nil
		})
		return strings.Count(text, "\n") == 3
	})
	for i := range 3 {
		if want := fmt.Sprintf(`{"device":"d%d","temp":%d}`+"\n", i, 20+i); !strings.Contains(text, want) {
			t.Errorf("bucket holds %q, missing %q", text, want)
		}
	}
}
