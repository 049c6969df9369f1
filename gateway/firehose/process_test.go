package firehose

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
)

// CloudWatch-Logs-style gzip input is decompressed, JQ keys extracted, a
// newline appended.
func TestProcessorsDecompressExtractAppend(t *testing.T) {
	enabled := true
	p, err := processors(&ProcessingConfiguration{Enabled: &enabled, Processors: []Processor{
		{Type: "Decompression", Parameters: []Parameter{{"CompressionFormat", "GZIP"}}},
		{Type: "MetadataExtraction", Parameters: []Parameter{{"MetadataExtractionQuery", "{group: .logGroup}"}, {"JsonParsingEngine", "JQ-1.6"}}},
		{Type: "AppendDelimiterToRecord"}}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(`{"logGroup":"/app","logEvents":[]}`))
	w.Close()
	data, keys, err := p.apply(b.Bytes())
	if err != nil || string(data) != `{"logGroup":"/app","logEvents":[]}`+"\n" || keys["group"] != "/app" {
		t.Fatalf("apply: %q %v %v", data, keys, err)
	}
	if _, _, err := p.apply([]byte("not gzip")); err == nil {
		t.Error("a record that is not gzip passed Decompression")
	}
}

// Every compression format decodes with a standard reader.
func TestCompressionFormats(t *testing.T) {
	body := []byte(strings.Repeat("line of telemetry\n", 40000)) // > one 256 KiB Hadoop block
	for format, decode := range map[string]func([]byte) ([]byte, error){
		"GZIP": func(b []byte) ([]byte, error) {
			r, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(r)
		},
		"ZIP": func(b []byte) ([]byte, error) {
			zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				return nil, err
			}
			f, err := zr.File[0].Open()
			if err != nil {
				return nil, err
			}
			return io.ReadAll(f)
		},
		"Snappy": func(b []byte) ([]byte, error) { return io.ReadAll(snappy.NewReader(bytes.NewReader(b))) },
		"HADOOP_SNAPPY": func(b []byte) ([]byte, error) {
			var out []byte
			for len(b) > 0 {
				n, c := binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
				d, err := snappy.Decode(nil, b[8:8+c])
				if err != nil || uint32(len(d)) != n {
					return nil, err
				}
				out, b = append(out, d...), b[8+c:]
			}
			return out, nil
		},
	} {
		enc, _, err := compress(format, body)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decode(enc)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s: round trip failed: %v", format, err)
		}
	}
}

func TestPrefixes(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for prefix, want := range map[string]string{
		"":      "2026/03/04/05/",
		"logs/": "logs/2026/03/04/05/",
		"dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:HH}/": "dt=2026-03-04/h=05/",
		"c=!{partitionKeyFromQuery:c}/!{timestamp:DDD}/":    "c=acme/063/",
	} {
		got, err := evalPrefix(prefix, at, map[string]string{"c": "acme"}, "")
		if err != nil || got != want {
			t.Errorf("%q -> %q %v, want %q", prefix, got, err, want)
		}
	}
	for _, bad := range []string{"!{timestamp:yyyy", "!{nope:x}/", "!{firehose:error-output-type}/", "!{timestamp:QQQ}/"} {
		if err := validPrefix(bad, false, true); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
	if err := validPrefix("errors/", true, false); err == nil {
		t.Error("an ErrorOutputPrefix without !{firehose:error-output-type} was accepted")
	}
}
