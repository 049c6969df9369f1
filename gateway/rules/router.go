package rules

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamgate/streamgate/mqtt"
	"github.com/streamgate/streamgate/streamstore"
)

// Publisher publishes to the broker (republish actions).
type Publisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// Router is the mqtt.Handler of the gateway: every message goes through the
// matching topic rules, and (zero configuration) to a default stream keyed
// by its topic. The broker's acknowledgement waits for every record the
// message produced to be durable.
type Router struct {
	app           *Appender
	store         *streamstore.Store
	defaultStream string // "" when the default rule is off
	region        string
	account       string
	log           *slog.Logger

	mu    sync.RWMutex
	rules map[string]*compiled
	fixed map[string]bool // rules from the configuration file
	pub   Publisher
	m     *routerMetrics
}

type routerMetrics struct {
	matched *prometheus.CounterVec
	errors  *prometheus.CounterVec
}

// Options configure a Router.
type Options struct {
	DefaultStream   string
	Region, Account string
	Logger          *slog.Logger
	Metrics         prometheus.Registerer
}

// documentKind is how rules are kept in the store's documents.
const documentKind = "topic-rule"

// NewRouter returns a router appending through app, with the rules kept in
// the store and those of the configuration (which the API cannot change
// for good: they come back at the next start).
func NewRouter(app *Appender, store *streamstore.Store, configured map[string]Rule, o Options) (*Router, error) {
	r := &Router{app: app, store: store, defaultStream: o.DefaultStream, region: o.Region, account: o.Account, log: o.Logger,
		rules: map[string]*compiled{}, fixed: map[string]bool{}}
	r.m = &routerMetrics{
		matched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_mqtt_rule_messages_total",
			Help: "Messages a topic rule selected (topic filter and WHERE)."}, []string{"rule"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_mqtt_rule_errors_total",
			Help: "Rule failures: SQL evaluation errors and failed actions."}, []string{"rule"}),
	}
	if o.Metrics != nil {
		o.Metrics.MustRegister(r.m.matched, r.m.errors)
	}
	stored, err := store.Documents(documentKind)
	if err != nil {
		return nil, err
	}
	for name, doc := range stored {
		var rule Rule
		if err := json.Unmarshal(doc, &rule); err != nil {
			return nil, err
		}
		c, err := compile(rule)
		if err != nil {
			r.log.Error("stored topic rule no longer compiles; skipped", "rule", name, "err", err)
			continue
		}
		r.rules[name] = c
	}
	for name, rule := range configured {
		rule.Name = name
		c, err := compile(rule)
		if err != nil {
			return nil, &ConfigError{Rule: name, Err: err}
		}
		r.rules[name], r.fixed[name] = c, true
	}
	return r, nil
}

// ConfigError is a rule of the configuration file that does not compile.
type ConfigError struct {
	Rule string
	Err  error
}

