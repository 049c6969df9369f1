package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/streamgate/streamgate/mqtt"
)

func kinesisTo(stream, key string) []Action {
	return []Action{{Kinesis: &KinesisAction{StreamName: stream, PartitionKey: key}}}
}

func TestTopicFilters(t *testing.T) {
	for filter, cases := range map[string]map[string]bool{
		"fleet/+/telemetry": {"fleet/a/telemetry": true, "fleet/a/b/telemetry": false, "fleet/telemetry": false, "fleet//telemetry": true},
		"fleet/#":           {"fleet": true, "fleet/a/b": true, "fleets/a": false},
		"#":                 {"a": true, "a/b": true, "$SYS/x": false},
		"+/x":               {"$aws/x": false, "a/x": true},
		"a/b":               {"a/b": true, "a/b/c": false, "a": false},
	} {
		c, err := compile(Rule{Name: "r", SQL: "SELECT * FROM '" + filter + "'", Actions: kinesisTo("s", "")})
		if err != nil {
			t.Fatal(err)
		}
		for topic, want := range cases {
			if got := c.matches(topic); got != want {
				t.Errorf("%s matches %s: %v, want %v", filter, topic, got, want)
			}
		}
	}
	for _, bad := range []string{"a/#/b", "a/b#", "a+/b", ""} {
		if _, err := compile(Rule{Name: "r", SQL: "SELECT * FROM '" + bad + "'", Actions: kinesisTo("s", "")}); err == nil {
			t.Errorf("filter %q accepted", bad)
		}
	}
}

func TestRuleOutputAndTemplates(t *testing.T) {
	c, err := compile(Rule{Name: "r", SQL: "SELECT *, a.b AS ab, a.c, n * 2, clientid() AS cid FROM 'x/+' WHERE n > 1",
		Actions: kinesisTo("s", "${topic(2)}/${ab}/${cid}")})
	if err != nil {
		t.Fatal(err)
	}
	m := &mqtt.Message{Topic: "x/dev1", ClientID: "c1", Payload: []byte(`{"n": 2, "a": {"b": "B", "c": 3}}`), Received: time.Now()}
	env := newMsgEnv(m)
	data, ok, err := c.output(env)
	if err != nil || !ok {
		t.Fatalf("output: %v %v", ok, err)
	}
	if want := `{"_4":4,"a":{"b":"B","c":3},"ab":"B","c":3,"cid":"c1","n":2}`; string(data) != want {
		t.Errorf("output %s, want %s", data, want)
	}
	key, err := c.actions[0].key.render(env)
	if err != nil || key != "dev1/B/c1" {
		t.Errorf("partition key %q %v", key, err)
	}
	// WHERE false, and a payload that is not JSON.
	if _, ok, _ := c.output(newMsgEnv(&mqtt.Message{Topic: "x/a", Payload: []byte(`{"n": 1}`)})); ok {
		t.Error("WHERE n > 1 held for n = 1")
	}
	raw, _ := compile(Rule{Name: "raw", SQL: "SELECT * FROM '#'", Actions: kinesisTo("s", "${serial}")})
	env = newMsgEnv(&mqtt.Message{Topic: "b", Payload: []byte{0xff, 0x00}})
	data, ok, _ = raw.output(env)
	if !ok || string(data) != "\xff\x00" {
		t.Errorf("SELECT * of a binary payload: %q", data)
	}
	if _, err := raw.actions[0].key.render(env); err == nil || !strings.Contains(err.Error(), "undefined") {
		t.Errorf("a template over a missing field: %v", err)
	}
}

func TestRuleCompileErrors(t *testing.T) {
	for _, r := range []Rule{
		{Name: "bad name!", SQL: "SELECT * FROM 'a'", Actions: kinesisTo("s", "")},
		{Name: "r", SQL: "SELECT * FROM stream_not_topic", Actions: kinesisTo("s", "")},
		{Name: "r", SQL: "SELECT * FROM 'a'"},
		{Name: "r", SQL: "SELECT * FROM 'a'", Actions: kinesisTo("s", "${unclosed")},
		{Name: "r", SQL: "SELECT * FROM 'a'", Actions: []Action{{}}},
		{Name: "r", SQL: "SELECT * FROM 'a'", SQLVersion: "1999", Actions: kinesisTo("s", "")},
	} {
		if _, err := compile(r); err == nil {
			t.Errorf("%+v compiled", r)
		}
	}
}

// A consumer recovers the topic, client id and MQTT 5 user properties with
// a rule like the one the README shows.
func TestEnvelopeRule(t *testing.T) {
	c, err := compile(Rule{Name: "envelope", SQL: "SELECT encode(*, 'base64') AS payload, topic() AS topic, clientid() AS clientid, get_user_properties() AS properties FROM '#'",
		Actions: kinesisTo("s", "${topic}")})
	if err != nil {
		t.Fatal(err)
	}
	m := &mqtt.Message{Topic: "a/b", ClientID: "dev", Payload: []byte("hi"), UserProperties: []mqtt.UserProperty{{Key: "unit", Value: "C"}, {Key: "unit", Value: "F"}}}
	data, _, err := c.output(newMsgEnv(m))
	if want := `{"clientid":"dev","payload":"aGk=","properties":{"unit":["C","F"]},"topic":"a/b"}`; err != nil || string(data) != want {
		t.Errorf("%s %v, want %s", data, err, want)
	}
}
