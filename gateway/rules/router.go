package rules

import (
	"log/slog"
	"unicode/utf8"

	"github.com/streamgate/streamgate/mqtt"
	"github.com/streamgate/streamgate/streamstore"
)

// Router is the mqtt.Handler of the gateway: it routes each message by the
// topic rules. The zero-configuration rule sends every message to one
// stream, keyed by its topic, with the payload as the record's data.
type Router struct {
	app           *Appender
	defaultStream string // "" when the default rule is off
	log           *slog.Logger
}

// NewRouter returns a router appending through app.
func NewRouter(app *Appender, defaultStream string, log *slog.Logger) *Router {
	return &Router{app: app, defaultStream: defaultStream, log: log}
}

// maxPartitionKey is Kinesis's partition key limit, in bytes here.
const maxPartitionKey = 256

// Handle routes one message; done reports its durability to the broker.
func (r *Router) Handle(m *mqtt.Message, done func(error)) {
	if r.defaultStream == "" {
		done(nil)
		return
	}
	r.app.Append(r.defaultStream, streamstore.Entry{PartitionKey: partitionKey(m.Topic), Data: m.Payload}, done)
}

// partitionKey cuts a topic to the partition key limit on a UTF-8 boundary.
func partitionKey(topic string) string {
	if len(topic) <= maxPartitionKey {
		return topic
	}
	cut := maxPartitionKey
	for cut > 0 && !utf8.RuneStart(topic[cut]) {
		cut--
	}
	return topic[:cut]
}
