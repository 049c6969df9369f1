package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// benchMQTTCmd measures an MQTT broker (the gateway's, or Mosquitto for the
// comparison): N publishers sending JSON telemetry, each keeping a window
// of unacknowledged QoS 1/2 messages, or at QoS 0 as fast as the broker
// reads; or (--idle N) the broker's memory per idle connection. The
// publishers speak MQTT 3.1.1 with paho's packet codec over plain
// connections, one reader and one writer goroutine each: paho's client
// costs several goroutine hand-offs per message, which would make the
// generator, not the broker, the bottleneck on two cores.
func benchMQTTCmd(args []string) error {
	fs := flag.NewFlagSet("bench mqtt", flag.ExitOnError)
	broker := fs.String("broker", "127.0.0.1:1883", "broker host:port")
	user := fs.String("user", "", "user name (the gateway: an access key id)")
	pass := fs.String("pass", "", "password (the gateway: the secret)")
	name := fs.String("name", "broker", "label for the output")
	publishers := fs.Int("publishers", 100, "concurrent publishing clients")
	qos := fs.Int("qos", 1, "QoS of the messages (0, 1 or 2)")
	payload := fs.Int("payload", 200, "bytes of JSON per message")
	window := fs.Int("window", 64, "unacknowledged QoS 1/2 messages per publisher")
	duration := fs.Duration("duration", 10*time.Second, "measured time")
	idle := fs.Int("idle", 0, "instead: open this many idle connections and report the broker's memory per connection")
	serverPID := fs.Int("server-pid", 0, "pid of the broker, for its CPU time and RSS")
	fs.Parse(args)
	if *idle > 0 {
		return benchMQTTIdle(*broker, *user, *pass, *name, *idle, *serverPID)
	}
	body := []byte(`{"device":"sensor-0000","temp":21.5,"humidity":40.1,"battery":0.93,"pad":"`)
	body = append(body, strings.Repeat("x", max(0, *payload-len(body)-2))...)
	body = append(body, `"}`...)
	pubs := make([]*benchPublisher, *publishers)
	for i := range pubs {
		p, err := dialPublisher(*broker, fmt.Sprintf("bench-%d-%d", time.Now().UnixNano()%1e6, i), *user, *pass, 64<<10)
		if err != nil {
			return fmt.Errorf("publisher %d: %w", i, err)
		}
		defer p.conn.Close()
		pubs[i] = p
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	cpu0, self0 := procCPU(*serverPID), selfCPU()
	start := time.Now()
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(fmt.Sprintf("fleet/sensor-%04d/telemetry", i), body, byte(*qos), *window, stop)
		}()
	}
	time.Sleep(*duration)
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, self1 := procCPU(*serverPID), selfCPU()
	var all []time.Duration
	var count, failed int64
	for _, p := range pubs {
		all = append(all, p.lat...)
		count += p.done
		failed += p.failed
	}
	what := "acknowledged"
	if *qos == 0 {
		what = "sent"
	}
	fmt.Printf("%s: %d publishers, QoS %d, %d-byte JSON: %.0f msg/s %s (%d in %.1fs, %d refused or lost)\n",
		*name, len(pubs), *qos, len(body), float64(count)/elapsed.Seconds(), what, count, elapsed.Seconds(), failed)
	if *qos > 0 {
		fmt.Printf("  publish -> ack latency (window %d per publisher): %s\n", *window, percentiles(all))
	}
	if *serverPID > 0 {
		fmt.Printf("  broker CPU %.0f%% of one core (%.1f µs per message), RSS %s; load generator CPU %.0f%%\n",
			100*(cpu1-cpu0).Seconds()/elapsed.Seconds(), (cpu1-cpu0).Seconds()/float64(max(count, 1))*1e6, procRSS(*serverPID),
			100*(self1-self0).Seconds()/elapsed.Seconds())
	}
	return nil
}

// benchPublisher is one publishing connection.
type benchPublisher struct {
	conn   net.Conn
	r      *bufio.Reader
	lat    []time.Duration
	done   int64 // acknowledged (QoS 1/2) or sent (QoS 0)
	failed int64
}

