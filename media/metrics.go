package media

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the media server's Prometheus collectors.
type Metrics struct {
	publishers        prometheus.Gauge
	rtspConns         prometheus.Gauge
	rtspReaders       prometheus.Counter
	fragments         prometheus.Counter
	fragmentBytes     prometheus.Counter
	frames            prometheus.Counter
	fragmentsLost     prometheus.Counter
	decodeErrors      prometheus.Counter
	packetsLost       prometheus.Counter
	readerDrops       prometheus.Counter
	backpressure      prometheus.Counter
	storeSeconds      prometheus.Histogram
	visibleSeconds    prometheus.Histogram
	sourceUp          *prometheus.GaugeVec
	sourceRetries     *prometheus.CounterVec
	webrtcSessions    *prometheus.GaugeVec
	webrtcViewerSkips prometheus.Counter
	keyframeRequests  prometheus.Counter
}

// NewMetrics creates the collectors and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		publishers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamgate_video_publishers",
			Help: "Video streams with an active publisher (RTSP or pulled)."}),
		rtspConns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamgate_rtsp_connections",
			Help: "Open RTSP connections."}),
		rtspReaders: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_rtsp_plays_total",
			Help: "RTSP PLAY requests accepted."}),
		fragments: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_video_fragments_total",
			Help: "Fragments stored."}),
		fragmentBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_video_fragment_bytes_total",
			Help: "Bytes of fragments stored."}),
		frames: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_video_frames_stored_total",
			Help: "Video frames (samples of each stream's leading track) in stored fragments."}),
		visibleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "streamgate_video_fragment_visible_seconds",
			Help:    "From the packet that completed a fragment (the next keyframe) to the fragment being durable and listable.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		fragmentsLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_video_fragments_lost_total",
			Help: "Fragments the store refused (the publisher's session is then ended)."}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_video_decode_errors_total",
			Help: "RTP packets or access units that could not be depacketized or parsed."}),
		packetsLost: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_rtsp_packets_lost_total",
			Help: "RTP packets lost on the way from publishers (UDP)."}),
		readerDrops: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_rtsp_reader_write_errors_total",
			Help: "Packets not delivered to RTSP readers that fell behind (the recording is unaffected)."}),
		backpressure: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_video_backpressure_seconds_total",
			Help: "Time publishers were held back because the store was behind (nothing is dropped)."}),
		storeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "streamgate_video_fragment_store_seconds",
			Help: "Time to make a committed fragment durable (its bytes were written as it was cut; this is the fsync).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		sourceUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "streamgate_video_source_up",
			Help: "1 while a pull source is connected and playing."}, []string{"stream"}),
		sourceRetries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_video_source_reconnects_total",
			Help: "Reconnection attempts of pull sources."}, []string{"stream"}),
		webrtcSessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "streamgate_webrtc_sessions",
			Help: "Open WebRTC sessions: whip (publishers) and whep (viewers)."}, []string{"kind"}),
		webrtcViewerSkips: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_webrtc_viewer_skips_total",
			Help: "Times a WebRTC viewer fell behind and skipped to the next keyframe."}),
		keyframeRequests: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamgate_webrtc_keyframe_requests_total",
			Help: "Keyframe requests (PLI) sent to WebRTC publishers: when a fragment is due, or a viewer lost the picture."}),
	}
	if reg != nil {
		reg.MustRegister(m.publishers, m.rtspConns, m.rtspReaders, m.fragments, m.fragmentBytes, m.frames, m.visibleSeconds, m.fragmentsLost,
			m.decodeErrors, m.packetsLost, m.readerDrops, m.backpressure, m.storeSeconds, m.sourceUp, m.sourceRetries,
			m.webrtcSessions, m.webrtcViewerSkips, m.keyframeRequests)
	}
	return m
}
