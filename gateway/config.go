package gateway

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/streamgate/streamgate/gateway/firehose"
	"github.com/streamgate/streamgate/gateway/rules"
	"github.com/streamgate/streamgate/media"
	"github.com/streamgate/streamgate/mqtt"
	"go.yaml.in/yaml/v3"
)

// Config is the whole gateway configuration. config.example.yaml at the
// repository root documents every field; a test loads it.
type Config struct {
	DataDir    string `yaml:"data_dir"`
	HTTPAddr   string `yaml:"http_addr"`
	RTSPAddr   string `yaml:"rtsp_addr"`   // RTSP publishers, readers (TCP) and pull sources
	MQTTAddr   string `yaml:"mqtt_addr"`   // the MQTT broker (TCP); "" turns the broker off, with its other listeners
	WebRTCAddr string `yaml:"webrtc_addr"` // ICE (UDP and TCP) of WHIP/WHEP sessions
	LogLevel   string `yaml:"log_level"`
	// MemoryLimit is the Go runtime's soft memory limit (0: none). The
	// process applies it at start; on small boards it keeps RSS near it.
	MemoryLimit ByteSize `yaml:"memory_limit"`
	// DebugPprof serves Go's profiler under /debug/pprof/ on the HTTP port.
	// Off by default: profiles reveal internals and cost CPU.
	DebugPprof bool `yaml:"debug_pprof"`

	// Auth is sigv4 (every API request signed by a key in
	// <data_dir>/auth/keys.json) or none (local development: refused unless
	// every listener binds loopback, or Insecure is set).
	Auth     string `yaml:"auth"`
	Insecure bool   `yaml:"insecure"`

	Region  string `yaml:"region"`
	Account string `yaml:"account"`

	// TLS, when both files are set, serves the HTTP port over TLS (HTTP/1.1
	// and HTTP/2). The certificate is reloaded when the files change.
	TLS TLSConfig `yaml:"tls"`

	Storage  StorageConfig  `yaml:"storage"`
	Kinesis  KinesisConfig  `yaml:"kinesis"`
	Video    VideoConfig    `yaml:"video"`
	WebRTC   WebRTCConfig   `yaml:"webrtc"`
	MQTT     MQTTConfig     `yaml:"mqtt"`
	Firehose FirehoseConfig `yaml:"firehose"`
}

// FirehoseConfig says where delivery streams' buckets are.
type FirehoseConfig struct {
	// S3Endpoints maps bucket names ("*" for every bucket) to S3-compatible
	// servers. A bucket without one is a directory under
	// <data_dir>/firehose-buckets.
	S3Endpoints map[string]firehose.S3Endpoint `yaml:"s3_endpoints"`
	// Schemas are the tables of record format conversion (JSON -> Parquet),
	// by the TableName (or DatabaseName.TableName) a delivery stream's
	// SchemaConfiguration names: where AWS reads a Glue table.
	Schemas map[string][]firehose.Column `yaml:"schemas"`
}

// MQTTConfig tunes the embedded broker and where its messages go.
type MQTTConfig struct {
	WebSocketAddr string `yaml:"websocket_addr"` // MQTT over WebSocket for browsers
	TLSAddr       string `yaml:"tls_addr"`       // MQTT over TLS, with the tls section's certificate
	// ClientCAFile, when set, asks TLS clients for a certificate signed by
	// these CAs (mutual TLS); its subject CN names the client's access key.
	ClientCAFile    string   `yaml:"client_ca_file"`
	MaxPayloadBytes ByteSize `yaml:"max_payload_bytes"`
	// DefaultStream receives every message (partition key: the topic; data:
	// the payload), created with DefaultStreamShards when missing; "" turns
	// the zero-configuration rule off.
	DefaultStream       string `yaml:"default_stream"`
	DefaultStreamShards int    `yaml:"default_stream_shards"`
	// Bridges subscribe to external brokers (persistent sessions), feeding
	// their messages to the same rules and to local subscribers.
	Bridges map[string]mqtt.BridgeConfig `yaml:"bridges"`
	// Rules are AWS IoT Core topic rules by name (more can be made with the
	// IoT API: aws iot create-topic-rule).
	Rules map[string]rules.Rule `yaml:"rules"`
	// Downlinks publish the records of a stream to MQTT topics.
	Downlinks map[string]rules.DownlinkConfig `yaml:"downlinks"`
}

