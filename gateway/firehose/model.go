// Package firehose is the Amazon Data Firehose API over the shard log: a
// delivery stream is a consumer of a stream (its own, for Direct PUT, or a
// Kinesis stream of the gateway) with a checkpoint per shard, buffering
// records and delivering them to S3-compatible storage (or a directory) and
// HTTP endpoints. Buffered records survive a crash: they stay in the log
// until their object is written.
package firehose

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// DeliveryStream is what is kept per delivery stream (AWS field names).
type DeliveryStream struct {
	Name        string    `json:"DeliveryStreamName"`
	Type        string    `json:"DeliveryStreamType"` // DirectPut | KinesisStreamAsSource
	Version     int       `json:"VersionId,string"`
	Created     time.Time `json:"-"`
	Updated     time.Time `json:"-"`
	CreatedUnix float64   `json:"CreateTimestamp"`
	UpdatedUnix float64   `json:"LastUpdateTimestamp"`
	Encryption  string    `json:"EncryptionStatus"` // ENABLED | DISABLED
	// Source is the Kinesis stream of a KinesisStreamAsSource delivery stream.
	Source       *KinesisSource         `json:"KinesisStreamSourceConfiguration,omitempty"`
	ExtendedS3   *ExtendedS3Destination `json:"ExtendedS3DestinationConfiguration,omitempty"`
	HTTPEndpoint *HTTPEndpointDest      `json:"HttpEndpointDestinationConfiguration,omitempty"`
	Tags         []Tag                  `json:"Tags,omitempty"`
}

// KinesisSource names the source stream by ARN.
type KinesisSource struct {
	KinesisStreamARN string `json:"KinesisStreamARN"`
	RoleARN          string `json:"RoleARN,omitempty"`
}

// Tag is a delivery stream tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value,omitempty"`
}

// BufferingHints flush a buffer at whichever comes first.
type BufferingHints struct {
	SizeInMBs         *int `json:"SizeInMBs,omitempty"`
	IntervalInSeconds *int `json:"IntervalInSeconds,omitempty"`
}

// ExtendedS3Destination is an S3 (or S3-compatible, or directory) destination.
type ExtendedS3Destination struct {
	RoleARN                  string                   `json:"RoleARN,omitempty"`
	BucketARN                string                   `json:"BucketARN"`
	Prefix                   string                   `json:"Prefix,omitempty"`
	ErrorOutputPrefix        string                   `json:"ErrorOutputPrefix,omitempty"`
	BufferingHints           *BufferingHints          `json:"BufferingHints,omitempty"`
	CompressionFormat        string                   `json:"CompressionFormat,omitempty"`
	FileExtension            string                   `json:"FileExtension,omitempty"`
	CustomTimeZone           string                   `json:"CustomTimeZone,omitempty"`
	ProcessingConfiguration  *ProcessingConfiguration `json:"ProcessingConfiguration,omitempty"`
	DynamicPartitioning      *DynamicPartitioning     `json:"DynamicPartitioningConfiguration,omitempty"`
	S3BackupMode             string                   `json:"S3BackupMode,omitempty"`
	CloudWatchLoggingOptions map[string]any           `json:"CloudWatchLoggingOptions,omitempty"`
	EncryptionConfiguration  map[string]any           `json:"EncryptionConfiguration,omitempty"`
	DataFormatConversion     map[string]any           `json:"DataFormatConversionConfiguration,omitempty"`
	S3BackupConfiguration    *ExtendedS3Destination   `json:"S3BackupConfiguration,omitempty"`
}

// ProcessingConfiguration lists the processors applied to each record.
type ProcessingConfiguration struct {
	Enabled    *bool       `json:"Enabled,omitempty"`
	Processors []Processor `json:"Processors,omitempty"`
}

// Processor is one processing step.
type Processor struct {
	Type       string      `json:"Type"`
	Parameters []Parameter `json:"Parameters,omitempty"`
}

// Parameter is a processor's parameter.
type Parameter struct {
	ParameterName  string `json:"ParameterName"`
	ParameterValue string `json:"ParameterValue"`
}

