// Package rules routes MQTT messages into streams: IoT-Core-style topic
// rules, and the appender that makes the records durable in batches.
package rules

import (
	"errors"
	"sync"

	"github.com/streamgate/streamgate/mqtt"
	"github.com/streamgate/streamgate/streamstore"
)

// Appender writes records to streams in batches. Callers hand over one
// record and a callback; a few goroutines per stream each append whatever
// arrived while their previous batch was being made durable, so one group
// commit acknowledges the messages of many connections at once. Records
// are spread over the goroutines by partition key: records of one key keep
// their order, and the goroutines share the CPU work and overlap fsyncs.
type Appender struct {
	store *streamstore.Store

	mu      sync.Mutex
	streams map[string][]chan pendingRecord
	closed  bool
	wg      sync.WaitGroup
}

type pendingRecord struct {
	e    streamstore.Entry
	done func(error)
}

// Batching bounds: a full queue holds up the callers (back-pressure to the
// publishing clients), never drops.
const (
	appendQueue = 8192
	maxBatch    = 4096
	// appendWorkers per stream: enough to keep two cores and a disk busy.
	appendWorkers = 4
)

// NewAppender returns an appender over the store.
func NewAppender(store *streamstore.Store) *Appender {
	return &Appender{store: store, streams: map[string][]chan pendingRecord{}}
}

// Append queues a record for a stream; done is called with nil once it is
// durable, or with why it was not (mqtt.ErrQuotaExceeded when the store is
// out of space or budget).
func (a *Appender) Append(stream string, e streamstore.Entry, done func(error)) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		done(streamstore.ErrClosed)
		return
	}
	workers := a.streams[stream]
	if workers == nil {
		for range appendWorkers {
			ch := make(chan pendingRecord, appendQueue)
			workers = append(workers, ch)
			a.wg.Add(1)
			go a.run(stream, ch)
		}
		a.streams[stream] = workers
	}
	a.mu.Unlock()
	workers[keyHash(e.PartitionKey)%appendWorkers] <- pendingRecord{e: e, done: done}
}

// run appends its share of a stream's records in arrival order, a batch at
// a time.
func (a *Appender) run(stream string, ch chan pendingRecord) {
	defer a.wg.Done()
	batch := make([]pendingRecord, 0, maxBatch)
	entries := make([]streamstore.Entry, 0, maxBatch)
	for first := range ch {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-ch:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		entries = entries[:0]
		for _, r := range batch {
			entries = append(entries, r.e)
		}
		res, err := a.store.Append(stream, entries)
		for i, r := range batch {
			e := err
			if e == nil {
				e = res[i].Err
			}
			r.done(refusal(e))
		}
		clear(batch)
	}
}

// keyHash is FNV-1a: cheap, and the same key always picks the same worker.
func keyHash(key string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return h
}

// refusal maps a store error to what a publisher is told.
func refusal(err error) error {
	if errors.Is(err, streamstore.ErrNoSpace) || errors.Is(err, streamstore.ErrLimit) {
		return errors.Join(mqtt.ErrQuotaExceeded, err)
	}
	return err
}

// Close stops taking records and waits for the queued ones.
func (a *Appender) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	for _, workers := range a.streams {
		for _, ch := range workers {
			close(ch)
		}
	}
	a.mu.Unlock()
	a.wg.Wait()
}
