package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Error is an authentication failure in AWS's terms (the protocol layer
// writes it as its own error form).
type Error struct {
	Code, Message string
	Status        int
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func fail(status int, code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Status: status}
}

// MaxSkew is how far a request's signing time may be from the server's clock.
const MaxSkew = 15 * time.Minute

const amzDate = "20060102T150405Z"

// Verifier checks SigV4 signatures by rebuilding the request the client
// signed and signing it again with the AWS SDK's signer.
type Verifier struct {
	Keys   *Store
	Region string
	Now    func() time.Time

	signer *v4.Signer
	once   sync.Once
}

// Verify authenticates a request whose body has been read. service is the
// signing name the credential scope must carry ("kinesis").
func (v *Verifier) Verify(r *http.Request, body []byte, service string) (Key, error) {
	v.once.Do(func() {
		v.signer = v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = false })
		if v.Now == nil {
			v.Now = time.Now
		}
	})
	authz := r.Header.Get("Authorization")
	q := r.URL.Query()
	switch {
	case authz != "" && q.Get("X-Amz-Algorithm") != "":
		return Key{}, fail(400, "InvalidSignatureException", "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.")
	case authz != "":
		return v.verifyHeader(r, body, service, authz)
	case q.Get("X-Amz-Algorithm") != "":
		return v.verifyPresigned(r, service, q)
	}
	return Key{}, fail(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
}

// credential is the parsed Credential=ID/date/region/service/aws4_request.
type credential struct{ id, date, region, service string }

func parseCredential(s string) (credential, bool) {
	p := strings.Split(s, "/")
	if len(p) != 5 || p[4] != "aws4_request" || p[0] == "" {
		return credential{}, false
	}
	return credential{p[0], p[1], p[2], p[3]}, true
}