func (e *ConfigError) Error() string { return "mqtt.rules." + e.Rule + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// SetPublisher gives republish actions the broker (made after the router).
func (r *Router) SetPublisher(p Publisher) {
	r.mu.Lock()
	r.pub = p
	r.mu.Unlock()
}

// maxPartitionKey is Kinesis's partition key limit, in bytes here.
const maxPartitionKey = 256

// Handle routes one message; done reports its durability to the broker.
func (r *Router) Handle(m *mqtt.Message, done func(error)) {
	w := &waiter{done: done, pending: 1}
	if r.defaultStream != "" {
		w.add()
		r.app.Append(r.defaultStream, streamstore.Entry{PartitionKey: partitionKey(m.Topic), Data: m.Payload}, func(err error) {
			if err != nil && !retryable(err) {
				r.log.Warn("message not stored in the default stream", "stream", r.defaultStream, "topic", m.Topic, "err", err)
				err = nil
			}
			w.finish(err)
		})
	}
	r.mu.RLock()
	var matching []*compiled
	for _, c := range r.rules {
		if !c.Disabled && c.matches(m.Topic) {
			matching = append(matching, c)
		}
	}
	pub := r.pub
	r.mu.RUnlock()
	if len(matching) > 0 {
		base := newMsgEnv(m)
		for _, c := range matching {
			env := &msgEnv{m: m, doc: base.doc}
			data, ok, err := c.output(env)
			if err != nil {
				r.failed(c, nil, m, err, pub, w)
				continue
			}
			if !ok {
				continue
			}
			r.m.matched.WithLabelValues(c.Name).Inc()
			for i := range c.actions {
				r.run(c, &c.actions[i], env, data, m, pub, w)
			}
		}
	}
	w.finish(nil)
}

// waiter calls done once every record of a message has been settled, with
// the first failure that should make the publisher send it again.
type waiter struct {
	mu      sync.Mutex
	pending int
	err     error
	done    func(error)
}

func (w *waiter) add() {
	w.mu.Lock()
	w.pending++
	w.mu.Unlock()
}

func (w *waiter) finish(err error) {
	w.mu.Lock()
	if err != nil && w.err == nil {
		w.err = err
	}
	w.pending--
	last, e := w.pending == 0, w.err
	w.mu.Unlock()
	if last {
		w.done(e)
	}
}

// run carries out one action of a rule for a message.
func (r *Router) run(c *compiled, a *compiledAction, env *msgEnv, data []byte, m *mqtt.Message, pub Publisher, w *waiter) {
	switch a.kind {
	case "kinesis":
		key := uuid.NewString()
		if a.key != nil {
			k, err := a.key.render(env)
			if err != nil || k == "" {
				if err == nil {
					err = errors.New("the partition key is empty")
				}
				r.failed(c, a, m, err, pub, w)
				return
			}
			key = partitionKey(k)
		}
		w.add()
		r.app.Append(a.stream, streamstore.Entry{PartitionKey: key, Data: data}, func(err error) {
			if err != nil {
				r.failed(c, a, m, err, pub, w)
			}
			w.finish(nil)
		})
	case "firehose":
		w.add()
		r.app.Append(a.stream, streamstore.Entry{PartitionKey: "r", Data: append(data[:len(data):len(data)], a.sep...)}, func(err error) {
			if err != nil {
				if errors.Is(err, streamstore.ErrNotFound) {
					err = fmt.Errorf("delivery stream %s does not exist or is not Direct PUT", a.resource)
				}
				r.failed(c, a, m, err, pub, w)
			}
			w.finish(nil)
		})
	case "republish":
		topic, err := a.topic.render(env)
		if err == nil && pub != nil {
			err = pub.Publish(topic, data, false, a.qos)
		}
		if err != nil {
			r.failed(c, a, m, err, pub, w)
		}
	}
}

// retryable errors are the store's refusals: the publisher should send the
// message again (MQTT 5 reason code, or no ack), unless the rule's error
// action took it. Anything else (bad data, a missing stream) is logged and
// counted; the message is acknowledged, as IoT Core does.
func retryable(err error) bool {
	return errors.Is(err, mqtt.ErrQuotaExceeded) || errors.Is(err, streamstore.ErrClosed) || errors.Is(err, streamstore.ErrFaulted)
}

// failed handles a rule failure: log, count, and the rule's errorAction
// with IoT Core's error payload. a is nil for a SQL evaluation error.
func (r *Router) failed(c *compiled, a *compiledAction, m *mqtt.Message, err error, pub Publisher, w *waiter) {
	r.m.errors.WithLabelValues(c.Name).Inc()
	failure := map[string]string{"errorMessage": err.Error()}
	if a != nil {
		failure["failedAction"] = map[string]string{"kinesis": "KinesisAction", "republish": "RepublishAction", "firehose": "FirehoseAction"}[a.kind]
		failure["failedResource"] = a.resource
	}
	r.log.Warn("topic rule failed", "rule", c.Name, "topic", m.Topic, "client", m.ClientID, "action", failure["failedAction"], "err", err)
	if c.onError == nil || a == c.onError {
		if retryable(err) {
			w.add()
			w.finish(err)
		}
		return
	}
	doc, _ := json.Marshal(map[string]any{"ruleName": c.Name, "topic": m.Topic, "clientId": m.ClientID, "principalId": m.Username,
		"base64OriginalPayload": base64.StdEncoding.EncodeToString(m.Payload), "failures": []any{failure}})
	ea := c.onError
	env := &msgEnv{m: m, doc: sql0(doc)}
	if ea.kind == "republish" {
		topic, terr := ea.topic.render(env)
		if terr == nil && pub != nil {
			terr = pub.Publish(topic, doc, false, ea.qos)
		}
		if terr != nil {
			r.log.Warn("topic rule's error action failed", "rule", c.Name, "err", terr)
			if retryable(err) {
				w.add()
				w.finish(err)
			}
		}
		return
	}
	key := uuid.NewString()
	if ea.key != nil {
		if k, kerr := ea.key.render(env); kerr == nil && k != "" {
			key = partitionKey(k)
		}
	}
	w.add()
	r.app.Append(ea.stream, streamstore.Entry{PartitionKey: key, Data: doc}, func(eerr error) {
		if eerr != nil {
			r.log.Warn("topic rule's error action failed", "rule", c.Name, "err", eerr)
			if retryable(err) {
				w.finish(err)
				return
			}
		}
		w.finish(nil)
	})
}

// sql0 decodes an error document for the error action's templates.
func sql0(doc []byte) any {
	return newMsgEnv(&mqtt.Message{Payload: doc}).doc
}

// partitionKey cuts a key to the partition key limit on a UTF-8 boundary.
func partitionKey(key string) string {
	if len(key) <= maxPartitionKey {
		return key
	}
	cut := maxPartitionKey
	for cut > 0 && !utf8.RuneStart(key[cut]) {
		cut--
	}
	return key[:cut]
}

// put adds or replaces a rule, keeping it in the store.
func (r *Router) put(rule Rule, replace bool) error {
	c, err := compile(rule)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old, exists := r.rules[rule.Name]
	switch {
	case exists && !replace:
		return errExists
	case !exists && replace:
		return errNotFound
	}
	if exists {
		c.CreatedAt = old.CreatedAt
	} else {
		c.CreatedAt = float64(time.Now().UnixMilli()) / 1000
	}
	doc, _ := json.Marshal(c.Rule)
	if err := r.store.PutDocument(documentKind, rule.Name, doc); err != nil {
		return err
	}
	r.rules[rule.Name] = c
	return nil
}

var (
	errExists   = errors.New("rule exists")
	errNotFound = errors.New("rule not found")
)

func (r *Router) get(name string) (Rule, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.rules[name]
	if !ok {
		return Rule{}, false
	}
	return c.Rule, true
}

// listLocked returns the rules by name; the caller holds r.mu.
func (r *Router) listLocked() []*compiled {
	out := make([]*compiled, 0, len(r.rules))
	for _, c := range r.rules {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *Router) remove(name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.rules[name]; !ok {
		return errNotFound
	}
	delete(r.rules, name)
	if err := r.store.DeleteDocument(documentKind, name); err != nil && !errors.Is(err, streamstore.ErrNotFound) {
		return err
	}
	return nil
}
