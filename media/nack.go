package media

import (
	"slices"
	"sync"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// nackHistory is how many sent packets of a stream can be resent: about
// 1.5 s of 4 Mbit/s video, several round trips of any usable path.
const nackHistory = 512

// sharedNACKResponder answers a viewer's NACKs by resending packets it
// sent. Unlike pion's responder, which copies every packet into its
// history, it keeps the header (small, per viewer) and a reference to the
// payload, which all viewers share and nobody modifies: retransmission
// history costs no copy of the media per viewer.
type sharedNACKResponder struct{}

func (sharedNACKResponder) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &nackResponder{streams: map[uint32]*sentHistory{}}, nil
}

type nackResponder struct {
	interceptor.NoOp
	mu      sync.Mutex
	streams map[uint32]*sentHistory
}

// sentHistory is a ring of the latest packets of one outgoing stream.
type sentHistory struct {
	mu     sync.Mutex
	ring   [nackHistory]sentPacket
	writer interceptor.RTPWriter
}

type sentPacket struct {
	set     bool
	header  rtp.Header
	payload []byte
}

func (n *nackResponder) BindLocalStream(info *interceptor.StreamInfo, writer interceptor.RTPWriter) interceptor.RTPWriter {
	if !slices.ContainsFunc(info.RTCPFeedback, func(fb interceptor.RTCPFeedback) bool { return fb.Type == "nack" && fb.Parameter == "" }) {
		return writer
	}
	h := &sentHistory{writer: writer}
	n.mu.Lock()
	n.streams[info.SSRC] = h
	n.mu.Unlock()
	return interceptor.RTPWriterFunc(func(header *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if header.SSRC == info.SSRC {
			h.mu.Lock()
			e := &h.ring[header.SequenceNumber%nackHistory]
			e.set, e.header, e.payload = true, *header, payload
			e.header.Extensions = slices.Clone(header.Extensions)
			h.mu.Unlock()
		}
		return writer.Write(header, payload, a)
	})
}

func (n *nackResponder) UnbindLocalStream(info *interceptor.StreamInfo) {
	n.mu.Lock()
	delete(n.streams, info.SSRC)
	n.mu.Unlock()
}

func (n *nackResponder) BindRTCPReader(reader interceptor.RTCPReader) interceptor.RTCPReader {
	return interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		i, attr, err := reader.Read(b, a)
		if err != nil {
			return 0, nil, err
		}
		if attr == nil {
			attr = interceptor.Attributes{}
		}
		pkts, err := attr.GetRTCPPackets(b[:i])
		if err != nil {
			return 0, nil, err
		}
		for _, p := range pkts {
			if nack, ok := p.(*rtcp.TransportLayerNack); ok {
				n.resend(nack)
			}
		}
		return i, attr, nil
	})
}

// resend writes the packets a NACK asks for that are still in the history.
func (n *nackResponder) resend(nack *rtcp.TransportLayerNack) {
	n.mu.Lock()
	h := n.streams[nack.MediaSSRC]
	n.mu.Unlock()
	if h == nil {
		return
	}
	for _, pair := range nack.Nacks {
		pair.Range(func(seq uint16) bool {
			h.mu.Lock()
			e := h.ring[seq%nackHistory]
			h.mu.Unlock()
			if e.set && e.header.SequenceNumber == seq {
				h.writer.Write(&e.header, e.payload, interceptor.Attributes{}) //nolint:errcheck // best effort, like the original send
			}
			return true
		})
	}
}
