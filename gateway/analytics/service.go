package analytics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
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

func (s *Service) create(r *awsapi.Request) (any, error) {
	var a Application
	if err := r.Decode(&a); err != nil {
		return nil, err
	}
	if !appName.MatchString(a.ApplicationName) {
		return nil, invalid("ApplicationName must be 1 to 128 characters of [a-zA-Z0-9_.-].")
	}
	if err := r.Authorize(s.arn(a.ApplicationName)); err != nil {
		return nil, err
	}
	if err := s.validate(&a); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.apps[a.ApplicationName]; ok {
		return nil, awsapi.Errorf(awsapi.CodeResourceInUse, "Application %s already exists.", a.ApplicationName)
	}
	for _, in := range a.Inputs {
		in.InputID = s.nextID(&a)
	}
	for _, o := range a.Outputs {
		o.OutputID = s.nextID(&a)
	}
	for _, ref := range a.ReferenceDataSources {
		ref.ReferenceID = s.nextID(&a)
	}
	for _, l := range a.CloudWatchLoggingOptions {
		l.CloudWatchLoggingOptionID = s.nextID(&a)
	}
	a.ARN, a.Status, a.Version = s.arn(a.ApplicationName), "READY", 1
	a.Created = time.Now()
	a.Updated = a.Created
	if err := s.save(&a); err != nil {
		return nil, err
	}
	s.apps[a.ApplicationName] = &a
	return map[string]any{"ApplicationSummary": summary(&a)}, nil
}

