package analytics

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/streamgate/streamgate/gateway/awsapi"
	"github.com/streamgate/streamgate/gateway/sql"
	"github.com/streamgate/streamgate/streamstore"
)

// discoverSample is how many records DiscoverInputSchema reads.
const discoverSample = 100

// discover is DiscoverInputSchema: it samples the source and infers the
// columns of its records (JSON objects, or CSV lines).
func (s *Service) discover(r *awsapi.Request) (any, error) {
	var in struct {
		ResourceARN                        string
		InputStartingPositionConfiguration *StartingPosition
		S3Configuration                    *struct{ BucketARN, FileKey string }
		InputProcessingConfiguration       *Processing
	}
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	if err := r.Authorize("*"); err != nil {
		return nil, err
	}
	if in.InputProcessingConfiguration != nil {
		return nil, invalid("DiscoverInputSchema does not run preprocessing functions here; discover on records as the function returns them.")
	}
	if c := in.S3Configuration; c != nil {
		bucket, ok := strings.CutPrefix(c.BucketARN, "arn:aws:s3:::")
		if !ok || s.objects == nil {
			return nil, invalid("%s is not a bucket ARN.", c.BucketARN)
		}
		data, err := s.objects(r.Context(), bucket, c.FileKey)
		if err != nil {
			return nil, awsapi.Errorf(awsapi.CodeResourceNotFound, "s3://%s/%s: %v", bucket, c.FileKey, err)
		}
		var raw [][]byte
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 && len(raw) < discoverSample {
				raw = append(raw, line)
			}
		}
		return discovered(raw)
	}
	var input Input
	if _, ok := arnName(in.ResourceARN, "deliverystream"); ok {
		input.KinesisFirehoseInput = &Resource{ResourceARN: in.ResourceARN}
	} else {
		input.KinesisStreamsInput = &Resource{ResourceARN: in.ResourceARN}
	}
	stream, err := s.inputStream(&input)
	if err != nil {
		return nil, err
	}
	info, err := s.store.Stream(stream)
	if err != nil {
		return nil, awsapi.Errorf(awsapi.CodeResourceNotFound, "Stream %s is not found.", stream)
	}
	pos := streamstore.Position{Type: streamstore.TrimHorizon}
	if in.InputStartingPositionConfiguration != nil && in.InputStartingPositionConfiguration.InputStartingPosition == "NOW" {
		pos.Type = streamstore.Latest
	}
	var raw [][]byte
	for _, sh := range info.Shards {
		next, err := s.store.Seek(stream, sh.ID, pos)
		if err != nil {
			continue
		}
		res, err := s.store.Read(stream, sh.ID, next, discoverSample-len(raw), 1<<20)
		if err != nil {
			continue
		}
		for _, rec := range res.Records {
			raw = append(raw, rec.Data)
		}
		if len(raw) >= discoverSample {
			break
		}
	}
	return discovered(raw)
}

// discovered is DiscoverInputSchema's answer for sample records.
func discovered(raw [][]byte) (any, error) {
	if len(raw) == 0 {
		return nil, awsapi.Errorf("UnableToDetectSchemaException", "No data was found to infer a schema from.")
	}
	schema, parsed, err := inferSchema(raw)
	if err != nil {
		return nil, awsapi.Errorf("UnableToDetectSchemaException", "%v", err)
	}
	rawText := make([]string, len(raw))
	for i, b := range raw {
		rawText[i] = string(b)
	}
	return map[string]any{"InputSchema": schema, "ParsedInputRecords": parsed, "RawInputRecords": rawText, "ProcessedInputRecords": rawText}, nil
}

// inferSchema guesses columns from sample records: JSON objects (nested
// objects flattened into PARENT_CHILD columns) or, failing that, CSV.
func inferSchema(raw [][]byte) (*SourceSchema, [][]string, error) {
	if s, parsed, ok := inferJSON(raw); ok {
		return s, parsed, nil
	}
	return inferCSV(raw)
}

type inferred struct {
	name, mapping string
	kind          kind
	maxLen        int
	seen          bool
}

