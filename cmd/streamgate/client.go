package main

import (
	"context"
	"flag"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/streamgate/streamgate/gateway/awsapi"
)

func defaultEndpoint() string {
	if e := os.Getenv("STREAMGATE_ENDPOINT"); e != "" {
		return e
	}
	return "http://localhost:4566"
}

// clientFlags are the connection flags every client command takes.
type clientFlags struct {
	endpoint, region, accessKey, secretKey string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.endpoint, "endpoint", defaultEndpoint(), "Kinesis-compatible endpoint URL")
	fs.StringVar(&c.region, "region", envOr("AWS_REGION", "us-east-1"), "AWS region to sign for")
	fs.StringVar(&c.accessKey, "access-key", envOr("AWS_ACCESS_KEY_ID", "streamgate"), "access key id")
	fs.StringVar(&c.secretKey, "secret-key", envOr("AWS_SECRET_ACCESS_KEY", "streamgate"), "secret access key")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (c *clientFlags) kinesis() *kinesis.Client {
	return kinesis.New(kinesis.Options{
		Region:       c.region,
		BaseEndpoint: aws.String(c.endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(c.accessKey, c.secretKey, ""),
		HTTPClient:   awsapi.SDKHTTPClient(nil),
	})
}

var bg = context.Background()
