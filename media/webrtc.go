package media

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// WebRTCConfig configures WHIP ingest and WHEP playback.
type WebRTCConfig struct {
	// Address is the ICE port: UDP (one socket for every session) and ICE-TCP
	// on the same number, e.g. ":8189".
	Address string
	// AdditionalHosts are IPs or host names announced as extra host
	// candidates, for a gateway behind NAT or port forwarding.
	AdditionalHosts []string
	// ICEServers are STUN/TURN servers offered to clients (Link headers) and
	// used by the gateway's own candidate gathering.
	ICEServers []ICEServer
}

// ICEServer is a STUN or TURN server.
type ICEServer struct {
	URLs       []string `yaml:"urls"`
	Username   string   `yaml:"username,omitempty"`
	Credential string   `yaml:"credential,omitempty"`
}

// Limits of the WHIP/WHEP endpoints.
const (
	maxSDPBytes = 64 << 10
	// connectTimeout ends a session whose peer never completes ICE and DTLS.
	connectTimeout = 15 * time.Second
	// gatherTimeout bounds waiting for the gateway's own server-reflexive
	// and relay candidates (STUN/TURN servers that answer slowly or not at
	// all): the answer goes out with what is known by then. Host candidates
	// on the ICE port are known at once.
	gatherTimeout = time.Second
	// videoPayloadMax keeps RTP packets with SRTP and header extensions under
	// 1280 bytes, the smallest MTU a path may have (IPv6).
	videoPayloadMax = 1188
)

// rtcServer serves WHIP and WHEP on the gateway's HTTP port, with ICE on one
// UDP port and ICE-TCP on the same port number.
type rtcServer struct {
	s      *Server
	cfg    WebRTCConfig
	api    *webrtc.API
	iceCfg webrtc.Configuration
	udp    net.PacketConn
	tcp    net.Listener
	log    *slog.Logger

	mu       sync.Mutex
	sessions map[string]*rtcSession
	closed   bool
}

// rtcSession is one WHIP publisher or WHEP viewer.
type rtcSession struct {
	id        string
	stream    string
	publish   bool
	ufrag     string // the client's ICE user fragment, from its offer
	pc        *webrtc.PeerConnection
	once      sync.Once
	connected chan struct{} // closed when ICE and DTLS are up
	done      chan struct{} // closed when the session ended
	onEnd     func()        // what ends with it (the publisher, the viewer)
}

// end closes the peer connection and runs the session's cleanup, once.
func (rs *rtcSession) end(r *rtcServer) {
	rs.once.Do(func() {
		r.mu.Lock()
		delete(r.sessions, rs.id)
		r.mu.Unlock()
		close(rs.done)
		rs.pc.Close() //nolint:errcheck // ending anyway
		if rs.onEnd != nil {
			rs.onEnd()
		}
		r.s.m.webrtcSessions.WithLabelValues(rs.kind()).Dec()
		r.log.Info("WebRTC session ended", "stream", rs.stream, "kind", rs.kind())
	})
}

func (rs *rtcSession) kind() string {
	if rs.publish {
		return "whip"
	}
	return "whep"
}

