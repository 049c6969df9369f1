package media

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/pion/rtp"
)

// Config configures the media server.
type Config struct {
	RTSPAddress    string // TCP, e.g. ":8554"; "" serves no plain RTSP
	UDPRTPAddress  string // "" disables RTSP over UDP; RTP port must be even
	UDPRTCPAddress string // the RTP port + 1
	// RTSPSAddress serves RTSP over TLS (TCP transport) with TLS, e.g. ":8322".
	RTSPSAddress string
	TLS          *tls.Config
	Sink         Sink
	Auth         Authenticator // nil allows everyone
	TakeOver     bool          // a new publisher replaces a busy stream's publisher instead of being refused
	// LowLatencyHLS cuts every publisher's fragments into Low-Latency HLS
	// parts as they are made (see LLHLS).
	LowLatencyHLS bool
	Sources       map[string]SourceConfig
	// WebRTC, when set, serves WHIP and WHEP (see WebRTCHandler).
	WebRTC  *WebRTCConfig
	Logger  *slog.Logger
	Metrics *Metrics
}

// Authenticator decides whether a client may publish or read a stream.
// It returns nil, ErrUnauthenticated or ErrForbidden.
type Authenticator func(AuthRequest) error

// AuthRequest is what a client presented.
type AuthRequest struct {
	Stream  string
	Publish bool
	User    string                     // the user name the client sent; "" for none
	Verify  func(password string) bool // checks a candidate password against the client's proof (Basic or Digest)
	Remote  net.Addr
}

// Authentication outcomes.
var (
	ErrUnauthenticated = errors.New("missing or wrong credentials")
	ErrForbidden       = errors.New("not allowed")
)

// Server is the RTSP (and RTSPS) server and the registry of live streams.
type Server struct {
	cfg     Config
	servers []*listener // plain RTSP, RTSPS: each serves every live stream
	log     *slog.Logger
	m       *Metrics
	mu      sync.Mutex
	lives   map[string]*live
	hls     map[string]*LLHLS // Low-Latency HLS state by stream, kept across publishers (llKept)
	srcs    *sources
	rtc     *rtcServer // nil when WebRTC is off
	rtcHTTP http.Handler
}

// NewServer returns a server; Start listens.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, lives: map[string]*live{}, hls: map[string]*LLHLS{}}
	if cfg.RTSPAddress != "" {
		s.addListener(cfg.RTSPAddress, cfg.UDPRTPAddress, cfg.UDPRTCPAddress, nil)
	}
	if cfg.RTSPSAddress != "" && cfg.TLS != nil {
		s.addListener(cfg.RTSPSAddress, "", "", cfg.TLS)
	}
	return s
}

// listener is one gortsplib server (plain or TLS). Each has its own
// ServerStream per live stream, as gortsplib binds a stream to a server.
type listener struct {
	idx  int
	rtsp *gortsplib.Server
	addr net.Addr
}

func (s *Server) addListener(addr, udpRTP, udpRTCP string, tlsConf *tls.Config) {
	l := &listener{idx: len(s.servers)}
	l.rtsp = &gortsplib.Server{
		Handler:        &rtspHandler{s: s, idx: l.idx},
		RTSPAddress:    addr,
		UDPRTPAddress:  udpRTP,
		UDPRTCPAddress: udpRTCP,
		TLSConfig:      tlsConf,
		ReadTimeout:    10 * time.Second,
		WriteTimeout:   10 * time.Second,
		WriteQueueSize: 1024,
		Listen: func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			l.addr = ln.Addr()
			return RTSPListener(ln), nil
		},
	}
	s.servers = append(s.servers, l)
}

// Start listens for RTSP and WebRTC and starts the pull sources.
func (s *Server) Start() error {
	if s.cfg.WebRTC != nil {
		rtc, err := newRTCServer(s, *s.cfg.WebRTC)
		if err != nil {
			return err
		}
		s.rtc, s.rtcHTTP = rtc, rtc.handler()
	}
	for i, l := range s.servers {
		if err := l.rtsp.Start(); err != nil {
			for _, started := range s.servers[:i] {
				started.rtsp.Close()
			}
			if s.rtc != nil {
				s.rtc.close()
			}
			return fmt.Errorf("rtsp: %w", err)
		}
	}
	s.srcs = startSources(s, s.cfg.Sources)
	return nil
}

