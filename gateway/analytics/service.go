package analytics

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/streamstore"
)

// Service is the Kinesis Data Analytics (SQL) API and the applications it
// runs.
type Service struct {
	store           *streamstore.Store
	region, account string
	log             *slog.Logger
	firehoseSource  func(name string) (string, error)
	firehoseStream  func(name string) string
	objects         func(ctx context.Context, bucket, key string) ([]byte, error)
	http            *http.Client // for functions (preprocessors, Lambda outputs)

	m metrics

	mu       sync.Mutex
	stopping sync.WaitGroup // StopApplication's background stops
	apps     map[string]*Application
	runners  map[string]*runner
}

// Options configure the service.
type Options struct {
	Region, Account string
	Logger          *slog.Logger
	// FirehoseSource returns the stream a delivery stream's records are in
	// (an application input may be a delivery stream).
	FirehoseSource func(deliveryStream string) (string, error)
	// FirehoseStream returns the stream a record put to a Direct PUT
	// delivery stream goes to (an application output may be one).
	FirehoseStream func(deliveryStream string) string
	Metrics        prometheus.Registerer
	// Objects reads an object of a bucket (reference tables); the gateway
	// gives Firehose's buckets: a directory per bucket under the data
	// directory, or an S3-compatible server configured for it.
	Objects func(ctx context.Context, bucket, key string) ([]byte, error)
	// HTTPClient calls functions: preprocessors and Lambda outputs, which
	// are http(s) URLs here.
	HTTPClient *http.Client
}

type metrics struct {
	records, rows, errors *prometheus.CounterVec
}

const documentKind = "analytics-application"

// New returns the service with the applications kept in the store; Start
// runs those that were running.
func New(store *streamstore.Store, o Options) (*Service, error) {
	s := &Service{store: store, region: o.Region, account: o.Account, log: o.Logger, firehoseSource: o.FirehoseSource,
		firehoseStream: o.FirehoseStream, objects: o.Objects, http: o.HTTPClient, apps: map[string]*Application{}, runners: map[string]*runner{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.http == nil {
		s.http = &http.Client{Timeout: 5 * time.Minute}
	}
	s.m = metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_analytics_input_records_total",
			Help: "Records an application read from its input."}, []string{"application"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_analytics_output_rows_total",
			Help: "Rows an application wrote to its outputs."}, []string{"application"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamgate_analytics_error_rows_total",
			Help: "Rows sent to an application's error stream (unparseable records, failed expressions)."}, []string{"application"}),
	}
	if o.Metrics != nil {
		o.Metrics.MustRegister(s.m.records, s.m.rows, s.m.errors)
	}
	docs, err := store.Documents(documentKind)
	if err != nil {
		return nil, err
	}
	for name, doc := range docs {
		var a Application
		if err := json.Unmarshal(doc, &a); err != nil {
			return nil, fmt.Errorf("analytics application %s: %w", name, err)
		}
		a.Created, a.Updated = unixTime(a.CreatedUnix), unixTime(a.UpdatedUnix)
		s.apps[name] = &a
	}
	return s, nil
}

func unixTime(f float64) time.Time { return time.Unix(0, int64(f*1e9)) }

// Start runs the applications that were running when the gateway stopped,
// from where they stopped.
func (s *Service) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.apps {
		if a.Status != "RUNNING" && a.Status != "STARTING" {
			continue
		}
		if err := s.startLocked(a, nil); err != nil {
			s.log.Error("analytics application did not restart", "application", a.ApplicationName, "err", err)
			a.Status = "READY"
		}
	}
}

// Close stops every application (their positions are checkpointed; they
// stay RUNNING in the store, to restart with the gateway).
func (s *Service) Close() {
	s.mu.Lock()
	runners := s.runners
	s.runners = map[string]*runner{}
	s.mu.Unlock()
	for _, r := range runners {
		r.cancel()
		<-r.done
	}
	s.stopping.Wait()
}

