package awsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// InvokeFunction calls a "Lambda function" the way this gateway has them:
// an HTTP endpoint that takes the service's Lambda event as a JSON POST
// and answers with the Lambda's JSON result (Firehose transformations,
// Kinesis Analytics preprocessors and outputs). A non-200 answer is an
// error; the answer is read up to Lambda's 6 MB response limit.
func InvokeFunction(ctx context.Context, client *http.Client, url string, event []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(event))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 6<<20))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", res.StatusCode, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}
