package awsapi

import (
	"bytes"
	"io"
	"net/http"
)

// SDKHTTPClient is an HTTP client for aws-sdk-go-v2 clients of this gateway
// (our CLI, load generator and tests use it; Go users may too).
//
// Why: smithy-go wraps request bodies in a reader that returns io.EOF as an
// error once closed, and closes it as soon as the response headers arrive.
// For such bodies Go's transport sends the headers first and streams the body
// straight to the socket, then checks the body for extra bytes. A server that
// answers fast (loopback, the same edge box) can land its response before
// that check; the check then fails and the transport closes the connection
// under the response being read ("use of closed network connection"). A body
// buffered in a bytes.Reader is sent in one write after the check, which
// closes the window. Pass nil for http.DefaultTransport.
func SDKHTTPClient(rt http.RoundTripper) *http.Client {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &http.Client{Transport: bufferedBodies{rt}}
}

type bufferedBodies struct{ next http.RoundTripper }

func (b bufferedBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength < 0 {
		return b.next.RoundTrip(r) // streaming bodies (event-stream input) stay as they are
	}
	data, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	return b.next.RoundTrip(r)
}
