package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/streamgate/streamgate/gateway/analytics"
	"github.com/streamgate/streamgate/gateway/auth"
	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/gateway/firehose"
	"github.com/streamgate/streamgate/gateway/kinesis"
	"github.com/streamgate/streamgate/gateway/kvs"
	"github.com/streamgate/streamgate/gateway/rules"
	"github.com/streamgate/streamgate/media"
	"github.com/streamgate/streamgate/mqtt"
	"github.com/streamgate/streamgate/streamstore"
)

// Gateway is a running streamgate: the store and every listener.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	store *streamstore.Store
	reg   *prometheus.Registry
	http  *http.Server
	ln    net.Listener
	ready atomic.Bool

	baseCtx    context.Context
	cancelBase context.CancelFunc
	served     chan error

	media *media.Server // nil when rtsp_addr is empty

	broker    *mqtt.Broker // nil when mqtt_addr is empty
	appender  *rules.Appender
	rules     *rules.Router
	downlinks *rules.Downlinks
	firehose  *firehose.Service
	analytics *analytics.Service

	keys       *auth.Store
	createdKey *auth.Key
	profile    string
	watchers   sync.WaitGroup // background goroutines, stopped by cancelBase
}

// New opens the store and prepares the listeners; Start begins serving.
func New(cfg Config, log *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sm := newStoreMetrics(g.reg)
	store, err := streamstore.Open(streamstore.Options{
		Dir:           filepath.Clean(cfg.DataDir),
		Fsync:         streamstore.FsyncPolicy(cfg.Storage.Fsync),
		SyncInterval:  cfg.Storage.SyncInterval,
		SegmentBytes:  int64(cfg.Storage.SegmentBytes),
		SegmentMaxAge: cfg.Storage.SegmentMaxAge,
		DiskBudget:    int64(cfg.Storage.DiskBudget),
		Logger:        log.With("component", "streamstore"),
		OnFsync:       sm.observeFsync,
		OnRetention:   sm.observeRetention,
	})
	if err != nil {
		return nil, err
	}
	g.store = store
	sm.watchUsage(store)
	budget := func(name string) int64 { return int64(cfg.Storage.StreamDiskBudgets[name]) }
	for name := range cfg.Storage.StreamDiskBudgets {
		_, err := store.UpdateStream(name, func(info *streamstore.StreamInfo) error {
			info.DiskBudget = budget(name)
			return nil
		})
		if err != nil && !errors.Is(err, streamstore.ErrNotFound) {
			store.Close()
			return nil, err
		}
	}

	kopts := kinesis.Options{Region: cfg.Region, Account: cfg.Account, Logger: log.With("component", "kinesis"),
		Metrics: kinesis.NewMetrics(g.reg), StreamDiskBudget: budget}
	if cfg.Kinesis.ShardRecordsPerSecond > 0 || cfg.Kinesis.ShardBytesPerSecond > 0 {
		lim := &kinesis.WriteLimit{RecordsPerSecond: int64(cfg.Kinesis.ShardRecordsPerSecond), BytesPerSecond: int64(cfg.Kinesis.ShardBytesPerSecond)}
		if lim.RecordsPerSecond == 0 {
			lim.RecordsPerSecond = 1 << 30
		}
		if lim.BytesPerSecond == 0 {
			lim.BytesPerSecond = 1 << 40
		}
		kopts.ShardWriteLimit = lim
	}
	sessionKey, err := loadSessionKey(cfg.DataDir)
	if err != nil {
		store.Close()
		return nil, err
	}
	video := kvs.New(store, kvs.Options{
		SessionKey: sessionKey,
		Region:     cfg.Region, Account: cfg.Account, AutoCreate: cfg.Video.AutoCreate, AutoRetentionHours: cfg.Video.AutoCreateRetentionHours,
		FragmentDuration: cfg.Video.FragmentDuration, MaxFragmentDuration: cfg.Video.MaxFragmentDuration,
		StreamFragmentDurations: cfg.Video.StreamFragmentDurations, MaxFragmentBytes: int(cfg.Video.MaxFragmentBytes),
		StreamDiskBudget: budget, Logger: log.With("component", "kvs"),
	})
	buckets := &firehose.Buckets{Dir: filepath.Join(cfg.DataDir, "firehose-buckets"), Endpoints: cfg.Firehose.S3Endpoints}
	fh, err := firehose.New(store, firehose.Options{Buckets: buckets,
		Region: cfg.Region, Account: cfg.Account, Logger: log.With("component", "firehose"), Metrics: g.reg, Schemas: cfg.Firehose.Schemas})
	if err != nil {
		store.Close()
		return nil, err
	}
	g.firehose = fh
	g.analytics, err = analytics.New(store, analytics.Options{Region: cfg.Region, Account: cfg.Account, Logger: log.With("component", "analytics"),
		FirehoseSource: fh.SourceStream, FirehoseStream: firehose.BackingStream, Metrics: g.reg, Objects: buckets.Get})
	if err != nil {
		store.Close()
		return nil, err
	}
	services := []*awsapi.Service{kinesis.New(store, kopts).Service(), video.Service(), fh.Service(), g.analytics.Service()}
	if cfg.MQTTAddr != "" {
		if err := g.newRules(); err != nil {
			store.Close()
			return nil, err
		}
		services = append(services, g.rules.Service())
	}
	api := awsapi.NewMux(log, int64(cfg.Kinesis.MaxRequestBytes), int64(cfg.Kinesis.MaxInflightBytes), services...)
	var mediaAuth media.Authenticator
	var authn *authenticator // nil when auth is off
	if cfg.Auth == "sigv4" {
		keys, created, err := auth.OpenStore(cfg.DataDir, log.With("component", "auth"))
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("auth: %w", err)
		}
		g.keys, g.createdKey = keys, created
		a := &authenticator{verifier: &auth.Verifier{Keys: keys, Region: cfg.Region}, account: cfg.Account, log: log.With("component", "auth"),
			failures: map[string]failure{}, buckets: map[string]*bucket{}}
		api.Auth = a.authenticate
		mediaAuth = a.mediaAuth(video.StreamARN)
		authn = a
	} else {
		log.Warn("authentication is off (auth: none): every caller may do anything")
	}

	// One certificate (reloaded when its files change) for HTTPS and RTSPS.
	var tlsConf *tls.Config
	if cfg.TLS.CertFile != "" {
		certs, err := newCertReloader(cfg.TLS.CertFile, cfg.TLS.KeyFile, log.With("component", "tls"))
		if err != nil {
			store.Close()
			return nil, err
		}
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.getCertificate}
	}
	if cfg.RTSPAddr != "" || (cfg.Video.RTSPSAddr != "" && tlsConf != nil) || cfg.WebRTCAddr != "" {
		for name := range cfg.Video.Sources {
			if err := video.EnsureStream(name); err != nil {
				store.Close()
				return nil, err
			}
		}
		var rtc *media.WebRTCConfig
		if cfg.WebRTCAddr != "" {
			rtc = &media.WebRTCConfig{Address: cfg.WebRTCAddr, AdditionalHosts: cfg.WebRTC.AdditionalHosts, ICEServers: cfg.WebRTC.ICEServers}
		}
		g.media = media.NewServer(media.Config{
			WebRTC:        rtc,
			LowLatencyHLS: cfg.Video.LowLatencyHLS,
			RTSPAddress:   cfg.RTSPAddr, UDPRTPAddress: cfg.Video.RTSPUDPRTPAddr, UDPRTCPAddress: cfg.Video.RTSPUDPRTCPAddr,
			RTSPSAddress: cfg.Video.RTSPSAddr, TLS: tlsConf,
			Sink: video, Auth: mediaAuth, TakeOver: cfg.Video.TakeOver, Sources: cfg.Video.Sources,
			Logger: log.With("component", "media"), Metrics: media.NewMetrics(g.reg),
		})
		video.SetLive(g.media)
	}

	if cfg.MQTTAddr != "" {
		var ma mqtt.Authenticator
		if authn != nil {
			ma = mqttAuth{a: authn, region: cfg.Region, account: cfg.Account, decisions: &aclCache{}}
		}
		if err := g.newBroker(tlsConf, ma); err != nil {
			store.Close()
			return nil, err
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", g.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}))
	if cfg.DebugPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/hls/v1/", video.HLSHandler()) // the signed session URL is the credential
	mux.Handle("/dash/v1/", video.DASHHandler())
	if g.media != nil {
		var streaming kvs.StreamingAuth
		if authn != nil {
			streaming = authn.authenticateStreaming
		}
		mux.Handle("/putMedia", video.PutMediaHandler(streaming, g.media.PutMedia, g.media.Busy, log.With("component", "putmedia")))
	}
	if g.media != nil && cfg.WebRTCAddr != "" {
		h := g.media.WebRTCHandler() // bearer tokens, checked by the media server's authenticator
		mux.Handle("/whip/", h)
		mux.Handle("/whep/", h)
	}
	mux.Handle("/", api) // authentication happens inside the mux, once the body is read

	g.baseCtx, g.cancelBase = context.WithCancel(context.Background())
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)            // over TLS, by ALPN
	protocols.SetUnencryptedHTTP2(true) // h2c: SubscribeToShard over HTTP/2 without TLS
	g.http = &http.Server{
		Handler:           mux,
		Protocols:         protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return g.baseCtx },
	}
	if tlsConf != nil {
		g.http.TLSConfig = tlsConf.Clone()
	}
	return g, nil
}

