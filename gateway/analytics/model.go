package analytics

import (
	"strings"
	"time"
)

// Application is what CreateApplication describes, kept in the store as a
// document; the field names are the API's so one shape serves requests,
// storage and DescribeApplication.
type Application struct {
	ApplicationName          string
	ApplicationDescription   string        `json:",omitempty"`
	ApplicationCode          string        `json:",omitempty"`
	Inputs                   []*Input      `json:",omitempty"`
	Outputs                  []*Output     `json:",omitempty"`
	ReferenceDataSources     []*Reference  `json:",omitempty"`
	CloudWatchLoggingOptions []*LogOption  `json:",omitempty"`
	Tags                     []Tag         `json:",omitempty"`
	ARN                      string        `json:"ApplicationARN"`
	Status                   string        `json:"ApplicationStatus"`
	Version                  int64         `json:"ApplicationVersionId"`
	Created                  time.Time     `json:"-"`
	Updated                  time.Time     `json:"-"`
	CreatedUnix              float64       `json:"CreateTimestamp"`
	UpdatedUnix              float64       `json:"LastUpdateTimestamp"`
	NextID                   int           `json:"-"` // the n of the next "1.n" id
	State                    *runnerMarker `json:",omitempty"`
}

// runnerMarker records in the stored document that the application was
// running, so a restarted gateway starts it again.
type runnerMarker struct {
	Running bool
}

// Input is a streaming source: a Kinesis stream or a Firehose delivery
// stream of this gateway.
type Input struct {
	InputID                            string `json:"InputId,omitempty"`
	NamePrefix                         string
	KinesisStreamsInput                *Resource         `json:",omitempty"`
	KinesisFirehoseInput               *Resource         `json:",omitempty"`
	InputProcessingConfiguration       *Processing       `json:",omitempty"`
	InputParallelism                   *Parallelism      `json:",omitempty"`
	InputSchema                        *SourceSchema     `json:",omitempty"`
	InputStartingPositionConfiguration *StartingPosition `json:",omitempty"`
}

// Resource is an ARN and the role AWS would assume to reach it (kept, not
// used: the gateway reaches its own streams).
type Resource struct {
	ResourceARN string
	RoleARN     string
}

type Processing struct {
	InputLambdaProcessor *Resource
}

type Parallelism struct {
	Count int
}

type StartingPosition struct {
	InputStartingPosition string `json:",omitempty"`
}

// SourceSchema says how a record becomes rows: its format and columns.
type SourceSchema struct {
	RecordFormat   *RecordFormat
	RecordEncoding string `json:",omitempty"`
	RecordColumns  []*RecordColumn
}

type RecordFormat struct {
	RecordFormatType  string
	MappingParameters *MappingParameters `json:",omitempty"`
}

type MappingParameters struct {
	JSONMappingParameters *struct{ RecordRowPath string } `json:",omitempty"`
	CSVMappingParameters  *struct {
		RecordRowDelimiter    string
		RecordColumnDelimiter string
	} `json:",omitempty"`
}

type RecordColumn struct {
	Name    string
	Mapping string `json:",omitempty"`
	SqlType string
}

// Output sends an in-application stream to a destination.
type Output struct {
	OutputID              string `json:"OutputId,omitempty"`
	Name                  string
	KinesisStreamsOutput  *Resource `json:",omitempty"`
	KinesisFirehoseOutput *Resource `json:",omitempty"`
	LambdaOutput          *Resource `json:",omitempty"`
	DestinationSchema     *struct{ RecordFormatType string }
}

// Reference is a reference table loaded from an object in S3-compatible
// storage (or a directory bucket).
type Reference struct {
	ReferenceID           string `json:"ReferenceId,omitempty"`
	TableName             string
	S3ReferenceDataSource *S3Reference `json:",omitempty"`
	ReferenceSchema       *SourceSchema
}

type S3Reference struct {
	BucketARN        string
	FileKey          string
	ReferenceRoleARN string `json:",omitempty"`
}

type LogOption struct {
	CloudWatchLoggingOptionID string `json:"CloudWatchLoggingOptionId,omitempty"`
	LogStreamARN              string
	RoleARN                   string
}

type Tag struct {
	Key   string
	Value string
}

// arnName returns the last path element of an ARN's resource
// ("arn:aws:kinesis:us-east-1:000000000000:stream/fleet" -> "fleet"), and
// whether the ARN is of that resource type.
func arnName(arn, resourceType string) (string, bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return "", false
	}
	name, ok := strings.CutPrefix(parts[5], resourceType+"/")
	return name, ok && name != ""
}
