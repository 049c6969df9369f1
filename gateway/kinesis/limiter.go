package kinesis

import (
	"time"

	"github.com/streamgate/streamgate/streamstore"
)

// limiter is a token bucket for one shard's writes (records and bytes), with
// a one-second burst like a provisioned shard.
type limiter struct {
	records, bytes float64
	last           time.Time
}

func (a *API) shardFor(name string, e streamstore.Entry) string {
	id, err := a.store.ShardFor(name, e.PartitionKey, e.ExplicitHashKey)
	if err != nil {
		return "shard"
	}
	return id
}

// throttleEach splits entries into those within their shard's write limit and
// marks the others. With no limit configured, everything passes.
func (a *API) throttleEach(name string, entries []streamstore.Entry) ([]streamstore.Entry, []bool) {
	lim := a.opts.ShardWriteLimit
	if lim == nil {
		return entries, nil
	}
	now := a.opts.Now()
	throttled := make([]bool, len(entries))
	allowed := entries[:0:0]
	a.limitMu.Lock()
	defer a.limitMu.Unlock()
	for i, e := range entries {
		key := name + "/" + a.shardFor(name, e)
		l := a.limiters[key]
		if l == nil {
			l = &limiter{records: float64(lim.RecordsPerSecond), bytes: float64(lim.BytesPerSecond), last: now}
			a.limiters[key] = l
		}
		dt := now.Sub(l.last).Seconds()
		l.last = now
		l.records = min(float64(lim.RecordsPerSecond), l.records+dt*float64(lim.RecordsPerSecond))
		l.bytes = min(float64(lim.BytesPerSecond), l.bytes+dt*float64(lim.BytesPerSecond))
		size := float64(len(e.Data) + len(e.PartitionKey))
		if l.records < 1 || l.bytes < size {
			throttled[i] = true
			continue
		}
		l.records--
		l.bytes -= size
		allowed = append(allowed, e)
	}
	return allowed, throttled
}
