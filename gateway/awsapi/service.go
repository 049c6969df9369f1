package awsapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/sync/semaphore"
)

// Content types of the JSON 1.1 services.
const (
	ContentJSON = "application/x-amz-json-1.1"
	ContentCBOR = "application/x-amz-cbor-1.1"
)

// ContentRESTJSON is the content type of the REST-JSON services (Kinesis Video).
const ContentRESTJSON = "application/json"

// Request is one decoded-on-demand API call.
type Request struct {
	Op        string
	RequestID string
	CBOR      bool
	REST      bool // a REST-JSON call: plain JSON content type
	Body      []byte
	W         http.ResponseWriter
	R         *http.Request
	// Principal is the authenticated caller; nil when authentication is off.
	Principal Principal
	Service   *Service // set by the mux
	// PathParams are the {name} segments of a Routes pattern.
	PathParams map[string]string
}

// Principal is an authenticated caller and what its policy allows.
type Principal interface {
	// Allows reports whether the caller may perform action on resource.
	Allows(action, resource string) bool
	// ARN names the caller in AccessDenied messages.
	ARN() string
}

// Authenticator verifies a request (its body already read) for a service's
// signing name and returns the caller, or an *Error in AWS form.
type Authenticator func(r *http.Request, body []byte, signingName string) (Principal, error)

// Authorize checks that the caller may perform this operation on resource
// (an ARN, or "*" for account-level operations). Every operation calls it
// with the resource it touches before it changes or reveals anything.
func (r *Request) Authorize(resource string) error {
	if r.Principal == nil {
		return nil
	}
	action := r.Service.Action + ":" + r.Op
	if r.Principal.Allows(action, resource) {
		return nil
	}
	return Errorf(CodeAccessDenied, "User: %s is not authorized to perform: %s on resource: %s because no identity-based policy allows the %s action",
		r.Principal.ARN(), action, resource, action)
}

// Context is the request's context.
func (r *Request) Context() context.Context { return r.R.Context() }

// Decode unmarshals the body into v. Malformed input is a SerializationException.
func (r *Request) Decode(v any) error {
	body := r.Body
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
		if r.CBOR {
			body = []byte{0xa0}
		}
	}
	var err error
	if r.CBOR {
		err = cborDec.Unmarshal(body, v)
	} else {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		return &Error{Code: CodeSerialization, Message: serializationMessage(err), Status: http.StatusBadRequest}
	}
	return nil
}

func serializationMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("Unexpected value type in payload: field %s cannot take a JSON %s", te.Field, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("Malformed request body: %v at offset %d", se, se.Offset)
	}
	return "Malformed request body: " + err.Error()
}

var cborDec, _ = cbor.DecOptions{
	MaxArrayElements: 100000, MaxMapPairs: 100000, MaxNestedLevels: 32,
	DefaultByteStringType: nil,
}.DecMode()

var cborEnc, _ = cbor.EncOptions{}.EncMode()

// Op handles one operation. It returns the response value, or an error
// (an *Error becomes that AWS error; anything else an InternalFailure). An
// operation that writes its own response (an event stream) returns Streamed.
type Op func(r *Request) (any, error)

// Streamed is returned by an Op that wrote the response itself.
var Streamed = &struct{ streamed bool }{true}

// Service is one AWS JSON 1.1 service, addressed by its X-Amz-Target prefix
// ("Kinesis_20131202"), or one REST-JSON service, addressed by path ("POST
// /listFragments"): its operations and how they are signed and authorized.
type Service struct {
	Prefix string
	// Paths, for a REST-JSON service, maps request paths to operation names.
	Paths map[string]string
	// Routes, for a REST-JSON service with methods and path parameters
	// (AWS IoT's API), maps "METHOD /rules/{ruleName}" patterns to operation
	// names; the parameters are in Request.PathParams.
	Routes map[string]string
	// SigningName is the SigV4 service name ("kinesis"); Action prefixes
	// IAM actions ("kinesis:PutRecord").
	SigningName, Action string
	Ops                 map[string]Op
	// Observe, when set, is told each call's operation, outcome code ("" for
	// success) and duration: the hook for metrics.
	Observe func(op, code string, d time.Duration)
}

// Mux routes POST / to services by X-Amz-Target.
type Mux struct {
	// Auth, when set, authenticates every request before its operation runs.
	Auth Authenticator
	// BodyTimeout bounds how long one request body may take to arrive, so a
	// slow client cannot hold a request and its in-flight bytes (default 60 s).
	BodyTimeout time.Duration
	services    map[string]*Service
	paths       map[string]route // REST-JSON operations by path
	routes      []patternRoute   // REST-JSON operations by method and path pattern
	maxBody     int64
	inflight    *semaphore.Weighted // request body bytes being handled
	log         *slog.Logger
}

