package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
)

// BridgeConfig is an external broker whose topics the gateway takes in.
type BridgeConfig struct {
	URL string `yaml:"url"` // tcp://host:1883, ssl://host:8883, ws://host:9001
	// ClientID names the gateway's persistent session at the broker, so
	// messages published while the gateway is down wait there. Default:
	// "streamgate-<bridge name>".
	ClientID string   `yaml:"client_id"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password"`
	CAFile   string   `yaml:"ca_file"`   // trust for ssl:// (default: the system's)
	CertFile string   `yaml:"cert_file"` // client certificate for mutual TLS
	KeyFile  string   `yaml:"key_file"`
	Topics   []string `yaml:"topics"` // filters to subscribe to
	QoS      byte     `yaml:"qos"`    // of the subscriptions (default 1)
	// TopicPrefix is put before the external topic, e.g. "plant-a/".
	TopicPrefix string `yaml:"topic_prefix"`
}

// bridge is one external broker's subscription. A message is acknowledged
// to the external broker only once the Handler reports it durable: if the
// gateway dies before that, the broker sends it again.
type bridge struct {
	name   string
	cfg    BridgeConfig
	b      *Broker
	client paho.Client
	log    *slog.Logger
}

type bridgeMetrics struct {
	up         *prometheus.GaugeVec
	messages   *prometheus.CounterVec
	reconnects *prometheus.CounterVec
}

func newBridgeMetrics(reg prometheus.Registerer) *bridgeMetrics {
	m := &bridgeMetrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "streamgate_mqtt_bridge_up",
			Help: "1 while the bridge is connected to its external broker."}, []string{"bridge"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_mqtt_bridge_messages_total",
			Help: "Messages received from the external broker."}, []string{"bridge"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_mqtt_bridge_connects_total",
			Help: "Connections made to the external broker (the first and every reconnection)."}, []string{"bridge"}),
	}
	if reg != nil {
		reg.MustRegister(m.up, m.messages, m.reconnects)
	}
	return m
}

// startBridge connects in the background; paho retries with backoff (1 s
// doubling to 30 s) until it gets through, and after every loss.
func (b *Broker) startBridge(name string, cfg BridgeConfig) (*bridge, error) {
	if cfg.ClientID == "" {
		cfg.ClientID = "streamgate-" + name
	}
	if cfg.QoS == 0 {
		cfg.QoS = 1
	}
	br := &bridge{name: name, cfg: cfg, b: b, log: b.log.With("bridge", name)}
	opts := paho.NewClientOptions().AddBroker(cfg.URL).SetClientID(cfg.ClientID).SetUsername(cfg.Username).SetPassword(cfg.Password).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(30 * time.Second).SetKeepAlive(30 * time.Second).SetOrderMatters(true).SetAutoAckDisabled(true).
		// A persistent session's queued messages arrive right after CONNACK,
		// possibly before the OnConnect handler's Subscribe has added its
		// route; paho drops a message without a route (unacknowledged, so
		// the broker holds it until the next reconnection). The session only
		// carries what we subscribed to, so the default handler is ours too.
		SetDefaultPublishHandler(br.receive)
	if cfg.CAFile != "" || cfg.CertFile != "" {
		tc, err := bridgeTLS(cfg)
		if err != nil {
			return nil, fmt.Errorf("bridge %s: %w", name, err)
		}
		opts.SetTLSConfig(tc)
	}
	opts.SetOnConnectHandler(func(c paho.Client) {
		b.bm.up.WithLabelValues(name).Set(1)
		b.bm.reconnects.WithLabelValues(name).Inc()
		br.log.Info("bridge connected", "url", cfg.URL)
		// Subscriptions are kept by a persistent session; subscribing again
		// is harmless and covers a broker that lost it.
		filters := map[string]byte{}
		for _, t := range cfg.Topics {
			filters[t] = cfg.QoS
		}
		c.SubscribeMultiple(filters, br.receive)
	})
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		b.bm.up.WithLabelValues(name).Set(0)
		br.log.Warn("bridge connection lost; reconnecting", "err", err)
	})
	b.bm.up.WithLabelValues(name).Set(0)
	br.client = paho.NewClient(opts)
	br.client.Connect() // retries in the background (SetConnectRetry)
	return br, nil
}

func bridgeTLS(cfg BridgeConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", cfg.CAFile)
		}
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// receive hands a bridged message to the Handler and to the local broker's
// subscribers, and acknowledges it upstream once it is durable. The
// handler does not wait for the store (messages keep coming while earlier
// ones commit), so an acknowledgement may come after its connection is
// gone: paho drops it from v1.5.1 on (v1.5.0 panicked, sending on a closed
// channel), and the broker sends the message again on the next connection.
func (br *bridge) receive(_ paho.Client, pm paho.Message) {
	br.b.bm.messages.WithLabelValues(br.name).Inc()
	topic := br.cfg.TopicPrefix + pm.Topic()
	m := &Message{Topic: topic, Payload: pm.Payload(), QoS: pm.Qos(), Retain: pm.Retained(),
		ClientID: "bridge:" + br.name, Received: time.Now()}
	var once sync.Once
	br.b.cfg.Handler(m, func(err error) {
		once.Do(func() {
			if err != nil {
				// Not acknowledged: the broker redelivers it on reconnection.
				br.log.Warn("bridged message not stored; left unacknowledged upstream", "topic", topic, "err", err)
				return
			}
			pm.Ack()
		})
	})
	if err := br.b.server.Publish(topic, pm.Payload(), pm.Retained(), pm.Qos()); err != nil {
		br.log.Debug("bridged message not published locally", "topic", topic, "err", err)
	}
}

func (br *bridge) close() {
	br.client.Disconnect(250)
	br.b.bm.up.WithLabelValues(br.name).Set(0)
}
