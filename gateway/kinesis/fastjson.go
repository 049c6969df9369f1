package kinesis

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"sync"
	"unicode/utf8"
)

// decodePutRecordsFast decodes the common shape of a PutRecords (or
// PutRecord, with single set) JSON body in one pass, base64-decoding data
// straight into one arena. It is the hot path of ingestion: encoding/json
// scans such bodies three times and costs several times more CPU.
//
// It accepts only what it fully understands: any escape sequence, null,
// duplicate-cased key or other surprise returns false, and the caller decodes
// with encoding/json instead, so behaviour and error messages never differ.
func decodePutRecordsFast(body []byte, in *putRecordsInput) bool {
	s := scanner{b: body}
	arena := in.arena(len(body) * 3 / 4)
	s.ws()
	if !s.eat('{') {
		return false
	}
	s.ws()
	if s.eat('}') {
		return s.end()
	}
	for {
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if !s.eat(':') {
			return false
		}
		s.ws()
		switch string(key) {
		case "StreamName", "StreamARN":
			v, ok := s.text()
			if !ok {
				return false
			}
			if string(key) == "StreamName" {
				in.StreamName = v
			} else {
				in.StreamARN = v
			}
		case "Records":
			if !s.eat('[') {
				return false
			}
			recs := make([]putRecordsEntry, 0, 500)
			s.ws()
			if !s.eat(']') {
				for {
					var rec putRecordsEntry
					if arena, ok = s.record(&rec, arena); !ok {
						return false
					}
					recs = append(recs, rec)
					s.ws()
					if s.eat(']') {
						break
					}
					if !s.eat(',') {
						return false
					}
					s.ws()
				}
			}
			in.Records = recs
		default:
			if isFieldFold(key, "StreamName", "StreamARN", "Records") || !s.skip() {
				return false
			}
		}
		s.ws()
		if s.eat('}') {
			return s.end()
		}
		if !s.eat(',') {
			return false
		}
		s.ws()
	}
}

// decodePutRecordFast decodes a PutRecord body the same way.
func decodePutRecordFast(body []byte, in *putRecordInput) bool {
	// A PutRecord body is a record object with stream fields: reuse the
	// record decoder over the whole object.
	s := scanner{b: body}
	s.ws()
	var rec putRecordsEntry
	arena := make([]byte, 0, len(body)*3/4)
	var ok bool
	s.extra = func(key []byte) bool {
		switch string(key) {
		case "StreamName":
			in.StreamName, ok = s.text()
		case "StreamARN":
			in.StreamARN, ok = s.text()
		case "SequenceNumberForOrdering":
			in.SequenceNumberForOrdering, ok = s.text()
		default:
			return false
		}
		return ok
	}
	if _, ok := s.record(&rec, arena); !ok || !s.end() {
		return false
	}
	in.Data, in.PartitionKey, in.ExplicitHashKey = rec.Data, rec.PartitionKey, rec.ExplicitHashKey
	return true
}

