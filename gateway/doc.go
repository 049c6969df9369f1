// Package gateway wires streamgate together: it opens the shard log, serves
// the AWS-compatible APIs, /healthz and /metrics on one HTTP port, and owns
// authentication and the lifecycle of every listener.
package gateway