// NewMux makes a router for the given services. Bodies over maxBody bytes are
// refused; at most maxInflight bytes of request bodies are handled at once
// (later requests wait), so memory stays bounded however many clients push.
func NewMux(log *slog.Logger, maxBody, maxInflight int64, services ...*Service) *Mux {
	m := &Mux{services: map[string]*Service{}, maxBody: maxBody, inflight: semaphore.NewWeighted(max(maxInflight, maxBody)), log: log,
		BodyTimeout: 60 * time.Second}
	m.paths = map[string]route{}
	for _, s := range services {
		for pattern, op := range s.Routes {
			method, path, _ := strings.Cut(pattern, " ")
			m.routes = append(m.routes, patternRoute{route{s, op}, method, strings.Split(strings.Trim(path, "/"), "/")})
		}
		if s.Routes != nil {
			continue
		}
		if s.Paths != nil {
			for path, op := range s.Paths {
				m.paths[path] = route{s, op}
			}
			continue
		}
		m.services[s.Prefix] = s
	}
	return m
}

type route struct {
	svc *Service
	op  string
}

type patternRoute struct {
	route
	method   string
	segments []string // "{name}" segments are parameters
}

// match finds the route of a method and path, with its parameters.
func (m *Mux) match(method, path string) (route, map[string]string, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for _, pr := range m.routes {
		if pr.method != method || len(pr.segments) != len(segs) {
			continue
		}
		params := map[string]string{}
		ok := true
		for i, s := range pr.segments {
			if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && segs[i] != "" {
				v, err := url.PathUnescape(segs[i])
				if err != nil {
					ok = false
					break
				}
				params[s[1:len(s)-1]] = v
			} else if s != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return pr.route, params, true
		}
	}
	return route{}, nil, false
}

// Handles reports whether the request is addressed to one of the services.
func (m *Mux) Handles(r *http.Request) bool {
	if _, ok := m.paths[r.URL.Path]; ok {
		return true
	}
	if _, _, ok := m.match(r.Method, r.URL.Path); ok {
		return true
	}
	prefix, _, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	_, ok := m.services[prefix]
	return ok
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	req := &Request{RequestID: newRequestID(), W: w, R: r}
	w.Header().Set("x-amzn-RequestId", req.RequestID)
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	req.CBOR = strings.TrimSpace(ct) == ContentCBOR
	prefix, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	svc := m.services[prefix]
	if rt, ok := m.paths[r.URL.Path]; ok && svc == nil {
		svc, op, req.REST, req.CBOR = rt.svc, rt.op, true, false
	}
	routed := false
	if rt, params, ok := m.match(r.Method, r.URL.Path); ok && svc == nil {
		svc, op, req.REST, req.CBOR, req.PathParams, routed = rt.svc, rt.op, true, false, params, true
	}
	if r.Method != http.MethodPost && !routed {
		m.writeError(req, Errorf(CodeUnknownOperation, "Operations are invoked with POST"))
		return
	}
	if svc == nil || svc.Ops[op] == nil {
		m.writeError(req, Errorf(CodeUnknownOperation, "Unknown operation %q", r.Header.Get("X-Amz-Target")))
		return
	}
	req.Op, req.Service = op, svc
	weight := m.maxBody
	if r.ContentLength >= 0 && r.ContentLength < m.maxBody {
		weight = max(r.ContentLength, 1)
	}
	if err := m.inflight.Acquire(r.Context(), weight); err != nil {
		return // the client went away while waiting
	}
	defer m.inflight.Release(weight)
	body, err := readBody(w, r, m.maxBody, m.BodyTimeout)
	defer releaseBody(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			m.writeError(req, &Error{Code: CodeSerialization, Status: http.StatusRequestEntityTooLarge,
				Message: fmt.Sprintf("Request body is larger than %d bytes", m.maxBody)})
		} else {
			m.writeError(req, Errorf(CodeSerialization, "Could not read request body: %v", err))
		}
		return
	}
	req.Body = body
	if m.Auth != nil {
		p, err := m.Auth(r, body, svc.SigningName)
		if err != nil {
			code := m.writeError(req, err)
			if svc.Observe != nil {
				svc.Observe(op, code, time.Since(start))
			}
			return
		}
		req.Principal = p
	}
	out, err := m.call(svc.Ops[op], req)
	code := ""
	switch {
	case err != nil:
		code = m.writeError(req, err)
	case out == Streamed:
	default:
		m.write(req, http.StatusOK, out)
	}
	if svc.Observe != nil {
		svc.Observe(op, code, time.Since(start))
	}
}

