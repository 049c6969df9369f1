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
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideomedia"
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

// resolved is where and as whom a client command connects.
type resolved struct {
	region   string
	endpoint *string
	creds    aws.CredentialsProvider
}

func (c *clientFlags) resolve() resolved {
	// No instance-metadata lookups: an edge box is no EC2 instance.
	cfg, err := config.LoadDefaultConfig(bg, config.WithEC2IMDSClientEnableState(imds.ClientDisabled))
	if err != nil {
		cfg = aws.Config{} // a broken profile: fall back to flags and defaults
	}
	r := resolved{region: cfg.Region, endpoint: cfg.BaseEndpoint, creds: cfg.Credentials}
	if c.region != "" {
		r.region = c.region
	}
	if r.region == "" {
		r.region = "us-east-1"
	}
	if c.endpoint != "" {
		r.endpoint = aws.String(c.endpoint)
	}
	if r.endpoint == nil {
		r.endpoint = aws.String("http://localhost:4566")
	}
	if c.accessKey != "" || c.secretKey != "" {
		r.creds = credentials.NewStaticCredentialsProvider(c.accessKey, c.secretKey, "")
	}
	if r.creds == nil {
		r.creds = anonymous
	} else if _, err := r.creds.Retrieve(bg); err != nil {
		// No credentials anywhere: fine for a gateway running with auth none;
		// one with auth on answers UnrecognizedClientException.
		r.creds = anonymous
	}
	return r
}

func (c *clientFlags) kinesis() *kinesis.Client {
	r := c.resolve()
	return kinesis.New(kinesis.Options{Region: r.region, BaseEndpoint: r.endpoint, Credentials: r.creds, HTTPClient: awsapi.SDKHTTPClient(nil)})
}

// archivedMedia is a Kinesis Video archived-media client: the gateway is its
// own data endpoint, so no GetDataEndpoint round trip is needed.
func (c *clientFlags) archivedMedia() *kinesisvideoarchivedmedia.Client {
	r := c.resolve()
	return kinesisvideoarchivedmedia.New(kinesisvideoarchivedmedia.Options{Region: r.region, BaseEndpoint: r.endpoint, Credentials: r.creds,
		HTTPClient: awsapi.SDKHTTPClient(nil)})
}

// videoMedia is a Kinesis Video media client (GetMedia), the gateway being
// its own data endpoint too.
func (c *clientFlags) videoMedia() *kinesisvideomedia.Client {
	r := c.resolve()
	return kinesisvideomedia.New(kinesisvideomedia.Options{Region: r.region, BaseEndpoint: r.endpoint, Credentials: r.creds,
		HTTPClient: awsapi.SDKHTTPClient(nil)})
}

var (
	bg        = context.Background()
	anonymous = credentials.NewStaticCredentialsProvider("anonymous", "anonymous", "")
)
