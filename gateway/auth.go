package gateway

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/streamgate/streamgate/gateway/auth"
	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/media"
	"github.com/streamgate/streamgate/mqtt"
)

// Every API request passes the authenticator before its operation runs, and
// every operation authorizes the resource it touches (awsapi.Request.Authorize).
// Listeners added later follow the same rule: no unauthenticated path except
// /healthz and /metrics (see docs/architecture.md, "Security").

// principal is a verified access key.
type principal struct {
	key     auth.Key
	account string
}

func (p principal) Allows(action, resource string) bool { return p.key.Policy.Allows(action, resource) }
func (p principal) ARN() string {
	return fmt.Sprintf("arn:aws:iam::%s:user/%s", p.account, p.key.Name)
}

// authenticator verifies SigV4 and slows down clients that keep failing.
type authenticator struct {
	verifier *auth.Verifier
	account  string
	log      *slog.Logger

	mu       sync.Mutex
	failures map[string]failure // by client IP
	buckets  map[string]*bucket // by access key, for keys with a rate limit
}

// bucket is a token bucket of one key's requests.
type bucket struct {
	tokens float64
	last   time.Time
}

// allow takes a token from the key's bucket.
func (a *authenticator) allow(k auth.Key, now time.Time) bool {
	if k.RequestsPerSecond <= 0 {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.buckets[k.ID]
	if b == nil {
		b = &bucket{tokens: k.RequestsPerSecond, last: now}
		a.buckets[k.ID] = b
	}
	b.tokens = min(k.RequestsPerSecond, b.tokens+now.Sub(b.last).Seconds()*k.RequestsPerSecond)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

type failure struct {
	count int
	last  time.Time
}

// failureDelay is the pause before answering the n-th failure in a row from
// one address: guessing secrets gets slow, honest mistakes stay quick.
func failureDelay(n int) time.Duration {
	if n <= 3 {
		return 0
	}
	return min(time.Duration(n-3)*250*time.Millisecond, 3*time.Second)
}

func (a *authenticator) authenticate(r *http.Request, body []byte, service string) (awsapi.Principal, error) {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	key, err := a.verifier.Verify(r, body, service)
	if err != nil {
		var ae *auth.Error
		if errors.As(err, &ae) {
			// Who failed and why; never the secret or the signature.
			a.failed(ip, "sigv4", accessKeyOf(r), ae.Code)
			return nil, &awsapi.Error{Code: ae.Code, Message: ae.Message, Status: ae.Status}
		}
		a.failed(ip, "sigv4", accessKeyOf(r), "error")
		return nil, err
	}
	a.succeeded(ip)
	if !a.allow(key, time.Now()) {
		return nil, awsapi.Errorf(awsapi.CodeLimitExceeded, "Rate exceeded for access key %s (%g requests per second).", key.ID, key.RequestsPerSecond)
	}
	return principal{key: key, account: a.account}, nil
}

// authenticateStreaming is authenticate for a request whose body is a
// stream (PutMedia): the signature covers the headers, and a chunk-signed
// body is verified as it is read.
func (a *authenticator) authenticateStreaming(r *http.Request, service string) (awsapi.Principal, io.Reader, error) {
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	key, body, err := a.verifier.VerifyStreaming(r, service)
	if err != nil {
		var ae *auth.Error
		if errors.As(err, &ae) {
			a.failed(ip, "sigv4-streaming", accessKeyOf(r), ae.Code)
			return nil, nil, &awsapi.Error{Code: ae.Code, Message: ae.Message, Status: ae.Status}
		}
		a.failed(ip, "sigv4-streaming", accessKeyOf(r), "error")
		return nil, nil, err
	}
	a.succeeded(ip)
	if !a.allow(key, time.Now()) {
		return nil, nil, awsapi.Errorf(awsapi.CodeLimitExceeded, "Rate exceeded for access key %s (%g requests per second).", key.ID, key.RequestsPerSecond)
	}
	return principal{key: key, account: a.account}, body, nil
}

// failed records an authentication failure from ip, logs it (never the
// secret) and sleeps the brute-force delay.
func (a *authenticator) failed(ip, method, keyID, code string) {
	a.mu.Lock()
	f := a.failures[ip]
	if time.Since(f.last) > time.Minute {
		f.count = 0
	}
	f.count++
	f.last = time.Now()
	a.failures[ip] = f
	if len(a.failures) > 10000 {
		a.failures = map[string]failure{} // bound memory under a spray of addresses
	}
	a.mu.Unlock()
	if len(keyID) > 64 {
		keyID = keyID[:64]
	}
	a.log.Info("authentication failed", "remote", ip, "method", method, "access_key", keyID, "code", code, "failures", f.count)
	time.Sleep(failureDelay(f.count))
}

func (a *authenticator) succeeded(ip string) {
	a.mu.Lock()
	delete(a.failures, ip)
	a.mu.Unlock()
}

// mediaAuth authenticates RTSP clients with the same access keys: the key ID
// as user name, the secret as password (Basic or Digest), and authorizes
// publishing as kinesisvideo:PutMedia and reading as kinesisvideo:GetMedia
// on the stream's ARN.
func (a *authenticator) mediaAuth(streamARN func(name string) string) media.Authenticator {
	return func(req media.AuthRequest) error {
		ip := ""
		if req.Remote != nil {
			ip, _, _ = net.SplitHostPort(req.Remote.String())
		}
		if req.User == "" {
			return media.ErrUnauthenticated // the first request of a client: it gets the challenge
		}
		key, ok := a.verifier.Keys.Lookup(req.User)
		if !ok || !req.Verify(key.Secret) {
			a.failed(ip, "rtsp", req.User, "bad credentials")
			return media.ErrUnauthenticated
		}
		a.succeeded(ip)
		action := "kinesisvideo:GetMedia"
		if req.Publish {
			action = "kinesisvideo:PutMedia"
		}
		if !key.Policy.Allows(action, streamARN(req.Stream)) {
			a.log.Info("RTSP access denied", "remote", ip, "access_key", key.ID, "action", action, "stream", req.Stream)
			return media.ErrForbidden
		}
		return nil
	}
}

// writeProfile writes an AWS CLI/SDK config file with the admin key next to
// the keys file, so `AWS_CONFIG_FILE=... AWS_PROFILE=streamgate aws kinesis ...`
// works without editing ~/.aws.
func writeProfile(dataDir, httpAddr, scheme, region string, k auth.Key) (string, error) {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	path := filepath.Join(dataDir, "auth", "aws-config")
	body := fmt.Sprintf("[profile streamgate]\naws_access_key_id = %s\naws_secret_access_key = %s\nregion = %s\nendpoint_url = %s://%s\n",
		k.ID, k.Secret, region, scheme, net.JoinHostPort(host, port))
	return path, os.WriteFile(path, []byte(body), 0o600)
}

// accessKeyOf names the access key a request claims, for logs.
func accessKeyOf(r *http.Request) string {
	cred := r.URL.Query().Get("X-Amz-Credential")
	if _, after, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		cred = after
	}
	id, _, _ := strings.Cut(cred, "/")
	if len(id) > 64 {
		id = id[:64]
	}
	return id
}

// loadSessionKey returns the key that signs playback session URLs, made on
// first use and kept (0600) in the data directory, so URLs handed out stay
// valid across restarts until they expire.
func loadSessionKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "auth", "session.key")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	return key, nil
}