// Addr is the plain RTSP listener's address (nil when it is off).
func (s *Server) Addr() net.Addr { return s.listenerAddr(false) }

// WebRTCAddr is the ICE port (UDP and TCP), nil when WebRTC is off.
func (s *Server) WebRTCAddr() net.Addr {
	if s.rtc == nil {
		return nil
	}
	return s.rtc.addr()
}

// WebRTCHandler serves WHIP (POST /whip/{stream}) and WHEP (POST
// /whep/{stream}) and their session URLs; nil when WebRTC is off. It works
// once Start has returned.
func (s *Server) WebRTCHandler() http.Handler {
	if s.cfg.WebRTC == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.rtcHTTP.ServeHTTP(w, r) })
}

// TLSAddr is the RTSPS listener's address (nil when it is off).
func (s *Server) TLSAddr() net.Addr { return s.listenerAddr(true) }

func (s *Server) listenerAddr(secure bool) net.Addr {
	for _, l := range s.servers {
		if (l.rtsp.TLSConfig != nil) == secure {
			return l.addr
		}
	}
	return nil
}

// Close stops the sources and the RTSP servers; every publisher's open
// fragment is stored first.
func (s *Server) Close() {
	if s.rtc != nil {
		s.rtc.close()
	}
	s.srcs.stop()
	for _, l := range s.servers {
		l.rtsp.Close()
	}
	s.mu.Lock()
	lives := make([]*live, 0, len(s.lives))
	for _, l := range s.lives {
		lives = append(lives, l)
	}
	s.mu.Unlock()
	for _, l := range lives {
		s.endPublisher(l, nil)
	}
}

// Subscribe follows a live stream's fragments as they are stored.
func (s *Server) Subscribe(stream string) (*Subscription, bool) {
	s.mu.Lock()
	l := s.lives[stream]
	s.mu.Unlock()
	if l == nil {
		return nil, false
	}
	return l.subscribe(), true
}

// IsLive reports whether a stream has a publisher now.
func (s *Server) IsLive(stream string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lives[stream] != nil
}

// Busy reports whether a new publisher of the stream would be refused: it
// has one, and the configuration does not let a new one take over.
func (s *Server) Busy(stream string) bool { return !s.cfg.TakeOver && s.IsLive(stream) }

// llKept is how long a stream's Low-Latency HLS state outlives its last
// publisher: players that keep reloading pick up a camera that reconnects.
const llKept = 10 * time.Minute

// LowLatencyHLS returns a stream's Low-Latency HLS state: its publisher's,
// or its last publisher's for llKept after it ended; nil otherwise.
func (s *Server) LowLatencyHLS(stream string) *LLHLS {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hls[stream]
	if h == nil || s.lives[stream] != nil {
		return h
	}
	if ended := h.idleSince(); !ended.IsZero() && time.Since(ended) > llKept {
		delete(s.hls, stream)
		return nil
	}
	return h
}

// SourceStates reports the pull sources.
func (s *Server) SourceStates() map[string]SourceState { return s.srcs.states() }

// errBusy refuses a second publisher.
var errBusy = errors.New("stream already has a publisher")