// WebRTCConfig tunes WHIP ingest and WHEP playback (on the HTTP port; ICE
// on webrtc_addr).
type WebRTCConfig struct {
	AdditionalHosts []string          `yaml:"additional_hosts"`
	ICEServers      []media.ICEServer `yaml:"ice_servers"`
}

// VideoConfig tunes video ingest (RTSP, the fragmenter) and the Kinesis
// Video Streams API.
type VideoConfig struct {
	// RTSP over UDP: an even RTP port and the next one for RTCP. Empty: TCP only.
	RTSPUDPRTPAddr  string `yaml:"rtsp_udp_rtp_addr"`
	RTSPUDPRTCPAddr string `yaml:"rtsp_udp_rtcp_addr"`
	// RTSPSAddr serves RTSP over TLS (TCP) with the tls certificate; off
	// while no certificate is configured.
	RTSPSAddr string `yaml:"rtsps_addr"`
	// AutoCreate lets a publisher create the stream it publishes to, with
	// AutoCreateRetentionHours of retention (0: live only).
	AutoCreate               bool `yaml:"auto_create"`
	AutoCreateRetentionHours int  `yaml:"auto_create_retention_hours"`
	// TakeOver lets a new publisher replace a stream's current publisher;
	// otherwise the newcomer is refused.
	TakeOver bool `yaml:"take_over"`
	// A fragment is cut at the first keyframe after FragmentDuration, and
	// without one after MaxFragmentDuration.
	FragmentDuration    time.Duration `yaml:"fragment_duration"`
	MaxFragmentDuration time.Duration `yaml:"max_fragment_duration"`
	// StreamFragmentDurations overrides FragmentDuration per stream.
	StreamFragmentDurations map[string]time.Duration `yaml:"stream_fragment_durations"`
	MaxFragmentBytes        ByteSize                 `yaml:"max_fragment_bytes"`
	// LowLatencyHLS cuts every live stream's fragments into Low-Latency HLS
	// parts as they are made, so LIVE HLS sessions play about a second
	// behind and their first playlist comes with the first part.
	LowLatencyHLS bool `yaml:"low_latency_hls"`
	// Sources are cameras the gateway pulls (stream name -> RTSP URL).
	Sources map[string]media.SourceConfig `yaml:"sources"`
}

// TLSConfig names a PEM certificate (chain) and key.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// StorageConfig tunes the shard log.
type StorageConfig struct {
	Fsync         string        `yaml:"fsync"` // always | interval | never
	SyncInterval  time.Duration `yaml:"sync_interval"`
	SegmentBytes  ByteSize      `yaml:"segment_bytes"`
	SegmentMaxAge time.Duration `yaml:"segment_max_age"`
	DiskBudget    ByteSize      `yaml:"disk_budget"`
	// StreamDiskBudgets caps single streams (by name), e.g. a camera that
	// must not crowd out telemetry. Applied at start and when created.
	StreamDiskBudgets map[string]ByteSize `yaml:"stream_disk_budgets"`
}

// KinesisConfig tunes the Kinesis API.
type KinesisConfig struct {
	// ShardWriteLimit throttles writes per shard like AWS provisioned shards;
	// zero values mean no limit (the default).
	ShardRecordsPerSecond int      `yaml:"shard_records_per_second"`
	ShardBytesPerSecond   ByteSize `yaml:"shard_bytes_per_second"`
	MaxRequestBytes       ByteSize `yaml:"max_request_bytes"`
	// MaxInflightBytes bounds the request bodies handled at once; further
	// requests wait. It bounds the gateway's memory under load.
	MaxInflightBytes ByteSize `yaml:"max_inflight_bytes"`
}