// newRules prepares where MQTT messages go: the topic rules and the default
// stream (made when missing), through the batching appender.
func (g *Gateway) newRules() error {
	mc := g.cfg.MQTT
	if mc.DefaultStream != "" {
		if _, err := g.store.Stream(mc.DefaultStream); errors.Is(err, streamstore.ErrNotFound) {
			_, err = g.store.CreateStream(streamstore.StreamConfig{Name: mc.DefaultStream, Shards: mc.DefaultStreamShards,
				DiskBudget: int64(g.cfg.Storage.StreamDiskBudgets[mc.DefaultStream])})
			if err != nil && !errors.Is(err, streamstore.ErrExists) {
				return fmt.Errorf("mqtt default stream: %w", err)
			}
			g.log.Info("created the stream MQTT messages go to", "stream", mc.DefaultStream, "shards", mc.DefaultStreamShards)
		} else if err != nil {
			return err
		}
	}
	g.appender = rules.NewAppender(g.store)
	var err error
	g.rules, err = rules.NewRouter(g.appender, g.store, mc.Rules, rules.Options{DefaultStream: mc.DefaultStream,
		Region: g.cfg.Region, Account: g.cfg.Account, Logger: g.log.With("component", "rules"), Metrics: g.reg})
	if err != nil {
		g.appender.Close()
	}
	return err
}