// Service returns the API (AWS JSON 1.1, KinesisAnalytics_20150814).
func (s *Service) Service() *awsapi.Service {
	return &awsapi.Service{Prefix: "KinesisAnalytics_20150814", SigningName: "kinesisanalytics", Action: "kinesisanalytics", Ops: map[string]awsapi.Op{
		"CreateApplication":                             s.create,
		"DescribeApplication":                           s.describe,
		"ListApplications":                              s.list,
		"DeleteApplication":                             s.delete,
		"UpdateApplication":                             s.update,
		"StartApplication":                              s.start,
		"StopApplication":                               s.stop,
		"AddApplicationInput":                           s.addInput,
		"AddApplicationOutput":                          s.addOutput,
		"DeleteApplicationOutput":                       s.deleteOutput,
		"AddApplicationReferenceDataSource":             s.addReference,
		"DeleteApplicationReferenceDataSource":          s.deleteReference,
		"AddApplicationCloudWatchLoggingOption":         s.addLogging,
		"DeleteApplicationCloudWatchLoggingOption":      s.deleteLogging,
		"AddApplicationInputProcessingConfiguration":    s.addProcessing,
		"DeleteApplicationInputProcessingConfiguration": s.deleteProcessing,
		"DiscoverInputSchema":                           s.discover,
		"TagResource":                                   s.tag,
		"UntagResource":                                 s.untag,
		"ListTagsForResource":                           s.listTags,
		"ExecuteQuery":                                  s.query, // a streamgate extension: ad hoc queries over history
	}}
}

func (s *Service) arn(name string) string {
	return fmt.Sprintf("arn:aws:kinesisanalytics:%s:%s:application/%s", s.region, s.account, name)
}

var appName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)

func notFound(name string) error {
	return awsapi.Errorf(awsapi.CodeResourceNotFound, "Application %s is not found.", name)
}

func invalid(format string, args ...any) error {
	return awsapi.Errorf(awsapi.CodeInvalidArgument, format, args...)
}

// codeInvalid is the CodeValidationException for code that does not compile.
func codeInvalid(err error) error {
	return awsapi.Errorf("CodeValidationException", "Application code is invalid: %v", err)
}

func (s *Service) save(a *Application) error {
	a.CreatedUnix, a.UpdatedUnix = float64(a.Created.UnixNano())/1e9, float64(a.Updated.UnixNano())/1e9
	doc, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return s.store.PutDocument(documentKind, a.ApplicationName, doc)
}

// validate checks an application's configuration and compiles its code.
func (s *Service) validate(a *Application) error {
	if len(a.Inputs) > 1 {
		return awsapi.Errorf(awsapi.CodeLimitExceeded, "An application has at most one streaming input.")
	}
	if len(a.Outputs) > 3 {
		return awsapi.Errorf(awsapi.CodeLimitExceeded, "An application has at most three outputs.")
	}
	if len(a.ApplicationCode) > 102400 {
		return invalid("ApplicationCode is longer than 102400 characters.")
	}
	for _, in := range a.Inputs {
		if (in.KinesisStreamsInput == nil) == (in.KinesisFirehoseInput == nil) {
			return invalid("An input needs exactly one of KinesisStreamsInput and KinesisFirehoseInput.")
		}
		if p := in.InputProcessingConfiguration; p != nil {
			if _, err := functionURL(p.InputLambdaProcessor); err != nil {
				return invalid("InputLambdaProcessor: %v", err)
			}
		}
		if in.NamePrefix == "" || len(in.NamePrefix) > 32 {
			return invalid("NamePrefix must be 1 to 32 characters.")
		}
		if in.InputParallelism != nil && (in.InputParallelism.Count < 1 || in.InputParallelism.Count > 64) {
			return invalid("InputParallelism.Count must be between 1 and 64.")
		}
		if _, _, err := newRecordParser(in.InputSchema); err != nil {
			return invalid("InputSchema: %v", err)
		}
	}
	for _, o := range a.Outputs {
		n := 0
		for _, r := range []*Resource{o.KinesisStreamsOutput, o.KinesisFirehoseOutput, o.LambdaOutput} {
			if r != nil {
				n++
			}
		}
		if n != 1 {
			return invalid("Output %s needs exactly one of KinesisStreamsOutput, KinesisFirehoseOutput and LambdaOutput.", o.Name)
		}
		if o.LambdaOutput != nil {
			if _, err := functionURL(o.LambdaOutput); err != nil {
				return invalid("Output %s: LambdaOutput: %v", o.Name, err)
			}
		}
		if o.DestinationSchema == nil || (o.DestinationSchema.RecordFormatType != "JSON" && o.DestinationSchema.RecordFormatType != "CSV") {
			return invalid("Output %s: DestinationSchema.RecordFormatType must be JSON or CSV.", o.Name)
		}
	}
	tables, err := s.tables(a, false)
	if err != nil {
		return err
	}
	eng, err := compile(a.ApplicationCode, sourceDefs(a), func() int64 { return time.Now().UnixMilli() }, tables...)
	if err != nil {
		return codeInvalid(err)
	}
	for _, o := range a.Outputs {
		if _, ok := eng.stream(o.Name); !ok && len(a.Inputs) > 0 {
			return codeInvalid(fmt.Errorf("output %s names in-application stream %q, which the code does not create", o.OutputID, o.Name))
		}
	}
	return nil
}

