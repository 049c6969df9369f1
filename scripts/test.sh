#!/usr/bin/env bash
# make test: every package under the race detector (which needs cgo; the
# shipped binary does not). CI logs are often read from their tail, and a
# test binary that times out prints the names of the tests that were running
# at its head, before thousands of goroutine stacks. So on a failure the
# failing tests, and the running ones of a timeout, are repeated at the end.
set -uo pipefail
GO=${GO:-go}
log=$(mktemp "${TMPDIR:-/tmp}/streamgate-test.XXXXXX")
trap 'rm -f "$log"' EXIT
CGO_ENABLED=1 "$GO" test -race -count=1 -timeout 15m ./... 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  echo "== make test failed; what failed:"
  grep -E -A12 '^panic: test timed out' "$log" | grep -E '^(panic|\s+Test|\s+running)' || true
  grep -E '^\s*--- FAIL|^FAIL|^panic: ' "$log" | head -50 || true
fi
exit "$rc"
