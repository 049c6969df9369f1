// Package awsapi is the AWS JSON 1.1 / CBOR 1.1 plumbing shared by the
// gateway's services (Kinesis, Firehose, Analytics): routing by X-Amz-Target,
// request decoding, AWS error bodies, validation messages and timestamps.
package awsapi