// newBroker prepares the MQTT broker, handing messages to the rules.
func (g *Gateway) newBroker(tlsConf *tls.Config, ma mqtt.Authenticator) error {
	mc := g.cfg.MQTT
	var brokerTLS *tls.Config
	if tlsConf != nil {
		brokerTLS = tlsConf.Clone()
		if mc.ClientCAFile != "" {
			pem, err := os.ReadFile(mc.ClientCAFile)
			if err != nil {
				return fmt.Errorf("mqtt.client_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("mqtt.client_ca_file %s: no PEM certificates", mc.ClientCAFile)
			}
			brokerTLS.ClientCAs, brokerTLS.ClientAuth = pool, tls.VerifyClientCertIfGiven
		}
	}
	g.broker = mqtt.New(mqtt.Config{Addr: g.cfg.MQTTAddr, WebSocketAddr: mc.WebSocketAddr, TLSAddr: mc.TLSAddr, TLS: brokerTLS,
		MaxPayload: int(mc.MaxPayloadBytes), Handler: g.rules.Handle, Auth: ma, Bridges: mc.Bridges,
		Logger: g.log.With("component", "mqtt"), Metrics: g.reg})
	g.rules.SetPublisher(g.broker)
	return nil
}

// CreatedKey is the admin key made on this start (first start of a data
// directory), to be shown once; nil otherwise. ProfilePath is the AWS config
// file written for it.
func (g *Gateway) CreatedKey() (*auth.Key, string) { return g.createdKey, g.profile }

// Store is the gateway's shard log (for in-process users such as tests).
func (g *Gateway) Store() *streamstore.Store { return g.store }

// Start binds the listeners and serves in the background.
func (g *Gateway) Start() error {
	g.firehose.Start()
	g.analytics.Start()
	if g.media != nil {
		if err := g.media.Start(); err != nil {
			return err
		}
		if a := g.media.Addr(); a != nil {
			g.log.Info("serving RTSP", "addr", a.String(), "udp", g.cfg.Video.RTSPUDPRTPAddr != "")
		}
		if a := g.media.TLSAddr(); a != nil {
			g.log.Info("serving RTSPS", "addr", a.String())
		}
		if a := g.media.WebRTCAddr(); a != nil {
			g.log.Info("serving WHIP/WHEP on the HTTP port", "ice_addr", a.String())
		}
	}
	if g.broker != nil {
		if err := g.broker.Start(); err != nil {
			if g.media != nil {
				g.media.Close()
			}
			return err
		}
		g.log.Info("serving MQTT", "addr", g.broker.Addr().String(), "websocket", g.cfg.MQTT.WebSocketAddr, "default_stream", g.cfg.MQTT.DefaultStream)
		dl, err := rules.StartDownlinks(g.store, g.broker, g.cfg.MQTT.Downlinks, g.log.With("component", "downlink"), g.reg)
		if err != nil {
			g.broker.Close()
			if g.media != nil {
				g.media.Close()
			}
			return err
		}
		g.downlinks = dl
	}
	if g.cfg.HTTPAddr == "" {
		g.ready.Store(true)
		return nil
	}
	ln, err := net.Listen("tcp", g.cfg.HTTPAddr)
	if err != nil {
		if g.media != nil {
			g.media.Close()
		}
		return fmt.Errorf("http listener: %w", err)
	}
	g.ln = ln
	g.served = make(chan error, 1)
	// Read before serving: Serve configures HTTP/2 by writing srv.TLSConfig.
	tlsOn := g.http.TLSConfig != nil
	if tlsOn {
		go func() { g.served <- g.http.ServeTLS(ln, "", "") }()
	} else {
		go func() { g.served <- g.http.Serve(ln) }()
	}
	if g.keys != nil {
		g.watchers.Add(1)
		go func() {
			defer g.watchers.Done()
			g.keys.Watch(g.baseCtx.Done(), time.Second)
		}()
	}
	if g.createdKey != nil {
		// Written once the port is bound, so the endpoint in it is the real one.
		scheme := "http"
		if tlsOn {
			scheme = "https"
		}
		if g.profile, err = writeProfile(g.cfg.DataDir, ln.Addr().String(), scheme, g.cfg.Region, *g.createdKey); err != nil {
			g.log.Warn("could not write the AWS profile file", "err", err)
		}
	}
	g.ready.Store(true)
	g.log.Info("serving AWS APIs", "addr", ln.Addr().String(), "tls", tlsOn, "auth", g.cfg.Auth,
		"data_dir", g.cfg.DataDir, "fsync", g.cfg.Storage.Fsync)
	return nil
}

// RTSPAddr is the bound RTSP address ("" when RTSP is off).
func (g *Gateway) RTSPAddr() string {
	if g.media == nil || g.media.Addr() == nil {
		return ""
	}
	return g.media.Addr().String()
}

// WebRTCAddr is the bound ICE port of WHIP/WHEP, UDP and TCP ("" when off).
func (g *Gateway) WebRTCAddr() string {
	if g.media == nil || g.media.WebRTCAddr() == nil {
		return ""
	}
	return g.media.WebRTCAddr().String()
}

// MQTTAddr is the bound MQTT (TCP) address ("" when the broker is off).
func (g *Gateway) MQTTAddr() string {
	if g.broker == nil || g.broker.Addr() == nil {
		return ""
	}
	return g.broker.Addr().String()
}

// MQTTTLSAddr is the bound MQTT-over-TLS address ("" when off).
func (g *Gateway) MQTTTLSAddr() string {
	if g.broker == nil || g.broker.TLSAddr() == nil {
		return ""
	}
	return g.broker.TLSAddr().String()
}

// RTSPSAddr is the bound RTSPS address ("" when RTSPS is off).
func (g *Gateway) RTSPSAddr() string {
	if g.media == nil || g.media.TLSAddr() == nil {
		return ""
	}
	return g.media.TLSAddr().String()
}

// HTTPAddr is the bound HTTP address (useful with port 0).
func (g *Gateway) HTTPAddr() string {
	if g.ln == nil {
		return ""
	}
	return g.ln.Addr().String()
}

// Shutdown stops accepting work, lets in-flight requests finish (streams are
// told to end), then syncs and closes the store.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.ready.Store(false)
	var errs []error
	if g.media != nil {
		// First, so publishers' open fragments are stored while everything
		// is up, and live players blocked on a low-latency playlist are let go.
		g.media.Close()
	}
	if g.broker != nil {
		if g.downlinks != nil {
			g.downlinks.Close()
		}
		g.broker.Close()
		g.appender.Close() // what was queued is appended before the store closes
	}
	if g.ln != nil {
		g.cancelBase() // ends SubscribeToShard streams
		if err := g.http.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			g.http.Close()
		}
		if err := <-g.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	g.cancelBase() // also when no listener was started
	g.watchers.Wait()
	g.firehose.Close()  // undelivered records stay in the log
	g.analytics.Close() // positions are checkpointed; running applications restart with the gateway
	errs = append(errs, g.store.Close())
	return errors.Join(errs...)
}

func (g *Gateway) healthz(w http.ResponseWriter, r *http.Request) {
	if !g.ready.Load() {
		http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte("ok\n"))
}

// Handler is the HTTP handler of the gateway's port (for in-process use).
func (g *Gateway) Handler() http.Handler { return g.http.Handler }
