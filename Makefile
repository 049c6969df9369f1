# streamgate build, test and benchmark entry points.
#   make run    build and start the gateway with the embedded default (data in ./data)
#   make test   install what the tests need (when missing), then vet and run every test under -race
#   make bench  run the benchmarks and print throughput and latency percentiles

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin/streamgate

.PHONY: all build run test test-deps vet fmt-check cross bench fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/streamgate

run: build
	./$(BIN) serve --data-dir ./data

# Tools the integration tests drive (aws CLI, boto3, curl, ffmpeg/ffprobe,
# mkvinfo, GStreamer's rtspclientsink, Chromium, Mosquitto, sqlite3 (the analytics oracle), hls.js
# and versitygw; gcc for -race).
# Each is installed only when missing, from
# Debian's packages (the only registry besides the Go proxy and npm here).
APT_GET := $(shell command -v apt-get 2>/dev/null)
test-deps:
	@need=""; \
	command -v aws >/dev/null 2>&1 || need="$$need awscli"; \
	python3 -c 'import boto3' >/dev/null 2>&1 || /usr/bin/python3 -c 'import boto3' >/dev/null 2>&1 || need="$$need python3-boto3"; \
	command -v gcc >/dev/null 2>&1 || need="$$need gcc"; \
	command -v curl >/dev/null 2>&1 || need="$$need curl"; \
	command -v ffmpeg >/dev/null 2>&1 || need="$$need ffmpeg"; \
	command -v mkvinfo >/dev/null 2>&1 || need="$$need mkvtoolnix"; \
	command -v chromium >/dev/null 2>&1 || need="$$need chromium"; \
	command -v npm >/dev/null 2>&1 || need="$$need npm"; \
	command -v mosquitto >/dev/null 2>&1 || need="$$need mosquitto"; \
	command -v sqlite3 >/dev/null 2>&1 || need="$$need sqlite3"; \
	command -v mosquitto_pub >/dev/null 2>&1 || need="$$need mosquitto-clients"; \
	command -v gst-launch-1.0 >/dev/null 2>&1 && gst-inspect-1.0 rtspclientsink >/dev/null 2>&1 && gst-inspect-1.0 h264parse >/dev/null 2>&1 || \
	  need="$$need gstreamer1.0-tools gstreamer1.0-rtsp gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"; \
	if [ -n "$$need" ]; then \
	  echo "installing:$$need"; \
	  [ -n "$(APT_GET)" ] || { echo "apt-get not found; install$$need by hand" >&2; exit 1; }; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$need >/dev/null; \
	fi
	@# hls.js for the browser playback test, pinned, from the npm registry.
	@[ -f bin/.hlsjs/node_modules/hls.js/dist/hls.min.js ] || npm install --prefix bin/.hlsjs --no-audit --no-fund --silent hls.js@1.7.4
	@# versitygw, the S3-compatible server of the Firehose tests, pinned.
	@[ -x bin/.tools/versitygw ] || GOBIN=$(CURDIR)/bin/.tools $(GO) install github.com/versity/versitygw/cmd/versitygw@v1.8.0

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

test: test-deps fmt-check vet
	GO=$(GO) ./scripts/test.sh

# Raspberry Pi builds: 64-bit and 32-bit ARM, no C toolchain.
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/streamgate-linux-arm64 ./cmd/streamgate
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/streamgate-linux-armv7 ./cmd/streamgate
	# 32-bit int: vet compiles every package and its tests for armv7, so overflows show here.
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) vet ./...

# Short fuzzing of every parser we own (the corpora seeds run in `make test`).
FUZZTIME ?= 20s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzScanSegment$$' -fuzztime $(FUZZTIME) ./streamstore
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeIndex$$' -fuzztime $(FUZZTIME) ./streamstore
	$(GO) test -run '^$$' -fuzz '^FuzzParseSeq$$' -fuzztime $(FUZZTIME) ./streamstore
	$(GO) test -run '^$$' -fuzz '^FuzzRequestDecoder$$' -fuzztime $(FUZZTIME) ./gateway
	$(GO) test -run '^$$' -fuzz '^FuzzParseFragmentMeta$$' -fuzztime $(FUZZTIME) ./media
	$(GO) test -run '^$$' -fuzz '^FuzzMKVFromFragment$$' -fuzztime $(FUZZTIME) ./media
	$(GO) test -run '^$$' -fuzz '^FuzzTSFromFragment$$' -fuzztime $(FUZZTIME) ./media
	$(GO) test -run '^$$' -fuzz '^FuzzWebRTCOfferAndFragment$$' -fuzztime $(FUZZTIME) ./media
	$(GO) test -run '^$$' -fuzz '^FuzzMKVReader$$' -fuzztime $(FUZZTIME) ./media
	$(GO) test -run '^$$' -fuzz '^FuzzAppendPart$$' -fuzztime $(FUZZTIME) ./media
	$(GO) test -run '^$$' -fuzz '^FuzzLLHLSRequests$$' -fuzztime $(FUZZTIME) ./media
	$(GO) test -run '^$$' -fuzz '^FuzzAckConnFraming$$' -fuzztime $(FUZZTIME) ./mqtt
	$(GO) test -run '^$$' -fuzz '^FuzzParseAndEval$$' -fuzztime $(FUZZTIME) ./gateway/sql
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBatchFast$$' -fuzztime $(FUZZTIME) ./gateway/firehose
	$(GO) test -run '^$$' -fuzz '^FuzzKVSRequests$$' -fuzztime $(FUZZTIME) ./gateway
	$(GO) test -run '^$$' -fuzz '^FuzzCompileAndRun$$' -fuzztime $(FUZZTIME) ./gateway/analytics
	$(GO) test -run '^$$' -fuzz '^FuzzRecordParser$$' -fuzztime $(FUZZTIME) ./gateway/analytics
	$(GO) test -run '^$$' -fuzz '^FuzzJSONPath$$' -fuzztime $(FUZZTIME) ./gateway/analytics
	$(GO) test -run '^$$' -fuzz '^FuzzLogParsers$$' -fuzztime $(FUZZTIME) ./gateway/analytics

bench: build
	./scripts/bench.sh

clean:
	rm -rf bin
