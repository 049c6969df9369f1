package mqtt

import (
	"errors"
	"net"
	"sync"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// The broker (mochi) acknowledges a QoS 1/2 PUBLISH inside the connection's
// read loop, right after the publish hook returns. Waiting for the store in
// the hook would allow one message per connection per fsync. Instead the
// hook registers the packet id as pending and returns; the connection below
// holds the PUBACK/PUBREC (and everything written after it, so the byte
// stream keeps its order) until the record is durable, and rewrites it into
// a refusal when the store refused. The read loop never waits: a client
// pipelines as many messages as its receive maximum allows, and one group
// commit acknowledges them all.

// MQTT control packet types of the acknowledgements we hold.
const (
	typePuback = 4
	typePubrec = 5
)

// ackConn is a client connection whose acknowledgements wait for durability.
type ackConn struct {
	net.Conn

	mu       sync.Mutex
	pending  map[uint16]*pendingAck // by packet id, until its ack is written
	queue    []outPacket            // packets held behind an unresolved ack
	carry    []byte                 // a packet split across Writes
	flushing bool                   // a flusher goroutine is draining queue
	err      error                  // the connection failed: writes fail too
	space    *sync.Cond             // signalled when the queue shrinks
}

// pendingAck is a message's durability, decided once.
type pendingAck struct {
	version byte // MQTT protocol version of the client (3, 4 or 5)
	once    sync.Once
	done    chan struct{}
	err     error
}

func newPendingAck(version byte) *pendingAck {
	return &pendingAck{version: version, done: make(chan struct{})}
}

// resolve records the outcome: nil (durable) or the store's refusal.
func (p *pendingAck) resolve(err error) {
	p.once.Do(func() {
		p.err = err
		close(p.done)
	})
}

func (p *pendingAck) resolved() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// outPacket is one MQTT packet to write, with the ack it waits for.
type outPacket struct {
	b   []byte
	ack *pendingAck
}

// maxHeld bounds the packets a connection holds: past it, writes (and so
// the client's read loop) wait: back-pressure to a client that publishes
// faster than the store commits.
const maxHeld = 4096

func newAckConn(c net.Conn) *ackConn {
	a := &ackConn{Conn: c, pending: map[uint16]*pendingAck{}}
	a.space = sync.NewCond(&a.mu)
	return a
}

// expect registers a pending acknowledgement for a packet id. The broker
// writes the ack after this, on the same goroutine.
func (a *ackConn) expect(id uint16, p *pendingAck) {
	a.mu.Lock()
	a.pending[id] = p
	a.mu.Unlock()
}

// Write splits what the broker writes into packets; packets go out at
// once unless an unresolved acknowledgement is ahead of them.
func (a *ackConn) Write(b []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil {
		return 0, a.err
	}
	data := b
	if len(a.carry) > 0 {
		data = append(a.carry, b...)
		a.carry = nil
	}
	var direct [][]byte
	for len(data) > 0 {
		n, ok := packetLen(data)
		if !ok {
			a.carry = append([]byte(nil), data...)
			break
		}
		pkt := data[:n]
		data = data[n:]
		var ack *pendingAck
		if t := pkt[0] >> 4; t == typePuback || t == typePubrec {
			id, ok := packetID(pkt)
			if p, found := a.pending[id]; ok && found {
				delete(a.pending, id)
				ack = p
			}
		}
		if len(a.queue) == 0 && (ack == nil || ack.resolved()) {
			if ack != nil {
				pkt = ackBytes(pkt, ack)
			}
			direct = append(direct, pkt)
			continue
		}
		for len(a.queue) >= maxHeld && a.err == nil {
			a.space.Wait()
		}
		if a.err != nil {
			return 0, a.err
		}
		a.queue = append(a.queue, outPacket{b: append([]byte(nil), pkt...), ack: ack})
		if !a.flushing {
			a.flushing = true
			go a.flush()
		}
	}
	var out []byte
	switch len(direct) {
	case 0:
	case 1:
		out = direct[0]
	default:
		for _, pkt := range direct {
			out = append(out, pkt...)
		}
	}
	if len(out) > 0 {
		if _, err := a.Conn.Write(out); err != nil {
			a.err = err
			return 0, err
		}
	}
	return len(b), nil
}

// flush writes the held packets in order as their acks resolve, every
// resolved run in one write (a group commit resolves many acks at once);
// it ends when the queue is empty (no goroutine per idle connection).
func (a *ackConn) flush() {
	var buf []byte
	for {
		a.mu.Lock()
		if len(a.queue) == 0 || a.err != nil {
			a.flushing = false
			a.queue = nil
			a.space.Broadcast()
			a.mu.Unlock()
			return
		}
		head := a.queue[0]
		a.mu.Unlock()
		if head.ack != nil {
			<-head.ack.done
		}
		// Take the run of packets whose acks are resolved.
		a.mu.Lock()
		n := 0
		buf = buf[:0]
		for _, p := range a.queue {
			if p.ack != nil && !p.ack.resolved() {
				break
			}
			if p.ack != nil {
				p.b = ackBytes(p.b, p.ack)
			}
			buf = append(buf, p.b...)
			n++
		}
		a.mu.Unlock()
		var err error
		if len(buf) > 0 {
			_, err = a.Conn.Write(buf)
		}
		a.mu.Lock()
		clear(a.queue[:n])
		a.queue = a.queue[n:]
		if err != nil {
			a.err = err
		}
		a.space.Broadcast()
		a.mu.Unlock()
	}
}

// Close fails held writes and closes the connection.
func (a *ackConn) Close() error {
	a.mu.Lock()
	if a.err == nil {
		a.err = net.ErrClosed
	}
	a.space.Broadcast()
	a.mu.Unlock()
	return a.Conn.Close()
}

// Reason codes of refused messages (MQTT 5).
const (
	codeUnspecified   = 0x80
	codeQuotaExceeded = 0x97
)

// ErrQuotaExceeded is what a Handler reports when the store refuses a
// message for lack of space or budget: the client gets reason code 0x97.
var ErrQuotaExceeded = errors.New("quota exceeded")

// ackBytes is the acknowledgement to send for a resolved message: as the
// broker wrote it when the record is durable; else, for MQTT 5, the same
// packet with a failure reason code, and for 3.1.1 nothing (the client
// sends the message again).
func ackBytes(pkt []byte, p *pendingAck) []byte {
	if p.err == nil {
		return pkt
	}
	if p.version < 5 {
		return nil
	}
	code := byte(codeUnspecified)
	if errors.Is(p.err, ErrQuotaExceeded) {
		code = codeQuotaExceeded
	}
	id, _ := packetID(pkt)
	return []byte{pkt[0] & 0xf0, 3, byte(id >> 8), byte(id), code}
}

// packetLen is the length of the MQTT packet at the start of b (fixed
// header with its variable-length remaining length, and the rest); false
// when b does not hold a whole packet yet.
func packetLen(b []byte) (int, bool) {
	remaining, mult := 0, 1
	for i := 1; i < len(b) && i <= 4; i++ {
		remaining += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			n := i + 1 + remaining
			return n, n <= len(b)
		}
		mult *= 128
	}
	if len(b) > 5 {
		// A malformed length: pass the rest through as one piece rather
		// than hold it forever (the broker never writes such a thing).
		return len(b), true
	}
	return 0, false
}

// packetID reads the packet identifier of a whole PUBACK or PUBREC: the
// first two bytes after the fixed header.
func packetID(pkt []byte) (uint16, bool) {
	i := 1
	for i < len(pkt) && i <= 4 && pkt[i]&0x80 != 0 {
		i++
	}
	if i+2 >= len(pkt) {
		return 0, false
	}
	return uint16(pkt[i+1])<<8 | uint16(pkt[i+2]), true
}

// ackListener wraps a mochi listener so every connection it establishes is
// an ackConn.
type ackListener struct {
	listeners.Listener
}

func (l ackListener) Serve(establish listeners.EstablishFn) {
	l.Listener.Serve(func(id string, c net.Conn) error {
		return establish(id, newAckConn(c))
	})
}
