package analytics

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/streamgate/streamgate/gateway/sql"
)

// appendRow formats a row as an output record: a JSON object of its columns
// or a CSV line, as the output's DestinationSchema says.
func appendRow(b []byte, s *inAppStream, r *row, csv bool) []byte {
	if csv {
		for i, v := range r.vals {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCSV(b, v)
		}
		return append(b, '\n')
	}
	b = append(b, '{')
	for i, c := range s.cols {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, c.name)
		b = append(b, ':')
		b = appendJSON(b, r.vals[i])
	}
	return append(b, '}')
}

func appendJSON(b []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendJSONString(b, x)
	case int64:
		return strconv.AppendInt(b, x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return append(b, "null"...)
		}
		return strconv.AppendFloat(b, x, 'g', -1, 64)
	case bool:
		return strconv.AppendBool(b, x)
	case sql.Timestamp:
		out, _ := x.MarshalJSON()
		return append(b, out...)
	}
	out, _ := json.Marshal(v)
	return append(b, out...)
}

// appendJSONString quotes a string as JSON (encoding/json's escaping for
// anything unusual, a straight copy for the common case).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			out, _ := json.Marshal(s)
			return append(b, out...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendCSV(b []byte, v any) []byte {
	if v == nil {
		return b
	}
	s := sql.String(v)
	if f, ok := v.(float64); ok {
		s = strconv.FormatFloat(f, 'g', -1, 64)
	}
	if strings.ContainsAny(s, ",\"\n\r") {
		return append(b, `"`+strings.ReplaceAll(s, `"`, `""`)+`"`...) // RFC 4180
	}
	return append(b, s...)
}