// newRTCServer opens the ICE sockets and builds the WebRTC API.
func newRTCServer(s *Server, cfg WebRTCConfig) (*rtcServer, error) {
	r := &rtcServer{s: s, cfg: cfg, log: s.log, sessions: map[string]*rtcSession{}}
	udp, err := net.ListenPacket("udp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("webrtc: %w", err)
	}
	// ICE-TCP takes the port number UDP got (which matters for ":0").
	host, _, _ := net.SplitHostPort(cfg.Address)
	port := udp.LocalAddr().(*net.UDPAddr).Port
	tcp, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("webrtc ICE-TCP: %w", err)
	}
	r.udp, r.tcp = udp, tcp

	logs := pionLogs{s.log}
	se := webrtc.SettingEngine{LoggerFactory: logs}
	se.SetICEUDPMux(webrtc.NewICEUDPMux(logs.NewLogger("ice-udp"), udp))
	se.SetICETCPMux(webrtc.NewICETCPMux(logs.NewLogger("ice-tcp"), tcp, 8))
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6})
	se.SetIncludeLoopbackCandidate(true) // a gateway on loopback serves local clients
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	se.SetSTUNGatherTimeout(gatherTimeout)
	// With host candidates only, the gateway is an ICE-lite agent: it only
	// answers the client's checks. A full agent also sends its own, which
	// can reach a client before the answer does; the client then knows the
	// gateway as a peer-reflexive candidate first, and pion clients wait a
	// second before they accept one (about 1 join in 30 on loopback).
	// Gathering through STUN/TURN servers needs a full agent.
	se.SetLite(len(cfg.ICEServers) == 0)

	me := &webrtc.MediaEngine{}
	if err := registerCodecs(me); err != nil {
		r.close()
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := registerInterceptors(me, ir); err != nil {
		r.close()
		return nil, err
	}
	r.api = webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir))
	for _, is := range cfg.ICEServers {
		r.iceCfg.ICEServers = append(r.iceCfg.ICEServers, webrtc.ICEServer{URLs: is.URLs, Username: is.Username, Credential: is.Credential})
	}
	return r, nil
}

// registerCodecs offers what the fragmenter stores and browsers send: H.264
// (packetization mode 1, the profiles browsers offer) and Opus.
func registerCodecs(me *webrtc.MediaEngine) error {
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	for i, profile := range []string{"42e01f", "42001f", "4d001f", "640032", "f4001f"} {
		err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
				SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=" + profile, RTCPFeedback: fb},
			PayloadType: webrtc.PayloadType(102 + 2*i),
		}, webrtc.RTPCodecTypeVideo)
		if err != nil {
			return err
		}
	}
	return me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio)
}

// registerInterceptors sets up RTCP: NACKs for what publishers lost (the
// generator) and for what viewers lost (a responder that shares payloads),
// sender and receiver reports, and transport-wide congestion feedback to
// publishers. It is pion's default set with the copying NACK responder
// replaced.
func registerInterceptors(me *webrtc.MediaEngine, ir *interceptor.Registry) error {
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return err
	}
	ir.Add(gen)
	ir.Add(sharedNACKResponder{})
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return err
	}
	return webrtc.ConfigureTWCCSender(me, ir)
}

// addr is the ICE port (UDP and TCP).
func (r *rtcServer) addr() net.Addr { return r.udp.LocalAddr() }

// close ends every session and closes the ICE sockets.
func (r *rtcServer) close() {
	r.mu.Lock()
	r.closed = true
	sessions := make([]*rtcSession, 0, len(r.sessions))
	for _, rs := range r.sessions {
		sessions = append(sessions, rs)
	}
	r.mu.Unlock()
	for _, rs := range sessions {
		rs.end(r)
	}
	if r.udp != nil {
		r.udp.Close()
	}
	if r.tcp != nil {
		r.tcp.Close()
	}
}

// handler routes the WHIP and WHEP endpoints (RFC 9725 and its WHEP twin).
func (r *rtcServer) handler() http.Handler {
	mux := http.NewServeMux()
	for _, kind := range []string{"whip", "whep"} {
		publish := kind == "whip"
		mux.HandleFunc("POST /"+kind+"/{stream}", func(w http.ResponseWriter, req *http.Request) { r.post(w, req, publish) })
		mux.HandleFunc("PATCH /"+kind+"/{stream}/{id}", func(w http.ResponseWriter, req *http.Request) { r.patch(w, req, publish) })
		mux.HandleFunc("DELETE /"+kind+"/{stream}/{id}", func(w http.ResponseWriter, req *http.Request) { r.delete(w, req, publish) })
		mux.HandleFunc("OPTIONS /"+kind+"/", r.options)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		httpError(w, http.StatusNotFound, "no such WHIP/WHEP resource: use POST /whip/{stream} or POST /whep/{stream}")
	})
	return cors(mux)
}

