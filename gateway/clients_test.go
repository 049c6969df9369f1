package gateway_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// clientEnv isolates the AWS CLI and boto3 from any user configuration.
func clientEnv(t *testing.T, s *server) []string {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	return append(os.Environ(), "AWS_ACCESS_KEY_ID="+s.key.ID, "AWS_SECRET_ACCESS_KEY="+s.key.Secret, "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE="+empty, "AWS_SHARED_CREDENTIALS_FILE="+empty, "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
}

// awsCLI returns a runner of the AWS CLI against the server, isolated from
// any user configuration: it fails the test on an error and returns the
// JSON answer.
func awsCLI(t *testing.T, awsBin string, s *server) func(args ...string) map[string]any {
	env := clientEnv(t, s)
	return func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command(awsBin, append([]string{"--endpoint-url", s.endpoint, "--output", "json"}, args...)...)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		var v map[string]any
		if len(strings.TrimSpace(string(out))) > 0 {
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("aws %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		return v
	}
}

// rawBlobs are the arguments that make the AWS CLI take blob parameters
// as raw text: v2 reads them as base64 by default, v1 raw.
func rawBlobs(awsBin string) []string {
	ver, _ := exec.Command(awsBin, "--version").CombinedOutput()
	if strings.HasPrefix(string(ver), "aws-cli/2") {
		return []string{"--cli-binary-format", "raw-in-base64-out"}
	}
	return nil
}

// The AWS CLI runs a create / put-records / get-records / split / delete
// script against the server.
func TestAWSCLIScript(t *testing.T) {
	awsBin, err := exec.LookPath("aws")
	if err != nil {
		t.Fatal("the aws CLI is not installed: run `make test`, which installs it")
	}
	s := startServer(t, nil)
	binary := rawBlobs(awsBin)
	cli := awsCLI(t, awsBin, s)
	run := func(args ...string) map[string]any {
		t.Helper()
		return cli(append(append([]string{"kinesis"}, args...), binary...)...)
	}
	run("create-stream", "--stream-name", "cli", "--shard-count", "1")
	run("wait", "stream-exists", "--stream-name", "cli")
	put := run("put-records", "--stream-name", "cli", "--records", "Data=hello,PartitionKey=a", "Data=world,PartitionKey=b")
	if put["FailedRecordCount"].(float64) != 0 {
		t.Fatalf("put-records: %v", put)
	}
	it := run("get-shard-iterator", "--stream-name", "cli", "--shard-id", "shardId-000000000000", "--shard-iterator-type", "TRIM_HORIZON")
	got := run("get-records", "--shard-iterator", it["ShardIterator"].(string))
	recs := got["Records"].([]any)
	if len(recs) != 2 || recs[0].(map[string]any)["Data"] != "aGVsbG8=" || recs[1].(map[string]any)["Data"] != "d29ybGQ=" {
		t.Fatalf("get-records: %v", got)
	}
	run("split-shard", "--stream-name", "cli", "--shard-to-split", "shardId-000000000000", "--new-starting-hash-key", "170141183460469231731687303715884105728")
	shards := run("list-shards", "--stream-name", "cli")
	if n := len(shards["Shards"].([]any)); n != 3 {
		t.Fatalf("list-shards after split: %d shards", n)
	}
	run("delete-stream", "--stream-name", "cli")
	if l := run("list-streams"); len(l["StreamNames"].([]any)) != 0 {
		t.Fatalf("list-streams after delete: %v", l)
	}
}

const boto3Script = `
import base64, sys, boto3
k = boto3.client("kinesis", endpoint_url=sys.argv[1])
k.create_stream(StreamName="py", ShardCount=2)
k.get_waiter("stream_exists").wait(StreamName="py", WaiterConfig={"Delay": 1})
res = k.put_records(StreamName="py", Records=[{"Data": b"r%d" % i, "PartitionKey": "pk%d" % i} for i in range(20)])
assert res["FailedRecordCount"] == 0, res
seen = set()
for shard in k.list_shards(StreamName="py")["Shards"]:
    it = k.get_shard_iterator(StreamName="py", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    out = k.get_records(ShardIterator=it, Limit=100)
    seen.update(r["Data"] for r in out["Records"])
assert seen == {b"r%d" % i for i in range(20)}, seen
k.split_shard(StreamName="py", ShardToSplit="shardId-000000000000", NewStartingHashKey="85070591730234615865843651857942052864")
assert len(k.list_shards(StreamName="py")["Shards"]) == 4
try:
    k.describe_stream(StreamName="missing")
    raise SystemExit("describe of a missing stream succeeded")
except k.exceptions.ResourceNotFoundException:
    pass
k.delete_stream(StreamName="py")
print("boto3 ok")
`

// boto3 runs the same kind of script.
func TestBoto3Script(t *testing.T) {
	python := ""
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import boto3").Run() == nil {
			python = p
			break
		}
	}
	if python == "" {
		t.Fatal("no python3 with boto3: run `make test`, which installs python3-boto3")
	}
	s := startServer(t, nil)
	cmd := exec.Command(python, "-c", boto3Script, s.endpoint)
	cmd.Env = clientEnv(t, s)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "boto3 ok") {
		t.Fatalf("boto3 script: %v\n%s", err, out)
	}
}