// tables are the application's reference tables: their schemas, and with
// load their rows, read from the objects they name.
func (s *Service) tables(a *Application, load bool) ([]*refTable, error) {
	var tables []*refTable
	for _, ref := range a.ReferenceDataSources {
		if ref.TableName == "" || ref.ReferenceSchema == nil || ref.S3ReferenceDataSource == nil {
			return nil, invalid("A reference data source needs a TableName, an S3ReferenceDataSource and a ReferenceSchema.")
		}
		var data []byte
		if load {
			src := ref.S3ReferenceDataSource
			bucket, ok := strings.CutPrefix(src.BucketARN, "arn:aws:s3:::")
			if !ok || s.objects == nil {
				return nil, invalid("Reference %s: %s is not a bucket ARN.", ref.ReferenceID, src.BucketARN)
			}
			var err error
			if data, err = s.objects(context.Background(), bucket, src.FileKey); err != nil {
				return nil, awsapi.Errorf("InvalidApplicationConfigurationException", "Reference table %s: cannot read s3://%s/%s: %v", ref.TableName, bucket, src.FileKey, err)
			}
		}
		t, err := loadTable(ref.TableName, ref.ReferenceSchema, data)
		if err != nil {
			return nil, awsapi.Errorf("InvalidApplicationConfigurationException", "%v", err)
		}
		tables = append(tables, t)
	}
	return tables, nil
}

// sourceDefs are the in-application streams the inputs feed.
func sourceDefs(a *Application) []sourceDef {
	var defs []sourceDef
	for _, in := range a.Inputs {
		_, cols, err := newRecordParser(in.InputSchema)
		if err != nil {
			continue
		}
		for _, name := range inAppNames(in) {
			defs = append(defs, sourceDef{name: name, cols: cols})
		}
	}
	return defs
}

// inAppNames are an input's in-application streams: NamePrefix_001, ...
func inAppNames(in *Input) []string {
	n := 1
	if in.InputParallelism != nil && in.InputParallelism.Count > 0 {
		n = in.InputParallelism.Count
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s_%03d", in.NamePrefix, i+1)
	}
	return names
}

func (s *Service) nextID(a *Application) string {
	a.NextID++
	return "1." + strconv.Itoa(a.NextID)
}

// app looks up an application for an operation on it, checking the
// caller's permission.
func (s *Service) app(r *awsapi.Request, name string) (*Application, error) {
	if err := r.Authorize(s.arn(name)); err != nil {
		return nil, err
	}
	a, ok := s.apps[name]
	if !ok {
		return nil, notFound(name)
	}
	s.refreshStatus(a)
	return a, nil
}

// change applies a versioned change to an application: it checks
// CurrentApplicationVersionId, validates, saves, bumps the version and
// restarts a running application with its new configuration.
func (s *Service) change(r *awsapi.Request, name string, version int64, fn func(a *Application) error) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.app(r, name)
	if err != nil {
		return nil, err
	}
	if a.Status == "STOPPING" {
		return nil, awsapi.Errorf(awsapi.CodeResourceInUse, "Application %s is STOPPING.", a.ApplicationName)
	}
	if version != a.Version {
		return nil, awsapi.Errorf("ConcurrentModificationException",
			"Current application version %d does not match the application's version %d.", version, a.Version)
	}
	next, err := clone(a)
	if err != nil {
		return nil, err
	}
	if err := fn(next); err != nil {
		return nil, err
	}
	if err := s.validate(next); err != nil {
		return nil, err
	}
	next.Version++
	next.Updated = time.Now()
	running := s.runners[name] != nil
	if running {
		s.stopLocked(a)
		next.Status = "STARTING"
	}
	if err := s.save(next); err != nil {
		return nil, err
	}
	s.apps[name] = next
	if running {
		if err := s.startLocked(next, nil); err != nil {
			next.Status = "READY"
			_ = s.save(next)
			return nil, err
		}
	}
	return map[string]any{}, nil
}

func clone(a *Application) (*Application, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	var c Application
	err = json.Unmarshal(b, &c)
	c.Created, c.Updated, c.NextID = a.Created, a.Updated, a.NextID
	return &c, err
}

type versioned struct {
	ApplicationName             string
	CurrentApplicationVersionId int64
}