func summary(a *Application) map[string]any {
	return map[string]any{"ApplicationName": a.ApplicationName, "ApplicationARN": a.ARN, "ApplicationStatus": a.Status}
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

func (s *Service) describe(r *awsapi.Request) (any, error) {
	var in struct{ ApplicationName string }
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.app(r, in.ApplicationName)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ApplicationDetail": detail(a)}, nil
}

// detail is DescribeApplication's ApplicationDetail.
func detail(a *Application) map[string]any {
	var inputs, outputs, refs, logs []any
	for _, in := range a.Inputs {
		d := map[string]any{"InputId": in.InputID, "NamePrefix": in.NamePrefix, "InAppStreamNames": inAppNames(in),
			"InputSchema": in.InputSchema, "InputParallelism": Parallelism{Count: len(inAppNames(in))}}
		if in.KinesisStreamsInput != nil {
			d["KinesisStreamsInputDescription"] = in.KinesisStreamsInput
		}
		if in.KinesisFirehoseInput != nil {
			d["KinesisFirehoseInputDescription"] = in.KinesisFirehoseInput
		}
		if in.InputStartingPositionConfiguration != nil {
			d["InputStartingPositionConfiguration"] = in.InputStartingPositionConfiguration
		}
		inputs = append(inputs, d)
	}
	for _, o := range a.Outputs {
		d := map[string]any{"OutputId": o.OutputID, "Name": o.Name, "DestinationSchema": o.DestinationSchema}
		if o.KinesisStreamsOutput != nil {
			d["KinesisStreamsOutputDescription"] = o.KinesisStreamsOutput
		}
		if o.KinesisFirehoseOutput != nil {
			d["KinesisFirehoseOutputDescription"] = o.KinesisFirehoseOutput
		}
		outputs = append(outputs, d)
	}
	for _, ref := range a.ReferenceDataSources {
		refs = append(refs, map[string]any{"ReferenceId": ref.ReferenceID, "TableName": ref.TableName,
			"S3ReferenceDataSourceDescription": ref.S3ReferenceDataSource, "ReferenceSchema": ref.ReferenceSchema})
	}
	for _, l := range a.CloudWatchLoggingOptions {
		logs = append(logs, l)
	}
	d := map[string]any{"ApplicationName": a.ApplicationName, "ApplicationARN": a.ARN, "ApplicationStatus": a.Status,
		"CreateTimestamp": a.CreatedUnix, "LastUpdateTimestamp": a.UpdatedUnix, "ApplicationVersionId": a.Version,
		"ApplicationCode": a.ApplicationCode, "InputDescriptions": orEmpty(inputs), "OutputDescriptions": orEmpty(outputs),
		"ReferenceDataSourceDescriptions": orEmpty(refs), "CloudWatchLoggingOptionDescriptions": orEmpty(logs)}
	if a.ApplicationDescription != "" {
		d["ApplicationDescription"] = a.ApplicationDescription
	}
	return d
}

func orEmpty(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

func (s *Service) list(r *awsapi.Request) (any, error) {
	var in struct {
		Limit                         int
		ExclusiveStartApplicationName string
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if err := r.Authorize("*"); err != nil {
		return nil, err
	}
	if in.Limit == 0 {
		in.Limit = 50
	}
	if in.Limit < 1 || in.Limit > 50 {
		return nil, invalid("Limit must be between 1 and 50.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.apps))
	for n := range s.apps {
		if n > in.ExclusiveStartApplicationName {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	more := len(names) > in.Limit
	if more {
		names = names[:in.Limit]
	}
	out := []any{}
	for _, n := range names {
		s.refreshStatus(s.apps[n])
		out = append(out, summary(s.apps[n]))
	}
	return map[string]any{"ApplicationSummaries": out, "HasMoreApplications": more}, nil
}

func (s *Service) delete(r *awsapi.Request) (any, error) {
	var in struct {
		ApplicationName string
		CreateTimestamp *float64
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.app(r, in.ApplicationName)
	if err != nil {
		return nil, err
	}
	if in.CreateTimestamp == nil {
		return nil, invalid("CreateTimestamp is required.")
	}
	if int64(*in.CreateTimestamp) != int64(a.CreatedUnix) {
		return nil, awsapi.Errorf("ConcurrentModificationException", "CreateTimestamp does not match the application's.")
	}
	s.stopLocked(a)
	if err := s.store.DeleteDocument(documentKind, a.ApplicationName); err != nil {
		return nil, err
	}
	_ = s.store.DeleteDocument(checkpointKind, a.ApplicationName) // there is none if it never ran
	delete(s.apps, a.ApplicationName)
	return map[string]any{}, nil
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

func (s *Service) update(r *awsapi.Request) (any, error) {
	var in struct {
		versioned
		ApplicationUpdate *struct {
			ApplicationCodeUpdate *string
			InputUpdates          []struct {
				InputID                    string `json:"InputId"`
				NamePrefixUpdate           string
				KinesisStreamsInputUpdate  *struct{ ResourceARNUpdate, RoleARNUpdate string }
				KinesisFirehoseInputUpdate *struct{ ResourceARNUpdate, RoleARNUpdate string }
				InputSchemaUpdate          *struct {
					RecordFormatUpdate   *RecordFormat
					RecordEncodingUpdate string
					RecordColumnUpdates  []*RecordColumn
				}
				InputParallelismUpdate *struct{ CountUpdate int }
			}
			OutputUpdates []struct {
				OutputID                    string `json:"OutputId"`
				NameUpdate                  string
				KinesisStreamsOutputUpdate  *struct{ ResourceARNUpdate, RoleARNUpdate string }
				KinesisFirehoseOutputUpdate *struct{ ResourceARNUpdate, RoleARNUpdate string }
				LambdaOutputUpdate          *struct{ ResourceARNUpdate, RoleARNUpdate string }
				DestinationSchemaUpdate     *struct{ RecordFormatType string }
			}
		}
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if in.ApplicationUpdate == nil {
		return nil, invalid("ApplicationUpdate is required.")
	}
	u := in.ApplicationUpdate
	return s.change(r, in.ApplicationName, in.CurrentApplicationVersionId, func(a *Application) error {
		if u.ApplicationCodeUpdate != nil {
			a.ApplicationCode = *u.ApplicationCodeUpdate
		}
		for _, iu := range u.InputUpdates {
			target, err := input(a, iu.InputID)
			if err != nil {
				return err
			}
			if iu.NamePrefixUpdate != "" {
				target.NamePrefix = iu.NamePrefixUpdate
			}
			if x := iu.KinesisStreamsInputUpdate; x != nil {
				target.KinesisStreamsInput, target.KinesisFirehoseInput = &Resource{x.ResourceARNUpdate, x.RoleARNUpdate}, nil
			}
			if x := iu.KinesisFirehoseInputUpdate; x != nil {
				target.KinesisFirehoseInput, target.KinesisStreamsInput = &Resource{x.ResourceARNUpdate, x.RoleARNUpdate}, nil
			}
			if x := iu.InputSchemaUpdate; x != nil {
				if x.RecordFormatUpdate != nil {
					target.InputSchema.RecordFormat = x.RecordFormatUpdate
				}
				if x.RecordColumnUpdates != nil {
					target.InputSchema.RecordColumns = x.RecordColumnUpdates
				}
			}
			if x := iu.InputParallelismUpdate; x != nil {
				target.InputParallelism = &Parallelism{Count: x.CountUpdate}
			}
		}
		for _, ou := range u.OutputUpdates {
			var target *Output
			for _, x := range a.Outputs {
				if x.OutputID == ou.OutputID {
					target = x
				}
			}
			if target == nil {
				return awsapi.Errorf(awsapi.CodeResourceNotFound, "Output %s is not found.", ou.OutputID)
			}
			if ou.NameUpdate != "" {
				target.Name = ou.NameUpdate
			}
			if x := ou.KinesisStreamsOutputUpdate; x != nil {
				target.KinesisStreamsOutput, target.KinesisFirehoseOutput, target.LambdaOutput = &Resource{x.ResourceARNUpdate, x.RoleARNUpdate}, nil, nil
			}
			if x := ou.KinesisFirehoseOutputUpdate; x != nil {
				target.KinesisFirehoseOutput, target.KinesisStreamsOutput, target.LambdaOutput = &Resource{x.ResourceARNUpdate, x.RoleARNUpdate}, nil, nil
			}
			if x := ou.LambdaOutputUpdate; x != nil {
				target.LambdaOutput, target.KinesisStreamsOutput, target.KinesisFirehoseOutput = &Resource{x.ResourceARNUpdate, x.RoleARNUpdate}, nil, nil
			}
			if ou.DestinationSchemaUpdate != nil {
				target.DestinationSchema = ou.DestinationSchemaUpdate
			}
		}
		return nil
	})
}

func (s *Service) addInput(r *awsapi.Request) (any, error) {
	return addItem(s, r, "Input", func(a *Application) *[]*Input { return &a.Inputs }, func(x *Input, id string) { x.InputID = id })
}

func (s *Service) addOutput(r *awsapi.Request) (any, error) {
	return addItem(s, r, "Output", func(a *Application) *[]*Output { return &a.Outputs }, func(x *Output, id string) { x.OutputID = id })
}

func (s *Service) deleteOutput(r *awsapi.Request) (any, error) {
	return deleteItem(s, r, "OutputId", "Output", func(a *Application) *[]*Output { return &a.Outputs }, func(x *Output) string { return x.OutputID })
}

func (s *Service) addReference(r *awsapi.Request) (any, error) {
	return addItem(s, r, "ReferenceDataSource", func(a *Application) *[]*Reference { return &a.ReferenceDataSources },
		func(x *Reference, id string) { x.ReferenceID = id })
}

func (s *Service) deleteReference(r *awsapi.Request) (any, error) {
	return deleteItem(s, r, "ReferenceId", "Reference data source", func(a *Application) *[]*Reference { return &a.ReferenceDataSources },
		func(x *Reference) string { return x.ReferenceID })
}

func (s *Service) addLogging(r *awsapi.Request) (any, error) {
	return addItem(s, r, "CloudWatchLoggingOption", func(a *Application) *[]*LogOption { return &a.CloudWatchLoggingOptions },
		func(x *LogOption, id string) { x.CloudWatchLoggingOptionID = id })
}

func (s *Service) deleteLogging(r *awsapi.Request) (any, error) {
	return deleteItem(s, r, "CloudWatchLoggingOptionId", "Logging option", func(a *Application) *[]*LogOption { return &a.CloudWatchLoggingOptions },
		func(x *LogOption) string { return x.CloudWatchLoggingOptionID })
}

// addItem is an AddApplication* operation: a versioned request whose field
// holds an item that gets the next id and joins one of the application's
// lists (validated with the rest of the application).
func addItem[T any](s *Service, r *awsapi.Request, field string, list func(*Application) *[]*T, setID func(*T, string)) (any, error) {
	var in versioned
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var item *T
	if err := decodeField(r, field, &item); err != nil {
		return nil, err
	}
	if item == nil {
		return nil, invalid("%s is required.", field)
	}
	return s.change(r, in.ApplicationName, in.CurrentApplicationVersionId, func(a *Application) error {
		setID(item, s.nextID(a))
		*list(a) = append(*list(a), item)
		return nil
	})
}

// deleteItem is a DeleteApplication* operation: it takes the item with the
// id in idField out of a list.
func deleteItem[T any](s *Service, r *awsapi.Request, idField, what string, list func(*Application) *[]*T, idOf func(*T) string) (any, error) {
	var in versioned
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var id string
	if err := decodeField(r, idField, &id); err != nil {
		return nil, err
	}
	return s.change(r, in.ApplicationName, in.CurrentApplicationVersionId, func(a *Application) error {
		items := list(a)
		for i, x := range *items {
			if idOf(x) == id {
				*items = append((*items)[:i], (*items)[i+1:]...)
				return nil
			}
		}
		return awsapi.Errorf(awsapi.CodeResourceNotFound, "%s %s is not found.", what, id)
	})
}

// decodeField decodes one field of the request body into v.
func decodeField(r *awsapi.Request, field string, v any) error {
	var body map[string]any
	if err := r.Decode(&body); err != nil {
		return err
	}
	if body[field] == nil {
		return nil
	}
	b, err := json.Marshal(body[field])
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return awsapi.Errorf(awsapi.CodeSerialization, "%s: %v", field, err)
	}
	return nil
}

func (s *Service) addProcessing(r *awsapi.Request) (any, error) {
	var in struct {
		versioned
		InputID                      string `json:"InputId"`
		InputProcessingConfiguration *Processing
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if in.InputProcessingConfiguration == nil {
		return nil, invalid("InputProcessingConfiguration is required.")
	}
	return s.change(r, in.ApplicationName, in.CurrentApplicationVersionId, func(a *Application) error {
		x, err := input(a, in.InputID)
		if err == nil {
			x.InputProcessingConfiguration = in.InputProcessingConfiguration
		}
		return err
	})
}

func (s *Service) deleteProcessing(r *awsapi.Request) (any, error) {
	var in struct {
		versioned
		InputID string `json:"InputId"`
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	return s.change(r, in.ApplicationName, in.CurrentApplicationVersionId, func(a *Application) error {
		x, err := input(a, in.InputID)
		if err == nil {
			x.InputProcessingConfiguration = nil
		}
		return err
	})
}

// input finds an application's input by id.
func input(a *Application, id string) (*Input, error) {
	for _, x := range a.Inputs {
		if x.InputID == id {
			return x, nil
		}
	}
	return nil, awsapi.Errorf(awsapi.CodeResourceNotFound, "Input %s is not found.", id)
}

func (s *Service) start(r *awsapi.Request) (any, error) {
	var in struct {
		ApplicationName     string
		InputConfigurations []struct {
			ID                                 string `json:"Id"`
			InputStartingPositionConfiguration StartingPosition
		}
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.app(r, in.ApplicationName)
	if err != nil {
		return nil, err
	}
	if a.Status != "READY" {
		return nil, awsapi.Errorf(awsapi.CodeResourceInUse, "Application %s is %s, not READY.", a.ApplicationName, a.Status)
	}
	if len(a.Inputs) == 0 {
		return nil, awsapi.Errorf("InvalidApplicationConfigurationException", "Application %s has no input.", a.ApplicationName)
	}
	positions := map[string]string{}
	for _, c := range in.InputConfigurations {
		found := false
		for _, x := range a.Inputs {
			found = found || x.InputID == c.ID
		}
		if !found {
			return nil, awsapi.Errorf(awsapi.CodeResourceNotFound, "Input %s is not found.", c.ID)
		}
		switch p := c.InputStartingPositionConfiguration.InputStartingPosition; p {
		case "NOW", "TRIM_HORIZON", "LAST_STOPPED_POINT":
			positions[c.ID] = p
		default:
			return nil, invalid("InputStartingPosition must be NOW, TRIM_HORIZON or LAST_STOPPED_POINT.")
		}
	}
	for _, x := range a.Inputs {
		if positions[x.InputID] == "" {
			return nil, invalid("InputConfigurations must give a starting position for input %s.", x.InputID)
		}
		x.InputStartingPositionConfiguration = &StartingPosition{InputStartingPosition: positions[x.InputID]}
	}
	if err := s.startLocked(a, positions); err != nil {
		return nil, err
	}
	a.Status = "STARTING" // RUNNING once the runner has read its inputs
	if err := s.save(a); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

func (s *Service) stop(r *awsapi.Request) (any, error) {
	var in struct{ ApplicationName string }
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.app(r, in.ApplicationName)
	if err != nil {
		return nil, err
	}
	if a.Status != "RUNNING" && a.Status != "STARTING" {
		return nil, awsapi.Errorf(awsapi.CodeResourceInUse, "Application %s is %s, not RUNNING.", a.ApplicationName, a.Status)
	}
	// STOPPING while the runner finishes its round, writes its outputs and
	// checkpoints; READY after.
	rn := s.runners[a.ApplicationName]
	delete(s.runners, a.ApplicationName)
	a.Status = "STOPPING"
	if err := s.save(a); err != nil {
		return nil, err
	}
	s.stopping.Add(1)
	go func() {
		defer s.stopping.Done()
		if rn != nil {
			rn.cancel()
			<-rn.done
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if cur := s.apps[a.ApplicationName]; cur != nil && cur.Status == "STOPPING" {
			cur.Status = "READY"
			if err := s.save(cur); err != nil {
				s.log.Warn("analytics application state not saved", "application", cur.ApplicationName, "err", err)
			}
		}
	}()
	return map[string]any{}, nil
}

// ended takes a runner that stopped by itself out of the running.
func (s *Service) ended(rn *runner) {
	<-rn.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runners[rn.app] != rn {
		return // stopped or replaced meanwhile
	}
	delete(s.runners, rn.app)
	if a := s.apps[rn.app]; a != nil {
		a.Status = "READY"
		if err := s.save(a); err != nil {
			s.log.Warn("analytics application state not saved", "application", a.ApplicationName, "err", err)
		}
	}
}

// refreshStatus turns STARTING into RUNNING once the runner has read its
// inputs (the runner never takes the service's lock).
func (s *Service) refreshStatus(a *Application) {
	if rn := s.runners[a.ApplicationName]; a.Status == "STARTING" && rn != nil && rn.hasStarted() {
		a.Status = "RUNNING"
		if err := s.save(a); err != nil {
			s.log.Warn("analytics application state not saved", "application", a.ApplicationName, "err", err)
		}
	}
}

// stopLocked stops an application's runner, which checkpoints on its way out.
func (s *Service) stopLocked(a *Application) {
	if rn := s.runners[a.ApplicationName]; rn != nil {
		rn.cancel()
		<-rn.done
		delete(s.runners, a.ApplicationName)
	}
}

// startLocked compiles the application and starts its runner; positions
// (by input id) say where each input starts, nil meaning where it stopped.
func (s *Service) startLocked(a *Application, positions map[string]string) error {
	tables, err := s.tables(a, true)
	if err != nil {
		return err
	}
	eng, err := compile(a.ApplicationCode, sourceDefs(a), func() int64 { return time.Now().UnixMilli() }, tables...)
	if err != nil {
		return codeInvalid(err)
	}
	rn := &runner{s: s, app: a.ApplicationName, arn: a.ARN, eng: eng, done: make(chan struct{}), started: make(chan struct{})}
	eng.markFn = rn.currentMark
	cp, hasCheckpoint := s.loadCheckpoint(a.ApplicationName)
	for _, in := range a.Inputs {
		stream, err := s.inputStream(in)
		if err != nil {
			return err
		}
		parser, _, _ := newRecordParser(in.InputSchema)
		ir := &inputRun{in: in, stream: stream, parser: parser}
		if p := in.InputProcessingConfiguration; p != nil {
			ir.preprocessor, _ = functionURL(p.InputLambdaProcessor)
		}
		for _, name := range inAppNames(in) {
			st, _ := eng.stream(name)
			ir.targets = append(ir.targets, st)
		}
		rn.inputs = append(rn.inputs, ir)
		info, err := s.store.Stream(stream)
		if err != nil {
			return awsapi.Errorf(awsapi.CodeResourceNotFound, "The input stream %s does not exist.", stream)
		}
		start := "LAST_STOPPED_POINT"
		if positions != nil {
			start = positions[in.InputID]
		}
		if start == "LAST_STOPPED_POINT" && !hasCheckpoint {
			start = "NOW" // never stopped: as AWS, start at the tip
		}
		for _, sh := range info.Shards {
			next, resumed := uint64(0), false
			if start == "LAST_STOPPED_POINT" {
				next, resumed = cp.Mark.Next[readerKey(ir, sh.ID)]
			}
			if !resumed {
				from := start
				if from == "LAST_STOPPED_POINT" {
					from = "TRIM_HORIZON" // a shard a reshard made since the checkpoint
				}
				if next, err = s.startPosition(ir, sh.ID, from); err != nil {
					return err
				}
			}
			rn.readers = append(rn.readers, &shardReader{input: ir, shard: sh.ID, next: next})
		}
		if start == "LAST_STOPPED_POINT" {
			rn.rowtime = cp.Mark.Rowtime
		}
	}
	for _, o := range a.Outputs {
		st, ok := eng.stream(o.Name)
		if !ok {
			return codeInvalid(fmt.Errorf("output %s names in-application stream %q, which the code does not create", o.OutputID, o.Name))
		}
		or := &outputRun{out: o, csv: o.DestinationSchema.RecordFormatType == "CSV", prefix: a.ApplicationName + "/" + o.OutputID + "/"}
		switch {
		case o.KinesisStreamsOutput != nil:
			name, ok := arnName(o.KinesisStreamsOutput.ResourceARN, "stream")
			if !ok {
				return invalid("Output %s: %s is not a Kinesis stream ARN.", o.OutputID, o.KinesisStreamsOutput.ResourceARN)
			}
			or.stream = name
		case o.KinesisFirehoseOutput != nil:
			name, ok := arnName(o.KinesisFirehoseOutput.ResourceARN, "deliverystream")
			if !ok || s.firehoseStream == nil {
				return invalid("Output %s: %s is not a Firehose delivery stream ARN.", o.OutputID, o.KinesisFirehoseOutput.ResourceARN)
			}
			or.stream = s.firehoseStream(name)
		case o.LambdaOutput != nil:
			or.url, _ = functionURL(o.LambdaOutput)
		}
		if _, err := s.store.Stream(or.stream); err != nil && or.url == "" {
			return awsapi.Errorf(awsapi.CodeResourceNotFound, "Output %s: the destination %s does not exist.", o.OutputID, or.stream)
		}
		if hasCheckpoint {
			// Row numbers go on from the checkpoint; rows replayed from its
			// mark that were written already are skipped.
			or.written = max(cp.Written[o.OutputID], s.writtenSince(or.stream, or.prefix, cp.At))
			or.sent = or.written
			if positions == nil || positions[a.Inputs[0].InputID] == "LAST_STOPPED_POINT" {
				or.sent = cp.Mark.Sent[o.OutputID]
			}
		}
		st.readers = append(st.readers, or.collect(st))
		rn.outputs = append(rn.outputs, or)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rn.cancel = cancel
	s.runners[a.ApplicationName] = rn
	if eng.hasSliding {
		rn.marks = []*mark{rn.currentMark()} // where this run starts
	}
	go rn.run(ctx)
	return nil
}

// collect is an output's reader of its in-application stream.
func (o *outputRun) collect(st *inAppStream) func(*row) {
	var buf []byte
	return func(r *row) {
		o.sent++
		if o.sent <= o.written {
			return // written before a restart; replayed to rebuild a window
		}
		buf = appendRow(buf[:0], st, r, o.csv)
		o.pending = append(o.pending, streamstore.Entry{PartitionKey: o.prefix + strconv.FormatInt(o.sent, 10), Data: append([]byte(nil), buf...)})
	}
}

// inputStream is the store stream an input reads.
func (s *Service) inputStream(in *Input) (string, error) {
	if in.KinesisStreamsInput != nil {
		name, ok := arnName(in.KinesisStreamsInput.ResourceARN, "stream")
		if !ok {
			return "", invalid("%s is not a Kinesis stream ARN.", in.KinesisStreamsInput.ResourceARN)
		}
		return name, nil
	}
	name, ok := arnName(in.KinesisFirehoseInput.ResourceARN, "deliverystream")
	if !ok || s.firehoseSource == nil {
		return "", invalid("%s is not a Firehose delivery stream ARN.", in.KinesisFirehoseInput.ResourceARN)
	}
	stream, err := s.firehoseSource(name)
	if err != nil {
		return "", awsapi.Errorf(awsapi.CodeResourceNotFound, "%v", err)
	}
	return stream, nil
}

// startPosition is where a shard's reading starts: NOW or TRIM_HORIZON.
func (s *Service) startPosition(ir *inputRun, shard, start string) (uint64, error) {
	pos := streamstore.Position{Type: streamstore.Latest}
	if start == "TRIM_HORIZON" {
		pos.Type = streamstore.TrimHorizon
	}
	n, err := s.store.Seek(ir.stream, shard, pos)
	if errors.Is(err, streamstore.ErrNotFound) {
		return 0, awsapi.Errorf(awsapi.CodeResourceNotFound, "The input stream %s does not exist.", ir.stream)
	}
	return n, err
}
