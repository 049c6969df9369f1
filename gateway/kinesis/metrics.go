package kinesis

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamgate/streamgate/streamstore"
)

// Metrics are the Kinesis API's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	inRecords   *prometheus.CounterVec
	inBytes     *prometheus.CounterVec
	outRecords  *prometheus.CounterVec
	outBytes    *prometheus.CounterVec
	putLatency  *prometheus.HistogramVec
	getLatency  *prometheus.HistogramVec
	iteratorAge *prometheus.GaugeVec
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := prometheus.ExponentialBuckets(0.0001, 2, 16) // 100µs .. 3.3s
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_kinesis_requests_total",
			Help: "Kinesis API calls by operation and error code (empty for success)."}, []string{"operation", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "streamgate_kinesis_request_seconds",
			Help: "Kinesis API call latency.", Buckets: buckets}, []string{"operation"}),
		inRecords: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_incoming_records_total",
			Help: "Records written, by stream and shard."}, []string{"stream", "shard"}),
		inBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_incoming_bytes_total",
			Help: "Record data bytes written, by stream and shard."}, []string{"stream", "shard"}),
		outRecords: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_outgoing_records_total",
			Help: "Records read (GetRecords and SubscribeToShard), by stream and shard."}, []string{"stream", "shard"}),
		outBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_outgoing_bytes_total",
			Help: "Record data bytes read, by stream and shard."}, []string{"stream", "shard"}),
		putLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "streamgate_put_latency_seconds",
			Help: "Time to append and make durable one PutRecord(s) call.", Buckets: buckets}, []string{"stream"}),
		getLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "streamgate_get_latency_seconds",
			Help: "Time to read one GetRecords batch.", Buckets: buckets}, []string{"stream"}),
		iteratorAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "streamgate_iterator_age_milliseconds",
			Help: "Age of the last record read from each shard."}, []string{"stream", "shard"}),
	}
	reg.MustRegister(m.requests, m.latency, m.inRecords, m.inBytes, m.outRecords, m.outBytes, m.putLatency, m.getLatency, m.iteratorAge)
	return m
}

func (m *Metrics) observeCall(op, code string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(op, code).Inc()
	m.latency.WithLabelValues(op).Observe(d.Seconds())
}

func (m *Metrics) recordPut(stream string, res []streamstore.Appended, entries []streamstore.Entry, d time.Duration) {
	if m == nil {
		return
	}
	m.putLatency.WithLabelValues(stream).Observe(d.Seconds())
	// Count per shard with one label lookup per shard, not per record.
	type tally struct{ records, bytes int }
	var shards []string
	var tallies []tally
	for i, r := range res {
		if r.Err != nil {
			continue
		}
		k := 0
		for k < len(shards) && shards[k] != r.ShardID {
			k++
		}
		if k == len(shards) {
			shards = append(shards, r.ShardID)
			tallies = append(tallies, tally{})
		}
		tallies[k].records++
		tallies[k].bytes += len(entries[i].Data)
	}
	for k, id := range shards {
		m.inRecords.WithLabelValues(stream, id).Add(float64(tallies[k].records))
		m.inBytes.WithLabelValues(stream, id).Add(float64(tallies[k].bytes))
	}
}

func (m *Metrics) recordGet(stream, shard string, records, bytes int, recs []streamstore.Record, d time.Duration) {
	if m == nil {
		return
	}
	if d > 0 {
		m.getLatency.WithLabelValues(stream).Observe(d.Seconds())
	}
	m.outRecords.WithLabelValues(stream, shard).Add(float64(records))
	m.outBytes.WithLabelValues(stream, shard).Add(float64(bytes))
	if n := len(recs); n > 0 {
		m.iteratorAge.WithLabelValues(stream, shard).Set(float64(time.Since(time.Unix(0, recs[n-1].Arrival)).Milliseconds()))
	}
}
