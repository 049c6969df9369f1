package firehose

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

// Service is the Firehose API and the deliveries it runs.
type Service struct {
	store           *streamstore.Store
	buckets         *Buckets
	region, account string
	log             *slog.Logger
	http            *http.Client
	schemas         map[string][]Column
	m               *metrics

	mu      sync.Mutex
	running map[string]*running
	loaded  []*DeliveryStream // kept in the store, started by Start
}

type metrics struct {
	success, records, bytes, failures *prometheus.CounterVec
	failed                            *prometheus.CounterVec
	freshness                         *prometheus.GaugeVec
}

// Options configure the service.
type Options struct {
	Buckets         *Buckets
	Region, Account string
	Logger          *slog.Logger
	Metrics         prometheus.Registerer
	HTTPClient      *http.Client // for HTTP endpoint destinations
	// Schemas are the tables Parquet conversion uses, by TableName (or
	// DatabaseName.TableName).
	Schemas map[string][]Column
}

const documentKind = "delivery-stream"

// New returns the service with the delivery streams kept in the store;
// Start runs their deliveries.
func New(store *streamstore.Store, o Options) (*Service, error) {
	s := &Service{store: store, buckets: o.Buckets, region: o.Region, account: o.Account, log: o.Logger, http: o.HTTPClient,
		schemas: o.Schemas, running: map[string]*running{}}
	if s.http == nil {
		s.http = &http.Client{Timeout: 3 * time.Minute}
	}
	labels := []string{"delivery_stream", "destination"}
	s.m = &metrics{
		success: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_firehose_delivery_success_total",
			Help: "Objects (S3) or requests (HTTP) delivered (DeliveryToS3.Success)."}, labels),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_firehose_delivery_records_total",
			Help: "Records delivered (DeliveryToS3.Records)."}, labels),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_firehose_delivery_bytes_total",
			Help: "Bytes delivered, after compression (DeliveryToS3.Bytes)."}, labels),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_firehose_delivery_failures_total",
			Help: "Delivery attempts that failed and are retried."}, labels),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_firehose_processing_failed_total",
			Help: "Records that processing failed; they go to the error output."}, []string{"delivery_stream"}),
		freshness: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "streamgate_firehose_data_freshness_seconds",
			Help: "Age of the oldest record buffered and not yet delivered (DeliveryToS3.DataFreshness)."}, []string{"delivery_stream"}),
	}
	if o.Metrics != nil {
		o.Metrics.MustRegister(s.m.success, s.m.records, s.m.bytes, s.m.failures, s.m.failed, s.m.freshness)
	}
	docs, err := store.Documents(documentKind)
	if err != nil {
		return nil, err
	}
	for name, doc := range docs {
		var ds DeliveryStream
		if err := json.Unmarshal(doc, &ds); err != nil {
			return nil, fmt.Errorf("delivery stream %s: %w", name, err)
		}
		ds.Created, ds.Updated = fromEpoch(ds.CreatedUnix), fromEpoch(ds.UpdatedUnix)
		s.loaded = append(s.loaded, &ds)
		s.running[ds.Name] = &running{ds: &ds, cancel: func() {}}
	}
	return s, nil
}

// Start runs the deliveries of the delivery streams kept in the store.
func (s *Service) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ds := range s.loaded {
		s.start(ds)
	}
	s.loaded = nil
}

func fromEpoch(f float64) time.Time { return time.Unix(0, int64(f*1e9)) }