// check validates the scope, clock and key of a credential; now is the time
// the signing time is judged against.
func (v *Verifier) check(c credential, service string, signed, now time.Time) (Key, error) {
	if c.service != service {
		return Key{}, fail(403, "InvalidSignatureException", "Credential should be scoped to correct service: '%s'. ", service)
	}
	if c.region != v.Region {
		return Key{}, fail(403, "InvalidSignatureException", "Credential should be scoped to a valid region. ")
	}
	if c.date != signed.UTC().Format("20060102") {
		return Key{}, fail(403, "InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			c.date, signed.UTC().Format("20060102"), signed.UTC().Format(amzDate))
	}
	if d := now.Sub(signed); d > MaxSkew || d < -MaxSkew {
		return Key{}, fail(403, "InvalidSignatureException", "Signature expired: %s is now earlier than %s (%s - 15 min.)",
			signed.UTC().Format(amzDate), now.Add(-MaxSkew).UTC().Format(amzDate), now.UTC().Format(amzDate))
	}
	k, ok := v.Keys.Lookup(c.id)
	if !ok {
		return Key{}, fail(400, "UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	return k, nil
}

// headerAuth is a parsed and checked Authorization header.
type headerAuth struct {
	fields map[string]string // Credential, Signature, SignedHeaders
	cred   credential
	date   string // X-Amz-Date as sent
	signed time.Time
	key    Key
}

// parseHeaderAuth parses an AWS4-HMAC-SHA256 Authorization header and its
// X-Amz-Date, and checks the credential's scope, clock and key.
func (v *Verifier) parseHeaderAuth(r *http.Request, service, authz string) (headerAuth, error) {
	var h headerAuth
	algo, rest, _ := strings.Cut(authz, " ")
	if algo != "AWS4-HMAC-SHA256" {
		return h, fail(400, "IncompleteSignatureException", "Unsupported authorization algorithm %q: want AWS4-HMAC-SHA256.", algo)
	}
	h.fields = map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			h.fields[k] = val
		}
	}
	var missing []string
	for _, f := range []string{"Credential", "Signature", "SignedHeaders"} {
		if h.fields[f] == "" {
			missing = append(missing, fmt.Sprintf("Authorization header requires '%s' parameter.", f))
		}
	}
	h.date = r.Header.Get("X-Amz-Date")
	if h.date == "" {
		missing = append(missing, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	if len(missing) > 0 {
		return h, fail(400, "IncompleteSignatureException", "%s Authorization=%s", strings.Join(missing, " "), authz)
	}
	var ok bool
	if h.cred, ok = parseCredential(h.fields["Credential"]); !ok {
		return h, fail(400, "IncompleteSignatureException", "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '%s'", h.fields["Credential"])
	}
	var err error
	if h.signed, err = time.Parse(amzDate, h.date); err != nil {
		return h, fail(400, "IncompleteSignatureException", "X-Amz-Date %q is not an ISO-8601 basic date-time (yyyyMMddTHHmmssZ).", h.date)
	}
	h.key, err = v.check(h.cred, service, h.signed, v.Now())
	return h, err
}

func (v *Verifier) verifyHeader(r *http.Request, body []byte, service, authz string) (Key, error) {
	h, err := v.parseHeaderAuth(r, service, authz)
	if err != nil {
		return Key{}, err
	}
	fields, cred, signed, key := h.fields, h.cred, h.signed, h.key

	// The payload the client signed: its declared hash must be the body's.
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	payloadHash := bodyHash
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" {
		if h != "UNSIGNED-PAYLOAD" && h != bodyHash {
			return Key{}, fail(400, "InvalidSignatureException", "The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
		payloadHash = h
	}

	req, err := rebuild(r, strings.Split(fields["SignedHeaders"], ";"), r.URL.RawQuery)
	if err != nil {
		return Key{}, err
	}
	creds := aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret}
	if err := v.signer.SignHTTP(context.Background(), creds, req, payloadHash, service, cred.region, signed); err != nil {
		return Key{}, fail(500, "InternalFailure", "signing: %v", err)
	}
	if !hmac.Equal([]byte(signatureOf(req.Header.Get("Authorization"))), []byte(fields["Signature"])) {
		return Key{}, badSignature()
	}
	return key, nil
}

func badSignature() *Error {
	return fail(403, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
}

func signatureOf(authz string) string {
	_, sig, _ := strings.Cut(authz, "Signature=")
	return sig
}

// rebuild makes a request holding exactly the headers the client signed, so
// the SDK signer (which signs host, content-length and every other header it
// is given) builds the same canonical request the client did.
func rebuild(r *http.Request, signedHeaders []string, rawQuery string) (*http.Request, error) {
	u := &url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: rawQuery}
	req, err := http.NewRequest(r.Method, u.String(), nil)
	if err != nil {
		return nil, fail(400, "IncompleteSignatureException", "request URL: %v", err)
	}
	req.Host = r.Host
	hasHost := false
	for _, h := range signedHeaders {
		switch strings.ToLower(h) {
		case "host":
			hasHost = true
		case "content-length":
			req.ContentLength = r.ContentLength
		case "authorization", "user-agent", "x-amzn-trace-id", "expect", "transfer-encoding":
			// The SDK signer never signs these; a client that did cannot be verified here.
			return nil, fail(400, "IncompleteSignatureException", "Signing the %s header is not supported.", h)
		default:
			vals := r.Header.Values(h)
			if len(vals) == 0 {
				return nil, fail(403, "InvalidSignatureException", "The request headers do not include the signed header '%s'.", h)
			}
			req.Header[http.CanonicalHeaderKey(h)] = vals
		}
	}
	if !hasHost {
		return nil, fail(400, "IncompleteSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization.")
	}
	return req, nil
}

// verifyPresigned checks a query-string (presigned URL) signature.
func (v *Verifier) verifyPresigned(r *http.Request, service string, q url.Values) (Key, error) {
	var missing []string
	for _, p := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date"} {
		if q.Get(p) == "" {
			missing = append(missing, fmt.Sprintf("AWS query-string parameters must include '%s'.", p))
		}
	}
	if len(missing) > 0 {
		return Key{}, fail(400, "IncompleteSignatureException", "%s Re-examine the query-string parameters.", strings.Join(missing, " "))
	}
	if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
		return Key{}, fail(400, "IncompleteSignatureException", "Unsupported X-Amz-Algorithm %q.", q.Get("X-Amz-Algorithm"))
	}
	cred, ok := parseCredential(q.Get("X-Amz-Credential"))
	if !ok {
		return Key{}, fail(400, "IncompleteSignatureException", "X-Amz-Credential must have exactly 5 slash-delimited elements.")
	}
	signed, err := time.Parse(amzDate, q.Get("X-Amz-Date"))
	if err != nil {
		return Key{}, fail(400, "IncompleteSignatureException", "X-Amz-Date is not an ISO-8601 basic date-time.")
	}
	// An expiring URL is judged by its expiry, not by clock skew.
	judgeAt := v.Now()
	if exp := q.Get("X-Amz-Expires"); exp != "" {
		secs, err := strconv.Atoi(exp)
		if err != nil || secs < 1 || secs > 604800 {
			return Key{}, fail(400, "IncompleteSignatureException", "X-Amz-Expires must be between 1 and 604800 seconds.")
		}
		expires := signed.Add(time.Duration(secs) * time.Second)
		if judgeAt.After(expires) {
			return Key{}, fail(403, "InvalidSignatureException", "Signature expired: the presigned URL expired at %s.", expires.UTC().Format(amzDate))
		}
		if !judgeAt.Before(signed.Add(-MaxSkew)) {
			judgeAt = signed
		}
	}
	key, err := v.check(cred, service, signed, judgeAt)
	if err != nil {
		return Key{}, err
	}
	// Rebuild the URL the client signed: its query without the signature
	// fields the presigner adds itself.
	rest := url.Values{}
	for k, vals := range q {
		switch k {
		case "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token":
			continue
		}
		rest[k] = vals
	}
	req, err := rebuild(r, strings.Split(q.Get("X-Amz-SignedHeaders"), ";"), rest.Encode())
	if err != nil {
		return Key{}, err
	}
	payload := "UNSIGNED-PAYLOAD"
	if h := q.Get("X-Amz-Content-Sha256"); h != "" {
		payload = h
	}
	creds := aws.Credentials{AccessKeyID: key.ID, SecretAccessKey: key.Secret}
	signedURL, _, err := v.signer.PresignHTTP(context.Background(), creds, req, payload, service, cred.region, signed)
	if err != nil {
		return Key{}, fail(500, "InternalFailure", "presigning: %v", err)
	}
	su, err := url.Parse(signedURL)
	if err != nil || !hmac.Equal([]byte(su.Query().Get("X-Amz-Signature")), []byte(q.Get("X-Amz-Signature"))) {
		return Key{}, badSignature()
	}
	return key, nil
}
