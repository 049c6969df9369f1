package media

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// SourceConfig is a camera the gateway pulls from.
type SourceConfig struct {
	URL       string `yaml:"url"`       // rtsp:// or rtsps://, credentials in the user info
	Transport string `yaml:"transport"` // "tcp", "udp" or "" (automatic: UDP, falling back to TCP)
}

// SourceState is what DescribeStream and metrics show about a pull source.
type SourceState struct {
	URL       string // without the password
	State     string // CONNECTING, PLAYING, RETRYING
	Since     time.Time
	LastError string
	Attempts  int
}

// Reconnection backoff of pull sources.
const (
	sourceMinBackoff = 500 * time.Millisecond
	sourceMaxBackoff = 30 * time.Second
)

type sources struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	state  map[string]*SourceState
}

func startSources(s *Server, cfgs map[string]SourceConfig) *sources {
	ctx, cancel := context.WithCancel(context.Background())
	ss := &sources{cancel: cancel, state: map[string]*SourceState{}}
	for name, cfg := range cfgs {
		ss.state[name] = &SourceState{URL: redactURL(cfg.URL), State: "CONNECTING", Since: time.Now()}
		ss.wg.Add(1)
		go func() {
			defer ss.wg.Done()
			ss.run(ctx, s, name, cfg)
		}()
	}
	return ss
}

func (ss *sources) stop() {
	if ss == nil {
		return
	}
	ss.cancel()
	ss.wg.Wait()
}

func (ss *sources) states() map[string]SourceState {
	if ss == nil {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make(map[string]SourceState, len(ss.state))
	for k, v := range ss.state {
		out[k] = *v
	}
	return out
}

func (ss *sources) set(name, state string, err error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	st := ss.state[name]
	if st.State != state {
		st.State, st.Since = state, time.Now()
	}
	if err != nil {
		st.LastError = err.Error()
	}
	if state == "CONNECTING" {
		st.Attempts++
	}
}

// run pulls one source until ctx ends, reconnecting with exponential backoff
// (reset after a session that lasted a while).
func (ss *sources) run(ctx context.Context, s *Server, name string, cfg SourceConfig) {
	backoff := sourceMinBackoff
	for {
		ss.set(name, "CONNECTING", nil)
		start := time.Now()
		err := pull(ctx, s, name, cfg, func() {
			ss.set(name, "PLAYING", nil)
			s.m.sourceUp.WithLabelValues(name).Set(1)
		})
		s.m.sourceUp.WithLabelValues(name).Set(0)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > sourceMaxBackoff {
			backoff = sourceMinBackoff
		}
		s.log.Warn("pull source failed; retrying", "stream", name, "url", redactURL(cfg.URL), "in", backoff, "err", err)
		ss.set(name, "RETRYING", err)
		s.m.sourceRetries.WithLabelValues(name).Inc()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, sourceMaxBackoff)
	}
}

// pull connects, plays and records one session of a source; it returns when
// the session ends.
func pull(ctx context.Context, s *Server, name string, cfg SourceConfig, playing func()) error {
	u, err := base.ParseURL(cfg.URL)
	if err != nil {
		return fmt.Errorf("source URL: %w", err)
	}
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	switch cfg.Transport {
	case "tcp":
		t := gortsplib.TransportTCP
		c.Transport = &t
	case "udp":
		t := gortsplib.TransportUDP
		c.Transport = &t
	}
	if err := c.Start2(); err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, c.Close)
	defer stop()
	desc, _, err := c.Describe(u)
	if err != nil {
		return err
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		return err
	}
	p, err := s.startPublisher(name, desc, c.Close)
	if err != nil {
		return err
	}
	s.mu.Lock()
	l := s.lives[name]
	s.mu.Unlock()
	defer s.endPublisher(l, p)
	c.OnPacketRTPAny(func(medi *description.Media, forma format.Format, pkt *rtp.Packet) {
		pts, ok := c.PacketPTS2(medi, pkt)
		ntp, ntpOK := c.PacketNTP(medi, pkt)
		if !ntpOK {
			ntp = time.Time{}
		}
		p.packet(medi, forma, pkt, pts, ok, ntp)
	})
	if _, err := c.Play(nil); err != nil {
		return err
	}
	playing()
	err = c.Wait()
	if err == nil {
		err = errors.New("source ended")
	}
	return err
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}
