package media

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// loopbackPair returns a bufferedConn accepted on loopback and its peer.
func loopbackPair(t *testing.T) (*bufferedConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := bufferedListener{ln}.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return c.(*bufferedConn), peer
}

// A read deadline pushed forward on every packet, as gortsplib does for a
// publisher, still ends a read once the peer falls silent: no earlier than
// the timeout less deadlineSlack, no later than the timeout.
func TestLazyReadDeadlineStillTimesOutASilentPeer(t *testing.T) {
	c, peer := loopbackPair(t)
	const timeout = deadlineSlack + 500*time.Millisecond
	buf := make([]byte, 16)
	var last time.Time
	for range 20 {
		last = time.Now()
		if err := c.SetReadDeadline(last.Add(timeout)); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write([]byte("packet")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("read while the peer sends: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(timeout)) // the read after the last packet
	_, err := c.Read(buf)
	waited := time.Since(last)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read from a silent peer: %v, want a deadline error", err)
	}
	// The upper bound leaves a second for a loaded machine's scheduling; the
	// lower one is the point: the socket's deadline lagged by under the slack.
	if waited < timeout-deadlineSlack || waited > timeout+time.Second {
		t.Fatalf("silent peer dropped after %v, want between %v and %v", waited, timeout-deadlineSlack, timeout)
	}
}

// Deadlines pushed forward by less than the slack reach the socket once;
// one that gets a slack ahead, a cleared one and a closer one each reach it.
func TestLazyDeadlineAppliesOnlyMovesWorthATimer(t *testing.T) {
	var d lazyDeadline
	var applied []time.Time
	apply := func(t time.Time) error { applied = append(applied, t); return nil }
	t0 := time.Unix(1_000_000, 0)
	for i := range 50 { // a packet every 10 ms for half a second
		d.set(t0.Add(time.Duration(i)*10*time.Millisecond), apply)
	}
	if len(applied) != 1 || !applied[0].Equal(t0) {
		t.Fatalf("50 small pushes applied %v, want only the first", applied)
	}
	d.set(t0.Add(deadlineSlack), apply)
	d.set(t0.Add(deadlineSlack/2), apply) // closer: interrupts
	d.set(time.Time{}, apply)             // cleared
	want := []time.Time{t0, t0.Add(deadlineSlack), t0.Add(deadlineSlack / 2), {}}
	if len(applied) != len(want) {
		t.Fatalf("applied %v, want %v", applied, want)
	}
	for i := range want {
		if !applied[i].Equal(want[i]) {
			t.Fatalf("applied %v, want %v", applied, want)
		}
	}
}

// Bringing a deadline closer applies at once (it interrupts a blocked read)
// and clearing it lets reads wait again.
func TestLazyDeadlineCloserOrClearedAppliesAtOnce(t *testing.T) {
	c, peer := loopbackPair(t)
	c.SetReadDeadline(time.Now().Add(time.Hour))
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.SetReadDeadline(time.Now())
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("interrupted read: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a closer deadline did not interrupt the read")
	}
	c.SetReadDeadline(time.Time{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		peer.Write([]byte("x"))
	}()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read after clearing the deadline: %v", err)
	}
}
