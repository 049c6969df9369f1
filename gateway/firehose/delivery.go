package firehose

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"
	"github.com/streamgate/streamgate/streamstore"
)

// running is a delivery stream being delivered: one follower per shard of
// its source.
type running struct {
	ds     *DeliveryStream
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// sourceStream is the stream a delivery stream reads: its own (Direct PUT)
// or the Kinesis stream named by its source ARN.
func (d *DeliveryStream) sourceStream() string {
	if d.Type == "KinesisStreamAsSource" {
		_, name, _ := strings.Cut(d.Source.KinesisStreamARN, ":stream/")
		return name
	}
	return BackingStream(d.Name)
}

// BackingStream is the stream a Direct PUT delivery stream's records are
// kept in until they are delivered (rules and analytics outputs append
// there too).
func BackingStream(name string) string { return "firehose/" + name }

// group names a delivery stream's checkpoints.
func (d *DeliveryStream) group() string { return "firehose/" + d.Name }

// destination is what deliveries need of the configuration.
type destination struct {
	s3       *ExtendedS3Destination // the S3 destination, or the HTTP endpoint's backup
	http     *HTTPEndpointDest
	sizeMax  int
	interval time.Duration
	procs    procs
	dynamic  bool
	backup   *ExtendedS3Destination // S3BackupMode Enabled: where source records are copied
	retry    time.Duration          // HTTP: how long to retry before the backup
	conv     *conversion            // JSON -> Parquet, nil when off
}

func (d *DeliveryStream) destination(schemas map[string][]Column) destination {
	var dst destination
	hints := (*BufferingHints)(nil)
	var pc *ProcessingConfiguration
	if d.ExtendedS3 != nil {
		dst.s3, hints, pc = d.ExtendedS3, d.ExtendedS3.BufferingHints, d.ExtendedS3.ProcessingConfiguration
		dst.conv, _ = parseConversion(d.ExtendedS3.DataFormatConversion, schemas) // checked at create and update
		if d.ExtendedS3.S3BackupMode == "Enabled" {
			dst.backup = d.ExtendedS3.S3BackupConfiguration
		}
		dst.dynamic = d.ExtendedS3.DynamicPartitioning != nil && d.ExtendedS3.DynamicPartitioning.Enabled != nil && *d.ExtendedS3.DynamicPartitioning.Enabled
	} else {
		dst.http, dst.s3, hints, pc = d.HTTPEndpoint, d.HTTPEndpoint.S3Configuration, d.HTTPEndpoint.BufferingHints, d.HTTPEndpoint.ProcessingConfiguration
		dst.retry = 300 * time.Second
		if ro := d.HTTPEndpoint.RetryOptions; ro != nil && ro.DurationInSeconds != nil {
			dst.retry = time.Duration(*ro.DurationInSeconds) * time.Second
		}
	}
	dst.sizeMax, dst.interval = 5<<20, 300*time.Second
	if hints != nil && hints.SizeInMBs != nil {
		dst.sizeMax, dst.interval = *hints.SizeInMBs<<20, time.Duration(*hints.IntervalInSeconds)*time.Second
	}
	dst.procs, _ = processors(pc) // validated at create and update
	return dst
}

// batch is what one follower buffered: parts by partition, and the last
// sequence number they cover.
type batch struct {
	parts   map[string]*part
	backup  *part // the source records as they came, for S3BackupMode Enabled
	size    int
	records int
	started time.Time // when the first record was buffered
	oldest  int64     // arrival of the oldest record (Unix ns)
	lastSeq string
}

// part is the records of one object: one prefix (partition keys), or an
// error output.
type part struct {
	keys    map[string]string
	errType string // "" for data; else the error output type
	data    bytes.Buffer
	records [][]byte         // for the HTTP endpoint: the records one by one
	rows    []map[string]any // for Parquet conversion: the records as rows
	count   int
	oldest  int64
}

func newBatch() *batch { return &batch{parts: map[string]*part{}} }

// partBuffers recycles the parts' buffers: a flush writes them out, and the
// next batch fills them again without growing new ones from nothing.
var partBuffers sync.Pool

// release returns the batch's buffers once its objects are written.
func (b *batch) release() {
	for _, p := range b.parts {
		buf := p.data
		buf.Reset()
		partBuffers.Put(&buf)
	}
}

func (b *batch) add(partKey string, keys map[string]string, errType string, data []byte, arrival int64, keepRecords bool) {
	p := b.parts[partKey]
	if p == nil {
		p = &part{keys: keys, errType: errType, oldest: arrival}
		if buf, ok := partBuffers.Get().(*bytes.Buffer); ok {
			p.data = *buf
		}
		b.parts[partKey] = p
	}
	p.data.Write(data)
	if keepRecords {
		p.records = append(p.records, data)
	}
	p.count++
	if b.records == 0 {
		b.started, b.oldest = time.Now(), arrival
	}
	b.records++
	b.size += len(data)
}

// follow delivers one shard of the source until ctx ends.
func (s *Service) follow(ctx context.Context, r *running, shard string) {
	ds := r.ds
	stream := ds.sourceStream()
	dst := ds.destination(s.schemas)
	pos := streamstore.Position{Type: streamstore.TrimHorizon}
	if ds.Type == "KinesisStreamAsSource" {
		pos = streamstore.Position{Type: streamstore.AtTimestamp, Time: ds.Created}
	}
	if cp, _ := s.store.Checkpoint(ds.group(), stream, shard); cp != "" {
		if seq, err := streamstore.ParseSeq(cp); err == nil {
			pos = streamstore.Position{Type: streamstore.AfterSequence, Seq: seq}
		}
	}
	next, err := s.store.Seek(stream, shard, pos)
	if err != nil {
		s.log.Warn("delivery cannot start on a shard", "delivery_stream", ds.Name, "shard", shard, "err", err)
		return
	}
	b := newBatch()
	for {
		changed, err := s.store.Changed(stream, shard)
		if err != nil {
			return
		}
		res, err := s.store.Read(stream, shard, next, 10000, 8<<20)
		if errors.Is(err, streamstore.ErrTrimmed) {
			s.log.Error("records expired from the source before delivery", "delivery_stream", ds.Name, "shard", shard)
			next, _ = s.store.Seek(stream, shard, streamstore.Position{Type: streamstore.TrimHorizon})
			continue
		}
		if err != nil {
			return
		}
		if dst.procs.lambda != "" && len(res.Records) > 0 {
			for _, t := range s.transform(ctx, ds, dst.procs, res.Records) {
				s.bufferTransformed(ds, dst, b, t)
			}
		} else {
			for _, rec := range res.Records {
				s.buffer(ds, dst, b, rec)
			}
		}
		next = res.Next
		if b.records > 0 {
			s.m.freshness.WithLabelValues(ds.Name).Set(time.Since(time.Unix(0, b.oldest)).Seconds())
		} else {
			s.m.freshness.WithLabelValues(ds.Name).Set(0)
		}
		if b.records > 0 && (b.size >= dst.sizeMax || time.Since(b.started) >= dst.interval || res.EndOfShard) {
			if err := s.flush(ctx, ds, dst, b); err != nil {
				return // stopped: what was not delivered is read again from the checkpoint
			}
			if err := s.store.SetCheckpoint(ds.group(), stream, shard, b.lastSeq); err != nil {
				s.log.Warn("delivery checkpoint not saved", "delivery_stream", ds.Name, "err", err)
			}
			b.release()
			b = newBatch()
			continue
		}
		if res.EndOfShard {
			return
		}
		if len(res.Records) > 0 && b.size < dst.sizeMax {
			continue // drain what is there before waiting
		}
		wait := time.Hour
		if b.records > 0 {
			wait = time.Until(b.started.Add(dst.interval))
		}
		timer := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// buffer processes one record into the batch.
func (s *Service) buffer(ds *DeliveryStream, dst destination, b *batch, rec streamstore.Record) {
	s.bufferTransformed(ds, dst, b, transformed{rec: rec, data: rec.Data})
}

// bufferTransformed buffers a record after the transformation function (or
// as it came): dropped records go nowhere, failed ones to the error output.
func (s *Service) bufferTransformed(ds *DeliveryStream, dst destination, b *batch, t transformed) {
	rec := t.rec
	b.lastSeq = rec.Seq.String()
	if dst.backup != nil {
		if b.backup == nil {
			b.backup = &part{oldest: rec.Arrival}
		}
		b.backup.data.Write(rec.Data)
		b.backup.count++
	}
	if t.drop {
		return
	}
	fail := func(code, msg string) {
		doc, _ := json.Marshal(map[string]any{"attemptsMade": 1, "arrivalTimestamp": rec.Arrival / 1e6, "errorCode": code,
			"errorMessage": msg, "attemptEndingTimestamp": time.Now().UnixMilli(), "rawData": base64.StdEncoding.EncodeToString(rec.Data),
			"lambdaArn": dst.procs.lambdaARN})
		b.add("!processing-failed", nil, "processing-failed", append(doc, '\n'), rec.Arrival, false)
		s.m.failed.WithLabelValues(ds.Name).Inc()
	}
	if t.failed != "" {
		fail("Lambda.ProcessingFailed", t.failed)
		return
	}
	data, keys, err := dst.procs.apply(t.data)
	if err != nil {
		fail("Processor.Failed", err.Error())
		return
	}
	if t.keys != nil {
		if keys == nil {
			keys = map[string]string{}
		}
		for k, v := range t.keys {
			keys[k] = v // partitionKeyFromLambda
		}
	}
	var row map[string]any
	if dst.conv != nil {
		var err error
		if row, err = dst.conv.row(data); err != nil {
			doc, _ := json.Marshal(map[string]any{"attemptsMade": 1, "arrivalTimestamp": rec.Arrival / 1e6, "lastErrorCode": "DataFormatConversion.MalformedData",
				"lastErrorMessage": err.Error(), "attemptEndingTimestamp": time.Now().UnixMilli(), "rawData": base64.StdEncoding.EncodeToString(rec.Data),
				"sequenceNumber": rec.Seq.String(), "dataCatalogTable": map[string]string{"tableName": dst.conv.table}})
			b.add("!format-conversion-failed", nil, "format-conversion-failed", append(doc, '\n'), rec.Arrival, false)
			s.m.failed.WithLabelValues(ds.Name).Inc()
			return
		}
	}
	partKey := ""
	if dst.dynamic && len(keys) > 0 {
		names := make([]string, 0, len(keys))
		for k := range keys {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			partKey += k + "=" + keys[k] + "\x00"
		}
	}
	b.add(partKey, keys, "", data, rec.Arrival, dst.http != nil)
	if row != nil {
		p := b.parts[partKey]
		p.rows = append(p.rows, row)
	}
}

// flush delivers every part of a batch; it returns only when all are
// delivered (retrying with backoff, as long as it takes) or ctx ends.
func (s *Service) flush(ctx context.Context, ds *DeliveryStream, dst destination, b *batch) error {
	keys := make([]string, 0, len(b.parts))
	for k := range b.parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := b.parts[k]
		var err error
		switch {
		case p.errType != "":
			err = s.putS3(ctx, ds, dst.s3, p, p.errType)
		case dst.http != nil:
			err = s.postHTTP(ctx, ds, dst, p)
		default:
			err = s.putS3(ctx, ds, dst.s3, p, "")
		}
		if err != nil {
			return err
		}
	}
	if b.backup != nil {
		// The source records, before processing, to the backup bucket.
		if err := s.putS3(ctx, ds, dst.backup, b.backup, ""); err != nil {
			return err
		}
	}
	return nil
}

// retry runs op with exponential backoff (1 s doubling to 30 s) until it
// succeeds, ctx ends, or (limit > 0) limit has passed.
func retry(ctx context.Context, limit time.Duration, op func() error) error {
	start, wait := time.Now(), time.Second
	for {
		err := op()
		if err == nil {
			return nil
		}
		if limit > 0 && time.Since(start)+wait > limit {
			return err
		}
		select {
		case <-ctx.Done():
			return errStopped
		case <-time.After(wait):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

// putS3 writes a part as one object under its evaluated prefix.
func (s *Service) putS3(ctx context.Context, ds *DeliveryStream, d *ExtendedS3Destination, p *part, errType string) error {
	prefix := d.Prefix
	if errType != "" {
		prefix = d.ErrorOutputPrefix
		if prefix == "" {
			prefix = d.Prefix + errType + "/!{timestamp:yyyy/MM/dd/HH/}"
		}
	}
	t := time.Unix(0, p.oldest)
	evaluated, err := evalPrefix(prefix, t, p.keys, errType)
	if err != nil {
		return err // validated at create: not reachable for good configurations
	}
	format := d.CompressionFormat
	if errType != "" {
		format = "UNCOMPRESSED"
	}
	var body []byte
	var ext string
	if conv, _ := parseConversion(d.DataFormatConversion, s.schemas); conv != nil && errType == "" && p.rows != nil {
		ext = ".parquet"
		if body, err = conv.write(p.rows); err != nil {
			return err
		}
	} else if body, ext, err = compress(format, p.data.Bytes()); err != nil {
		return err
	}
	if d.FileExtension != "" {
		ext = d.FileExtension
	}
	key := evaluated + objectName(ds.Name, ds.Version, time.Now(), ext)
	bucket := bucketName(d.BucketARN)
	start := time.Now()
	err = retry(ctx, 0, func() error {
		err := s.buckets.Put(ctx, bucket, key, body)
		if err != nil {
			s.m.failures.WithLabelValues(ds.Name, "s3").Inc()
			s.log.Warn("delivery to S3 failed; retrying", "delivery_stream", ds.Name, "bucket", bucket, "key", key, "err", err)
		}
		return err
	})
	if err != nil {
		return err
	}
	s.m.success.WithLabelValues(ds.Name, "s3").Inc()
	s.m.records.WithLabelValues(ds.Name, "s3").Add(float64(p.count))
	s.m.bytes.WithLabelValues(ds.Name, "s3").Add(float64(len(body)))
	s.log.Debug("delivered", "delivery_stream", ds.Name, "bucket", bucket, "key", key, "records", p.count, "bytes", len(body), "took", time.Since(start))
	return nil
}

// postHTTP delivers a part with the Firehose HTTP endpoint contract; after
// RetryOptions.DurationInSeconds of failures the records go to the S3
// backup under the http-endpoint-failed error output.
func (s *Service) postHTTP(ctx context.Context, ds *DeliveryStream, dst destination, p *part) error {
	h := dst.http
	requestID := uuid.NewString()
	recs := make([]map[string]string, len(p.records))
	for i, r := range p.records {
		recs[i] = map[string]string{"data": base64.StdEncoding.EncodeToString(r)}
	}
	var lastErr error
	err := retry(ctx, dst.retry, func() error {
		body, _ := json.Marshal(map[string]any{"requestId": requestID, "timestamp": time.Now().UnixMilli(), "records": recs})
		gz := h.RequestConfiguration != nil && h.RequestConfiguration.ContentEncoding == "GZIP"
		if gz {
			var b bytes.Buffer
			w := gzip.NewWriter(&b)
			w.Write(body)
			w.Close()
			body = b.Bytes()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.EndpointConfiguration.URL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Amz-Firehose-Protocol-Version", "1.0")
		req.Header.Set("X-Amz-Firehose-Request-Id", requestID)
		req.Header.Set("X-Amz-Firehose-Source-Arn", s.arn(ds.Name))
		if h.EndpointConfiguration.AccessKey != "" {
			req.Header.Set("X-Amz-Firehose-Access-Key", h.EndpointConfiguration.AccessKey)
		}
		if h.RequestConfiguration != nil && len(h.RequestConfiguration.CommonAttributes) > 0 {
			attrs := map[string]string{}
			for _, a := range h.RequestConfiguration.CommonAttributes {
				attrs[a.AttributeName] = a.AttributeValue
			}
			b, _ := json.Marshal(map[string]any{"commonAttributes": attrs})
			req.Header.Set("X-Amz-Firehose-Common-Attributes", string(b))
		}
		if gz {
			req.Header.Set("Content-Encoding", "gzip")
		}
		res, err := s.http.Do(req)
		if err != nil {
			lastErr = err
		} else {
			msg, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			lastErr = fmt.Errorf("HTTP %d: %s", res.StatusCode, strings.TrimSpace(string(msg)))
			if res.StatusCode == http.StatusRequestEntityTooLarge {
				return nil // permanent: handled below as a failure
			}
		}
		s.m.failures.WithLabelValues(ds.Name, "http").Inc()
		s.log.Warn("delivery to the HTTP endpoint failed; retrying", "delivery_stream", ds.Name, "err", lastErr)
		return lastErr
	})
	if errors.Is(err, errStopped) {
		return err
	}
	if err == nil && (lastErr == nil || !strings.HasPrefix(lastErr.Error(), "HTTP 413")) {
		s.m.success.WithLabelValues(ds.Name, "http").Inc()
		s.m.records.WithLabelValues(ds.Name, "http").Add(float64(p.count))
		if h.S3BackupMode == "AllData" {
			return s.putS3(ctx, ds, dst.s3, p, "")
		}
		return nil
	}
	// Out of retries: the records go to the backup bucket with the error.
	s.log.Error("HTTP endpoint delivery failed for good; records go to the S3 backup", "delivery_stream", ds.Name, "err", lastErr)
	failed := &part{oldest: p.oldest, count: p.count}
	for _, r := range p.records {
		doc, _ := json.Marshal(map[string]any{"attemptsMade": 1, "arrivalTimestamp": p.oldest / 1e6, "errorCode": "HttpEndpoint.Failed",
			"errorMessage": fmt.Sprint(lastErr), "attemptEndingTimestamp": time.Now().UnixMilli(), "rawData": base64.StdEncoding.EncodeToString(r)})
		failed.data.Write(append(doc, '\n'))
	}
	return s.putS3(ctx, ds, dst.s3, failed, "http-endpoint-failed")
}
