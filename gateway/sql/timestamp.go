package sql

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Timestamp is a SQL TIMESTAMP: milliseconds since the Unix epoch, in UTC
// (KDA's ROWTIME and its time functions work in milliseconds).
type Timestamp int64

// timestampLayout is how KDA writes a timestamp in JSON and CSV output.
const timestampLayout = "2006-01-02 15:04:05.000"

// Time is the timestamp as a time.Time in UTC.
func (t Timestamp) Time() time.Time { return time.UnixMilli(int64(t)).UTC() }

func (t Timestamp) String() string { return t.Time().Format(timestampLayout) }

// MarshalJSON writes the timestamp as KDA does: "2024-05-01 12:00:00.000".
func (t Timestamp) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(timestampLayout)+2)
	b = append(b, '"')
	b = t.Time().AppendFormat(b, timestampLayout)
	return append(b, '"'), nil
}

// ParseTimestamp reads "2024-05-01 12:00:00[.fff]", its ISO 8601 form
// with T and an optional zone, or a date alone.
func ParseTimestamp(s string) (Timestamp, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return Timestamp(t.UnixMilli()), true
		}
	}
	return 0, false
}

// timeArith is arithmetic with a timestamp on the left: minus a timestamp
// gives milliseconds, plus or minus an interval (milliseconds) gives a
// timestamp.
func timeArith(op string, t Timestamp, b any) any {
	switch y := b.(type) {
	case Timestamp:
		if op == "-" {
			return int64(t) - int64(y)
		}
	case int64:
		switch op {
		case "+":
			return t + Timestamp(y)
		case "-":
			return t - Timestamp(y)
		}
	}
	return Undefined
}

// TimeUnit is the unit of FLOOR(ts TO MINUTE) and CEIL(ts TO HOUR), passed
// to the function as its last argument (in lower case).
type TimeUnit string

var unitMillis = map[TimeUnit]int64{"millisecond": 1, "second": 1e3, "minute": 60e3, "hour": 3600e3, "day": 86400e3}

// timeOr makes FLOOR and CEIL also round a timestamp to a unit.
func timeOr(num func([]any) (any, error), up bool) func([]any) (any, error) {
	return func(a []any) (any, error) {
		if len(a) != 2 {
			return num(a)
		}
		unit, ok := a[1].(TimeUnit)
		if !ok {
			return num(a)
		}
		t, ok := a[0].(Timestamp)
		if !ok {
			return Undefined, nil
		}
		tt := t.Time()
		var r time.Time
		switch unit {
		case "year":
			r = time.Date(tt.Year(), 1, 1, 0, 0, 0, 0, time.UTC)
		case "month":
			r = time.Date(tt.Year(), tt.Month(), 1, 0, 0, 0, 0, time.UTC)
		default:
			ms, ok := unitMillis[unit]
			if !ok {
				return nil, fmt.Errorf("unit %s: want SECOND, MINUTE, HOUR, DAY, MONTH or YEAR", strings.ToUpper(string(unit)))
			}
			f := FloorDiv(int64(t), ms) * ms
			if up && f != int64(t) {
				f += ms
			}
			return Timestamp(f), nil
		}
		if up && !r.Equal(tt) {
			if unit == "year" {
				r = r.AddDate(1, 0, 0)
			} else {
				r = r.AddDate(0, 1, 0)
			}
		}
		return Timestamp(r.UnixMilli()), nil
	}
}

// step is STEP(x BY interval): x rounded down to a multiple of the
// interval (milliseconds for a timestamp), the start of its tumbling window.
func step(a []any) (any, error) {
	if len(a) != 2 {
		return nil, errors.New("takes a value BY an interval")
	}
	switch x := a[0].(type) {
	case Timestamp:
		n, ok := a[1].(int64)
		if !ok || n <= 0 {
			return nil, errors.New("the interval must be positive")
		}
		return Timestamp(FloorDiv(int64(x), n) * n), nil
	case int64:
		n, ok := a[1].(int64)
		if !ok || n <= 0 {
			return nil, errors.New("the step must be a positive integer")
		}
		return FloorDiv(x, n) * n, nil
	case float64:
		n, ok := number(a[1])
		if !ok || n <= 0 {
			return nil, errors.New("the step must be positive")
		}
		return math.Floor(x/n) * n, nil
	case nil:
		return nil, nil
	}
	return Undefined, nil
}

// FloorDiv divides rounding toward negative infinity (window starts
// before the epoch round down too).
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// UnitMillis is the length of a fixed time unit (SECOND, MINUTE, HOUR, DAY).
func UnitMillis(unit string) (int64, bool) {
	n, ok := unitMillis[TimeUnit(strings.ToLower(unit))]
	return n, ok
}

// extract is EXTRACT(field FROM ts): YEAR, MONTH, DAY, HOUR, MINUTE,
// SECOND, MILLISECOND, DOW (1 = Sunday), DOY, WEEK or EPOCH (seconds).
func extract(a []any) (any, error) {
	if len(a) != 2 {
		return nil, errors.New("takes a field FROM a timestamp")
	}
	unit, _ := a[0].(TimeUnit)
	ts, ok := a[1].(Timestamp)
	if !ok {
		if a[1] == nil {
			return nil, nil
		}
		return Undefined, nil
	}
	t := ts.Time()
	switch unit {
	case "year":
		return int64(t.Year()), nil
	case "month":
		return int64(t.Month()), nil
	case "day":
		return int64(t.Day()), nil
	case "hour":
		return int64(t.Hour()), nil
	case "minute":
		return int64(t.Minute()), nil
	case "second":
		return int64(t.Second()), nil
	case "millisecond":
		return int64(t.Nanosecond() / 1e6), nil
	case "dow":
		return int64(t.Weekday()) + 1, nil
	case "doy":
		return int64(t.YearDay()), nil
	case "week":
		_, w := t.ISOWeek()
		return int64(w), nil
	case "epoch":
		return int64(ts) / 1000, nil
	}
	return nil, fmt.Errorf("no field %s (YEAR, MONTH, DAY, HOUR, MINUTE, SECOND, MILLISECOND, DOW, DOY, WEEK, EPOCH)", strings.ToUpper(string(unit)))
}
