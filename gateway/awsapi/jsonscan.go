package awsapi

import (
	"bytes"
	"encoding/base64"
	"unicode/utf8"
)

// Scanner is a strict one-pass JSON reader for the hot request shapes
// (PutRecords, PutRecordBatch): it accepts only what it fully understands,
// so a caller that gets false decodes with encoding/json instead and
// behaviour and error messages never differ.
type Scanner struct {
	B []byte
	I int
}

// DecodeBase64 decodes v into the arena's spare capacity (a new arena when
// it does not fit) and returns the arena and the decoded bytes.
func DecodeBase64(arena, v []byte) ([]byte, []byte, bool) {
	start := len(arena)
	need := base64.StdEncoding.DecodedLen(len(v))
	if cap(arena)-start < need {
		arena = make([]byte, 0, max(need, cap(arena)))
		start = 0
	}
	n, err := base64.StdEncoding.Decode(arena[start:start+need], v)
	if err != nil {
		return arena, nil, false
	}
	arena = arena[:start+n]
	return arena, arena[start : start+n : start+n], true
}

// WS skips white space.
func (s *Scanner) WS() {
	for s.I < len(s.B) {
		switch s.B[s.I] {
		case ' ', '\t', '\n', '\r':
			s.I++
		default:
			return
		}
	}
}

// Eat consumes c if it is next.
func (s *Scanner) Eat(c byte) bool {
	if s.I < len(s.B) && s.B[s.I] == c {
		s.I++
		return true
	}
	return false
}

// End reports whether only white space is left.
func (s *Scanner) End() bool {
	s.WS()
	return s.I == len(s.B)
}

// Str returns the bytes of a string without escapes (false if it has any,
// or control characters, which encoding/json would handle or reject).
func (s *Scanner) Str() ([]byte, bool) {
	if !s.Eat('"') {
		return nil, false
	}
	start := s.I
	for s.I < len(s.B) {
		c := s.B[s.I]
		if c == '"' {
			v := s.B[start:s.I]
			s.I++
			return v, true
		}
		if c == '\\' || c < 0x20 {
			return nil, false
		}
		s.I++
	}
	return nil, false
}

// Base64Str returns a string that should hold base64, found with a
// vectorised search: a backslash or control character inside makes base64
// decoding fail later (and the fast path decline), except CR and LF, which
// the decoder would skip but JSON forbids, so they are checked here.
func (s *Scanner) Base64Str() ([]byte, bool) {
	if !s.Eat('"') {
		return nil, false
	}
	n := bytes.IndexByte(s.B[s.I:], '"')
	if n < 0 {
		return nil, false
	}
	v := s.B[s.I : s.I+n]
	if bytes.IndexByte(v, '\n') >= 0 || bytes.IndexByte(v, '\r') >= 0 {
		return nil, false
	}
	s.I += n + 1
	return v, true
}

// Text is Str as valid UTF-8 text (encoding/json would replace invalid bytes).
func (s *Scanner) Text() (string, bool) {
	v, ok := s.Str()
	if !ok || !utf8.Valid(v) {
		return "", false
	}
	return string(v), true
}

// IsFieldFold reports whether key equals one of the names ignoring case.
func IsFieldFold(key []byte, names ...string) bool {
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

// Skip passes over one JSON value of a field we do not read, strictly: a
// value encoding/json would reject makes the fast path give up.
func (s *Scanner) Skip() bool {
	if s.I >= len(s.B) {
		return false
	}
	switch c := s.B[s.I]; {
	case c == '"':
		s.I++
		for s.I < len(s.B) {
			c := s.B[s.I]
			switch {
			case c == '"':
				s.I++
				return true
			case c < 0x20:
				return false
			case c == '\\':
				return false // escapes: leave to encoding/json
			}
			s.I++
		}
		return false
	case c == '{' || c == '[':
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		s.I++
		s.WS()
		if s.Eat(close) {
			return true
		}
		for {
			if c == '{' {
				if _, ok := s.Str(); !ok {
					return false
				}
				s.WS()
				if !s.Eat(':') {
					return false
				}
				s.WS()
			}
			if !s.Skip() {
				return false
			}
			s.WS()
			if s.Eat(close) {
				return true
			}
			if !s.Eat(',') {
				return false
			}
			s.WS()
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

func (s *Scanner) literal(l string) bool {
	if len(s.B)-s.I >= len(l) && string(s.B[s.I:s.I+len(l)]) == l {
		s.I += len(l)
		return true
	}
	return false
}

// number passes a JSON number exactly as RFC 8259 spells it:
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *Scanner) number() bool {
	digits := func() int {
		n := 0
		for s.I < len(s.B) && s.B[s.I] >= '0' && s.B[s.I] <= '9' {
			s.I++
			n++
		}
		return n
	}
	s.Eat('-')
	switch {
	case s.Eat('0'):
	case s.I < len(s.B) && s.B[s.I] >= '1' && s.B[s.I] <= '9':
		digits()
	default:
		return false
	}
	if s.Eat('.') && digits() == 0 {
		return false
	}
	if s.Eat('e') || s.Eat('E') {
		if !s.Eat('+') {
			s.Eat('-')
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