// DynamicPartitioning turns on per-key prefixes.
type DynamicPartitioning struct {
	Enabled      *bool         `json:"Enabled,omitempty"`
	RetryOptions *RetryOptions `json:"RetryOptions,omitempty"`
}

// RetryOptions bound the time spent retrying a delivery.
type RetryOptions struct {
	DurationInSeconds *int `json:"DurationInSeconds,omitempty"`
}

// HTTPEndpointDest is the HTTP endpoint delivery contract's destination.
type HTTPEndpointDest struct {
	EndpointConfiguration struct {
		URL       string `json:"Url"`
		Name      string `json:"Name,omitempty"`
		AccessKey string `json:"AccessKey,omitempty"`
	} `json:"EndpointConfiguration"`
	BufferingHints       *BufferingHints `json:"BufferingHints,omitempty"`
	RequestConfiguration *struct {
		ContentEncoding  string `json:"ContentEncoding,omitempty"`
		CommonAttributes []struct {
			AttributeName  string `json:"AttributeName"`
			AttributeValue string `json:"AttributeValue"`
		} `json:"CommonAttributes,omitempty"`
	} `json:"RequestConfiguration,omitempty"`
	ProcessingConfiguration *ProcessingConfiguration `json:"ProcessingConfiguration,omitempty"`
	RetryOptions            *RetryOptions            `json:"RetryOptions,omitempty"`
	RoleARN                 string                   `json:"RoleARN,omitempty"`
	S3BackupMode            string                   `json:"S3BackupMode,omitempty"`
	S3Configuration         *ExtendedS3Destination   `json:"S3Configuration,omitempty"`
}

// Limits (AWS's).
const (
	MaxRecordBytes = 1_024_000
	MaxBatch       = 500
	MaxBatchBytes  = 4 << 20
)

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)

// validate checks a delivery stream as AWS does, in AWS's words where it
// can; the message is an InvalidArgumentException's.
func (d *DeliveryStream) validate() error {
	if !nameRE.MatchString(d.Name) {
		return fmt.Errorf("1 validation error detected: Value '%s' at 'deliveryStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+", d.Name)
	}
	switch d.Type {
	case "DirectPut":
	case "KinesisStreamAsSource":
		if d.Source == nil || !strings.Contains(d.Source.KinesisStreamARN, ":stream/") {
			return fmt.Errorf("KinesisStreamAsSource needs KinesisStreamSourceConfiguration.KinesisStreamARN")
		}
	default:
		return fmt.Errorf("DeliveryStreamType %s is not supported (DirectPut or KinesisStreamAsSource)", d.Type)
	}
	if (d.ExtendedS3 == nil) == (d.HTTPEndpoint == nil) {
		return fmt.Errorf("exactly one destination is needed: ExtendedS3DestinationConfiguration (or S3DestinationConfiguration) or HttpEndpointDestinationConfiguration")
	}
	if d.ExtendedS3 != nil {
		if err := d.ExtendedS3.validate(128); err != nil {
			return err
		}
	}
	if h := d.HTTPEndpoint; h != nil {
		if !strings.HasPrefix(h.EndpointConfiguration.URL, "http://") && !strings.HasPrefix(h.EndpointConfiguration.URL, "https://") {
			return fmt.Errorf("EndpointConfiguration.Url must be an http(s) URL")
		}
		if err := validHints(h.BufferingHints, 64); err != nil {
			return err
		}
		if h.S3Configuration == nil {
			return fmt.Errorf("HttpEndpointDestinationConfiguration needs S3Configuration (where failed records go)")
		}
		if err := h.S3Configuration.validate(128); err != nil {
			return err
		}
		if _, err := processors(h.ProcessingConfiguration); err != nil {
			return err
		}
	}
	return nil
}