// DefaultConfig is the embedded default: everything local, data in ./data.
func DefaultConfig() Config {
	return Config{
		DataDir:    "./data",
		HTTPAddr:   ":4566",
		RTSPAddr:   ":8554",
		MQTTAddr:   ":1883",
		WebRTCAddr: ":8189",
		LogLevel:   "info",
		Auth:       "sigv4",
		Region:     "us-east-1",
		Account:    "000000000000",
		Storage: StorageConfig{
			Fsync:         "always",
			SyncInterval:  time.Second,
			SegmentBytes:  64 << 20,
			SegmentMaxAge: time.Hour,

			StreamDiskBudgets: map[string]ByteSize{},
		},
		Kinesis: KinesisConfig{MaxRequestBytes: 24 << 20, MaxInflightBytes: 64 << 20},
		Video: VideoConfig{
			RTSPUDPRTPAddr: ":8000", RTSPUDPRTCPAddr: ":8001", RTSPSAddr: ":8322",
			AutoCreate: true, AutoCreateRetentionHours: 24, LowLatencyHLS: true,
			FragmentDuration: 2 * time.Second, MaxFragmentDuration: 10 * time.Second,
			StreamFragmentDurations: map[string]time.Duration{},
			MaxFragmentBytes:        50 << 20,
			Sources:                 map[string]media.SourceConfig{},
		},
		WebRTC: WebRTCConfig{AdditionalHosts: []string{}, ICEServers: []media.ICEServer{}},
		MQTT: MQTTConfig{WebSocketAddr: ":9001", TLSAddr: ":8883", MaxPayloadBytes: 256 << 10,
			DefaultStream: "mqtt", DefaultStreamShards: 4, Bridges: map[string]mqtt.BridgeConfig{},
			Rules: map[string]rules.Rule{}, Downlinks: map[string]rules.DownlinkConfig{}},
		Firehose: FirehoseConfig{S3Endpoints: map[string]firehose.S3Endpoint{}, Schemas: map[string][]firehose.Column{}},
	}
}

// LoadConfig reads a YAML file over the defaults. Unknown keys are errors, so
// a typo never silently falls back to a default.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && err.Error() != "EOF" {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, cfg.Validate()
}

