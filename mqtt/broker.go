package mqtt

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the broker.
type Config struct {
	Addr          string      // MQTT over TCP, e.g. ":1883"; "" for none
	WebSocketAddr string      // MQTT over WebSocket (path /), for browsers; "" for none
	TLSAddr       string      // MQTT over TLS, e.g. ":8883"; needs TLS
	TLS           *tls.Config // certificates (and client CAs for mutual TLS)
	// MaxPayload is the largest PUBLISH payload accepted (default 256 KiB).
	MaxPayload int
	// Handler receives every published message.
	Handler Handler
	// Auth decides who may connect, publish and subscribe; nil allows all.
	Auth Authenticator
	// Bridges are external brokers whose topics are taken in, by name.
	Bridges map[string]BridgeConfig
	Logger  *slog.Logger
	Metrics prometheus.Registerer
}

// DefaultMaxPayload is the default largest payload.
const DefaultMaxPayload = 256 << 10

// Message is a PUBLISH as the broker received it.
type Message struct {
	Topic          string
	Payload        []byte
	QoS            byte
	Retain         bool
	ClientID       string
	Username       string
	UserProperties []UserProperty // MQTT 5
	ContentType    string         // MQTT 5
	Received       time.Time
}

// UserProperty is an MQTT 5 user property.
type UserProperty struct{ Key, Value string }

// Handler takes a message. For QoS 1 and 2 the publisher's acknowledgement
// waits until done is called: with nil once the message is durable, or with
// the reason it was refused (ErrQuotaExceeded for a full store). done may be
// called from any goroutine; QoS 0 messages get a done that does nothing.
// A Handler must not block for long: it holds up the client's connection.
type Handler func(m *Message, done func(error))

// Authenticator checks clients: credentials at CONNECT, then every topic a
// client publishes to or subscribes to (a topic filter for subscriptions).
type Authenticator interface {
	// Connect returns the principal the client acts as (its access key id),
	// which Allowed then receives.
	Connect(c ConnectRequest) (principal string, err error)
	Allowed(clientID, principal, topic string, publish bool) bool
}

// ConnectRequest is what a connecting client presented.
type ConnectRequest struct {
	ClientID string
	Username string
	Password []byte
	Remote   string
	// CommonName is the subject CN of a verified client certificate (mutual
	// TLS), "" without one.
	CommonName string
}

// Broker is the embedded MQTT broker.
type Broker struct {
	cfg     Config
	server  *mochi.Server
	tcp     net.Listener
	tlsLn   net.Listener
	log     *slog.Logger
	m       *metrics
	bm      *bridgeMetrics
	bridges []*bridge
}

type metrics struct {
	messages *prometheus.CounterVec
	byQoS    [3]prometheus.Counter // messages by QoS, resolved once
	refused  prometheus.Counter
	tooLarge prometheus.Counter
}

// New builds a broker; Start listens.
func New(cfg Config) *Broker {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.Handler == nil {
		cfg.Handler = func(_ *Message, done func(error)) { done(nil) }
	}
	caps := mochi.NewDefaultServerCapabilities()
	// A pending-writes queue is a channel allocated per client at connect:
	// mochi's default (8192 slots, 64 KiB) is most of an idle client's memory.
	caps.MaximumClientWritesPending = 256
	// The payload limit plus the largest topic and properties.
	caps.MaximumPacketSize = uint32(cfg.MaxPayload) + 70_000
	server := mochi.New(&mochi.Options{Capabilities: caps, InlineClient: true, Logger: cfg.Logger,
		ClientNetReadBufferSize: 4096, ClientNetWriteBufferSize: 1024})
	b := &Broker{cfg: cfg, server: server, log: cfg.Logger, bm: newBridgeMetrics(cfg.Metrics)}
	b.m = &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_mqtt_messages_received_total",
			Help: "PUBLISH packets received by the broker, by QoS."}, []string{"qos"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_mqtt_messages_refused_total",
			Help: "QoS 1/2 messages refused because the store did not take them (the client got a failure reason code, or no ack on 3.1.1)."}),
		tooLarge: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_mqtt_payloads_too_large_total",
			Help: "Messages refused for a payload over the limit."}),
	}
	for q := range b.m.byQoS {
		b.m.byQoS[q] = b.m.messages.WithLabelValues(string(rune('0' + q)))
	}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(b.m.messages, b.m.refused, b.m.tooLarge,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "streamgate_mqtt_clients_connected", Help: "Connected MQTT clients."},
				func() float64 { return float64(atomic.LoadInt64(&server.Info.ClientsConnected)) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "streamgate_mqtt_deliveries_dropped_total",
				Help: "Messages not delivered to a subscriber whose pending writes were full (the stream still has them)."},
				func() float64 { return float64(atomic.LoadInt64(&server.Info.MessagesDropped)) }))
	}
	return b
}

