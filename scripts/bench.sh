#!/usr/bin/env bash
# make bench: start the real server and measure it with `streamgate bench`.
# Prints throughput, latency percentiles and CPU next to the machine it ran on.
#   BENCH_DURATION=10s      length of each timed scenario
#   BENCH_RESTART_GB=10     log size for the restart-time measurement (0: skip)
#   BENCH_KINESIS=1         the Kinesis Data Streams scenarios (0 skips them)
#   BENCH_KINESALITE=1      also run kinesalite (npm) in the same run, as the anchor
#   BENCH_CAMERAS="1 16 64" RTSP publishers per video ingest run ("" skips video)
#   BENCH_FRAGMENTS=100000  fragments in the large stream of the fragment-index run
#   BENCH_VIEWERS=200       WHEP viewers in the WebRTC fan-out run ("" skips WebRTC)
#   BENCH_MQTT=1            the MQTT scenarios, with Mosquitto side by side when installed (0 skips them)
#   BENCH_MQTT_IDLE=10000   idle MQTT connections for the memory-per-connection figure
#   BENCH_FIREHOSE=1        Firehose Direct PUT to a directory and to versitygw (0 skips)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./bin/streamgate
DUR=${BENCH_DURATION:-10s}
RESTART_GB=${BENCH_RESTART_GB:-10}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/streamgate-bench.XXXXXX")
PORT=$((20000 + RANDOM % 20000))
EP=http://127.0.0.1:$PORT
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; [ -n "${KPID:-}" ] && kill "$KPID" 2>/dev/null; rm -rf "$DIR"; }
trap cleanup EXIT

start() {
  "$BIN" serve --data-dir "$DIR/data" --http-addr "127.0.0.1:$PORT" --rtsp-addr "" --mqtt-addr "" --webrtc-addr "" "$@" >>"$DIR/server.out" 2>>"$DIR/server.log" &
  PID=$!
  for _ in $(seq 1 500); do curl -sf "$EP/healthz" >/dev/null 2>&1 && return 0; sleep 0.01; done
  echo "server did not start" >&2; cat "$DIR/server.log" >&2; exit 1
}
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$1/status"; }

echo "== machine"
echo "cpu: $(nproc) x $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); kernel $(uname -r); $(go version | cut -d' ' -f3)"
echo "disk sequential write (dd oflag=direct, 512 MiB):"
mkdir -p "$DIR/data"
DD=$(dd if=/dev/zero of="$DIR/ddtest" bs=1M count=512 oflag=direct 2>&1 | tail -1); rm -f "$DIR/ddtest"
echo "  $DD"
DISK_MBS=$(echo "$DD" | awk '{v=$(NF-1); u=$NF; if (u ~ /^GB/) v*=1000; if (u ~ /^kB/) v/=1000; print v}')

start
sleep 1
echo "== idle RSS after start: $(rss $PID)"
# The gateway signs every request check with the admin key it made at first start.
export AWS_CONFIG_FILE="$DIR/data/auth/aws-config" AWS_PROFILE=streamgate

if [ "${BENCH_KINESIS:-1}" = 1 ]; then
echo "== PutRecords, 100 B records, batches of 500, 4 shards (fsync always, SigV4 verified)"
"$BIN" bench kinesis --endpoint "$EP" --stream put100 --shards 4 --record-size 100 --batch 500 --concurrency 8 --duration "$DUR" --server-pid "$PID"

echo "== PutRecords, 10 KiB records, batches of 400, 4 shards (fsync always)"
OUT=$("$BIN" bench kinesis --endpoint "$EP" --stream put10k --shards 4 --record-size 10240 --batch 400 --concurrency 8 --duration "$DUR" --server-pid "$PID")
echo "$OUT"
MBS=$(echo "$OUT" | grep -oE '[0-9.]+ MB/s' | head -1 | cut -d' ' -f1)
awk -v a="$MBS" -v d="$DISK_MBS" 'BEGIN { if (d > 0) printf "  = %.0f%% of the disk'"'"'s sequential write bandwidth (%.0f MB/s)\n", 100*a/d, d }'

echo "== GetRecords drain, 4 shards"
"$BIN" bench kinesis --endpoint "$EP" --stream drain --shards 4 --mode get --records 400000 --server-pid "$PID"

echo "== put -> SubscribeToShard at 1000 records/s"
"$BIN" bench kinesis --endpoint "$EP" --stream fanout --shards 4 --mode subscribe --rate 1000 --duration "$DUR" --server-pid "$PID"