// Validate checks the configuration at start-up.
func (c *Config) Validate() error {
	var errs []string
	if c.DataDir == "" {
		errs = append(errs, "data_dir is empty")
	}
	for name, addr := range c.listeners() {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Sprintf("%s %q: %v", name, addr, err))
		}
	}
	switch c.Storage.Fsync {
	case "always", "interval", "never":
	default:
		errs = append(errs, fmt.Sprintf("storage.fsync %q: want always, interval or never", c.Storage.Fsync))
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, "tls needs both cert_file and key_file")
	}
	switch c.Auth {
	case "sigv4":
	case "none":
		if !c.Insecure {
			for name, addr := range c.listeners() {
				if addr != "" && !isLoopback(addr) {
					errs = append(errs, fmt.Sprintf("auth none with %s %q: anyone on the network could use the gateway; bind loopback (127.0.0.1:port) or also set insecure", name, addr))
				}
			}
		}
	default:
		errs = append(errs, fmt.Sprintf("auth %q: want sigv4 or none", c.Auth))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Sprintf("log_level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.Storage.SegmentBytes < 0 || c.Storage.DiskBudget < 0 {
		errs = append(errs, "storage sizes must not be negative")
	}
	for name, b := range c.Storage.StreamDiskBudgets {
		if b <= 0 {
			errs = append(errs, fmt.Sprintf("storage.stream_disk_budgets.%s must be positive", name))
		}
	}
	v := &c.Video
	if (v.RTSPUDPRTPAddr == "") != (v.RTSPUDPRTCPAddr == "") {
		errs = append(errs, "video.rtsp_udp_rtp_addr and rtsp_udp_rtcp_addr go together")
	}
	if v.FragmentDuration <= 0 || v.MaxFragmentDuration < v.FragmentDuration || v.MaxFragmentDuration > 20*time.Second {
		errs = append(errs, "video: want 0 < fragment_duration <= max_fragment_duration <= 20s")
	}
	for name, d := range v.StreamFragmentDurations {
		if d <= 0 || d > v.MaxFragmentDuration {
			errs = append(errs, fmt.Sprintf("video.stream_fragment_durations.%s must be in (0, max_fragment_duration]", name))
		}
	}
	if v.MaxFragmentBytes < 1<<20 || v.MaxFragmentBytes > 64<<20 {
		errs = append(errs, "video.max_fragment_bytes must be between 1MiB and 64MiB")
	}
	if v.AutoCreateRetentionHours < 0 || v.AutoCreateRetentionHours > 87600 {
		errs = append(errs, "video.auto_create_retention_hours must be between 0 and 87600")
	}
	for name, src := range v.Sources {
		if !strings.HasPrefix(src.URL, "rtsp://") && !strings.HasPrefix(src.URL, "rtsps://") {
			errs = append(errs, fmt.Sprintf("video.sources.%s.url: want rtsp:// or rtsps://", name))
		}
		switch src.Transport {
		case "", "tcp", "udp":
		default:
			errs = append(errs, fmt.Sprintf("video.sources.%s.transport %q: want tcp, udp or empty", name, src.Transport))
		}
	}
	if c.MQTT.MaxPayloadBytes < 1 || c.MQTT.MaxPayloadBytes > 128<<20 {
		errs = append(errs, "mqtt.max_payload_bytes must be between 1 and 128MiB")
	}
	if c.MQTT.DefaultStream != "" && (c.MQTT.DefaultStreamShards < 1 || c.MQTT.DefaultStreamShards > 1000) {
		errs = append(errs, "mqtt.default_stream_shards must be between 1 and 1000")
	}
	for name, b := range c.MQTT.Bridges {
		if !strings.Contains(b.URL, "://") || len(b.Topics) == 0 || b.QoS > 2 {
			errs = append(errs, fmt.Sprintf("mqtt.bridges.%s: want url (tcp://, ssl:// or ws://), topics and qos 0-2", name))
		}
	}
	for bucket, ep := range c.Firehose.S3Endpoints {
		if !strings.HasPrefix(ep.URL, "http://") && !strings.HasPrefix(ep.URL, "https://") {
			errs = append(errs, fmt.Sprintf("firehose.s3_endpoints.%s.url: want http:// or https://", bucket))
		}
	}
	for name, d := range c.MQTT.Downlinks {
		if err := rules.ValidateDownlink(d); err != nil {
			errs = append(errs, fmt.Sprintf("mqtt.downlinks.%s: %v", name, err))
		}
	}
	for i, is := range c.WebRTC.ICEServers {
		if len(is.URLs) == 0 {
			errs = append(errs, fmt.Sprintf("webrtc.ice_servers[%d] has no urls", i))
		}
		for _, u := range is.URLs {
			if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "stuns:") && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
				errs = append(errs, fmt.Sprintf("webrtc.ice_servers[%d]: %q is not a stun:, stuns:, turn: or turns: URL", i, u))
			}
		}
	}
	if c.Kinesis.MaxRequestBytes < 1<<20 {
		errs = append(errs, "kinesis.max_request_bytes must be at least 1MiB")
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

// listeners are the configured listen addresses by config key.
func (c *Config) listeners() map[string]string {
	m := map[string]string{"http_addr": c.HTTPAddr, "rtsp_addr": c.RTSPAddr, "mqtt_addr": c.MQTTAddr, "webrtc_addr": c.WebRTCAddr}
	if c.RTSPAddr != "" {
		m["video.rtsp_udp_rtp_addr"], m["video.rtsp_udp_rtcp_addr"] = c.Video.RTSPUDPRTPAddr, c.Video.RTSPUDPRTCPAddr
	}
	if c.TLS.CertFile != "" {
		m["video.rtsps_addr"] = c.Video.RTSPSAddr
	}
	if c.MQTTAddr != "" {
		m["mqtt.websocket_addr"] = c.MQTT.WebSocketAddr
		if c.TLS.CertFile != "" {
			m["mqtt.tls_addr"] = c.MQTT.TLSAddr
		}
	}
	return m
}

// ByteSize is a size in bytes that YAML may write as 64MiB, 2GB or 1048576.
type ByteSize int64

func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// ParseByteSize reads "512", "64KiB", "64MiB", "2GiB", "2GB", "10M".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || fmt.Sprint(n) != s || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (KiB, MiB, GiB, KB, MB, GB)", s)
	}
	return ByteSize(n * mult), nil
}

// isLoopback reports whether a listen address binds only the loopback interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
