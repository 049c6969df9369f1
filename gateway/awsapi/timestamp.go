package awsapi

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Timestamp is an AWS timestamp: epoch seconds with fractional milliseconds in
// JSON, and tag 1 with epoch milliseconds in CBOR (as the AWS Java SDK writes
// them). Decoding accepts either unit in both encodings.
type Timestamp struct{ time.Time }

// NewTimestamp wraps t (nil-safe for optional fields: use *Timestamp).
func NewTimestamp(t time.Time) *Timestamp { return &Timestamp{t} }

// FromUnixNano makes a timestamp from Unix nanoseconds.
func FromUnixNano(ns int64) *Timestamp { return &Timestamp{time.Unix(0, ns)} }

func (t Timestamp) MarshalJSON() ([]byte, error) {
	ms := t.UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', -1, 64), nil
}

func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case float64:
		t.Time = fromEpoch(x)
	case string:
		if f, err := strconv.ParseFloat(x, 64); err == nil {
			t.Time = fromEpoch(f)
			return nil
		}
		p, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return fmt.Errorf("timestamp %q: want epoch seconds or ISO 8601", x)
		}
		t.Time = p
	default:
		return fmt.Errorf("timestamp: want a number, got %s", b)
	}
	return nil
}

// fromEpoch reads epoch seconds, or milliseconds when the value is too large
// to be seconds (after the year 5138).
func fromEpoch(f float64) time.Time {
	if math.Abs(f) > 1e11 {
		return time.UnixMilli(int64(f))
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e3))*1e6)
}

func (t Timestamp) MarshalCBOR() ([]byte, error) {
	return cbor.Marshal(cbor.Tag{Number: 1, Content: t.UnixMilli()})
}

func (t *Timestamp) UnmarshalCBOR(b []byte) error {
	var raw cbor.RawTag
	content := b
	if err := cbor.Unmarshal(b, &raw); err == nil {
		content = raw.Content
	}
	var f float64
	var i int64
	if err := cbor.Unmarshal(content, &i); err == nil {
		t.Time = fromEpoch(float64(i))
		if math.Abs(float64(i)) <= 1e11 {
			t.Time = time.Unix(i, 0)
		}
		return nil
	}
	if err := cbor.Unmarshal(content, &f); err != nil {
		return fmt.Errorf("timestamp: want a number")
	}
	t.Time = fromEpoch(f)
	return nil
}