type scanner struct {
	b []byte
	i int
	// extra, when set, decodes keys a record object may carry besides its own.
	extra func(key []byte) bool
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// str returns the bytes of a string without escapes (false if it has any,
// or control characters, which encoding/json would handle or reject).
func (s *scanner) str() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == '"' {
			v := s.b[start:s.i]
			s.i++
			return v, true
		}
		if c == '\\' || c < 0x20 {
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// base64Str returns a string that should hold base64, found with a
// vectorised search: a backslash or control character inside makes base64
// decoding fail later (and the fast path decline), except CR and LF, which
// the decoder would skip but JSON forbids, so they are checked here.
func (s *scanner) base64Str() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	n := bytes.IndexByte(s.b[s.i:], '"')
	if n < 0 {
		return nil, false
	}
	v := s.b[s.i : s.i+n]
	if bytes.IndexByte(v, '\n') >= 0 || bytes.IndexByte(v, '\r') >= 0 {
		return nil, false
	}
	s.i += n + 1
	return v, true
}

// text is str as valid UTF-8 text (encoding/json would replace invalid bytes).
func (s *scanner) text() (string, bool) {
	v, ok := s.str()
	if !ok || !utf8.Valid(v) {
		return "", false
	}
	return string(v), true
}

// record decodes {"Data": base64, "PartitionKey": s, "ExplicitHashKey": s}.
func (s *scanner) record(rec *putRecordsEntry, arena []byte) ([]byte, bool) {
	if !s.eat('{') {
		return arena, false
	}
	s.ws()
	if s.eat('}') {
		return arena, true
	}
	for {
		key, ok := s.str()
		if !ok {
			return arena, false
		}
		s.ws()
		if !s.eat(':') {
			return arena, false
		}
		s.ws()
		switch string(key) {
		case "Data":
			v, ok := s.base64Str()
			if !ok {
				return arena, false
			}
			start := len(arena)
			need := base64.StdEncoding.DecodedLen(len(v))
			if cap(arena)-start < need {
				arena = make([]byte, 0, max(need, cap(arena)))
				start = 0
			}
			n, err := base64.StdEncoding.Decode(arena[start:start+need], v)
			if err != nil {
				return arena, false
			}
			arena = arena[:start+n]
			rec.Data = arena[start : start+n : start+n]
		case "PartitionKey":
			if rec.PartitionKey, ok = s.text(); !ok {
				return arena, false
			}
		case "ExplicitHashKey":
			if rec.ExplicitHashKey, ok = s.text(); !ok {
				return arena, false
			}
		default:
			if isFieldFold(key, "Data", "PartitionKey", "ExplicitHashKey", "StreamName", "StreamARN", "SequenceNumberForOrdering") {
				// An exact stream field of PutRecord, or a differently-cased
				// known key (encoding/json folds case): let extra decide.
				if s.extra == nil || !s.extra(key) {
					return arena, false
				}
			} else if !s.skip() {
				return arena, false
			}
		}
		s.ws()
		if s.eat('}') {
			return arena, true
		}
		if !s.eat(',') {
			return arena, false
		}
		s.ws()
	}
}

// isFieldFold reports whether key equals one of the names ignoring case.
func isFieldFold(key []byte, names ...string) bool {
	for _, n := range names {
		if len(n) != len(key) {
			continue
		}
		eq := true
		for i := range key {
			a, b := key[i], n[i]
			if 'A' <= a && a <= 'Z' {
				a += 'a' - 'A'
			}
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			if a != b {
				eq = false
				break
			}
		}
		if eq {
			return true
		}
	}
	return false
}

// skip passes over one JSON value of a field we do not read, strictly: a
// value encoding/json would reject makes the fast path give up.
func (s *scanner) skip() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '"':
		s.i++
		for s.i < len(s.b) {
			c := s.b[s.i]
			switch {
			case c == '"':
				s.i++
				return true
			case c < 0x20:
				return false
			case c == '\\':
				return false // escapes: leave to encoding/json
			}
			s.i++
		}
		return false
	case c == '{' || c == '[':
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		s.i++
		s.ws()
		if s.eat(close) {
			return true
		}
		for {
			if c == '{' {
				if _, ok := s.str(); !ok {
					return false
				}
				s.ws()
				if !s.eat(':') {
					return false
				}
				s.ws()
			}
			if !s.skip() {
				return false
			}
			s.ws()
			if s.eat(close) {
				return true
			}
			if !s.eat(',') {
				return false
			}
			s.ws()
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

func (s *scanner) literal(l string) bool {
	if len(s.b)-s.i >= len(l) && string(s.b[s.i:s.i+len(l)]) == l {
		s.i += len(l)
		return true
	}
	return false
}

// number passes a JSON number exactly as RFC 8259 spells it:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	s.eat('-')
	switch {
	case s.eat('0'):
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		digits()
	default:
		return false
	}
	if s.eat('.') && digits() == 0 {
		return false
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

// MarshalJSON writes a PutRecords response without reflection: it is sent
// once per ingested batch.
func (o putRecordsOutput) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64+len(o.Records)*90)
	b = append(b, `{"FailedRecordCount":`...)
	b = strconv.AppendInt(b, int64(o.FailedRecordCount), 10)
	b = append(b, `,"Records":[`...)
	for i, r := range o.Records {
		if i > 0 {
			b = append(b, ',')
		}
		if r.ErrorCode != "" {
			// Rare, and messages are free text: let encoding/json quote them.
			e, err := json.Marshal(r)
			if err != nil {
				return nil, err
			}
			b = append(b, e...)
			continue
		}
		b = append(b, `{"SequenceNumber":"`...)
		b = append(b, r.SequenceNumber...) // digits
		b = append(b, `","ShardId":"`...)
		b = append(b, r.ShardId...) // shardId-NNN
		b = append(b, `"}`...)
	}
	b = append(b, `],"EncryptionType":"`...)
	b = append(b, o.EncryptionType...)
	return append(b, `"}`...), nil
}

// arenas recycles the buffers decoded record data lives in between calls:
// PutRecords bodies are megabytes, and zeroing fresh ones showed in profiles.
var arenas sync.Pool

func (in *putRecordsInput) arena(n int) []byte {
	if p, ok := arenas.Get().(*[]byte); ok && cap(*p) >= n {
		in.pooled = p
		return (*p)[:0]
	} else if ok {
		arenas.Put(p)
	}
	b := make([]byte, 0, n)
	in.pooled = &b
	return b
}

// release returns the arena once nothing refers to the records' data.
func (in *putRecordsInput) release() {
	if in.pooled != nil && cap(*in.pooled) <= 16<<20 {
		arenas.Put(in.pooled)
	}
	in.pooled = nil
}
