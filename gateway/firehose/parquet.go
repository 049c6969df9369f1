package firehose

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// Record format conversion: JSON records become one Parquet file per
// object, with the columns of a schema from the gateway's configuration
// (where AWS reads a Glue table). Records that do not fit go to the
// format-conversion-failed error output.

// Column is one column of a conversion schema.
type Column struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"` // string, int, bigint, double, float, boolean, timestamp
}

// conversion is a destination's enabled Parquet conversion.
type conversion struct {
	table   string
	columns []Column
	schema  *parquet.Schema
	codec   parquet.WriterOption
}

// parseConversion reads DataFormatConversionConfiguration; nil when off.
func parseConversion(cfg map[string]any, schemas map[string][]Column) (*conversion, error) {
	if cfg == nil {
		return nil, nil
	}
	if enabled, ok := cfg["Enabled"].(bool); ok && !enabled {
		return nil, nil
	}
	get := func(m any, keys ...string) any {
		for _, k := range keys {
			mm, ok := m.(map[string]any)
			if !ok {
				return nil
			}
			m = mm[k]
		}
		return m
	}
	if get(cfg, "OutputFormatConfiguration", "Serializer", "OrcSerDe") != nil {
		return nil, fmt.Errorf("ORC output is not supported (ParquetSerDe is)")
	}
	table, _ := get(cfg, "SchemaConfiguration", "TableName").(string)
	db, _ := get(cfg, "SchemaConfiguration", "DatabaseName").(string)
	cols, ok := schemas[db+"."+table]
	if !ok {
		cols, ok = schemas[table]
	}
	if !ok {
		return nil, fmt.Errorf("SchemaConfiguration: no schema named %q (or %q) in the gateway's firehose.schemas", table, db+"."+table)
	}
	c := &conversion{table: table, columns: cols, codec: parquet.Compression(&parquet.Snappy)}
	switch comp, _ := get(cfg, "OutputFormatConfiguration", "Serializer", "ParquetSerDe", "Compression").(string); comp {
	case "", "SNAPPY":
	case "GZIP":
		c.codec = parquet.Compression(&parquet.Gzip)
	case "UNCOMPRESSED":
		c.codec = parquet.Compression(&parquet.Uncompressed)
	default:
		return nil, fmt.Errorf("ParquetSerDe Compression %s: want SNAPPY, GZIP or UNCOMPRESSED", comp)
	}
	group := parquet.Group{}
	for _, col := range cols {
		var n parquet.Node
		switch strings.ToLower(col.Type) {
		case "string", "varchar", "char":
			n = parquet.String()
		case "int", "integer":
			n = parquet.Int(32)
		case "bigint", "long":
			n = parquet.Int(64)
		case "double":
			n = parquet.Leaf(parquet.DoubleType)
		case "float":
			n = parquet.Leaf(parquet.FloatType)
		case "boolean":
			n = parquet.Leaf(parquet.BooleanType)
		case "timestamp":
			n = parquet.Timestamp(parquet.Millisecond)
		default:
			return nil, fmt.Errorf("column %s: type %s is not supported (string, int, bigint, double, float, boolean, timestamp)", col.Name, col.Type)
		}
		group[col.Name] = parquet.Optional(n)
	}
	c.schema = parquet.NewSchema(table, group)
	return c, nil
}

// row maps a JSON record onto the columns, as the OpenX JSON SerDe does:
// keys match case-insensitively, absent ones are null.
func (c *conversion) row(data []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var doc map[string]any
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("the record is not a JSON object: %w", err)
	}
	lower := make(map[string]any, len(doc))
	for k, v := range doc {
		lower[strings.ToLower(k)] = v
	}
	row := make(map[string]any, len(c.columns))
	for _, col := range c.columns {
		v, ok := lower[strings.ToLower(col.Name)]
		if !ok || v == nil {
			row[col.Name] = nil
			continue
		}
		cv, err := convert(v, strings.ToLower(col.Type))
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", col.Name, err)
		}
		row[col.Name] = cv
	}
	return row, nil
}

func convert(v any, typ string) (any, error) {
	num, isNum := v.(json.Number)
	switch typ {
	case "string", "varchar", "char":
		if s, ok := v.(string); ok {
			return s, nil
		}
		b, _ := json.Marshal(v)
		return string(b), nil
	case "int", "integer", "bigint", "long":
		if isNum {
			i, err := num.Int64()
			if typ == "int" || typ == "integer" {
				return int32(i), err
			}
			return i, err
		}
	case "double", "float":
		if isNum {
			f, err := num.Float64()
			if typ == "float" {
				return float32(f), err
			}
			return f, err
		}
	case "boolean":
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case "timestamp":
		// Epoch milliseconds or seconds, or an ISO 8601 time, as OpenX takes them.
		if isNum {
			f, err := num.Float64()
			if err != nil {
				return nil, err
			}
			if f < 1e11 {
				f *= 1000
			}
			return time.UnixMilli(int64(f)).UTC(), nil
		}
		if s, ok := v.(string); ok {
			t, err := time.Parse(time.RFC3339Nano, s)
			return t.UTC(), err
		}
	}
	return nil, fmt.Errorf("%v does not convert to %s", v, typ)
}

// write encodes rows as one Parquet file.
func (c *conversion) write(rows []map[string]any) ([]byte, error) {
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, c.schema, c.codec)
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
