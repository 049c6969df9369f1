package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// queryCmd runs an ad hoc SQL query over a stream's history (the gateway's
// ExecuteQuery, an extension of the Kinesis Analytics API) and prints a
// table or JSON lines.
func queryCmd(args []string) error {
	var c clientFlags
	fs := flag.NewFlagSet("query", flag.ExitOnError)
	c.register(fs)
	from := fs.String("from", "1h", "start: RFC 3339, or a duration ago (1h, -1h)")
	to := fs.String("to", "", "end: RFC 3339 or a duration ago (default: now)")
	format := fs.String("format", "table", "table or json (one object per line)")
	limit := fs.Int("limit", 10000, "at most this many rows")
	query, rest := splitFirst(args)
	fs.Parse(rest)
	if query == "" {
		return errors.New(`usage: streamgate query "SELECT ... FROM stream [WHERE ...] [GROUP BY ...]" [--from 1h] [--to T] [--format table|json]`)
	}
	now := time.Now()
	start, err := parseWhen(strings.TrimPrefix(*from, "-"), now)
	if err != nil {
		return err
	}
	end := now
	if *to != "" {
		if end, err = parseWhen(strings.TrimPrefix(*to, "-"), now); err != nil {
			return err
		}
	}
	body, err := signedCall(c.resolve(), "kinesisanalytics", "KinesisAnalytics_20150814.ExecuteQuery", map[string]any{"SQL": query,
		"From": float64(start.UnixNano()) / 1e9, "To": float64(end.UnixNano()) / 1e9, "Limit": *limit})
	if err != nil {
		return err
	}
	var res struct {
		Columns        []string
		Rows           [][]any
		RecordsScanned int64
		Truncated      bool
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return err
	}
	defer func() {
		more := ""
		if res.Truncated {
			more = fmt.Sprintf(" (stopped at --limit %d)", *limit)
		}
		fmt.Fprintf(os.Stderr, "%d rows from %d records%s\n", len(res.Rows), res.RecordsScanned, more)
	}()
	if *format == "json" {
		enc := json.NewEncoder(os.Stdout)
		for _, r := range res.Rows {
			obj := map[string]any{}
			for i, c := range res.Columns {
				obj[c] = r[i]
			}
			if err := enc.Encode(obj); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(res.Columns, "\t"))
	for _, r := range res.Rows {
		cells := make([]string, len(r))
		for i, v := range r {
			switch v := v.(type) {
			case nil:
				cells[i] = "NULL"
			case string:
				cells[i] = v
			default:
				b, _ := json.Marshal(v)
				cells[i] = string(b)
			}
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	return w.Flush()
}
