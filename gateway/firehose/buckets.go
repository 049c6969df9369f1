package firehose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3Endpoint is an S3-compatible server the objects of a bucket go to.
type S3Endpoint struct {
	URL             string `yaml:"url"`
	Region          string `yaml:"region"`
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
}

// Buckets decide where a bucket's objects are written: the S3-compatible
// endpoint configured for it (or for "*"), else a directory per bucket
// under Dir (the embedded default), written atomically.
type Buckets struct {
	Dir       string
	Endpoints map[string]S3Endpoint

	mu      sync.Mutex
	clients map[string]*s3.Client
}

// multipartThreshold: larger objects are uploaded in parts of this size.
const multipartThreshold = 16 << 20

// Where reports where a bucket's objects go, for logs and descriptions.
func (b *Buckets) Where(bucket string) string {
	if ep, ok := b.endpoint(bucket); ok {
		return ep.URL + "/" + bucket
	}
	return filepath.Join(b.Dir, bucket)
}

func (b *Buckets) endpoint(bucket string) (S3Endpoint, bool) {
	if ep, ok := b.Endpoints[bucket]; ok {
		return ep, true
	}
	ep, ok := b.Endpoints["*"]
	return ep, ok
}

// Put writes an object; it returns once the object is stored for good.
func (b *Buckets) Put(ctx context.Context, bucket, key string, body []byte) error {
	if ep, ok := b.endpoint(bucket); ok {
		return b.putS3(ctx, ep, bucket, key, body)
	}
	return b.putDir(bucket, key, body)
}

// Get reads an object (analytics reference tables come from buckets too).
func (b *Buckets) Get(ctx context.Context, bucket, key string) ([]byte, error) {
	if ep, ok := b.endpoint(bucket); ok {
		out, err := b.client(ep).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			return nil, err
		}
		defer out.Body.Close()
		return io.ReadAll(out.Body)
	}
	if strings.Contains(key, "..") || strings.Contains(bucket, "..") || strings.ContainsAny(bucket, `/\`) {
		return nil, fmt.Errorf("bucket %q, key %q: not a safe path", bucket, key)
	}
	return os.ReadFile(filepath.Join(b.Dir, bucket, filepath.FromSlash(key)))
}

// putDir writes <Dir>/<bucket>/<key> through a synced temporary file and a
// rename, so a reader (or a crash) never sees half an object.
func (b *Buckets) putDir(bucket, key string, body []byte) error {
	if strings.Contains(key, "..") || strings.Contains(bucket, "..") || strings.ContainsAny(bucket, `/\`) {
		return fmt.Errorf("bucket %q, key %q: not a safe path", bucket, key)
	}
	path := filepath.Join(b.Dir, bucket, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp-" + randomString(8)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync() //nolint:errcheck // best effort: the rename's durability
		d.Close()
	}
	return nil
}

func (b *Buckets) client(ep S3Endpoint) *s3.Client {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.clients == nil {
		b.clients = map[string]*s3.Client{}
	}
	k := ep.URL + "\x00" + ep.AccessKeyID
	if c, ok := b.clients[k]; ok {
		return c
	}
	region := ep.Region
	if region == "" {
		region = "us-east-1"
	}
	c := s3.New(s3.Options{Region: region, BaseEndpoint: aws.String(ep.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(ep.AccessKeyID, ep.SecretAccessKey, ""),
		HTTPClient:  &http.Client{Timeout: 5 * time.Minute}, RetryMaxAttempts: 1})
	b.clients[k] = c
	return c
}

// putS3 uploads with PutObject, or in parts for large objects.
func (b *Buckets) putS3(ctx context.Context, ep S3Endpoint, bucket, key string, body []byte) error {
	c := b.client(ep)
	if len(body) <= multipartThreshold {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
			ContentLength: aws.Int64(int64(len(body)))})
		return err
	}
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return err
	}
	var parts []s3types.CompletedPart
	for n := int32(1); len(body) > 0; n++ {
		size := min(len(body), multipartThreshold)
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
			PartNumber: aws.Int32(n), Body: bytes.NewReader(body[:size]), ContentLength: aws.Int64(int64(size))})
		if err != nil {
			c.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId}) //nolint:errcheck // cleanup
			return err
		}
		parts = append(parts, s3types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
		body = body[size:]
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts}})
	return err
}

// bucketName takes the bucket from arn:aws:s3:::name.
func bucketName(arn string) string { return strings.TrimPrefix(arn, "arn:aws:s3:::") }

var errStopped = errors.New("delivery stopped")