// mqttAuth authenticates MQTT clients with the access keys: the key id as
// user name and the secret as password, or (mutual TLS) a client
// certificate whose subject CN names a key. Topics are authorized as AWS IoT
// does, with iot:Connect on client/<id>, iot:Publish on topic/<topic> and
// iot:Subscribe on topicfilter/<filter>; policies may use ${iot:ClientId}
// (also ${clientid}) and ${username}.
type mqttAuth struct {
	a               *authenticator
	region, account string
	decisions       *aclCache
}

// aclCache remembers topic decisions for a few seconds: a device publishes
// to the same topics all day, and evaluating its policy per message cost a
// tenth of the broker's CPU. A changed policy applies within aclTTL.
type aclCache struct {
	mu sync.Mutex
	m  map[string]aclDecision
}

type aclDecision struct {
	allowed bool
	at      time.Time
}

const (
	aclTTL     = 10 * time.Second
	aclEntries = 100_000
)

func (c *aclCache) get(k string) (bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.m[k]
	if !ok || time.Since(d.at) > aclTTL {
		return false, false
	}
	return d.allowed, true
}

func (c *aclCache) put(k string, allowed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= aclEntries {
		c.m = map[string]aclDecision{}
	}
	c.m[k] = aclDecision{allowed, time.Now()}
}

func (m mqttAuth) arn(kind, name string) string {
	return "arn:aws:iot:" + m.region + ":" + m.account + ":" + kind + "/" + name
}

func mqttVars(clientID, keyID string) map[string]string {
	return map[string]string{"iot:ClientId": clientID, "clientid": clientID, "username": keyID}
}

func (m mqttAuth) Connect(c mqtt.ConnectRequest) (string, error) {
	ip, _, _ := net.SplitHostPort(c.Remote)
	var key auth.Key
	switch {
	case c.Username != "":
		k, ok := m.a.verifier.Keys.Lookup(c.Username)
		if !ok || subtle.ConstantTimeCompare([]byte(k.Secret), c.Password) != 1 {
			m.a.failed(ip, "mqtt", c.Username, "bad credentials")
			return "", errors.New("bad user name or password")
		}
		key = k
	case c.CommonName != "":
		k, ok := m.a.verifier.Keys.LookupName(c.CommonName)
		if !ok {
			m.a.failed(ip, "mqtt-cert", c.CommonName, "no key named by the certificate")
			return "", fmt.Errorf("no access key is named %q (the client certificate's CN)", c.CommonName)
		}
		key = k
	default:
		m.a.failed(ip, "mqtt", "", "anonymous")
		return "", errors.New("anonymous clients are not allowed")
	}
	m.a.succeeded(ip)
	if !key.Policy.AllowsWith("iot:Connect", m.arn("client", c.ClientID), mqttVars(c.ClientID, key.ID)) {
		return "", fmt.Errorf("access key %s may not connect as client %q", key.ID, c.ClientID)
	}
	return key.ID, nil
}

func (m mqttAuth) Allowed(clientID, keyID, topic string, publish bool) bool {
	ck := clientID + "\x00" + keyID + "\x00" + topic
	if publish {
		ck += "\x00p"
	}
	if allowed, ok := m.decisions.get(ck); ok {
		return allowed
	}
	allowed := m.decide(clientID, keyID, topic, publish)
	m.decisions.put(ck, allowed)
	return allowed
}

func (m mqttAuth) decide(clientID, keyID, topic string, publish bool) bool {
	key, ok := m.a.verifier.Keys.Lookup(keyID)
	if !ok {
		return false
	}
	action, resource := "iot:Subscribe", m.arn("topicfilter", topic)
	if publish {
		action, resource = "iot:Publish", m.arn("topic", topic)
	}
	if key.Policy.AllowsWith(action, resource, mqttVars(clientID, keyID)) {
		return true
	}
	m.a.log.Info("MQTT access denied", "client", clientID, "access_key", keyID, "action", action, "topic", topic)
	return false
}
