package main

import (
	"context"
	"flag"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

// clientFlags are the connection flags every client command takes. Unset
// ones come from the usual AWS places (environment, AWS_PROFILE and
// AWS_CONFIG_FILE, e.g. the profile the gateway writes to
// <data>/auth/aws-config on first start).
type clientFlags struct {
	endpoint, region, accessKey, secretKey string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.endpoint, "endpoint", os.Getenv("STREAMGATE_ENDPOINT"), "Kinesis-compatible endpoint URL (default: the profile's endpoint_url, else http://localhost:4566)")
	fs.StringVar(&c.region, "region", "", "AWS region to sign for (default: the profile's, else us-east-1)")
	fs.StringVar(&c.accessKey, "access-key", "", "access key id (default: AWS environment or profile)")
	fs.StringVar(&c.secretKey, "secret-key", "", "secret access key (default: AWS environment or profile)")
}

func (c *clientFlags) kinesis() *kinesis.Client {
	// No instance-metadata lookups: an edge box is no EC2 instance.
	cfg, err := config.LoadDefaultConfig(bg, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	if err != nil {
		cfg = aws.Config{} // a broken profile: fall back to flags and defaults
	}
	o := kinesis.Options{
		Region:       cfg.Region,
		BaseEndpoint: cfg.BaseEndpoint,
		Credentials:  cfg.Credentials,
		HTTPClient:   awsapi.SDKHTTPClient(nil),
	}
	if c.region != "" {
		o.Region = c.region
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if c.endpoint != "" {
		o.BaseEndpoint = aws.String(c.endpoint)
	}
	if o.BaseEndpoint == nil {
		o.BaseEndpoint = aws.String("http://localhost:4566")
	}
	if c.accessKey != "" || c.secretKey != "" {
		o.Credentials = credentials.NewStaticCredentialsProvider(c.accessKey, c.secretKey, "")
	}
	if o.Credentials == nil {
		o.Credentials = anonymous
	} else if _, err := o.Credentials.Retrieve(bg); err != nil {
		// No credentials anywhere: fine for a gateway running with auth none;
		// one with auth on answers UnrecognizedClientException.
		o.Credentials = anonymous
	}
	return kinesis.New(o)
}

var (
	bg        = context.Background()
	anonymous = credentials.NewStaticCredentialsProvider("anonymous", "anonymous", "")
)