// bodies recycles request buffers: PutRecords bodies run to megabytes.
var bodies sync.Pool

// readBody reads the request body into a pooled buffer sized by
// Content-Length when known.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration) ([]byte, error) {
	// A slow client may not hold a request (and its in-flight bytes) open:
	// the body must arrive within the timeout, then the deadline is lifted
	// (SubscribeToShard keeps its connection for minutes).
	// On failure the deadline stays, so the server's drain of the unread body
	// after the error response cannot hang on a stalled client either.
	rc := http.NewResponseController(w)
	deadline := rc.SetReadDeadline(time.Now().Add(timeout)) == nil
	body, err := readBodyBytes(w, r, limit)
	if err == nil && deadline {
		rc.SetReadDeadline(time.Time{})
	}
	return body, err
}

func readBodyBytes(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength < 0 || r.ContentLength > limit {
		return io.ReadAll(rd)
	}
	var buf []byte
	if p, ok := bodies.Get().(*[]byte); ok && int64(cap(*p)) >= r.ContentLength {
		buf = (*p)[:r.ContentLength]
	} else {
		if ok {
			bodies.Put(p)
		}
		buf = make([]byte, r.ContentLength)
	}
	if _, err := io.ReadFull(rd, buf); err != nil {
		releaseBody(buf)
		return nil, err
	}
	return buf, nil
}

func releaseBody(b []byte) {
	if cap(b) >= 4<<10 && cap(b) <= 32<<20 {
		bodies.Put(&b)
	}
}

// call runs an operation and turns a panic into an InternalFailure, so bad
// input can never take the server down.
func (m *Mux) call(op Op, req *Request) (out any, err error) {
	defer func() {
		if p := recover(); p != nil {
			m.log.Error("panic in API operation", "op", req.Op, "panic", p, "request_id", req.RequestID)
			out, err = nil, &Error{Code: CodeInternalFailure, Message: "Internal service failure.", Status: http.StatusInternalServerError}
		}
	}()
	return op(req)
}

func (m *Mux) write(req *Request, status int, v any) {
	var body []byte
	var err error
	if req.REST {
		req.W.Header().Set("Content-Type", ContentRESTJSON)
		body, err = json.Marshal(v)
	} else if req.CBOR {
		req.W.Header().Set("Content-Type", ContentCBOR)
		body, err = cborEnc.Marshal(v)
	} else if m, ok := v.(json.Marshaler); ok {
		// Hand-written encoders of hot responses: skip json.Marshal's re-validation.
		req.W.Header().Set("Content-Type", ContentJSON)
		body, err = m.MarshalJSON()
	} else {
		req.W.Header().Set("Content-Type", ContentJSON)
		body, err = json.Marshal(v)
	}
	if err != nil {
		m.log.Error("encoding response", "op", req.Op, "err", err)
		status = http.StatusInternalServerError
		body = []byte(`{"__type":"InternalFailure","message":"Internal service failure."}`)
	}
	req.W.Header().Set("Content-Length", fmt.Sprint(len(body)))
	req.W.WriteHeader(status)
	req.W.Write(body)
}

// errorBody is the AWS JSON error shape.
type errorBody struct {
	Type    string `json:"__type" cbor:"__type"`
	Message string `json:"message" cbor:"message"`
}

// writeError writes err in AWS form and returns its code.
func (m *Mux) writeError(req *Request, err error) string {
	var ae *Error
	if !errors.As(err, &ae) {
		m.log.Error("API operation failed", "op", req.Op, "err", err, "request_id", req.RequestID)
		ae = &Error{Code: CodeInternalFailure, Message: "Internal service failure.", Status: http.StatusInternalServerError}
	}
	req.W.Header().Set("X-Amzn-ErrorType", ae.Code)
	m.write(req, ae.Status, errorBody{ae.Code, ae.Message})
	return ae.Code
}

// WriteError writes an AWS error for requests that never reach a service
// (authentication, routing).
func WriteError(w http.ResponseWriter, r *http.Request, err *Error) {
	writeError(w, r, err, false)
}

// WriteRESTError is WriteError for REST-JSON services (Kinesis Video's
// streaming operations, which are served outside the mux).
func WriteRESTError(w http.ResponseWriter, r *http.Request, err *Error) {
	writeError(w, r, err, true)
}

func writeError(w http.ResponseWriter, r *http.Request, err *Error, rest bool) {
	req := &Request{RequestID: newRequestID(), W: w, R: r, REST: rest}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	req.CBOR = strings.TrimSpace(ct) == ContentCBOR
	w.Header().Set("x-amzn-RequestId", req.RequestID)
	(&Mux{log: slog.Default()}).writeError(req, err)
}
