package kvs

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/streamgate/streamgate/gateway/awsapi"
)

// session is what a playback session URL grants: one stream (one
// incarnation of it), a time range or the live edge, until it expires. The
// token is its JSON with an HMAC-SHA256 over it: the URL is the credential,
// and nothing in it can be changed without the gateway's key.
type session struct {
	Stream    string `json:"s"`
	Created   int64  `json:"c"` // the stream's creation (ms): a re-created stream does not honor old URLs
	Mode      string `json:"m"` // LIVE, LIVE_REPLAY, ON_DEMAND
	Producer  bool   `json:"p"` // the range is in producer time (else server time)
	Start     int64  `json:"a,omitempty"`
	End       int64  `json:"b,omitempty"` // Unix ns; 0: open
	Container string `json:"f"`
	Disc      string `json:"d"` // ALWAYS, NEVER, ON_DISCONTINUITY
	Display   bool   `json:"t,omitempty"`
	Max       int    `json:"n"`
	Expires   int64  `json:"e"` // Unix s
}

func (a *API) sign(s session) string {
	body, _ := json.Marshal(s)
	mac := hmac.New(sha256.New, a.opts.SessionKey)
	mac.Write(body)
	return base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Errors of the playback endpoints, as Kinesis Video's archived media reports them.
func notAuthorized(msg string) error {
	return &awsapi.Error{Code: "NotAuthorizedException", Message: msg, Status: http.StatusUnauthorized}
}

// openSession verifies a session token: signature, expiry, and that its
// stream still is the one it was issued for.
func (a *API) openSession(token string) (session, error) {
	body64, sig64, ok := strings.Cut(token, ".")
	if !ok || token == "" {
		return session{}, notAuthorized("The session token is missing or malformed.")
	}
	body, err1 := base64.RawURLEncoding.DecodeString(body64)
	sig, err2 := base64.RawURLEncoding.DecodeString(sig64)
	if err1 != nil || err2 != nil {
		return session{}, notAuthorized("The session token is malformed.")
	}
	mac := hmac.New(sha256.New, a.opts.SessionKey)
	mac.Write(body)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return session{}, notAuthorized("The session token is not valid.")
	}
	var s session
	if err := json.Unmarshal(body, &s); err != nil {
		return session{}, notAuthorized("The session token is malformed.")
	}
	if a.opts.Now().Unix() > s.Expires {
		return session{}, notAuthorized("The session token has expired.")
	}
	info, err := a.store.Stream(namespace + s.Stream)
	if err != nil || info.Created.UnixMilli() != s.Created {
		return session{}, notFound("The stream of this session (%s) no longer exists.", s.Stream)
	}
	return s, nil
}

// Session lifetimes (seconds), as AWS's Expires parameter allows.
const (
	minExpires     = 300
	maxExpires     = 43200
	defaultExpires = 300
)

func expiry(now time.Time, seconds *int) int64 {
	if seconds == nil {
		return now.Unix() + defaultExpires
	}
	return now.Unix() + int64(*seconds)
}
