package kinesis

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream/eventstreamapi"
	"github.com/fxamacker/cbor/v2"
	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

// Subscription limits, as AWS documents them.
const (
	subscriptionLife = 5 * time.Minute
	takeoverAfter    = 5 * time.Second
	heartbeat        = 5 * time.Second
	eventMaxRecords  = 10000
	eventMaxBytes    = 2 << 20 // a consumer's per-shard read rate per second

	// answerPause delays the response headers of SubscribeToShard. smithy-go
	// (aws-sdk-go-v2) closes the request body as soon as the response headers
	// arrive, while Go's transport may still be checking that body for extra
	// bytes; the check then fails with EOF and the transport closes the
	// connection under the live event stream. Over a network the round trip
	// hides this; on loopback (a consumer on the same edge box) an immediate
	// answer lost about one stream in ten. A subscription lives 5 minutes, so
	// 10 ms per subscription costs nothing.
	answerPause = 10 * time.Millisecond
)

// subscription is a live SubscribeToShard.
type subscription struct {
	stream  string
	started time.Time
	cancel  context.CancelFunc
}

func (a *API) subscribeToShard(r *awsapi.Request) (any, error) {
	var in subscribeInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsapi.Validator
	v.Required("consumerARN", in.ConsumerARN != "")
	v.Required("shardId", in.ShardId != "")
	v.Required("startingPosition", in.StartingPosition != nil)
	if err := v.Err(); err != nil {
		return nil, err
	}
	stream, c, err := a.findConsumer(r, consumerInput{ConsumerARN: in.ConsumerARN})
	if err != nil {
		return nil, err
	}
	info, err := a.stream(stream)
	if err != nil {
		return nil, err
	}
	sh, ok := info.Shard(in.ShardId)
	if !ok {
		return nil, awsapi.Errorf(awsapi.CodeResourceNotFound, "Shard %s in stream %s under account %s does not exist", in.ShardId, stream, a.opts.Account)
	}
	sp := in.StartingPosition
	pos, err := position(sp.Type, sp.SequenceNumber, sp.Timestamp)
	if err != nil {
		return nil, err
	}
	index, err := a.store.Seek(stream, in.ShardId, pos)
	if err != nil {
		if errors.Is(err, streamstore.ErrInvalid) || errors.Is(err, streamstore.ErrTrimmed) {
			return nil, awsapi.Errorf(awsapi.CodeInvalidArgument, "Invalid StartingSequenceNumber for shard %s in stream %s under account %s.", in.ShardId, stream, a.opts.Account)
		}
		return nil, a.storeError(stream, err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), subscriptionLife)
	defer cancel()
	key := a.consumerARN(stream, c) + "/" + in.ShardId
	sub, err := a.claimSubscription(key, stream, cancel)
	if err != nil {
		return nil, err
	}
	defer a.releaseSubscription(key, sub)

	s := &eventSender{w: r.W, enc: eventstream.NewEncoder(), cbor: r.CBOR}
	time.Sleep(answerPause)
	r.W.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	r.W.WriteHeader(http.StatusOK)
	if err := s.send("initial-response", struct{}{}); err != nil {
		return awsapi.Streamed, nil
	}
	a.pump(ctx, s, stream, sh, index)
	return awsapi.Streamed, nil
}

// claimSubscription allows one subscription per consumer and shard: a second
// within 5 s is refused, a later one takes over, as on AWS.
func (a *API) claimSubscription(key, stream string, cancel context.CancelFunc) (*subscription, error) {
	a.subsMu.Lock()
	defer a.subsMu.Unlock()
	if old := a.subs[key]; old != nil {
		if a.opts.Now().Sub(old.started) < takeoverAfter {
			return nil, awsapi.Errorf(awsapi.CodeResourceInUse, "Another active subscription exists for this consumer: %s", key)
		}
		old.cancel()
	}
	sub := &subscription{stream: stream, started: a.opts.Now(), cancel: cancel}
	a.subs[key] = sub
	return sub, nil
}

// releaseSubscription forgets a finished subscription unless another took over.
func (a *API) releaseSubscription(key string, sub *subscription) {
	a.subsMu.Lock()
	defer a.subsMu.Unlock()
	if a.subs[key] == sub {
		delete(a.subs, key)
	}
}

func (a *API) endSubscriptions(stream string) {
	a.subsMu.Lock()
	defer a.subsMu.Unlock()
	for k, s := range a.subs {
		if s.stream == stream {
			s.cancel()
			delete(a.subs, k)
		}
	}
}

