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
// record and a callback; one goroutine per stream appends whatever arrived
// while its previous batch was being made durable, so one group commit
// acknowledges the messages of many connections at once.
type Appender struct {
	store *streamstore.Store

	mu      sync.Mutex
	streams map[string]chan pendingRecord
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
	appendQueue = 16384
	maxBatch    = 4096
)

// NewAppender returns an appender over the store.
func NewAppender(store *streamstore.Store) *Appender {
	return &Appender{store: store, streams: map[string]chan pendingRecord{}}
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
	ch := a.streams[stream]
	if ch == nil {
		ch = make(chan pendingRecord, appendQueue)
		a.streams[stream] = ch
		a.wg.Add(1)
		go a.run(stream, ch)
	}
	a.mu.Unlock()
	ch <- pendingRecord{e: e, done: done}
}

// run appends a stream's records in arrival order, a batch at a time.
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
	for _, ch := range a.streams {
		close(ch)
	}
	a.mu.Unlock()
	a.wg.Wait()
}
