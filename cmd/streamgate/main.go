// Command streamgate is the gateway binary: `streamgate serve` runs it; the
// other subcommands are clients of any Kinesis-compatible endpoint.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `streamgate: a Kinesis-compatible ingestion gateway for video and IoT data.

Usage:
  streamgate serve [--config FILE] [--data-dir DIR] [--http-addr ADDR] ...
  streamgate version
  streamgate streams list|create|describe|delete [flags]
  streamgate put STREAM --partition-key K [DATA|-]
  streamgate tail STREAM [--from trim-horizon|latest|<RFC 3339 time>]
  streamgate clip STREAM --from T [--to T] [-o out.mp4]      (a video stream's time range as MP4)
  streamgate query "SELECT ... FROM stream" [--from 1h] [--to T] [--format table|json]
  streamgate bench kinesis [--endpoint URL] [flags]
  streamgate bench video --rtsp URL --clip FILE --cameras N --server-pid PID --metrics URL
  streamgate bench fragments fill|query [flags]
  streamgate keys create NAME [--policy FILE] | list | delete ID   [--data-dir ./data]

Client commands take --endpoint (default $STREAMGATE_ENDPOINT or http://localhost:4566).
Run any command with -h for its flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(args)
	case "version", "--version":
		fmt.Println("streamgate", version)
	case "streams":
		err = streamsCmd(args)
	case "put":
		err = putCmd(args)
	case "tail":
		err = tailCmd(args)
	case "clip":
		err = clipCmd(args)
	case "query":
		err = queryCmd(args)
	case "bench":
		err = benchCmd(args)
	case "keys":
		err = keysCmd(args)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "streamgate: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamgate:", err)
		os.Exit(1)
	}
}
