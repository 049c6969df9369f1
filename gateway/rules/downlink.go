package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamgate/streamgate/gateway/sql"
	"github.com/streamgate/streamgate/mqtt"
	"github.com/streamgate/streamgate/streamstore"
)

// DownlinkConfig is a topic rule's reverse: the records of a stream are
// published to MQTT, so analytics results and commands reach devices.
type DownlinkConfig struct {
	Stream string `yaml:"stream"`
	// Topic is a template over the record: ${partitionKey()},
	// ${sequenceNumber()} and the fields of its data when that is JSON,
	// e.g. "devices/${partitionKey()}/commands".
	Topic  string `yaml:"topic"`
	QoS    byte   `yaml:"qos"`
	Retain bool   `yaml:"retain"`
	// Start is where a new downlink begins: "latest" (default) or
	// "trim_horizon". After that it resumes where it stopped (a checkpoint
	// per shard, kept with the stream's metadata).
	Start string `yaml:"start"`
}

// Downlinks run the configured downlinks until stopped.
type Downlinks struct {
	store  *streamstore.Store
	pub    Publisher
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sent   *prometheus.CounterVec
	errs   *prometheus.CounterVec
}

type downlink struct {
	name  string
	cfg   DownlinkConfig
	topic *template
}

// ValidateDownlink checks a downlink's configuration.
func ValidateDownlink(cfg DownlinkConfig) error {
	if cfg.Stream == "" || cfg.Topic == "" || cfg.QoS > 2 {
		return errors.New("want stream, topic and qos 0-2")
	}
	if s := strings.ToLower(cfg.Start); s != "" && s != "latest" && s != "trim_horizon" {
		return fmt.Errorf("start %q: want latest or trim_horizon", cfg.Start)
	}
	_, err := parseTemplate(cfg.Topic)
	return err
}

// StartDownlinks starts one follower per shard of each downlink's stream.
func StartDownlinks(store *streamstore.Store, pub Publisher, cfgs map[string]DownlinkConfig, log *slog.Logger, reg prometheus.Registerer) (*Downlinks, error) {
	ctx, cancel := context.WithCancel(context.Background())
	d := &Downlinks{store: store, pub: pub, log: log, cancel: cancel,
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_mqtt_downlink_messages_total",
			Help: "Records published to MQTT by a downlink."}, []string{"downlink"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_mqtt_downlink_errors_total",
			Help: "Records a downlink could not publish (a topic template that does not apply, a refused publish)."}, []string{"downlink"})}
	if reg != nil {
		reg.MustRegister(d.sent, d.errs)
	}
	for name, cfg := range cfgs {
		t, err := parseTemplate(cfg.Topic)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("mqtt.downlinks.%s: %w", name, err)
		}
		dl := &downlink{name: name, cfg: cfg, topic: t}
		d.wg.Add(1)
		go d.run(ctx, dl)
	}
	return d, nil
}

// Close stops the downlinks (their checkpoints are already saved).
func (d *Downlinks) Close() {
	d.cancel()
	d.wg.Wait()
}

// run follows every shard of the stream; shards that appear (resharding)
// are picked up on the next look.
func (d *Downlinks) run(ctx context.Context, dl *downlink) {
	defer d.wg.Done()
	following := map[string]bool{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		wait := time.Second // until the stream exists
		if info, err := d.store.Stream(dl.cfg.Stream); err == nil {
			wait = 5 * time.Second
			for _, sh := range info.Shards {
				if !following[sh.ID] {
					following[sh.ID] = true
					wg.Add(1)
					go func() {
						defer wg.Done()
						d.follow(ctx, dl, sh.ID)
					}()
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// group names a downlink's checkpoints.
func (dl *downlink) group() string { return "mqtt-downlink/" + dl.name }

// follow publishes a shard's records in order, saving a checkpoint after
// each batch: after a restart the downlink resumes there (records of the
// last batch may be published again: at least once).
func (d *Downlinks) follow(ctx context.Context, dl *downlink, shard string) {
	name := dl.cfg.Stream
	pos := streamstore.Position{Type: streamstore.Latest}
	if strings.EqualFold(dl.cfg.Start, "trim_horizon") {
		pos.Type = streamstore.TrimHorizon
	}
	if cp, _ := d.store.Checkpoint(dl.group(), name, shard); cp != "" {
		if seq, err := streamstore.ParseSeq(cp); err == nil {
			pos = streamstore.Position{Type: streamstore.AfterSequence, Seq: seq}
		}
	}
	next, err := d.store.Seek(name, shard, pos)
	if err != nil {
		d.log.Warn("downlink cannot start on a shard", "downlink", dl.name, "shard", shard, "err", err)
		return
	}
	for {
		changed, err := d.store.Changed(name, shard)
		if err != nil {
			return // the stream or shard is gone
		}
		res, err := d.store.Read(name, shard, next, 500, 4<<20)
		if err != nil && !errors.Is(err, streamstore.ErrTrimmed) {
			return
		}
		if errors.Is(err, streamstore.ErrTrimmed) {
			next, _ = d.store.Seek(name, shard, streamstore.Position{Type: streamstore.TrimHorizon})
			continue
		}
		for _, rec := range res.Records {
			d.publish(dl, rec)
		}
		if n := len(res.Records); n > 0 {
			if err := d.store.SetCheckpoint(dl.group(), name, shard, res.Records[n-1].Seq.String()); err != nil {
				d.log.Warn("downlink checkpoint not saved", "downlink", dl.name, "err", err)
			}
		}
		next = res.Next
		if res.EndOfShard {
			return
		}
		if len(res.Records) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// publish sends one record to its topic.
func (d *Downlinks) publish(dl *downlink, rec streamstore.Record) {
	env := &recordEnv{msgEnv: *newMsgEnv(&mqtt.Message{Payload: rec.Data}), rec: rec}
	topic, err := dl.topic.render(env)
	if err == nil {
		err = d.pub.Publish(topic, rec.Data, dl.cfg.Retain, dl.cfg.QoS)
	}
	if err != nil {
		d.errs.WithLabelValues(dl.name).Inc()
		d.log.Warn("downlink record not published", "downlink", dl.name, "seq", rec.Seq.String(), "err", err)
		return
	}
	d.sent.WithLabelValues(dl.name).Inc()
}

// recordEnv is what a downlink's topic template sees: the record's data
// fields, partitionKey() and sequenceNumber().
type recordEnv struct {
	msgEnv
	rec streamstore.Record
}

func (e *recordEnv) Call(name string, args []any) (any, bool, error) {
	switch name {
	case "partitionkey":
		return e.rec.PartitionKey, true, nil
	case "sequencenumber":
		return e.rec.Seq.String(), true, nil
	case "newuuid":
		return uuid.NewString(), true, nil
	}
	return nil, false, nil
}

var _ sql.Env = (*recordEnv)(nil)