if [ "$RESTART_GB" != 0 ]; then
  echo "== restart with ${RESTART_GB} GiB of log"
  # RSS is sampled after each 5 s of filling: it must not grow with the log.
  SAMPLES=""
  while [ "$(du -sm "$DIR/data" | cut -f1)" -lt $((RESTART_GB * 1024)) ]; do
    "$BIN" bench kinesis --endpoint "$EP" --stream fill --shards 4 --record-size 10240 --batch 400 --concurrency 8 --duration 5s >/dev/null
    SAMPLES="$SAMPLES $(du -sh "$DIR/data" | cut -f1):$(awk '/VmRSS/ {printf "%dMB", $2/1024}' /proc/$PID/status)"
  done
  echo "  server RSS while the log grew (log size:RSS):$SAMPLES"
  kill -TERM "$PID"; wait "$PID" || true
  T0=$(date +%s%N)
  start
  T1=$(date +%s%N)
  echo "  restart to healthy: $(( (T1 - T0) / 1000000 )) ms; RSS after restart $(rss $PID)"
fi

echo "== the same PutRecords load with authentication off (auth: none), for the cost of SigV4"
kill -TERM "$PID"; wait "$PID" || true
start --auth none
"$BIN" bench kinesis --endpoint "$EP" --stream put100 --shards 4 --record-size 100 --batch 500 --concurrency 8 --duration "$DUR" --server-pid "$PID"
fi

