// Package analytics is the Kinesis Data Analytics for SQL runtime: the v1
// control API (KinesisAnalytics_20150814), applications whose SQL (parsed by
// gateway/sql) runs as pumps between in-application streams, fed by
// consumers of the gateway's own streams and writing to streams and
// Firehose delivery streams.
package analytics
