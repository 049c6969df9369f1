package kinesis

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// iteratorTTL is how long a shard iterator is valid, as on AWS.
const iteratorTTL = 5 * time.Minute

// shardIterator is the state a shard iterator carries. It is sealed with an
// HMAC so a forged or edited iterator is detected, and carries its issue time
// so expiry needs no server state.
type shardIterator struct {
	issued  time.Time
	stream  string
	created int64 // stream creation (ns): an iterator of a deleted and re-created stream is stale
	shard   string
	index   uint64
}

var errBadIterator = errors.New("invalid shard iterator")

const iteratorVersion = 1

func (a *API) sealIterator(it shardIterator) string {
	b := make([]byte, 0, 64+len(it.stream)+len(it.shard))
	b = append(b, iteratorVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(it.issued.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, it.index)
	b = binary.BigEndian.AppendUint64(b, uint64(it.created))
	b = append(b, byte(len(it.stream)))
	b = append(b, it.stream...)
	b = append(b, byte(len(it.shard)))
	b = append(b, it.shard...)
	mac := hmac.New(sha256.New, a.iterKey)
	mac.Write(b)
	b = mac.Sum(b)[:len(b)+16]
	return base64.RawURLEncoding.EncodeToString(b)
}

func (a *API) openIterator(s string) (shardIterator, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 1+24+2+16 || b[0] != iteratorVersion {
		return shardIterator{}, errBadIterator
	}
	body, sum := b[:len(b)-16], b[len(b)-16:]
	mac := hmac.New(sha256.New, a.iterKey)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil)[:16], sum) {
		return shardIterator{}, errBadIterator
	}
	it := shardIterator{
		issued:  time.UnixMilli(int64(binary.BigEndian.Uint64(body[1:]))),
		index:   binary.BigEndian.Uint64(body[9:]),
		created: int64(binary.BigEndian.Uint64(body[17:])),
	}
	rest := body[25:]
	n := int(rest[0])
	if len(rest) < 1+n+1 {
		return shardIterator{}, errBadIterator
	}
	it.stream = string(rest[1 : 1+n])
	rest = rest[1+n:]
	m := int(rest[0])
	if len(rest) != 1+m {
		return shardIterator{}, errBadIterator
	}
	it.shard = string(rest[1:])
	return it, nil
}