// dialPublisher connects with MQTT 3.1.1 (keepalive 240 s: the bench sends
// no pings) and reads the CONNACK through a reader of readBuf bytes.
func dialPublisher(broker, clientID, user, pass string, readBuf int) (*benchPublisher, error) {
	conn, err := net.Dial("tcp", broker)
	if err != nil {
		return nil, err
	}
	c := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	c.ProtocolName, c.ProtocolVersion, c.CleanSession, c.Keepalive, c.ClientIdentifier = "MQTT", 4, true, 240, clientID
	if user != "" {
		c.UsernameFlag, c.PasswordFlag, c.Username, c.Password = true, true, user, []byte(pass)
	}
	if err := c.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReaderSize(conn, readBuf)
	ack, err := packets.ReadPacket(r)
	if ca, ok := ack.(*packets.ConnackPacket); err != nil || !ok || ca.ReturnCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNACK %v %v", ack, err)
	}
	conn.SetReadDeadline(time.Time{})
	return &benchPublisher{conn: conn, r: r}, nil
}

// run publishes until stop: at QoS 0 as fast as the connection takes it, at
// QoS 1/2 with up to window messages awaiting their PUBACK (or PUBREC, then
// PUBREL/PUBCOMP), acknowledgements read on a second goroutine.
func (p *benchPublisher) run(topic string, body []byte, qos byte, window int, stop chan struct{}) {
	w := bufio.NewWriterSize(p.conn, 64<<10)
	pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pub.TopicName, pub.Qos, pub.Payload = topic, qos, body
	if qos == 0 {
		for {
			select {
			case <-stop:
				w.Flush()
				return
			default:
			}
			for range 64 {
				pub.Write(w) //nolint:errcheck // a dead connection shows in the count
			}
			if w.Flush() != nil {
				return
			}
			p.done += 64
		}
	}
	slots := make(chan uint16, window)
	for id := 1; id <= window; id++ {
		slots <- uint16(id)
	}
	sentAt := make([]time.Time, window+1)
	readerDone := make(chan struct{})
	var mu sync.Mutex
	go func() {
		defer close(readerDone)
		for {
			pkt, err := packets.ReadPacket(p.r)
			if err != nil {
				return
			}
			var id uint16
			switch a := pkt.(type) {
			case *packets.PubackPacket:
				id = a.MessageID
			case *packets.PubrecPacket:
				rel := packets.NewControlPacket(packets.Pubrel).(*packets.PubrelPacket)
				rel.MessageID = a.MessageID
				mu.Lock()
				rel.Write(w) //nolint:errcheck // as above
				w.Flush()
				mu.Unlock()
				continue
			case *packets.PubcompPacket:
				id = a.MessageID
			default:
				continue
			}
			mu.Lock()
			d := time.Since(sentAt[id])
			mu.Unlock()
			if len(p.lat) < 100000 {
				p.lat = append(p.lat, d)
			}
			p.done++
			slots <- id
		}
	}()
	for {
		var id uint16
		select {
		case <-stop:
			// Send what is buffered, let the window drain, stop reading.
			mu.Lock()
			w.Flush()
			mu.Unlock()
			deadline := time.After(10 * time.Second)
			for len(slots) < window {
				select {
				case <-readerDone:
					p.failed += int64(window - len(slots))
					return
				case <-deadline:
					p.failed += int64(window - len(slots))
					p.conn.Close()
					<-readerDone
					return
				case <-time.After(time.Millisecond):
				}
			}
			p.conn.Close()
			<-readerDone
			return
		case id = <-slots:
		}
		mu.Lock()
		sentAt[id] = time.Now()
		pub.MessageID = id
		pub.Write(w) //nolint:errcheck // as above
		if len(slots) == 0 || w.Buffered() > 32<<10 {
			w.Flush()
		}
		mu.Unlock()
		if len(slots) > 0 {
			continue
		}
		mu.Lock()
		w.Flush()
		mu.Unlock()
	}
}

// benchMQTTIdle opens n MQTT 3.1.1 connections that only keep alive, and
// reports the broker's RSS growth per connection.
func benchMQTTIdle(broker, user, pass, name string, n, pid int) error {
	if pid == 0 {
		return errors.New("--idle needs --server-pid")
	}
	rss0 := procRSSKiB(pid)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		p, err := dialPublisher(broker, fmt.Sprintf("idle-%d", i), user, pass, 16)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, p.conn)
	}
	time.Sleep(3 * time.Second)
	rss1 := procRSSKiB(pid)
	fmt.Printf("%s: %d idle connections: RSS %d -> %d KiB, %.1f KiB per connection\n", name, n, rss0, rss1, float64(rss1-rss0)/float64(n))
	return nil
}
