package mqtt

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// pipeConn returns an ackConn writing into a pipe and a reader of the pipe.
func pipeConn(t *testing.T) (*ackConn, chan []byte) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	got := make(chan []byte, 16)
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := b.Read(buf)
			if err != nil {
				return
			}
			got <- bytes.Clone(buf[:n])
		}
	}()
	return newAckConn(a), got
}

func expectBytes(t *testing.T, got chan []byte, want []byte) {
	t.Helper()
	var all []byte
	deadline := time.After(2 * time.Second)
	for len(all) < len(want) {
		select {
		case b := <-got:
			all = append(all, b...)
		case <-deadline:
			t.Fatalf("got %x, want %x", all, want)
		}
	}
	if !bytes.Equal(all, want) {
		t.Fatalf("got %x, want %x", all, want)
	}
}

func expectNothing(t *testing.T, got chan []byte) {
	t.Helper()
	select {
	case b := <-got:
		t.Fatalf("sent %x before the record was durable", b)
	case <-time.After(50 * time.Millisecond):
	}
}

var (
	puback7  = []byte{0x40, 2, 0, 7}
	pubrec8  = []byte{0x50, 2, 0, 8}
	publish  = []byte{0x30, 5, 0, 1, 't', 'h', 'i'}
	pingresp = []byte{0xd0, 0}
)

// An ack waits for its record, and what the broker writes after it waits
// behind it, in order; acks of other packets go straight out.
func TestAckConnHoldsAcksUntilDurableInOrder(t *testing.T) {
	c, got := pipeConn(t)
	p := newPendingAck(4)
	c.expect(7, p)
	c.Write(append(append([]byte(nil), puback7...), publish...)) // one write, two packets
	c.Write(pingresp)
	expectNothing(t, got)
	p.resolve(nil)
	expectBytes(t, got, append(append(append([]byte(nil), puback7...), publish...), pingresp...))
	c.Write([]byte{0x40, 2, 0, 9}) // not pending: at once
	expectBytes(t, got, []byte{0x40, 2, 0, 9})
}

// A refused record: MQTT 5 gets the ack with a reason code, 3.1.1 none.
func TestAckConnRefusals(t *testing.T) {
	c, got := pipeConn(t)
	p5 := newPendingAck(5)
	c.expect(8, p5)
	c.Write(pubrec8)
	p5.resolve(errors.Join(ErrQuotaExceeded, io.ErrShortWrite))
	expectBytes(t, got, []byte{0x50, 3, 0, 8, 0x97})

	p3 := newPendingAck(4)
	c.expect(7, p3)
	c.Write(puback7)
	c.Write(pingresp)
	p3.resolve(io.ErrUnexpectedEOF)
	expectBytes(t, got, pingresp) // the PUBACK is gone; the rest follows
}

// A packet split across writes is framed whole.
func TestAckConnSplitPacket(t *testing.T) {
	c, got := pipeConn(t)
	p := newPendingAck(4)
	c.expect(7, p)
	c.Write(puback7[:1])
	c.Write(puback7[1:])
	p.resolve(nil)
	expectBytes(t, got, puback7)
}

// Whatever the broker writes, the framing never panics or loses bytes.
func FuzzAckConnFraming(f *testing.F) {
	f.Add(append(append([]byte(nil), puback7...), publish...), uint16(7))
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2}, uint16(0))
	f.Add([]byte{0x40}, uint16(1))
	f.Fuzz(func(t *testing.T, b []byte, id uint16) {
		if n, ok := packetLen(b); ok && (n < 1 || n > len(b)) {
			t.Fatalf("packetLen %d of %d bytes", n, len(b))
		}
		packetID(b)
		if len(b) >= 4 {
			ackBytes(b, &pendingAck{version: 5, err: ErrQuotaExceeded})
		}
	})
}