func inferJSON(raw [][]byte) (*SourceSchema, [][]string, bool) {
	cols := map[string]*inferred{}
	var order []string
	var docs []map[string]any
	for _, b := range raw {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var m map[string]any
		if d.Decode(&m) != nil || d.More() {
			return nil, nil, false
		}
		m = sql.FromJSON(m).(map[string]any)
		docs = append(docs, m)
		flatten(m, "$", "", func(mapping, name string, v any) {
			c, ok := cols[mapping]
			if !ok {
				c = &inferred{name: columnName(name), mapping: mapping, kind: -1}
				cols[mapping] = c
				order = append(order, mapping)
			}
			c.widen(v)
		})
	}
	schema := &SourceSchema{RecordFormat: &RecordFormat{RecordFormatType: "JSON",
		MappingParameters: &MappingParameters{JSONMappingParameters: &struct{ RecordRowPath string }{"$"}}}, RecordEncoding: "UTF-8"}
	for _, m := range order {
		c := cols[m]
		schema.RecordColumns = append(schema.RecordColumns, &RecordColumn{Name: c.name, Mapping: c.mapping, SqlType: c.sqlType()})
	}
	paths := make([]jsonPath, len(order))
	for i, mapping := range order {
		paths[i], _ = parsePath(mapping) // made by flatten: always valid
	}
	var parsed [][]string
	for _, m := range docs {
		var vals []string
		for _, path := range paths {
			v := path.get(m)
			if sql.IsUndefined(v) || v == nil {
				vals = append(vals, "")
			} else {
				vals = append(vals, sql.String(v))
			}
		}
		parsed = append(parsed, vals)
	}
	return schema, parsed, len(order) > 0
}

// flatten visits the leaves of a JSON object with their paths.
func flatten(m map[string]any, path, name string, visit func(mapping, name string, v any)) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := path + "." + k
		if strings.ContainsAny(k, ".[]'\" ") {
			p = path + "['" + k + "']"
		}
		n := k
		if name != "" {
			n = name + "_" + k
		}
		if sub, ok := m[k].(map[string]any); ok {
			flatten(sub, p, n, visit)
			continue
		}
		visit(p, n, m[k])
	}
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// columnName makes a field name a column name as KDA does: upper case,
// word characters only, not starting with a digit.
func columnName(field string) string {
	n := strings.ToUpper(nonWord.ReplaceAllString(field, "_"))
	if n == "" || n[0] >= '0' && n[0] <= '9' {
		n = "COL_" + n
	}
	return n
}

// widen makes the column's type fit another value: BOOLEAN < INTEGER <
// BIGINT < DOUBLE < VARCHAR.
func (c *inferred) widen(v any) {
	var k kind
	switch x := v.(type) {
	case nil:
		return
	case bool:
		k = kBool
	case int64:
		k = kInt
		if x > 1<<31-1 || x < -1<<31 {
			c.maxLen = max(c.maxLen, 1<<20) // marks BIGINT
		}
	case float64:
		k = kFloat
	case string:
		k = kString
		c.maxLen = max(c.maxLen, len(x))
	default:
		k = kString
		c.maxLen = max(c.maxLen, len(sql.String(x)))
	}
	if !c.seen {
		c.kind, c.seen = k, true
		return
	}
	if c.kind == k {
		return
	}
	switch {
	case c.kind == kString || k == kString:
		c.kind = kString
	case (c.kind == kInt && k == kFloat) || (c.kind == kFloat && k == kInt):
		c.kind = kFloat
	default:
		c.kind = kString
	}
}

func (c *inferred) sqlType() string {
	switch c.kind {
	case kBool:
		return "BOOLEAN"
	case kInt:
		if c.maxLen >= 1<<20 {
			return "BIGINT"
		}
		return "INTEGER"
	case kFloat:
		return "DOUBLE"
	}
	n := 1
	for n < max(c.maxLen, 1) {
		n *= 2
	}
	return fmt.Sprintf("VARCHAR(%d)", n)
}

func inferCSV(raw [][]byte) (*SourceSchema, [][]string, error) {
	var parsed [][]string
	width := 0
	for _, b := range raw {
		r := csv.NewReader(bytes.NewReader(b))
		r.FieldsPerRecord = -1
		rows, err := r.ReadAll()
		if err != nil || len(rows) == 0 {
			return nil, nil, fmt.Errorf("the records are neither JSON objects nor CSV")
		}
		for _, row := range rows {
			width = max(width, len(row))
			parsed = append(parsed, row)
		}
	}
	if width < 2 {
		return nil, nil, fmt.Errorf("the records are neither JSON objects nor CSV with at least two columns")
	}
	cols := make([]*inferred, width)
	for i := range cols {
		cols[i] = &inferred{name: "COL_" + strconv.Itoa(i), kind: -1}
	}
	for _, row := range parsed {
		for i, f := range row {
			cols[i].widen(csvValue(f))
		}
	}
	schema := &SourceSchema{RecordFormat: &RecordFormat{RecordFormatType: "CSV", MappingParameters: &MappingParameters{
		CSVMappingParameters: &struct{ RecordRowDelimiter, RecordColumnDelimiter string }{"\n", ","}}}, RecordEncoding: "UTF-8"}
	for _, c := range cols {
		schema.RecordColumns = append(schema.RecordColumns, &RecordColumn{Name: c.name, SqlType: c.sqlType()})
	}
	return schema, parsed, nil
}

// csvValue reads a CSV field as a number when it is one.
func csvValue(f string) any {
	if _, err := strconv.ParseFloat(strings.TrimSpace(f), 64); err == nil {
		return sql.ParseNumber(strings.TrimSpace(f))
	}
	return f
}