// Start adds the hooks and listeners and serves.
func (b *Broker) Start() error {
	if err := b.server.AddHook(&hook{b: b}, nil); err != nil {
		return err
	}
	if b.cfg.Addr != "" {
		ln, err := net.Listen("tcp", b.cfg.Addr)
		if err != nil {
			return fmt.Errorf("mqtt: %w", err)
		}
		b.tcp = ln
		if err := b.server.AddListener(ackListener{listeners.NewNet("tcp", ln)}); err != nil {
			return err
		}
	}
	if b.cfg.TLSAddr != "" && b.cfg.TLS != nil {
		ln, err := tls.Listen("tcp", b.cfg.TLSAddr, b.cfg.TLS)
		if err != nil {
			b.closeListeners()
			return fmt.Errorf("mqtt tls: %w", err)
		}
		b.tlsLn = ln
		if err := b.server.AddListener(ackListener{listeners.NewNet("tls", ln)}); err != nil {
			return err
		}
	}
	if b.cfg.WebSocketAddr != "" {
		if err := b.server.AddListener(ackListener{listeners.NewWebsocket(listeners.Config{ID: "ws", Address: b.cfg.WebSocketAddr})}); err != nil {
			b.closeListeners()
			return fmt.Errorf("mqtt websocket: %w", err)
		}
	}
	if err := b.server.Serve(); err != nil {
		return err
	}
	for name, bc := range b.cfg.Bridges {
		br, err := b.startBridge(name, bc)
		if err != nil {
			b.Close()
			return err
		}
		b.bridges = append(b.bridges, br)
	}
	return nil
}

func (b *Broker) closeListeners() {
	if b.tcp != nil {
		b.tcp.Close()
	}
	if b.tlsLn != nil {
		b.tlsLn.Close()
	}
}

// Addr is the TCP listener's address (nil when off).
func (b *Broker) Addr() net.Addr {
	if b.tcp == nil {
		return nil
	}
	return b.tcp.Addr()
}

// TLSAddr is the TLS listener's address (nil when off).
func (b *Broker) TLSAddr() net.Addr {
	if b.tlsLn == nil {
		return nil
	}
	return b.tlsLn.Addr()
}

// Close ends the bridges, disconnects every client and stops listening.
func (b *Broker) Close() error {
	for _, br := range b.bridges {
		br.close()
	}
	return b.server.Close()
}

// Publish sends a message to the broker's subscribers as the gateway
// (downlink and republish rules).
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	return b.server.Publish(topic, payload, retain, qos)
}

// hook connects mochi to the gateway: authentication, topic ACLs, and every
// PUBLISH to the Handler with its acknowledgement held until durable.
type hook struct {
	mochi.HookBase
	b *Broker
}

func (h *hook) ID() string { return "streamgate" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish}, []byte{b})
}

func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	if h.b.cfg.Auth == nil {
		return true
	}
	req := ConnectRequest{ClientID: cl.ID, Username: string(pk.Connect.Username), Password: pk.Connect.Password, Remote: cl.Net.Remote}
	if tc, ok := underlying(cl.Net.Conn).(*tls.Conn); ok {
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			req.CommonName = certs[0].Subject.CommonName
		}
	}
	principal, err := h.b.cfg.Auth.Connect(req)
	if err != nil {
		h.b.log.Info("MQTT connection refused", "client", cl.ID, "remote", cl.Net.Remote, "err", err)
		return false
	}
	cl.Properties.Username = []byte(principal) // what ACL checks see
	return true
}

// underlying unwraps an ackConn.
func underlying(c net.Conn) net.Conn {
	if a, ok := c.(*ackConn); ok {
		return a.Conn
	}
	return c
}

func (h *hook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	if h.b.cfg.Auth == nil || cl.Net.Inline {
		return true
	}
	return h.b.cfg.Auth.Allowed(cl.ID, string(cl.Properties.Username), topic, write)
}

// OnPublish hands the message over. For QoS 1/2 it registers the packet's
// acknowledgement as pending on the connection and returns at once: the
// connection holds the ack until the Handler reports the record durable.
func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil // the gateway's own downlink and republish messages
	}
	qos := pk.FixedHeader.Qos
	v5 := cl.Properties.ProtocolVersion == 5
	if len(pk.Payload) > h.b.cfg.MaxPayload {
		h.b.m.tooLarge.Inc()
		h.b.log.Info("MQTT payload over the limit", "client", cl.ID, "topic", pk.TopicName, "bytes", len(pk.Payload), "max", h.b.cfg.MaxPayload)
		if v5 && qos > 0 {
			return pk, packets.ErrPacketTooLarge
		}
		h.b.server.DisconnectClient(cl, packets.ErrPacketTooLarge) //nolint:errcheck // the client is going
		return pk, packets.ErrRejectPacket
	}
	if int(qos) < len(h.b.m.byQoS) {
		h.b.m.byQoS[qos].Inc()
	}
	m := &Message{Topic: pk.TopicName, Payload: pk.Payload, QoS: qos, Retain: pk.FixedHeader.Retain,
		ClientID: cl.ID, Username: string(cl.Properties.Username), ContentType: pk.Properties.ContentType, Received: time.Now()}
	for _, up := range pk.Properties.User {
		m.UserProperties = append(m.UserProperties, UserProperty{Key: up.Key, Value: up.Val})
	}
	if qos == 0 {
		h.b.cfg.Handler(m, func(error) {})
		return pk, nil
	}
	p := newPendingAck(cl.Properties.ProtocolVersion)
	refused := func(err error) {
		if err != nil {
			h.b.m.refused.Inc()
			h.b.log.Warn("MQTT message refused", "client", cl.ID, "topic", m.Topic, "err", err)
		}
		p.resolve(err)
	}
	if ac, ok := cl.Net.Conn.(*ackConn); ok {
		ac.expect(pk.PacketID, p)
		h.b.cfg.Handler(m, refused)
		return pk, nil
	}
	// A connection the broker made itself: wait here.
	h.b.cfg.Handler(m, refused)
	<-p.done
	if p.err == nil {
		return pk, nil
	}
	if v5 {
		if errors.Is(p.err, ErrQuotaExceeded) {
			return pk, packets.ErrQuotaExceeded
		}
		return pk, packets.ErrUnspecifiedError
	}
	return pk, packets.ErrRejectPacket
}