func (a *API) endConsumerSubscriptions(consumerARN string) {
	a.subsMu.Lock()
	defer a.subsMu.Unlock()
	for k, s := range a.subs {
		if len(k) > len(consumerARN) && k[:len(consumerARN)] == consumerARN && k[len(consumerARN)] == '/' {
			s.cancel()
			delete(a.subs, k)
		}
	}
}

// pump pushes records to the subscriber as they become durable, with an
// empty event every few seconds so the client knows the stream is alive.
func (a *API) pump(ctx context.Context, s *eventSender, stream string, sh streamstore.ShardInfo, index uint64) {
	beat := time.NewTimer(heartbeat)
	defer beat.Stop()
	first := true
	for {
		changed, err := a.store.Changed(stream, sh.ID)
		if err != nil {
			s.exception(a.storeError(stream, err))
			return
		}
		res, err := a.store.Read(stream, sh.ID, index, eventMaxRecords, eventMaxBytes)
		if err != nil {
			s.exception(a.storeError(stream, err))
			return
		}
		if len(res.Records) > 0 || res.EndOfShard || first {
			first = false
			ev := subscribeEvent{Records: make([]record, len(res.Records)), MillisBehindLatest: res.Behind.Milliseconds()}
			bytes := 0
			for i, rec := range res.Records {
				ev.Records[i] = record{SequenceNumber: rec.Seq.String(), ApproximateArrivalTimestamp: awsapi.FromUnixNano(rec.Arrival),
					Data: rec.Data, PartitionKey: rec.PartitionKey}
				bytes += len(rec.Data)
			}
			index = res.Next
			ev.ContinuationSequenceNumber = streamstore.Seq{Gen: sh.Gen, Shard: sh.Num, Index: index - 1}.String()
			if res.EndOfShard {
				info, err := a.store.Stream(stream)
				if err == nil {
					ev.ChildShards = childShards(&info, sh.ID)
				}
			}
			a.opts.Metrics.recordGet(stream, sh.ID, len(res.Records), bytes, res.Records, 0)
			if err := s.send("SubscribeToShardEvent", ev); err != nil || res.EndOfShard {
				return
			}
			if !beat.Stop() {
				select {
				case <-beat.C:
				default:
				}
			}
			beat.Reset(heartbeat)
			if len(res.Records) > 0 {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-beat.C:
			first = true // send an empty event as a heartbeat
			beat.Reset(heartbeat)
		}
	}
}

// eventSender writes AWS event-stream messages, flushing each.
type eventSender struct {
	w    http.ResponseWriter
	enc  *eventstream.Encoder
	cbor bool
}

func (s *eventSender) payload(v any) ([]byte, string, error) {
	if s.cbor {
		b, err := cbor.Marshal(v)
		return b, awsapi.ContentCBOR, err
	}
	b, err := json.Marshal(v)
	return b, "application/json", err
}

func (s *eventSender) send(eventType string, v any) error {
	body, ct, err := s.payload(v)
	if err != nil {
		return err
	}
	var msg eventstream.Message
	msg.Headers.Set(eventstreamapi.MessageTypeHeader, eventstream.StringValue(eventstreamapi.EventMessageType))
	msg.Headers.Set(eventstreamapi.EventTypeHeader, eventstream.StringValue(eventType))
	msg.Headers.Set(eventstreamapi.ContentTypeHeader, eventstream.StringValue(ct))
	msg.Payload = body
	if err := s.enc.Encode(s.w, msg); err != nil {
		return err
	}
	return http.NewResponseController(s.w).Flush()
}

// exception ends the stream with an exception event.
func (s *eventSender) exception(err error) {
	var ae *awsapi.Error
	if !errors.As(err, &ae) {
		ae = &awsapi.Error{Code: "InternalFailureException", Message: err.Error()}
	}
	body, ct, _ := s.payload(map[string]string{"message": ae.Message})
	var msg eventstream.Message
	msg.Headers.Set(eventstreamapi.MessageTypeHeader, eventstream.StringValue(eventstreamapi.ExceptionMessageType))
	msg.Headers.Set(eventstreamapi.ExceptionTypeHeader, eventstream.StringValue(ae.Code))
	msg.Headers.Set(eventstreamapi.ContentTypeHeader, eventstream.StringValue(ct))
	msg.Payload = body
	if s.enc.Encode(s.w, msg) == nil {
		http.NewResponseController(s.w).Flush()
	}
}
