package firehose

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Object keys are <evaluated prefix><stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><extension>,
// and prefixes take Firehose's !{namespace:value} expressions.

// defaultTimePrefix is what a prefix without expressions gets appended.
const defaultTimePrefix = "!{timestamp:yyyy/MM/dd/HH/}"

// validPrefix checks a Prefix or ErrorOutputPrefix.
func validPrefix(p string, isError, dynamic bool) error {
	if len(p) > 1024 {
		return fmt.Errorf("prefix longer than 1024 characters")
	}
	hasErrType := false
	for rest := p; ; {
		i := strings.Index(rest, "!{")
		if i < 0 {
			if strings.Contains(rest, "!{") {
				return fmt.Errorf("prefix %q: !{ outside an expression", p)
			}
			break
		}
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return fmt.Errorf("prefix %q: unclosed !{ expression", p)
		}
		expr := rest[i+2 : i+end]
		ns, val, ok := strings.Cut(expr, ":")
		if !ok || val == "" {
			return fmt.Errorf("prefix %q: expression !{%s} wants namespace:value", p, expr)
		}
		switch ns {
		case "timestamp":
			if _, err := javaTime(val, time.Unix(0, 0)); err != nil {
				return fmt.Errorf("prefix %q: %w", p, err)
			}
		case "firehose":
			switch val {
			case "random-string":
			case "error-output-type":
				if !isError {
					return fmt.Errorf("prefix %q: !{firehose:error-output-type} is allowed only in ErrorOutputPrefix", p)
				}
				hasErrType = true
			default:
				return fmt.Errorf("prefix %q: unknown !{firehose:%s}", p, val)
			}
		case "partitionKeyFromQuery", "partitionKeyFromLambda":
			if isError {
				return fmt.Errorf("prefix %q: partition keys are not allowed in ErrorOutputPrefix", p)
			}
			if !dynamic {
				return fmt.Errorf("prefix %q: !{%s:...} needs dynamic partitioning", p, ns)
			}
		default:
			return fmt.Errorf("prefix %q: unknown namespace %s", p, ns)
		}
		rest = rest[i+end+1:]
	}
	if isError && p != "" && !hasErrType {
		return fmt.Errorf("ErrorOutputPrefix %q must contain !{firehose:error-output-type}", p)
	}
	return nil
}

// evalPrefix evaluates a prefix for an object whose oldest record arrived
// at t (every timestamp expression of one prefix uses that instant).
func evalPrefix(p string, t time.Time, keys map[string]string, errType string) (string, error) {
	if p == "" || !strings.Contains(p, "!{") {
		p += defaultTimePrefix
	}
	var b strings.Builder
	for {
		i := strings.Index(p, "!{")
		if i < 0 {
			b.WriteString(p)
			break
		}
		b.WriteString(p[:i])
		end := strings.IndexByte(p[i:], '}')
		ns, val, _ := strings.Cut(p[i+2:i+end], ":")
		switch ns {
		case "timestamp":
			s, err := javaTime(val, t)
			if err != nil {
				return "", err
			}
			b.WriteString(s)
		case "firehose":
			if val == "random-string" {
				b.WriteString(randomString(11))
			} else {
				b.WriteString(errType)
			}
		default:
			v, ok := keys[val]
			if !ok {
				return "", fmt.Errorf("partition key %s has no value for this record", val)
			}
			b.WriteString(v)
		}
		p = p[i+end+1:]
	}
	if b.Len() > 512 {
		return "", fmt.Errorf("the evaluated prefix is longer than 512 characters")
	}
	return b.String(), nil
}

// javaTime formats t with the subset of Java's DateTimeFormatter that
// Firehose prefixes use: yyyy yy MM dd DDD HH mm ss, and 'quoted' text.
func javaTime(pattern string, t time.Time) (string, error) {
	t = t.UTC()
	var b strings.Builder
	for i := 0; i < len(pattern); {
		c := pattern[i]
		if c == '\'' {
			end := strings.IndexByte(pattern[i+1:], '\'')
			if end < 0 {
				return "", fmt.Errorf("timestamp %q: unclosed quote", pattern)
			}
			b.WriteString(pattern[i+1 : i+1+end])
			i += end + 2
			continue
		}
		n := 1
		for i+n < len(pattern) && pattern[i+n] == c {
			n++
		}
		run := pattern[i : i+n]
		switch run {
		case "yyyy", "uuuu":
			fmt.Fprintf(&b, "%04d", t.Year())
		case "yy":
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case "MM":
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case "dd":
			fmt.Fprintf(&b, "%02d", t.Day())
		case "DDD":
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case "HH":
			fmt.Fprintf(&b, "%02d", t.Hour())
		case "mm":
			fmt.Fprintf(&b, "%02d", t.Minute())
		case "ss":
			fmt.Fprintf(&b, "%02d", t.Second())
		default:
			if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
				return "", fmt.Errorf("timestamp %q: pattern %q is not supported (yyyy, yy, MM, dd, DDD, HH, mm, ss)", pattern, run)
			}
			b.WriteString(run)
		}
		i += n
	}
	return b.String(), nil
}

const randomChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // never fails
	for i := range b {
		b[i] = randomChars[int(b[i])%len(randomChars)]
	}
	return string(b)
}

// objectName is the fixed suffix of an object key.
func objectName(stream string, version int, t time.Time, ext string) string {
	return fmt.Sprintf("%s-%d-%s-%s%s", stream, version, t.UTC().Format("2006-01-02-15-04-05"), uuid.NewString(), ext)
}