func validHints(h *BufferingHints, maxMB int) error {
	if h == nil {
		return nil
	}
	if (h.SizeInMBs == nil) != (h.IntervalInSeconds == nil) {
		return fmt.Errorf("BufferingHints: SizeInMBs and IntervalInSeconds go together")
	}
	if h.SizeInMBs != nil && (*h.SizeInMBs < 1 || *h.SizeInMBs > maxMB) {
		return fmt.Errorf("1 validation error detected: Value '%d' at 'bufferingHints.sizeInMBs' failed to satisfy constraint: Member must have value between 1 and %d", *h.SizeInMBs, maxMB)
	}
	if h.IntervalInSeconds != nil && (*h.IntervalInSeconds < 0 || *h.IntervalInSeconds > 900) {
		return fmt.Errorf("1 validation error detected: Value '%d' at 'bufferingHints.intervalInSeconds' failed to satisfy constraint: Member must have value between 0 and 900", *h.IntervalInSeconds)
	}
	return nil
}

func (s *ExtendedS3Destination) validate(maxMB int) error {
	if !strings.HasPrefix(s.BucketARN, "arn:aws:s3:::") || len(s.BucketARN) <= len("arn:aws:s3:::") {
		return fmt.Errorf("BucketARN %q: want arn:aws:s3:::<bucket>", s.BucketARN)
	}
	if err := validHints(s.BufferingHints, maxMB); err != nil {
		return err
	}
	switch s.CompressionFormat {
	case "", "UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY":
	default:
		return fmt.Errorf("CompressionFormat %s: want UNCOMPRESSED, GZIP, ZIP, Snappy or HADOOP_SNAPPY", s.CompressionFormat)
	}
	if s.DataFormatConversion != nil {
		if enabled, ok := s.DataFormatConversion["Enabled"].(bool); (enabled || !ok) && s.CompressionFormat != "" && s.CompressionFormat != "UNCOMPRESSED" {
			return fmt.Errorf("CompressionFormat must be UNCOMPRESSED when data format conversion is enabled (Parquet compresses inside)")
		}
	}
	procs, err := processors(s.ProcessingConfiguration)
	if err != nil {
		return err
	}
	dynamic := s.DynamicPartitioning != nil && s.DynamicPartitioning.Enabled != nil && *s.DynamicPartitioning.Enabled
	switch s.S3BackupMode {
	case "", "Disabled":
	case "Enabled":
		if s.S3BackupConfiguration == nil {
			return fmt.Errorf("S3BackupMode Enabled needs S3BackupConfiguration")
		}
		if err := s.S3BackupConfiguration.validate(maxMB); err != nil {
			return fmt.Errorf("S3BackupConfiguration: %w", err)
		}
	default:
		return fmt.Errorf("S3BackupMode %s: want Enabled or Disabled", s.S3BackupMode)
	}
	if err := validPrefix(s.Prefix, false, dynamic); err != nil {
		return err
	}
	if err := validPrefix(s.ErrorOutputPrefix, true, false); err != nil {
		return err
	}
	if dynamic {
		if procs.query == nil && strings.Contains(s.Prefix, "partitionKeyFromQuery") {
			return fmt.Errorf("the Prefix uses partitionKeyFromQuery but no MetadataExtraction processor is configured")
		}
		if procs.lambda == "" && strings.Contains(s.Prefix, "partitionKeyFromLambda") {
			return fmt.Errorf("the Prefix uses partitionKeyFromLambda but no Lambda processor is configured")
		}
		if s.ErrorOutputPrefix == "" {
			return fmt.Errorf("ErrorOutputPrefix is required when dynamic partitioning is enabled")
		}
	} else if strings.Contains(s.Prefix, "partitionKeyFrom") {
		return fmt.Errorf("partitionKeyFromQuery/partitionKeyFromLambda in the Prefix need DynamicPartitioningConfiguration.Enabled")
	}
	return nil
}

func (d *DeliveryStream) clone() *DeliveryStream {
	b, _ := json.Marshal(d)
	var c DeliveryStream
	json.Unmarshal(b, &c)
	c.Created, c.Updated = d.Created, d.Updated
	return &c
}
