package kvs

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/media"
)

// StreamingAuth authenticates a request whose body is a stream and returns
// the caller and the body to read (decoded when it is chunk-signed); nil
// when authentication is off.
type StreamingAuth func(r *http.Request, service string) (awsapi.Principal, io.Reader, error)

// Ingest takes a PutMedia body into a stream (the media server's PutMedia).
type Ingest func(ctx context.Context, stream string, body io.Reader, o media.PutMediaOptions, ack func(media.PutMediaAck)) error

// ackWriteTimeout bounds the write of one acknowledgement.
const ackWriteTimeout = 10 * time.Second

// PutMediaHandler serves Kinesis Video's PutMedia (POST /putMedia): a
// producer streams Matroska as long as it likes and reads acknowledgements,
// one JSON object per line, on the same connection while it sends.
// busy reports a stream that already has a publisher which may not be
// taken over: the new session is refused, as KVS throttles the newest.
func (a *API) PutMediaHandler(authn StreamingAuth, ingest Ingest, busy func(stream string) bool, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(err error) {
			ae, ok := err.(*awsapi.Error)
			if !ok {
				ae = &awsapi.Error{Code: "InternalFailure", Message: "Internal service failure.", Status: http.StatusInternalServerError}
			}
			awsapi.WriteRESTError(w, r, ae)
		}
		if r.Method != http.MethodPost {
			fail(&awsapi.Error{Code: "InvalidArgumentException", Message: "PutMedia is a POST.", Status: http.StatusMethodNotAllowed})
			return
		}
		name := r.Header.Get("x-amzn-stream-name")
		if arn := r.Header.Get("x-amzn-stream-arn"); arn != "" {
			n, _, ok := parseARN(arn)
			if !ok || (name != "" && name != n) {
				fail(awsapi.Errorf(codeInvalidFormat, "Invalid stream ARN %q.", arn))
				return
			}
			name = n
		}
		if name == "" {
			fail(invalid("PutMedia needs an x-amzn-stream-name or x-amzn-stream-arn header."))
			return
		}
		opts := media.PutMediaOptions{Relative: strings.EqualFold(r.Header.Get("x-amzn-fragment-timecode-type"), "RELATIVE")}
		if ts := r.Header.Get("x-amzn-producer-start-timestamp"); ts != "" {
			f, err := strconv.ParseFloat(ts, 64)
			if err != nil {
				fail(invalid("x-amzn-producer-start-timestamp %q is not seconds since the epoch.", ts))
				return
			}
			opts.ProducerStart = time.Unix(0, int64(f*1e9))
		} else if opts.Relative {
			fail(invalid("RELATIVE fragment timecodes need x-amzn-producer-start-timestamp."))
			return
		}
		body := io.Reader(r.Body)
		if authn != nil {
			principal, b, err := authn(r, "kinesisvideo")
			if err != nil {
				fail(err)
				return
			}
			req := &awsapi.Request{Op: "PutMedia", Principal: principal, Service: &awsapi.Service{Action: "kinesisvideo"}, R: r}
			if err := req.Authorize(a.StreamARN(name)); err != nil {
				if ae, ok := err.(*awsapi.Error); ok {
					ae.Status = http.StatusForbidden // REST-JSON: access denied is 403
				}
				fail(err)
				return
			}
			body = b
		}
		if _, err := a.store.Stream(namespace + name); err != nil {
			fail(notFound("The requested stream %s is not found or not active.", name))
			return
		}
		if busy(name) {
			fail(awsapi.Errorf("ConnectionLimitExceededException", "Stream %s already has a producer session.", name))
			return
		}
		// Acknowledgements go out while the body still comes in.
		rc := http.NewResponseController(w)
		if err := rc.EnableFullDuplex(); err != nil {
			log.Debug("PutMedia without full duplex", "err", err)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		rc.Flush() //nolint:errcheck // the producer may be gone: the ingest ends on its own
		enc := json.NewEncoder(w)
		ack := func(ack media.PutMediaAck) {
			// A producer that stops reading its acks does not hold the ingest.
			rc.SetWriteDeadline(time.Now().Add(ackWriteTimeout)) //nolint:errcheck // as above
			enc.Encode(ack)                                      //nolint:errcheck
			rc.Flush()                                           //nolint:errcheck
		}
		if err := ingest(r.Context(), name, body, opts, ack); err != nil {
			log.Info("PutMedia ended", "stream", name, "err", err)
		}
	})
}