// cors lets web pages of any origin publish and play (the bearer token, not
// the origin, is the credential).
func cors(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Access-Control-Allow-Origin", "*")
		hd.Set("Access-Control-Allow-Methods", "OPTIONS, POST, PATCH, DELETE")
		hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
		hd.Set("Access-Control-Expose-Headers", "Location, Link, ETag, Accept-Patch")
		h.ServeHTTP(w, r)
	})
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, msg+"\n") //nolint:errcheck // the client is gone
}

func (r *rtcServer) options(w http.ResponseWriter, _ *http.Request) {
	r.linkICEServers(w.Header())
	w.Header().Set("Accept-Post", "application/sdp")
	w.WriteHeader(http.StatusNoContent)
}

// linkICEServers announces the STUN/TURN servers (RFC 9725 section 4.4).
func (r *rtcServer) linkICEServers(h http.Header) {
	for _, is := range r.cfg.ICEServers {
		for _, u := range is.URLs {
			v := "<" + u + `>; rel="ice-server"`
			if is.Username != "" {
				v += fmt.Sprintf(`; username=%q; credential=%q; credential-type="password"`, is.Username, is.Credential)
			}
			h.Add("Link", v)
		}
	}
}

// authorize checks the bearer token: an access key as "ID:SECRET", allowed
// to publish (kinesisvideo:PutMedia) or read (kinesisvideo:GetMedia) the
// stream by its policy.
func (r *rtcServer) authorize(w http.ResponseWriter, req *http.Request, stream string, publish bool) bool {
	if r.s.cfg.Auth == nil {
		return true
	}
	id, secret := "", ""
	if tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer "); ok {
		id, secret, _ = strings.Cut(strings.TrimSpace(tok), ":")
	}
	remote, _ := net.ResolveTCPAddr("tcp", req.RemoteAddr)
	err := r.s.cfg.Auth(AuthRequest{Stream: stream, Publish: publish, User: id, Remote: remote,
		Verify: func(p string) bool { return subtle.ConstantTimeCompare([]byte(p), []byte(secret)) == 1 }})
	switch {
	case err == nil:
		return true
	case errors.Is(err, ErrForbidden):
		httpError(w, http.StatusForbidden, "the access key may not "+map[bool]string{true: "publish", false: "read"}[publish]+" stream "+stream)
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="streamgate"`)
		httpError(w, http.StatusUnauthorized, `missing or wrong bearer token: send "Authorization: Bearer ACCESS_KEY_ID:SECRET_ACCESS_KEY"`)
	}
	return false
}

// post answers an SDP offer: a new publisher (WHIP) or viewer (WHEP).
func (r *rtcServer) post(w http.ResponseWriter, req *http.Request, publish bool) {
	stream := req.PathValue("stream")
	if ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type")); ct != "application/sdp" {
		httpError(w, http.StatusUnsupportedMediaType, "the offer must be sent as Content-Type: application/sdp")
		return
	}
	if !r.authorize(w, req, stream, publish) {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxSDPBytes))
	if err != nil {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the offer is larger than %d bytes", maxSDPBytes))
		return
	}
	var offer sdp.SessionDescription
	if err := offer.UnmarshalString(string(body)); err != nil || len(offer.MediaDescriptions) == 0 {
		if err == nil {
			err = errors.New("no media sections")
		}
		httpError(w, http.StatusBadRequest, "malformed SDP offer: "+err.Error())
		return
	}
	var (
		rs     *rtcSession
		status int
	)
	if publish {
		rs, status, err = r.publish(stream, &offer, string(body))
	} else {
		rs, status, err = r.play(stream, &offer, string(body))
	}
	if err != nil {
		r.log.Info("WebRTC offer refused", "stream", stream, "whip", publish, "status", status, "err", err)
		httpError(w, status, err.Error())
		return
	}
	rs.ufrag = iceUfrag(&offer)
	answer, err := r.answer(rs)
	if err != nil {
		rs.end(r)
		httpError(w, http.StatusInternalServerError, "creating the answer: "+err.Error())
		return
	}
	r.s.m.webrtcSessions.WithLabelValues(rs.kind()).Inc()
	r.log.Info("WebRTC session started", "stream", stream, "kind", rs.kind(), "remote", req.RemoteAddr)
	go r.watch(rs)
	h := w.Header()
	h.Set("Content-Type", "application/sdp")
	h.Set("Location", "/"+rs.kind()+"/"+stream+"/"+rs.id)
	h.Set("ETag", `"`+rs.id+`"`)
	h.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	r.linkICEServers(h)
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, answer) //nolint:errcheck // the client is gone; the session times out
}

// newPeer creates a peer connection for a session and registers it.
func (r *rtcServer) newPeer(stream string, publish bool) (*rtcSession, error) {
	pc, err := r.api.NewPeerConnection(r.iceCfg)
	if err != nil {
		return nil, err
	}
	var id [16]byte
	rand.Read(id[:]) //nolint:errcheck // never fails
	rs := &rtcSession{id: hex.EncodeToString(id[:]), stream: stream, publish: publish, pc: pc, connected: make(chan struct{}), done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		pc.Close() //nolint:errcheck // unused
		return nil, errors.New("the server is shutting down")
	}
	r.sessions[rs.id] = rs
	return rs, nil
}

// answer completes the negotiation and returns the answer with every
// candidate in it (the gateway's candidates are known at once: they are
// the ICE port's addresses), plus the configured additional hosts.
func (r *rtcServer) answer(rs *rtcSession) (string, error) {
	ans, err := rs.pc.CreateAnswer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(rs.pc)
	if err := rs.pc.SetLocalDescription(ans); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-time.After(gatherTimeout):
	}
	return r.withAdditionalHosts(rs.pc.LocalDescription().SDP), nil
}

// withAdditionalHosts adds a host candidate on the ICE port (UDP and TCP)
// for every configured additional host to each media section.
func (r *rtcServer) withAdditionalHosts(answer string) string {
	if len(r.cfg.AdditionalHosts) == 0 {
		return answer
	}
	var ips []string
	for _, h := range r.cfg.AdditionalHosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip.String())
			continue
		}
		addrs, err := net.DefaultResolver.LookupHost(context.Background(), h)
		if err != nil {
			r.log.Warn("additional WebRTC host does not resolve", "host", h, "err", err)
			continue
		}
		ips = append(ips, addrs...)
	}
	port := r.addr().(*net.UDPAddr).Port
	var extra strings.Builder
	for i, ip := range ips {
		fmt.Fprintf(&extra, "a=candidate:sg%d 1 udp %d %s %d typ host\r\n", i, 2130706431-i, ip, port)
		fmt.Fprintf(&extra, "a=candidate:sgt%d 1 tcp %d %s %d typ host tcptype passive\r\n", i, 1671430143-i, ip, port)
	}
	// After each media section's attributes: before the next "m=" line and at the end.
	sections := strings.Split(answer, "\r\nm=")
	for i := range sections {
		if i > 0 {
			sections[i] = "m=" + sections[i]
		}
		if !strings.HasSuffix(sections[i], "\r\n") {
			sections[i] += "\r\n"
		}
		if i > 0 {
			sections[i] += extra.String()
		}
	}
	return strings.Join(sections, "")
}

// watch ends a session that never connects, or whose connection fails or
// closes.
func (r *rtcServer) watch(rs *rtcSession) {
	states := make(chan webrtc.PeerConnectionState, 4)
	rs.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		select {
		case states <- s:
		default:
		}
	})
	connected := false
	timeout := time.NewTimer(connectTimeout)
	defer timeout.Stop()
	for {
		select {
		case <-rs.done:
			return
		case <-timeout.C:
			if !connected {
				r.log.Info("WebRTC peer did not connect", "stream", rs.stream, "kind", rs.kind())
				rs.end(r)
				return
			}
		case s := <-states:
			switch s {
			case webrtc.PeerConnectionStateConnected:
				if !connected {
					connected = true
					close(rs.connected)
				}
			case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
				rs.end(r)
				return
			}
		}
	}
}

// session finds a session by the id in its URL, of the right kind and stream.
func (r *rtcServer) session(req *http.Request, publish bool) *rtcSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs := r.sessions[req.PathValue("id")]
	if rs == nil || rs.publish != publish || rs.stream != req.PathValue("stream") {
		return nil
	}
	return rs
}

// delete ends a session (the session URL is its capability: 128 random bits).
func (r *rtcServer) delete(w http.ResponseWriter, req *http.Request, publish bool) {
	rs := r.session(req, publish)
	if rs == nil {
		httpError(w, http.StatusNotFound, "no such session")
		return
	}
	rs.end(r)
	w.WriteHeader(http.StatusOK)
}

// patch adds the client's trickled candidates (application/trickle-ice-sdpfrag).
// ICE restarts are not supported: the client starts a new session.
func (r *rtcServer) patch(w http.ResponseWriter, req *http.Request, publish bool) {
	rs := r.session(req, publish)
	if rs == nil {
		httpError(w, http.StatusNotFound, "no such session")
		return
	}
	if ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type")); ct != "application/trickle-ice-sdpfrag" {
		httpError(w, http.StatusUnsupportedMediaType, "PATCH takes Content-Type: application/trickle-ice-sdpfrag")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxSDPBytes))
	if err != nil {
		httpError(w, http.StatusRequestEntityTooLarge, "fragment too large")
		return
	}
	cands, ufrag, err := parseSDPFrag(string(body))
	if err != nil {
		httpError(w, http.StatusBadRequest, "malformed SDP fragment: "+err.Error())
		return
	}
	if ufrag != "" && ufrag != rs.ufrag {
		httpError(w, http.StatusUnprocessableEntity, "ICE restarts are not supported: start a new session")
		return
	}
	for _, c := range cands {
		if err := rs.pc.AddICECandidate(c); err != nil {
			httpError(w, http.StatusBadRequest, "candidate refused: "+err.Error())
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// iceUfrag is an offer's ICE user fragment (session or first media level).
func iceUfrag(offer *sdp.SessionDescription) string {
	if v, ok := offer.Attribute("ice-ufrag"); ok {
		return v
	}
	for _, md := range offer.MediaDescriptions {
		if v, ok := md.Attribute("ice-ufrag"); ok {
			return v
		}
	}
	return ""
}

// parseSDPFrag reads the candidates and the ICE user fragment of a
// trickle-ice-sdpfrag body (RFC 8840); a new user fragment is an ICE restart.
func parseSDPFrag(frag string) ([]webrtc.ICECandidateInit, string, error) {
	var (
		cands []webrtc.ICECandidateInit
		mid   *string
		ufrag string
	)
	for line := range strings.SplitSeq(frag, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case line == "":
		case strings.HasPrefix(line, "a=mid:"):
			m := strings.TrimPrefix(line, "a=mid:")
			mid = &m
		case strings.HasPrefix(line, "a=candidate:"):
			c := strings.TrimPrefix(line, "a=")
			if len(strings.Fields(c)) < 8 {
				return nil, "", fmt.Errorf("candidate %q has too few fields", c)
			}
			cands = append(cands, webrtc.ICECandidateInit{Candidate: c, SDPMid: mid})
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a="), strings.HasPrefix(line, "m="):
		default:
			return nil, "", fmt.Errorf("unexpected line %q", line)
		}
	}
	return cands, ufrag, nil
}

// pionLogs sends pion's logs to the gateway's logger at debug level: pion
// reports routine events (a closed socket at shutdown, a peer that went
// away) as errors, and each session's outcome is logged by this package.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) Trace(string)              {}
func (l pionLogger) Tracef(string, ...any)     {}
func (l pionLogger) Debug(msg string)          { l.log.Debug(msg) }
func (l pionLogger) Debugf(f string, a ...any) { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l pionLogger) Info(msg string)           { l.log.Debug(msg) }
func (l pionLogger) Infof(f string, a ...any)  { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l pionLogger) Warn(msg string)           { l.log.Debug(msg) }
func (l pionLogger) Warnf(f string, a ...any)  { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l pionLogger) Error(msg string)          { l.log.Debug(msg) }
func (l pionLogger) Errorf(f string, a ...any) { l.log.Debug(fmt.Sprintf(f, a...)) }