// startPublisher registers a publisher for a stream; stop ends its session.
func (s *Server) startPublisher(name string, desc *description.Session, stop func()) (*publisher, error) {
	s.mu.Lock()
	old := s.lives[name]
	s.mu.Unlock()
	if old != nil {
		if !s.cfg.TakeOver {
			return nil, errBusy
		}
		s.log.Info("publisher taken over", "stream", name)
		s.endPublisher(old, nil)
	}
	settings, err := s.cfg.Sink.Prepare(name)
	if err != nil {
		return nil, err
	}
	l := &live{name: name, sink: s.cfg.Sink, stop: stop}
	for _, srv := range s.servers {
		st := &gortsplib.ServerStream{Server: srv.rtsp, Desc: desc}
		if err := st.Initialize(); err != nil {
			l.closeStreams()
			return nil, err
		}
		l.streams = append(l.streams, st)
	}
	p, err := newPublisher(l, desc, settings, l.streams, s.m, s.log)
	if err != nil {
		l.closeStreams()
		return nil, err
	}
	p.onFail = stop
	l.pub = p
	s.mu.Lock()
	if s.lives[name] != nil {
		s.mu.Unlock()
		p.close()
		l.closeStreams()
		return nil, errBusy
	}
	s.lives[name] = l
	var h *LLHLS
	if s.cfg.LowLatencyHLS {
		if h = s.hls[name]; h == nil {
			h = newLLHLS(p.frag.target)
			s.hls[name] = h
		}
	}
	s.mu.Unlock()
	if h != nil {
		p.attachHLS(h)
	}
	s.m.publishers.Inc()
	s.log.Info("publisher started", "stream", name, "tracks", len(p.tracks))
	return p, nil
}

// endPublisher stores the publisher's last fragment and removes the stream
// from the live registry (only if p is still its publisher, when given).
func (s *Server) endPublisher(l *live, p *publisher) {
	if p != nil && l.pub != p {
		return
	}
	l.endOnce.Do(func() { s.end(l) })
}

func (s *Server) end(l *live) {
	if l.stop != nil {
		l.stop()
	}
	if err := l.pub.close(); err != nil {
		s.log.Error("closing publisher", "stream", l.name, "err", err)
	}
	s.mu.Lock()
	if s.lives[l.name] == l {
		delete(s.lives, l.name)
		s.m.publishers.Dec()
	}
	s.mu.Unlock()
	l.endSubscriptions()
	l.closeStreams()
	s.log.Info("publisher ended", "stream", l.name)
}

// rtspHandler implements gortsplib's server callbacks for listener idx.
type rtspHandler struct {
	s   *Server
	idx int
}

// sessionData is kept on a ServerSession.
type sessionData struct {
	stream string
	live   *live
	pub    *publisher
	desc   *description.Session
	reads  *live // the stream a reader session counts in (live.readers)
}

func streamName(path string) string { return strings.Trim(path, "/") }

func (h *rtspHandler) OnConnOpen(*gortsplib.ServerHandlerOnConnOpenCtx) { h.s.m.rtspConns.Inc() }
func (h *rtspHandler) OnConnClose(*gortsplib.ServerHandlerOnConnCloseCtx) {
	h.s.m.rtspConns.Dec()
}

// OnPacketsLost counts RTP loss (UDP publishers); the fragmenter resumes at
// the next keyframe, and the count is in the metrics.
func (h *rtspHandler) OnPacketsLost(ctx *gortsplib.ServerHandlerOnPacketsLostCtx) {
	h.s.m.packetsLost.Add(float64(ctx.Lost))
}

func (h *rtspHandler) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	h.s.m.decodeErrors.Inc()
	h.s.log.Debug("RTSP decode error", "err", ctx.Error)
}

func (h *rtspHandler) OnStreamWriteError(ctx *gortsplib.ServerHandlerOnStreamWriteErrorCtx) {
	h.s.m.readerDrops.Inc()
	h.s.log.Debug("RTSP reader too slow", "err", ctx.Error)
}

func (h *rtspHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	d, _ := ctx.Session.UserData().(*sessionData)
	if d == nil {
		return
	}
	if d.reads != nil {
		d.reads.readers.Add(-1)
	}
	if d.pub != nil {
		h.s.endPublisher(d.live, d.pub)
	}
}

