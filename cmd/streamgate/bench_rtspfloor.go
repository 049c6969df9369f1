package main

import (
	"flag"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	"github.com/streamgate/streamgate/media"
)

// benchRTSPFloorCmd serves RTSP with gortsplib alone: publishers are
// accepted without auth and their packets discarded. `bench video` run
// against it (without --metrics) measures the floor of the ingest CPU and
// RSS, what the RTSP library costs before the gateway depacketizes,
// fragments or stores anything.
func benchRTSPFloorCmd(args []string) error {
	fs := flag.NewFlagSet("bench rtsp-floor", flag.ExitOnError)
	addr := fs.String("rtsp-addr", "127.0.0.1:8554", "RTSP listen address")
	fs.Parse(args)
	s := &gortsplib.Server{
		Handler:     discardPublisher{},
		RTSPAddress: *addr,
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			return media.RTSPListener(ln), nil
		},
	}
	if err := s.Start(); err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; s.Close() }()
	s.Wait()
	return nil
}

// discardPublisher accepts any ANNOUNCE/SETUP/RECORD and drops the packets.
type discardPublisher struct{}

func (discardPublisher) OnAnnounce(*gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (discardPublisher) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil, nil
}

func (discardPublisher) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	ctx.Session.OnPacketRTPAny(func(*description.Media, format.Format, *rtp.Packet) {})
	return &base.Response{StatusCode: base.StatusOK}, nil
}
