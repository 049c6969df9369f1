package media

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// readChunk is how much an RTSP connection reads from its socket at once.
const readChunk = 32 << 10

// deadlineSlack is how far behind the deadline asked for a connection's
// socket deadline may lag. gortsplib moves a publisher's read deadline (and
// a reader's write deadline) forward on every RTP packet, and each move
// re-arms a runtime timer: 2% of the server's CPU at 16 cameras. The socket
// deadline now moves only once it lags by deadlineSlack, so a silent peer is
// dropped up to that much sooner than its timeout (9-10 s of 10 s).
const deadlineSlack = time.Second

// bufferedListener hands gortsplib connections that read the socket in
// readChunk pieces and move their deadlines lazily. gortsplib reads through
// a 4 KiB bufio.Reader, so a camera's frame, which arrives as a burst of RTP
// packets (17 KB at 4 Mbit/s and 30 fps), took five read system calls; now
// it takes one.
type bufferedListener struct{ net.Listener }

func (l bufferedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, readChunk)}, nil
}

// bufferedConn is a net.Conn whose reads go through r and whose deadlines
// are moved forward only by deadlineSlack or more.
type bufferedConn struct {
	net.Conn
	r     *bufio.Reader
	read  lazyDeadline
	write lazyDeadline
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufferedConn) SetReadDeadline(t time.Time) error {
	return c.read.set(t, c.Conn.SetReadDeadline)
}

func (c *bufferedConn) SetWriteDeadline(t time.Time) error {
	return c.write.set(t, c.Conn.SetWriteDeadline)
}

func (c *bufferedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// lazyDeadline is one direction's deadline as last given to the socket.
// gortsplib sets write deadlines from two goroutines, hence the lock.
type lazyDeadline struct {
	mu sync.Mutex
	at time.Time // zero: none
}

// set applies t unless it only moves the deadline forward by less than
// deadlineSlack. Clearing it, or bringing it closer (to interrupt a read),
// always applies.
func (d *lazyDeadline) set(t time.Time, apply func(time.Time) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !t.IsZero() && !d.at.IsZero() && t.After(d.at) && t.Sub(d.at) < deadlineSlack {
		return nil
	}
	if err := apply(t); err != nil {
		return err
	}
	d.at = t
	return nil
}

// RTSPListener wraps ln the way the media server wraps its RTSP listeners.
// The ingest benchmark's floor (gortsplib alone, discarding packets) reads
// through it so that it measures the same read path.
func RTSPListener(ln net.Listener) net.Listener { return bufferedListener{ln} }