CAMERAS=${BENCH_CAMERAS-1 16 64}
if [ -n "$CAMERAS" ] && command -v ffmpeg >/dev/null; then
  echo "== video ingest: N looped 'ffmpeg -re -c copy' RTSP/TCP publishers, 720p30 H.264 4 Mbit/s, 2 s GOP (fsync always)"
  CLIPS=bin/.bench-clips; mkdir -p "$CLIPS"
  [ -f "$CLIPS/cam720.mp4" ] || ffmpeg -v error -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=20" -c:v libx264 -preset veryfast \
    -b:v 4M -maxrate 4M -bufsize 8M -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p -y "$CLIPS/cam720.mp4"
  [ -f "$CLIPS/small.mp4" ] || ffmpeg -v error -f lavfi -i "testsrc=size=320x240:rate=25:duration=10" -c:v libx264 -preset veryfast \
    -g 50 -pix_fmt yuv420p -y "$CLIPS/small.mp4"
  kill -TERM "$PID"; wait "$PID" || true
  rm -rf "$DIR/data"
  RTSP=127.0.0.1:$((PORT + 2))
  printf 'video:\n  rtsp_udp_rtp_addr: ""\n  rtsp_udp_rtcp_addr: ""\n' > "$DIR/video.yaml"
  startv() { "$BIN" serve --config "$DIR/video.yaml" --data-dir "$DIR/data" --http-addr "127.0.0.1:$PORT" --rtsp-addr "$RTSP" --mqtt-addr "" --webrtc-addr "" >>"$DIR/server.out" 2>>"$DIR/server.log" &
    PID=$!; for _ in $(seq 1 500); do curl -sf "$EP/healthz" >/dev/null 2>&1 && return 0; sleep 0.01; done; echo "server did not start" >&2; exit 1; }
  startv
  sleep 1
  KEYID=$(awk -F' = ' '/aws_access_key_id/ {print $2}' "$DIR/data/auth/aws-config")
  SECRET=$(awk -F' = ' '/aws_secret_access_key/ {print $2}' "$DIR/data/auth/aws-config")
  for n in $CAMERAS; do
    # A fresh server per N, so RSS per camera is measured from the same idle state.
    kill -TERM "$PID"; wait "$PID" || true; startv; sleep 1
    "$BIN" bench video --rtsp "rtsp://$KEYID:$SECRET@$RTSP" --clip "$CLIPS/cam720.mp4" --cameras "$n" --duration "$DUR" --server-pid "$PID" --metrics "$EP/metrics"
  done
  echo "== video ingest floor: the same publishers against gortsplib alone (packets discarded, same socket reads)"
  kill -TERM "$PID"; wait "$PID" || true
  for n in $CAMERAS; do
    "$BIN" bench rtsp-floor --rtsp-addr "$RTSP" & FLOOR=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/${RTSP%:*}/${RTSP#*:}") 2>/dev/null && break; sleep 0.05; done
    "$BIN" bench video --rtsp "rtsp://$RTSP" --clip "$CLIPS/cam720.mp4" --cameras "$n" --duration "$DUR" --server-pid "$FLOOR"
    kill -TERM "$FLOOR"; wait "$FLOOR" || true
  done
  startv
  VIEWERS=${BENCH_VIEWERS-200}
  if [ -n "$VIEWERS" ]; then
    echo "== WebRTC (WHEP): a synthetic 30 fps 4 Mbit/s camera over RTSP; latency, first frame, $VIEWERS pion viewers on loopback"
    kill -TERM "$PID"; wait "$PID" || true
    startv() { "$BIN" serve --config "$DIR/video.yaml" --data-dir "$DIR/data" --http-addr "127.0.0.1:$PORT" --rtsp-addr "$RTSP" --mqtt-addr "" --webrtc-addr "127.0.0.1:$((PORT + 3))" >>"$DIR/server.out" 2>>"$DIR/server.log" &
      PID=$!; for _ in $(seq 1 500); do curl -sf "$EP/healthz" >/dev/null 2>&1 && return 0; sleep 0.01; done; echo "server did not start" >&2; exit 1; }
    startv
    "$BIN" bench webrtc --endpoint "$EP" --rtsp "rtsp://$KEYID:$SECRET@$RTSP" --token "$KEYID:$SECRET" --viewers "$VIEWERS" --duration "$DUR" --server-pid "$PID"
  fi
  echo "== PutMedia: producers streaming Matroska (720p30 4 Mbit/s, 2 s clusters) as fast as the gateway takes it"
  [ -f "$CLIPS/cam720.mkv" ] || ffmpeg -v error -i "$CLIPS/cam720.mp4" -c copy -f matroska -cluster_time_limit 2000 -y "$CLIPS/cam720.mkv"
  for n in 1 4; do
    "$BIN" bench putmedia --endpoint "$EP" --mkv "$CLIPS/cam720.mkv" --frames 600 --producers "$n" --duration "$DUR" --server-pid "$PID"
  done
  echo "== Low-Latency HLS: a synthetic 25 fps camera over RTSP, keyframe every 2 s"
  "$BIN" bench llhls --endpoint "$EP" --rtsp "rtsp://$KEYID:$SECRET@$RTSP" --duration "$DUR"
  echo "== Live latency in a player: hls.js in headless Chromium, LIVE session, wall clock minus the on-screen frame's time"
  if command -v chromium >/dev/null && [ -f bin/.hlsjs/node_modules/hls.js/dist/hls.min.js ]; then
    go test -run '^$' -bench LLHLSPlayerLatency -benchtime 1x ./gateway/ | grep -E '^Benchmark'
  else
    echo "  (skipped: needs chromium and hls.js, which \`make test\` installs)"
  fi
  echo "== LIVE HLS (MPEG-TS, from the archive) and LIVE DASH: the same camera; segment listed after its first and last frame"
  "$BIN" bench llhls --endpoint "$EP" --rtsp "rtsp://$KEYID:$SECRET@$RTSP" --duration "$DUR" --mode hls
  "$BIN" bench llhls --endpoint "$EP" --rtsp "rtsp://$KEYID:$SECRET@$RTSP" --duration "$DUR" --mode dash
  N=${BENCH_FRAGMENTS:-100000}
  echo "== fragment index: ListFragments and GetMediaForFragmentList on a stream of 100 and of $N fragments (2 s apart)"
  ffmpeg -v error -re -i "$CLIPS/small.mp4" -c copy -f rtsp -rtsp_transport tcp "rtsp://$KEYID:$SECRET@$RTSP/tmpl"
  kill -TERM "$PID"; wait "$PID" || true
  "$BIN" bench fragments fill --data-dir "$DIR/data" --template tmpl --count 100
  "$BIN" bench fragments fill --data-dir "$DIR/data" --template tmpl --count "$N"
  startv
  "$BIN" bench fragments query --endpoint "$EP" --stream tmpl-100 --window 200s
  "$BIN" bench fragments query --endpoint "$EP" --stream "tmpl-$N" --window 200s
  "$BIN" bench fragments query --endpoint "$EP" --stream "tmpl-$N" --window 1h
fi

if [ "${BENCH_MQTT:-1}" = 1 ]; then
  echo "== MQTT: 100 publishers, 200-byte JSON, pipelined (window 64); QoS 1 acknowledged only once on disk (fsync always)"
  kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true
  rm -rf "$DIR/data"
  MQ=127.0.0.1:$((PORT + 4))
  printf 'mqtt:\n  websocket_addr: ""\n' > "$DIR/mqtt.yaml"
  startm() { "$BIN" serve --config "$DIR/mqtt.yaml" --data-dir "$DIR/data" --http-addr "127.0.0.1:$PORT" --rtsp-addr "" --mqtt-addr "$MQ" --webrtc-addr "" >>"$DIR/server.out" 2>>"$DIR/server.log" &
    PID=$!; for _ in $(seq 1 500); do curl -sf "$EP/healthz" >/dev/null 2>&1 && return 0; sleep 0.01; done; echo "server did not start" >&2; exit 1; }
  MOSQ=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  MQP=$((PORT + 5))
  startmosq() { printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$MQP" > "$DIR/mosq.conf"; "$MOSQ" -c "$DIR/mosq.conf" >/dev/null 2>&1 & MPID=$!; sleep 0.5; }
  for qos in 1 0; do
    startm
    KEYID=$(awk -F' = ' '/aws_access_key_id/ {print $2}' "$DIR/data/auth/aws-config")
    SECRET=$(awk -F' = ' '/aws_secret_access_key/ {print $2}' "$DIR/data/auth/aws-config")
    "$BIN" bench mqtt --broker "$MQ" --user "$KEYID" --pass "$SECRET" --name streamgate --qos "$qos" --duration "$DUR" --server-pid "$PID"
    kill -TERM "$PID"; wait "$PID" || true
    if [ -x "$MOSQ" ]; then
      startmosq
      "$BIN" bench mqtt --broker "127.0.0.1:$MQP" --name "mosquitto (stores nothing)" --qos "$qos" --duration "$DUR" --server-pid "$MPID"
      kill "$MPID"; wait "$MPID" 2>/dev/null || true
    fi
  done
  IDLE=${BENCH_MQTT_IDLE:-10000}
  startm
  "$BIN" bench mqtt --broker "$MQ" --user "$KEYID" --pass "$SECRET" --name streamgate --idle "$IDLE" --server-pid "$PID"
  kill -TERM "$PID"; wait "$PID" || true
  if [ -x "$MOSQ" ]; then
    startmosq
    "$BIN" bench mqtt --broker "127.0.0.1:$MQP" --name mosquitto --idle "$IDLE" --server-pid "$MPID"
    kill "$MPID"; wait "$MPID" 2>/dev/null || true

    echo "== MQTT bridge: 4 publishers at QoS 1 into Mosquitto; the gateway bridges fleet/# (each message acknowledged upstream once stored)"
    # Mosquitto queues for the bridge's session without limit, so a bridge
    # that falls behind shows as a backlog, not as messages dropped.
    printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n' "$MQP" > "$DIR/mosq.conf"
    "$MOSQ" -c "$DIR/mosq.conf" >/dev/null 2>&1 & MPID=$!; sleep 0.5
    rm -rf "$DIR/data"
    printf 'mqtt:\n  websocket_addr: ""\n  bridges:\n    plant:\n      url: "tcp://127.0.0.1:%s"\n      topics: ["fleet/#"]\n      qos: 1\n' "$MQP" > "$DIR/bridge.yaml"
    "$BIN" serve --config "$DIR/bridge.yaml" --data-dir "$DIR/data" --http-addr "127.0.0.1:$PORT" --rtsp-addr "" --mqtt-addr "$MQ" --webrtc-addr "" >>"$DIR/server.out" 2>>"$DIR/server.log" &
    PID=$!; for _ in $(seq 1 500); do curl -sf "$EP/healthz" >/dev/null 2>&1 && break; sleep 0.01; done
    bridged() { curl -s "$EP/metrics" | awk '/^streamgate_mqtt_bridge_messages_total/ {printf "%d", $2}'; }
    for _ in $(seq 1 100); do curl -s "$EP/metrics" | grep -q 'streamgate_mqtt_bridge_up{bridge="plant"} 1' && break; sleep 0.05; done
    B0=$(bridged); T0=$(date +%s.%N)
    OUT=$("$BIN" bench mqtt --broker "127.0.0.1:$MQP" --name "mosquitto, bridged" --publishers 4 --window 16 --qos 1 --duration "$DUR" --server-pid "$MPID")
    echo "$OUT"
    B1=$(bridged); T1=$(date +%s.%N)
    SENT=$(echo "$OUT" | grep -oE '\(([0-9]+) in' | grep -oE '[0-9]+' | head -1)
    for _ in $(seq 1 600); do [ "$(( $(bridged) - B0 ))" -ge "$SENT" ] && break; sleep 0.1; done
    T2=$(date +%s.%N); B2=$(bridged)
    awk -v b0="$B0" -v b1="$B1" -v b2="$B2" -v t0="$T0" -v t1="$T1" -v t2="$T2" -v sent="$SENT" 'BEGIN {
      printf "  bridged into the stream while publishing: %.0f msg/s; all %d published in by %.1f s after the publishers stopped (%d bridged)\n", (b1-b0)/(t1-t0), sent, t2-t1, b2-b0 }'
    kill -TERM "$PID"; wait "$PID" || true
    kill "$MPID"; wait "$MPID" 2>/dev/null || true
  fi
  PID=""
fi

if [ "${BENCH_FIREHOSE:-1}" = 1 ]; then
  echo "== Firehose: PutRecordBatch (aws-sdk-go-v2, 8 concurrent x 500 x 100 B) next to PutRecords, GZIP objects"
  kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true
  rm -rf "$DIR/data"
  VGW=bin/.tools/versitygw
  [ -x "$VGW" ] || GOBIN="$PWD/bin/.tools" go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
  VPORT=$((PORT + 6))
  mkdir -p "$DIR/vgw/s3bench"
  "$VGW" --access BENCHKEY --secret benchsecret --port "127.0.0.1:$VPORT" --quiet posix "$DIR/vgw" >/dev/null 2>&1 & VPID=$!
  printf 'firehose:\n  s3_endpoints:\n    s3bench: {url: "http://127.0.0.1:%s", access_key_id: BENCHKEY, secret_access_key: benchsecret}\n' "$VPORT" > "$DIR/fh.yaml"
  "$BIN" serve --config "$DIR/fh.yaml" --data-dir "$DIR/data" --http-addr "127.0.0.1:$PORT" --rtsp-addr "" --mqtt-addr "" --webrtc-addr "" >>"$DIR/server.out" 2>>"$DIR/server.log" &
  PID=$!; for _ in $(seq 1 500); do curl -sf "$EP/healthz" >/dev/null 2>&1 && break; sleep 0.01; done
  "$BIN" bench firehose --endpoint "$EP" --bucket local --label "a directory" --duration "$DUR" --server-pid "$PID"
  "$BIN" bench firehose --endpoint "$EP" --bucket s3bench --label "versitygw (S3 API, posix)" --duration "$DUR" --server-pid "$PID"
  kill -TERM "$PID"; wait "$PID" || true; PID=""
  kill "$VPID" 2>/dev/null; wait "$VPID" 2>/dev/null || true
fi

if [ "${BENCH_ANALYTICS:-1}" = 1 ]; then
  echo "== Analytics: tumbling AVG/MAX/COUNT GROUP BY 10,000 devices (log -> output stream), and window close -> output latency"
  [ -n "$PID" ] && { kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; }
  rm -rf "$DIR/data"
  "$BIN" serve --data-dir "$DIR/data" --http-addr "127.0.0.1:$PORT" --rtsp-addr "" --mqtt-addr "" --webrtc-addr "" >>"$DIR/server.out" 2>>"$DIR/server.log" &
  PID=$!; for _ in $(seq 1 500); do curl -sf "$EP/healthz" >/dev/null 2>&1 && break; sleep 0.01; done
  "$BIN" bench analytics --endpoint "$EP" --records 600000 --devices 10000 --server-pid "$PID"
  kill -TERM "$PID"; wait "$PID" || true; PID=""
  echo "== Analytics engine alone (no log): rows/s of a tumbling window, a 1-minute sliding window (~600 rows each), RANDOM_CUT_FOREST (100 trees x 256)"
  go test -run '^$' -bench 'TumblingWindow|SlidingWindow|RandomCutForest' -benchtime 2s ./gateway/analytics | grep -E '^Benchmark' || true
fi

if [ "${BENCH_KINESALITE:-1}" = 1 ] && command -v npm >/dev/null; then
  echo "== anchor: kinesalite (npm) in the same run"
  KDIR=bin/.kinesalite
  [ -x "$KDIR/node_modules/.bin/kinesalite" ] || npm install --prefix "$KDIR" --no-audit --no-fund --silent kinesalite@3.3.3 >/dev/null 2>&1 || true
  if [ -x "$KDIR/node_modules/.bin/kinesalite" ]; then
    KPORT=$((PORT + 1))
    node "$KDIR/node_modules/.bin/kinesalite" --port "$KPORT" >/dev/null 2>&1 &
    KPID=$!
    sleep 2
    "$BIN" bench kinesis --endpoint "http://localhost:$KPORT" --stream put100 --shards 4 --record-size 100 --batch 500 --concurrency 8 --duration "$DUR" --server-pid "$KPID" || true
    "$BIN" bench kinesis --endpoint "http://localhost:$KPORT" --stream drain --shards 4 --mode get --records 100000 --server-pid "$KPID" || true
    kill "$KPID"; KPID=""
  else
    echo "  kinesalite could not be installed; skipped"
  fi
fi
