package analytics

// The operations of the Kinesis Analytics API on applications and their
// inputs, outputs, reference data sources and logging options.

import (
	"encoding/json"
	"sort"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
)

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

// appRef is how a request names its application; request bodies that
// carry more embed it.
type appRef struct{ ApplicationName string }

func (a *appRef) appName() string { return a.ApplicationName }

// withApp decodes a request that names one application (its body
// embedding appRef) and runs op on the application with the service locked.
func (s *Service) withApp(r *awsapi.Request, in interface{ appName() string }, op func(a *Application) (any, error)) (any, error) {
	if err := r.Decode(in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.app(r, in.appName())
	if err != nil {
		return nil, err
	}
	return op(a)
}

func (s *Service) describe(r *awsapi.Request) (any, error) {
	return s.withApp(r, &appRef{}, func(a *Application) (any, error) {
		return map[string]any{"ApplicationDetail": detail(a)}, nil
	})
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
		if p := in.InputProcessingConfiguration; p != nil {
			d["InputProcessingConfigurationDescription"] = map[string]any{"InputLambdaProcessorDescription": p.InputLambdaProcessor}
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
		if o.LambdaOutput != nil {
			d["LambdaOutputDescription"] = o.LambdaOutput
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
		appRef
		CreateTimestamp *float64
	}
	return s.withApp(r, &in, func(a *Application) (any, error) {
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
	})
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