// authorize runs the authenticator and answers its failure in RTSP's form.
func (h *rtspHandler) authorize(conn *gortsplib.ServerConn, req *base.Request, stream string, publish bool) (*base.Response, error) {
	if h.s.cfg.Auth == nil {
		return nil, nil
	}
	user := ""
	if v, ok := req.Header["Authorization"]; ok {
		var a headers.Authorization
		if a.Unmarshal(v) == nil {
			user = a.Username
		}
	}
	err := h.s.cfg.Auth(AuthRequest{
		Stream: stream, Publish: publish, User: user, Remote: conn.NetConn().RemoteAddr(),
		Verify: func(pass string) bool { return conn.VerifyCredentials(req, user, pass) },
	})
	switch {
	case err == nil:
		return nil, nil
	case errors.Is(err, ErrForbidden):
		return &base.Response{StatusCode: base.StatusForbidden}, err
	default:
		// No credentials: a 401 with the challenge (gortsplib adds it). Wrong
		// ones: the same 401, and gortsplib closes the connection.
		conn.VerifyCredentials(req, "-", "") // makes sure a nonce exists for the challenge
		return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
	}
}

func (h *rtspHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	res, l, err := h.read(ctx.Conn, ctx.Request, ctx.Path)
	if l == nil {
		return res, nil, err
	}
	return res, l.streams[h.idx], err
}

// read authorizes a reader and returns the live stream it asks for.
func (h *rtspHandler) read(conn *gortsplib.ServerConn, req *base.Request, path string) (*base.Response, *live, error) {
	name := streamName(path)
	if res, err := h.authorize(conn, req, name, false); res != nil {
		return res, nil, err
	}
	h.s.mu.Lock()
	l := h.s.lives[name]
	h.s.mu.Unlock()
	if l == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, fmt.Errorf("stream %q is not live", name)
	}
	return &base.Response{StatusCode: base.StatusOK}, l, nil
}

func (h *rtspHandler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	name := streamName(ctx.Path)
	if res, err := h.authorize(ctx.Conn, ctx.Request, name, true); res != nil {
		return res, err
	}
	supported := false
	for _, m := range ctx.Description.Medias {
		for _, f := range m.Formats {
			if _, err := newCodecTrack(f); err == nil {
				supported = true
			}
		}
	}
	if !supported {
		return &base.Response{StatusCode: base.StatusUnsupportedMediaType}, ErrNoSupportedTrack
	}
	ctx.Session.SetUserData(&sessionData{stream: name, desc: ctx.Description})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *rtspHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	res, l, err := h.read(ctx.Conn, ctx.Request, ctx.Path)
	if l == nil {
		return res, nil, err
	}
	// Counted from SETUP, not PLAY, so gortsplib has seen packets for the
	// PLAY response's RTP-Info by then.
	if d, _ := ctx.Session.UserData().(*sessionData); d == nil {
		ctx.Session.SetUserData(&sessionData{stream: l.name, reads: l})
		l.readers.Add(1)
	}
	return res, l.streams[h.idx], err
}

func (h *rtspHandler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	h.s.m.rtspReaders.Inc()
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *rtspHandler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	d, _ := ctx.Session.UserData().(*sessionData)
	if d == nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, errors.New("RECORD without ANNOUNCE")
	}
	session := ctx.Session
	p, err := h.s.startPublisher(d.stream, d.desc, session.Close)
	if err != nil {
		h.s.log.Warn("publish refused", "stream", d.stream, "err", err)
		switch {
		case errors.Is(err, errBusy):
			return &base.Response{StatusCode: base.StatusMethodNotValidInThisState}, err
		case errors.Is(err, ErrNoSupportedTrack):
			return &base.Response{StatusCode: base.StatusUnsupportedMediaType}, err
		case errors.Is(err, ErrStreamNotFound):
			return &base.Response{StatusCode: base.StatusNotFound}, err
		}
		return &base.Response{StatusCode: base.StatusInternalServerError}, err
	}
	h.s.mu.Lock()
	d.live, d.pub = h.s.lives[d.stream], p
	h.s.mu.Unlock()
	session.OnPacketRTPAny(func(medi *description.Media, forma format.Format, pkt *rtp.Packet) {
		pts, ok := session.PacketPTS2(medi, pkt)
		ntp, ntpOK := session.PacketNTP(medi, pkt)
		if !ntpOK {
			ntp = time.Time{}
		}
		p.packet(medi, forma, pkt, pts, ok, ntp)
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// ErrStreamNotFound is what a Sink returns for a stream that does not exist
// and may not be created.
var ErrStreamNotFound = errors.New("stream not found")
