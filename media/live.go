package media

import (
	"sync"
	"sync/atomic"

	"github.com/bluenviron/gortsplib/v4"
)

// live is a stream with an active publisher: what RTSP readers DESCRIBE and
// live subscribers follow. It exists while a publisher does.
type live struct {
	name string
	sink Sink

	mu      sync.Mutex
	pub     *publisher
	streams []*gortsplib.ServerStream // for RTSP readers, one per listener
	stop    func()                    // ends the publisher's session (take-over)
	subs    map[*Subscription]struct{}
	// readers counts RTSP reader sessions from their first SETUP: with none,
	// packets are not handed to gortsplib, which would marshal each into a
	// fresh buffer for nobody (a tenth of a recording camera's CPU).
	readers atomic.Int32

	endOnce sync.Once
}

func (l *live) closeStreams() {
	for _, st := range l.streams {
		st.Close()
	}
}

// Subscription receives a live stream's fragments as they are stored.
type Subscription struct {
	C       <-chan StoredFragment // closed when the publisher ends or the reader falls behind
	c       chan StoredFragment
	l       *live
	dropped bool
}

// Dropped reports whether the subscription ended because its reader fell
// more than a few fragments behind (the recording itself never waits for
// live readers).
func (s *Subscription) Dropped() bool {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	return s.dropped
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if _, ok := s.l.subs[s]; ok {
		delete(s.l.subs, s)
		close(s.c)
	}
}

// subscriberQueue is how many fragments a live reader may lag.
const subscriberQueue = 8

func (l *live) subscribe() *Subscription {
	c := make(chan StoredFragment, subscriberQueue)
	s := &Subscription{C: c, c: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.subs == nil {
		l.subs = map[*Subscription]struct{}{}
	}
	l.subs[s] = struct{}{}
	return s
}

// broadcast hands a stored fragment to the live subscribers.
func (l *live) broadcast(f StoredFragment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs {
		select {
		case s.c <- f:
		default:
			s.dropped = true
			delete(l.subs, s)
			close(s.c)
		}
	}
}

// endSubscriptions closes every subscription: the publisher is gone.
func (l *live) endSubscriptions() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs {
		delete(l.subs, s)
		close(s.c)
	}
}