// Close stops every delivery; undelivered records stay in the log.
func (s *Service) Close() {
	s.mu.Lock()
	rs := make([]*running, 0, len(s.running))
	for _, r := range s.running {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	for _, r := range rs {
		r.cancel()
		r.wg.Wait()
	}
}

// start runs a delivery stream's followers (under s.mu or at New).
func (s *Service) start(ds *DeliveryStream) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{ds: ds, cancel: cancel}
	s.running[ds.Name] = r
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		following := map[string]bool{}
		for {
			wait := time.Second
			if info, err := s.store.Stream(ds.sourceStream()); err == nil {
				wait = 5 * time.Second
				for _, sh := range info.Shards {
					if !following[sh.ID] {
						following[sh.ID] = true
						r.wg.Add(1)
						go func() {
							defer r.wg.Done()
							s.follow(ctx, r, sh.ID)
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
	}()
}

func (s *Service) stop(name string) {
	s.mu.Lock()
	r := s.running[name]
	delete(s.running, name)
	s.mu.Unlock()
	if r != nil {
		r.cancel()
		r.wg.Wait()
	}
}

func (s *Service) arn(name string) string {
	return "arn:aws:firehose:" + s.region + ":" + s.account + ":deliverystream/" + name
}

// AWS errors of the Firehose API.
func errNotFound(name string) error {
	return &awsapi.Error{Code: "ResourceNotFoundException", Status: http.StatusBadRequest,
		Message: fmt.Sprintf("Firehose %s under account %s not found.", name, "")}
}

func invalid(format string, a ...any) error {
	return &awsapi.Error{Code: "InvalidArgumentException", Status: http.StatusBadRequest, Message: fmt.Sprintf(format, a...)}
}

// Service returns the API (AWS JSON 1.1, Firehose_20150804).
func (s *Service) Service() *awsapi.Service {
	return &awsapi.Service{Prefix: "Firehose_20150804", SigningName: "firehose", Action: "firehose", Ops: map[string]awsapi.Op{
		"CreateDeliveryStream":          s.create,
		"DescribeDeliveryStream":        s.describe,
		"ListDeliveryStreams":           s.list,
		"DeleteDeliveryStream":          s.delete,
		"PutRecord":                     s.putRecord,
		"PutRecordBatch":                s.putRecordBatch,
		"UpdateDestination":             s.updateDestination,
		"TagDeliveryStream":             s.tag,
		"UntagDeliveryStream":           s.untag,
		"ListTagsForDeliveryStream":     s.listTags,
		"StartDeliveryStreamEncryption": func(r *awsapi.Request) (any, error) { return s.encryption(r, "ENABLED") },
		"StopDeliveryStreamEncryption":  func(r *awsapi.Request) (any, error) { return s.encryption(r, "DISABLED") },
	}}
}

// SourceStream is the stream a delivery stream reads its records from (an
// analytics application may read it too).
func (s *Service) SourceStream(name string) (string, error) {
	ds, ok := s.get(name)
	if !ok {
		return "", fmt.Errorf("delivery stream %s does not exist", name)
	}
	return ds.sourceStream(), nil
}

func (s *Service) get(name string) (*DeliveryStream, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.running[name]
	if !ok {
		return nil, false
	}
	return r.ds, true
}

func (s *Service) save(ds *DeliveryStream) error {
	ds.CreatedUnix, ds.UpdatedUnix = float64(ds.Created.UnixNano())/1e9, float64(ds.Updated.UnixNano())/1e9
	doc, err := json.Marshal(ds)
	if err != nil {
		return err
	}
	return s.store.PutDocument(documentKind, ds.Name, doc)
}

type createInput struct {
	DeliveryStream
	S3Destination *ExtendedS3Destination `json:"S3DestinationConfiguration,omitempty"`
}

func (s *Service) create(r *awsapi.Request) (any, error) {
	var in createInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	ds := in.DeliveryStream
	if err := r.Authorize(s.arn(ds.Name)); err != nil {
		return nil, err
	}
	if ds.Type == "" {
		ds.Type = "DirectPut"
	}
	if ds.ExtendedS3 == nil && in.S3Destination != nil {
		ds.ExtendedS3 = in.S3Destination // the legacy S3 destination is a subset
	}
	if err := s.validate(&ds); err != nil {
		return nil, err
	}
	if ds.Type == "KinesisStreamAsSource" {
		if _, err := s.store.Stream(ds.sourceStream()); err != nil {
			return nil, invalid("The source stream %s does not exist.", ds.Source.KinesisStreamARN)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.running[ds.Name]; exists {
		return nil, &awsapi.Error{Code: "ResourceInUseException", Status: http.StatusBadRequest,
			Message: fmt.Sprintf("Firehose %s under accountId %s already exists", ds.Name, s.account)}
	}
	if ds.Type == "DirectPut" {
		_, err := s.store.CreateStream(streamstore.StreamConfig{Name: BackingStream(ds.Name), Shards: 1, RetentionHours: 24})
		if err != nil && !errors.Is(err, streamstore.ErrExists) {
			return nil, err
		}
	}
	ds.Version, ds.Encryption = 1, "DISABLED"
	ds.Created = time.Now()
	ds.Updated = ds.Created
	if err := s.save(&ds); err != nil {
		return nil, err
	}
	s.start(&ds)
	s.log.Info("delivery stream created", "delivery_stream", ds.Name, "type", ds.Type, "destination", s.destinationName(&ds))
	return map[string]string{"DeliveryStreamARN": s.arn(ds.Name)}, nil
}

// validate checks a configuration, with the gateway's conversion schemas.
func (s *Service) validate(ds *DeliveryStream) error {
	if err := ds.validate(); err != nil {
		return invalid("%s", err.Error())
	}
	if ds.ExtendedS3 != nil {
		if _, err := parseConversion(ds.ExtendedS3.DataFormatConversion, s.schemas); err != nil {
			return invalid("DataFormatConversionConfiguration: %s", err.Error())
		}
	}
	return nil
}

func (s *Service) destinationName(ds *DeliveryStream) string {
	if ds.HTTPEndpoint != nil {
		return ds.HTTPEndpoint.EndpointConfiguration.URL
	}
	return s.buckets.Where(bucketName(ds.ExtendedS3.BucketARN))
}

type nameInput struct {
	DeliveryStreamName string `json:"DeliveryStreamName"`
}

func (s *Service) lookup(r *awsapi.Request, in any, name func() string) (*DeliveryStream, error) {
	if err := r.Decode(in); err != nil {
		return nil, err
	}
	if err := r.Authorize(s.arn(name())); err != nil {
		return nil, err
	}
	ds, ok := s.get(name())
	if !ok {
		return nil, errNotFound(name())
	}
	return ds, nil
}

func (s *Service) describe(r *awsapi.Request) (any, error) {
	var in nameInput
	ds, err := s.lookup(r, &in, func() string { return in.DeliveryStreamName })
	if err != nil {
		return nil, err
	}
	dest := map[string]any{"DestinationId": "destinationId-000000000001"}
	if ds.ExtendedS3 != nil {
		dest["ExtendedS3DestinationDescription"] = ds.ExtendedS3
		dest["S3DestinationDescription"] = map[string]any{"BucketARN": ds.ExtendedS3.BucketARN, "Prefix": ds.ExtendedS3.Prefix,
			"BufferingHints": ds.ExtendedS3.BufferingHints, "CompressionFormat": ds.ExtendedS3.CompressionFormat, "RoleARN": ds.ExtendedS3.RoleARN}
	} else {
		dest["HttpEndpointDestinationDescription"] = ds.HTTPEndpoint
	}
	desc := map[string]any{
		"DeliveryStreamName": ds.Name, "DeliveryStreamARN": s.arn(ds.Name), "DeliveryStreamStatus": "ACTIVE",
		"DeliveryStreamType": ds.Type, "VersionId": strconv.Itoa(ds.Version),
		"CreateTimestamp": awsapi.NewTimestamp(ds.Created), "LastUpdateTimestamp": awsapi.NewTimestamp(ds.Updated),
		"DeliveryStreamEncryptionConfiguration": map[string]string{"Status": ds.Encryption},
		"Destinations":                          []any{dest}, "HasMoreDestinations": false,
	}
	if ds.Source != nil {
		desc["Source"] = map[string]any{"KinesisStreamSourceDescription": map[string]any{"KinesisStreamARN": ds.Source.KinesisStreamARN,
			"RoleARN": ds.Source.RoleARN, "DeliveryStartTimestamp": awsapi.NewTimestamp(ds.Created)}}
	}
	return map[string]any{"DeliveryStreamDescription": desc}, nil
}

func (s *Service) list(r *awsapi.Request) (any, error) {
	var in struct {
		Limit                            *int   `json:"Limit"`
		DeliveryStreamType               string `json:"DeliveryStreamType"`
		ExclusiveStartDeliveryStreamName string `json:"ExclusiveStartDeliveryStreamName"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if err := r.Authorize("arn:aws:firehose:" + s.region + ":" + s.account + ":deliverystream/*"); err != nil {
		return nil, err
	}
	limit := 10
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > 10000 {
			return nil, invalid("1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: Member must have value between 1 and 10000", *in.Limit)
		}
		limit = *in.Limit
	}
	s.mu.Lock()
	var names []string
	for name, rr := range s.running {
		if (in.DeliveryStreamType == "" || rr.ds.Type == in.DeliveryStreamType) && name > in.ExclusiveStartDeliveryStreamName {
			names = append(names, name)
		}
	}
	s.mu.Unlock()
	sort.Strings(names)
	more := len(names) > limit
	if more {
		names = names[:limit]
	}
	if names == nil {
		names = []string{}
	}
	return map[string]any{"DeliveryStreamNames": names, "HasMoreDeliveryStreams": more}, nil
}

func (s *Service) delete(r *awsapi.Request) (any, error) {
	var in nameInput
	ds, err := s.lookup(r, &in, func() string { return in.DeliveryStreamName })
	if err != nil {
		return nil, err
	}
	s.stop(ds.Name)
	if err := s.store.DeleteDocument(documentKind, ds.Name); err != nil && !errors.Is(err, streamstore.ErrNotFound) {
		return nil, err
	}
	if ds.Type == "DirectPut" {
		if err := s.store.DeleteStream(BackingStream(ds.Name)); err != nil && !errors.Is(err, streamstore.ErrNotFound) {
			return nil, err
		}
	} else if info, err := s.store.Stream(ds.sourceStream()); err == nil {
		// A delivery stream made later under the same name starts afresh.
		for _, sh := range info.Shards {
			s.store.SetCheckpoint(ds.group(), info.Name, sh.ID, "") //nolint:errcheck // best effort
		}
	}
	s.log.Info("delivery stream deleted", "delivery_stream", ds.Name)
	return struct{}{}, nil
}

type batchRecord struct {
	Data []byte `json:"Data"`
}

func (s *Service) directPut(r *awsapi.Request, name string) (*DeliveryStream, error) {
	if err := r.Authorize(s.arn(name)); err != nil {
		return nil, err
	}
	ds, ok := s.get(name)
	if !ok {
		return nil, errNotFound(name)
	}
	if ds.Type != "DirectPut" {
		return nil, invalid("This operation is not permitted on KinesisStreamAsSource delivery stream type.")
	}
	return ds, nil
}

func recordTooBig(i int, n int) error {
	return &awsapi.Error{Code: "ValidationException", Status: http.StatusBadRequest,
		Message: fmt.Sprintf("1 validation error detected: Value at 'records.%d.member.data' failed to satisfy constraint: Member must have length less than or equal to %d (it has %d)", i+1, MaxRecordBytes, n)}
}

func (s *Service) putRecord(r *awsapi.Request) (any, error) {
	var in struct {
		DeliveryStreamName string       `json:"DeliveryStreamName"`
		Record             *batchRecord `json:"Record"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	ds, err := s.directPut(r, in.DeliveryStreamName)
	if err != nil {
		return nil, err
	}
	if in.Record == nil {
		return nil, invalid("Record is required")
	}
	if len(in.Record.Data) > MaxRecordBytes {
		return nil, recordTooBig(0, len(in.Record.Data))
	}
	res, err := s.store.Append(BackingStream(ds.Name), []streamstore.Entry{{PartitionKey: "r", Data: in.Record.Data}})
	if err == nil {
		err = res[0].Err
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return map[string]any{"RecordId": res[0].Seq.String(), "Encrypted": ds.Encryption == "ENABLED"}, nil
}

// unavailable is Firehose's answer when the log refuses: back off and retry.
func unavailable(err error) error {
	return &awsapi.Error{Code: "ServiceUnavailableException", Status: http.StatusServiceUnavailable,
		Message: "Slow down. " + err.Error()}
}

func (s *Service) putRecordBatch(r *awsapi.Request) (any, error) {
	var in struct {
		DeliveryStreamName string        `json:"DeliveryStreamName"`
		Records            []batchRecord `json:"Records"`
	}
	if name, data, ok := decodeBatchFast(r.Body); ok && !r.CBOR {
		in.DeliveryStreamName = name
		in.Records = make([]batchRecord, len(data))
		for i, d := range data {
			in.Records[i].Data = d
		}
	} else if err := r.Decode(&in); err != nil {
		return nil, err
	}
	ds, err := s.directPut(r, in.DeliveryStreamName)
	if err != nil {
		return nil, err
	}
	if len(in.Records) == 0 || len(in.Records) > MaxBatch {
		return nil, &awsapi.Error{Code: "ValidationException", Status: http.StatusBadRequest,
			Message: fmt.Sprintf("1 validation error detected: Value at 'records' failed to satisfy constraint: Member must have length between 1 and %d", MaxBatch)}
	}
	total := 0
	entries := make([]streamstore.Entry, len(in.Records))
	for i, rec := range in.Records {
		if len(rec.Data) > MaxRecordBytes {
			return nil, recordTooBig(i, len(rec.Data))
		}
		total += len(rec.Data)
		entries[i] = streamstore.Entry{PartitionKey: "r", Data: rec.Data}
	}
	if total > MaxBatchBytes {
		return nil, invalid("Records size exceeds 4 MB limit")
	}
	res, err := s.store.Append(BackingStream(ds.Name), entries)
	if err != nil {
		return nil, unavailable(err)
	}
	type response struct {
		RecordID     string `json:"RecordId,omitempty"`
		ErrorCode    string `json:"ErrorCode,omitempty"`
		ErrorMessage string `json:"ErrorMessage,omitempty"`
	}
	failed := 0
	out := make([]response, len(res))
	for i, a := range res {
		if a.Err != nil {
			failed++
			out[i] = response{ErrorCode: "ServiceUnavailableException", ErrorMessage: "Slow down. " + a.Err.Error()}
			continue
		}
		out[i] = response{RecordID: a.Seq.String()}
	}
	return map[string]any{"FailedPutCount": failed, "Encrypted": ds.Encryption == "ENABLED", "RequestResponses": out}, nil
}

// replace swaps a delivery stream's configuration: its followers restart
// from their checkpoints with the new one.
func (s *Service) replace(ds *DeliveryStream) error {
	if err := s.save(ds); err != nil {
		return err
	}
	s.stop(ds.Name)
	s.mu.Lock()
	s.start(ds)
	s.mu.Unlock()
	return nil
}

func (s *Service) updateDestination(r *awsapi.Request) (any, error) {
	var in struct {
		DeliveryStreamName             string                 `json:"DeliveryStreamName"`
		CurrentDeliveryStreamVersionId string                 `json:"CurrentDeliveryStreamVersionId"`
		DestinationId                  string                 `json:"DestinationId"`
		ExtendedS3DestinationUpdate    *ExtendedS3Destination `json:"ExtendedS3DestinationUpdate"`
		S3DestinationUpdate            *ExtendedS3Destination `json:"S3DestinationUpdate"`
		HttpEndpointDestinationUpdate  *HTTPEndpointDest      `json:"HttpEndpointDestinationUpdate"`
	}
	old, err := s.lookup(r, &in, func() string { return in.DeliveryStreamName })
	if err != nil {
		return nil, err
	}
	if in.CurrentDeliveryStreamVersionId != strconv.Itoa(old.Version) {
		return nil, &awsapi.Error{Code: "ConcurrentModificationException", Status: http.StatusBadRequest,
			Message: fmt.Sprintf("Cannot update firehose: %s since the current version id: %d and specified version id: %s do not match", old.Name, old.Version, in.CurrentDeliveryStreamVersionId)}
	}
	if in.DestinationId != "destinationId-000000000001" {
		return nil, invalid("Destination %s not found.", in.DestinationId)
	}
	ds := old.clone()
	switch {
	case in.ExtendedS3DestinationUpdate != nil || in.S3DestinationUpdate != nil:
		u := in.ExtendedS3DestinationUpdate
		if u == nil {
			u = in.S3DestinationUpdate
		}
		if ds.ExtendedS3 == nil {
			ds.HTTPEndpoint, ds.ExtendedS3 = nil, u
		} else {
			mergeS3(ds.ExtendedS3, u)
		}
	case in.HttpEndpointDestinationUpdate != nil:
		ds.ExtendedS3, ds.HTTPEndpoint = nil, in.HttpEndpointDestinationUpdate
	default:
		return nil, invalid("An update of one destination is required.")
	}
	if err := s.validate(ds); err != nil {
		return nil, err
	}
	ds.Version++
	ds.Updated = time.Now()
	if err := s.replace(ds); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// mergeS3 applies the fields an update sets.
func mergeS3(d, u *ExtendedS3Destination) {
	if u.BucketARN != "" {
		d.BucketARN = u.BucketARN
	}
	if u.Prefix != "" {
		d.Prefix = u.Prefix
	}
	if u.ErrorOutputPrefix != "" {
		d.ErrorOutputPrefix = u.ErrorOutputPrefix
	}
	if u.BufferingHints != nil {
		d.BufferingHints = u.BufferingHints
	}
	if u.CompressionFormat != "" {
		d.CompressionFormat = u.CompressionFormat
	}
	if u.FileExtension != "" {
		d.FileExtension = u.FileExtension
	}
	if u.ProcessingConfiguration != nil {
		d.ProcessingConfiguration = u.ProcessingConfiguration
	}
	if u.RoleARN != "" {
		d.RoleARN = u.RoleARN
	}
}

func (s *Service) tag(r *awsapi.Request) (any, error) {
	var in struct {
		DeliveryStreamName string `json:"DeliveryStreamName"`
		Tags               []Tag  `json:"Tags"`
	}
	old, err := s.lookup(r, &in, func() string { return in.DeliveryStreamName })
	if err != nil {
		return nil, err
	}
	ds := old.clone()
	for _, t := range in.Tags {
		replaced := false
		for i := range ds.Tags {
			if ds.Tags[i].Key == t.Key {
				ds.Tags[i], replaced = t, true
			}
		}
		if !replaced {
			ds.Tags = append(ds.Tags, t)
		}
	}
	if len(ds.Tags) > 50 {
		return nil, &awsapi.Error{Code: "LimitExceededException", Status: http.StatusBadRequest, Message: "A delivery stream has at most 50 tags."}
	}
	return struct{}{}, s.setTags(ds)
}

func (s *Service) setTags(ds *DeliveryStream) error {
	if err := s.save(ds); err != nil {
		return err
	}
	s.mu.Lock()
	if r := s.running[ds.Name]; r != nil {
		r.ds.Tags = ds.Tags
		r.ds.Encryption = ds.Encryption
	}
	s.mu.Unlock()
	return nil
}

func (s *Service) untag(r *awsapi.Request) (any, error) {
	var in struct {
		DeliveryStreamName string   `json:"DeliveryStreamName"`
		TagKeys            []string `json:"TagKeys"`
	}
	old, err := s.lookup(r, &in, func() string { return in.DeliveryStreamName })
	if err != nil {
		return nil, err
	}
	ds := old.clone()
	var kept []Tag
	for _, t := range ds.Tags {
		drop := false
		for _, k := range in.TagKeys {
			drop = drop || t.Key == k
		}
		if !drop {
			kept = append(kept, t)
		}
	}
	ds.Tags = kept
	return struct{}{}, s.setTags(ds)
}

func (s *Service) listTags(r *awsapi.Request) (any, error) {
	var in nameInput
	ds, err := s.lookup(r, &in, func() string { return in.DeliveryStreamName })
	if err != nil {
		return nil, err
	}
	tags := ds.Tags
	if tags == nil {
		tags = []Tag{}
	}
	return map[string]any{"Tags": tags, "HasMoreTags": false}, nil
}

// encryption records the requested server-side encryption status (the
// gateway's disk encryption is the operator's; the API round-trips).
func (s *Service) encryption(r *awsapi.Request, status string) (any, error) {
	var in nameInput
	old, err := s.lookup(r, &in, func() string { return in.DeliveryStreamName })
	if err != nil {
		return nil, err
	}
	ds := old.clone()
	ds.Encryption = status
	return struct{}{}, s.setTags(ds)
}
