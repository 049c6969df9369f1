package auth

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Streaming requests (Kinesis Video's PutMedia) cannot be verified by
// re-signing with the AWS SDK's signer: their body never ends, and the
// producer SDKs sign headers the SDK's signer leaves out by design
// (user-agent, transfer-encoding, connection). For them the canonical
// request is built here, from the SigV4 specification, and the payload is
// either not signed (the producer SDK signs the empty payload's hash, or
// UNSIGNED-PAYLOAD) or signed chunk by chunk
// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD, aws-chunked encoding).

const streamingPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

// emptyHash is the SHA-256 of no bytes.
const emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// VerifyStreaming authenticates a request whose body is a stream, and
// returns the body to read: the request's own, or, for a chunk-signed
// payload, a reader that decodes aws-chunked and fails on the first chunk
// whose signature is wrong.
func (v *Verifier) VerifyStreaming(r *http.Request, service string) (Key, io.Reader, error) {
	v.once.Do(func() {
		if v.Now == nil {
			v.Now = time.Now
		}
	})
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return Key{}, nil, fail(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
	}
	h, err := v.parseHeaderAuth(r, service, authz)
	if err != nil {
		return Key{}, nil, err
	}
	fields, cred, date, key := h.fields, h.cred, h.date, h.key
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		payload = emptyHash // what the KVS producer SDK signs for PutMedia
	}
	canonical, err := canonicalRequest(r, strings.Split(fields["SignedHeaders"], ";"), fields["SignedHeaders"], payload)
	if err != nil {
		return Key{}, nil, err
	}
	scope := strings.Join([]string{cred.date, cred.region, cred.service, "aws4_request"}, "/")
	signingKey := deriveKey(key.Secret, cred.date, cred.region, cred.service)
	sum := sha256.Sum256([]byte(canonical))
	want := hex.EncodeToString(hmacSHA256(signingKey, "AWS4-HMAC-SHA256\n"+date+"\n"+scope+"\n"+hex.EncodeToString(sum[:])))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return Key{}, nil, badSignature()
	}
	switch payload {
	case streamingPayload:
		return key, &chunkReader{r: bufio.NewReader(r.Body), key: signingKey, date: date, scope: scope, prev: want}, nil
	case "UNSIGNED-PAYLOAD", emptyHash:
		return key, r.Body, nil
	}
	return Key{}, nil, fail(400, "InvalidSignatureException", "A streaming request's x-amz-content-sha256 must be UNSIGNED-PAYLOAD or %s.", streamingPayload)
}

// canonicalRequest builds SigV4's canonical request for the signed headers,
// whatever they are.
func canonicalRequest(r *http.Request, names []string, signedHeaders, payload string) (string, error) {
	var b strings.Builder
	b.WriteString(r.Method + "\n" + canonicalPath(r.URL.EscapedPath()) + "\n" + canonicalQuery(r.URL.Query()) + "\n")
	hasHost := false
	for _, name := range names {
		var vals []string
		switch strings.ToLower(name) {
		case "host":
			hasHost, vals = true, []string{r.Host}
		case "transfer-encoding":
			vals = r.TransferEncoding // Go moves it out of the header map
		case "content-length":
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		default:
			vals = r.Header.Values(name)
		}
		if len(vals) == 0 {
			return "", fail(403, "InvalidSignatureException", "The request headers do not include the signed header '%s'.", name)
		}
		for i, v := range vals {
			vals[i] = strings.Join(strings.Fields(v), " ")
		}
		b.WriteString(strings.ToLower(name) + ":" + strings.Join(vals, ",") + "\n")
	}
	if !hasHost {
		return "", fail(400, "IncompleteSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization.")
	}
	b.WriteString("\n" + signedHeaders + "\n" + payload)
	return b.String(), nil
}

// canonicalPath encodes each segment of the path as SigV4 does (once).
func canonicalPath(p string) string {
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
		segs[i] = uriEncode(s)
	}
	return strings.Join(segs, "/")
}

func canonicalQuery(q url.Values) string {
	var parts []string
	for k, vs := range q {
		for _, v := range vs {
			parts = append(parts, uriEncode(k)+"="+uriEncode(v))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "&")
}

// uriEncode is SigV4's encoding: everything but unreserved characters.
func uriEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func deriveKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

// chunkReader decodes an aws-chunked body, "<hex size>;chunk-signature=<sig>
// CRLF <data> CRLF", checking each chunk's signature against the chain that
// starts with the request's; the final chunk is empty.
type chunkReader struct {
	r           *bufio.Reader
	key         []byte
	date, scope string
	prev        string
	done        bool // the final chunk was read
	err         error
	buf         []byte
}

// maxChunk bounds one chunk (the SDKs use 8 to 64 KiB; Lambda-size media
// chunks stay well under).
const maxChunk = 16 << 20

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for len(c.buf) == 0 {
		if c.done {
			return 0, io.EOF
		}
		if err := c.nextChunk(); err != nil {
			c.err = err
			return 0, err
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (c *chunkReader) nextChunk() error {
	line, err := c.r.ReadString('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	sizeHex, ext, _ := strings.Cut(line, ";")
	sig, ok := strings.CutPrefix(ext, "chunk-signature=")
	size, perr := strconv.ParseInt(sizeHex, 16, 64)
	if !ok || perr != nil || size < 0 || size > maxChunk {
		return fail(400, "IncompleteSignatureException", "aws-chunked: bad chunk header %q", line)
	}
	data := make([]byte, size+2)
	if _, err := io.ReadFull(c.r, data); err != nil {
		return io.ErrUnexpectedEOF
	}
	if string(data[size:]) != "\r\n" {
		return fail(400, "IncompleteSignatureException", "aws-chunked: a chunk does not end with CRLF")
	}
	data = data[:size]
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(hmacSHA256(c.key, "AWS4-HMAC-SHA256-PAYLOAD\n"+c.date+"\n"+c.scope+"\n"+c.prev+"\n"+emptyHash+"\n"+hex.EncodeToString(sum[:])))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return badSignature()
	}
	c.prev = want
	c.buf = data
	c.done = size == 0
	return nil
}
