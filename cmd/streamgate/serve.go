package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/streamgate/streamgate/gateway"
)

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	def := gateway.DefaultConfig()
	configPath := fs.String("config", "", "YAML configuration file (flags override it)")
	dataDir := fs.String("data-dir", def.DataDir, "directory of the shard log and metadata")
	httpAddr := fs.String("http-addr", def.HTTPAddr, "AWS APIs, /healthz, /metrics (empty: off)")
	rtspAddr := fs.String("rtsp-addr", def.RTSPAddr, "RTSP listener (empty: off)")
	mqttAddr := fs.String("mqtt-addr", def.MQTTAddr, "MQTT listener (empty: off)")
	webrtcAddr := fs.String("webrtc-addr", def.WebRTCAddr, "WebRTC ICE UDP/TCP port (empty: off)")
	fsync := fs.String("fsync", def.Storage.Fsync, "durability: always (group commit), interval or never")
	logLevel := fs.String("log-level", def.LogLevel, "debug, info, warn or error")
	authMode := fs.String("auth", def.Auth, "sigv4 (every API request signed by a key) or none (loopback-only development)")
	insecure := fs.Bool("insecure", false, "allow --auth none on non-loopback addresses")
	fs.Parse(args)

	cfg := def
	if *configPath != "" {
		var err error
		if cfg, err = gateway.LoadConfig(*configPath); err != nil {
			return err
		}
	}
	// Flags given on the command line override the file.
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data-dir":
			cfg.DataDir = *dataDir
		case "http-addr":
			cfg.HTTPAddr = *httpAddr
		case "rtsp-addr":
			cfg.RTSPAddr = *rtspAddr
		case "mqtt-addr":
			cfg.MQTTAddr = *mqttAddr
		case "webrtc-addr":
			cfg.WebRTCAddr = *webrtcAddr
		case "fsync":
			cfg.Storage.Fsync = *fsync
		case "log-level":
			cfg.LogLevel = *logLevel
		case "auth":
			cfg.Auth = *authMode
		case "insecure":
			cfg.Insecure = *insecure
		}
	})
	if err := cfg.Validate(); err != nil {
		return err
	}
	var level slog.Level
	level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(int64(cfg.MemoryLimit))
	}
	g, err := gateway.New(cfg, log)
	if err != nil {
		return err
	}
	if err := g.Start(); err != nil {
		g.Shutdown(context.Background())
		return err
	}
	if k, profile := g.CreatedKey(); k != nil {
		// Shown once; the key also stays in <data>/auth/keys.json (0600).
		fmt.Printf("Created the admin access key of this data directory:\n  AccessKeyId:     %s\n  SecretAccessKey: %s\n", k.ID, k.Secret)
		if profile != "" {
			fmt.Printf("AWS CLI and SDKs: export AWS_CONFIG_FILE=%s AWS_PROFILE=streamgate\n", profile)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Info("shutting down: finishing in-flight requests and syncing the log")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped cleanly")
	return nil
}
