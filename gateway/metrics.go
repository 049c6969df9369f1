package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamgate/streamgate/streamstore"
)

// storeMetrics exposes the shard log's health: fsync latency, disk use and
// retention deletions.
type storeMetrics struct {
	reg       prometheus.Registerer
	fsync     prometheus.Histogram
	retention *prometheus.CounterVec
	retained  *prometheus.CounterVec
}

func newStoreMetrics(reg prometheus.Registerer) *storeMetrics {
	m := &storeMetrics{
		reg: reg,
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "streamgate_fsync_seconds",
			Help: "Latency of segment fsyncs (each may cover many writes).", Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16)}),
		retention: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_retention_deleted_segments_total",
			Help: "Segments deleted by retention or disk budget, by stream."}, []string{"stream"}),
		retained: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_retention_deleted_bytes_total",
			Help: "Bytes deleted by retention or disk budget, by stream."}, []string{"stream"}),
	}
	reg.MustRegister(m.fsync, m.retention, m.retained)
	return m
}

func (m *storeMetrics) observeFsync(d time.Duration) { m.fsync.Observe(d.Seconds()) }

func (m *storeMetrics) observeRetention(stream string, bytes int64) {
	m.retention.WithLabelValues(stream).Inc()
	m.retained.WithLabelValues(stream).Add(float64(bytes))
}

// watchUsage reports disk use per stream at scrape time.
func (m *storeMetrics) watchUsage(s *streamstore.Store) {
	m.reg.MustRegister(usageCollector{s})
}

type usageCollector struct{ s *streamstore.Store }

var (
	usageDesc = prometheus.NewDesc("streamgate_disk_bytes", "Bytes of segments and indexes on disk, by stream.", []string{"stream"}, nil)
	totalDesc = prometheus.NewDesc("streamgate_disk_bytes_total", "Bytes of all streams on disk.", nil, nil)
)

func (c usageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- usageDesc; ch <- totalDesc }

func (c usageCollector) Collect(ch chan<- prometheus.Metric) {
	per, total := c.s.Usage()
	for name, b := range per {
		ch <- prometheus.MustNewConstMetric(usageDesc, prometheus.GaugeValue, float64(b), name)
	}
	ch <- prometheus.MustNewConstMetric(totalDesc, prometheus.GaugeValue, float64(total))
}
