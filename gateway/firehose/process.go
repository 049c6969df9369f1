package firehose

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/itchyny/gojq"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
)

// procs is a destination's record processing, compiled.
type procs struct {
	appendDelimiter bool
	query           *gojq.Code // MetadataExtraction: an object of partition keys
	decompress      bool       // Decompression of CloudWatch-Logs-style gzip input
	lambda          string     // a transformation function's URL (the Lambda contract over HTTP)
	lambdaARN       string
	retries         int
}

// processors compiles a ProcessingConfiguration.
func processors(pc *ProcessingConfiguration) (procs, error) {
	var p procs
	if pc == nil || (pc.Enabled != nil && !*pc.Enabled) {
		return p, nil
	}
	for _, pr := range pc.Processors {
		params := map[string]string{}
		for _, kv := range pr.Parameters {
			params[kv.ParameterName] = kv.ParameterValue
		}
		switch pr.Type {
		case "AppendDelimiterToRecord":
			p.appendDelimiter = true
		case "MetadataExtraction":
			if engine := params["JsonParsingEngine"]; engine != "" && !strings.HasPrefix(engine, "JQ-1.") {
				return p, fmt.Errorf("JsonParsingEngine %s: want JQ-1.6", engine)
			}
			q, err := gojq.Parse(params["MetadataExtractionQuery"])
			if err != nil {
				return p, fmt.Errorf("MetadataExtractionQuery %q: %v", params["MetadataExtractionQuery"], err)
			}
			code, err := gojq.Compile(q)
			if err != nil {
				return p, fmt.Errorf("MetadataExtractionQuery %q: %v", params["MetadataExtractionQuery"], err)
			}
			p.query = code
		case "Decompression":
			if f := params["CompressionFormat"]; f != "" && f != "GZIP" {
				return p, fmt.Errorf("processor Decompression: CompressionFormat %s, want GZIP", f)
			}
			p.decompress = true
		case "Lambda":
			// The function is any HTTP endpoint that speaks the Lambda
			// transformation contract: its URL is the LambdaArn parameter.
			u := params["LambdaArn"]
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				return p, fmt.Errorf("processor Lambda: LambdaArn %q must be the http(s) URL of a function speaking the Lambda transformation contract", u)
			}
			p.lambda, p.lambdaARN, p.retries = u, u, 3
			if n := params["NumberOfRetries"]; n != "" {
				if _, err := fmt.Sscan(n, &p.retries); err != nil || p.retries < 0 || p.retries > 300 {
					return p, fmt.Errorf("NumberOfRetries %q: want 0 to 300", n)
				}
			}
		case "RecordDeAggregation", "CloudWatchLogProcessing":
			return p, fmt.Errorf("processor %s is not supported yet", pr.Type)
		default:
			return p, fmt.Errorf("unknown processor type %s", pr.Type)
		}
	}
	return p, nil
}

// apply runs the processors on a record: its data as delivered, and its
// partition keys (nil without a query).
func (p procs) apply(data []byte) ([]byte, map[string]string, error) {
	if p.decompress {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, nil, fmt.Errorf("decompressing: %w", err)
		}
		d, err := io.ReadAll(io.LimitReader(zr, 16<<20))
		if err != nil {
			return nil, nil, fmt.Errorf("decompressing: %w", err)
		}
		data = d
	}
	var keys map[string]string
	if p.query != nil {
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, nil, fmt.Errorf("the record is not JSON: %w", err)
		}
		it := p.query.Run(doc)
		v, ok := it.Next()
		if !ok {
			return nil, nil, fmt.Errorf("the metadata extraction query produced nothing")
		}
		if err, isErr := v.(error); isErr {
			return nil, nil, fmt.Errorf("metadata extraction query: %w", err)
		}
		obj, isObj := v.(map[string]any)
		if !isObj {
			return nil, nil, fmt.Errorf("the metadata extraction query must produce an object of keys")
		}
		keys = map[string]string{}
		for k, val := range obj {
			if val == nil {
				return nil, nil, fmt.Errorf("partition key %s is null for this record", k)
			}
			switch x := val.(type) {
			case string:
				keys[k] = x
			default:
				b, _ := json.Marshal(x)
				keys[k] = string(b)
			}
		}
	}
	if p.appendDelimiter {
		data = append(data[:len(data):len(data)], '\n')
	}
	return data, keys, nil
}

// compress encodes an object's body and names its extension.
func compress(format string, body []byte) ([]byte, string, error) {
	switch format {
	case "", "UNCOMPRESSED":
		return body, "", nil
	case "GZIP":
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(body)
		if err := w.Close(); err != nil {
			return nil, "", err
		}
		return b.Bytes(), ".gz", nil
	case "ZIP":
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		f, err := zw.Create("data")
		if err != nil {
			return nil, "", err
		}
		f.Write(body)
		if err := zw.Close(); err != nil {
			return nil, "", err
		}
		return b.Bytes(), ".zip", nil
	case "Snappy":
		// The snappy framing format (what snappy's stream readers take).
		var b bytes.Buffer
		w := snappy.NewBufferedWriter(&b)
		w.Write(body)
		if err := w.Close(); err != nil {
			return nil, "", err
		}
		return b.Bytes(), ".snappy", nil
	case "HADOOP_SNAPPY":
		// Hadoop's block format: per block of at most 256 KiB, the
		// uncompressed length, then one chunk of compressed length and data.
		var b bytes.Buffer
		for len(body) > 0 {
			n := min(len(body), 256<<10)
			c := snappy.Encode(nil, body[:n])
			b.Write(binary.BigEndian.AppendUint32(nil, uint32(n)))
			b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(c))))
			b.Write(c)
			body = body[n:]
		}
		return b.Bytes(), ".snappy", nil
	}
	return nil, "", fmt.Errorf("compression %s is not supported", format)
}
