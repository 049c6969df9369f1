package media

import (
	"strings"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// A viewer's NACK is answered from the history with the very payload that
// was sent (shared, not copied) and the viewer's own header.
func TestSharedNACKResponderResendsSharedPayloads(t *testing.T) {
	i, _ := sharedNACKResponder{}.NewInterceptor("")
	info := &interceptor.StreamInfo{SSRC: 7, RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}}
	type sent struct {
		seq     uint16
		payload []byte
	}
	var writes []sent
	w := i.BindLocalStream(info, interceptor.RTPWriterFunc(func(h *rtp.Header, p []byte, _ interceptor.Attributes) (int, error) {
		writes = append(writes, sent{h.SequenceNumber, p})
		return len(p), nil
	}))
	payloads := make([][]byte, 1000)
	for n := range payloads {
		payloads[n] = []byte{byte(n), byte(n >> 8)}
		w.Write(&rtp.Header{SSRC: 7, SequenceNumber: uint16(65000 + n)}, payloads[n], nil) // wraps around
	}
	nack, _ := (&rtcp.TransportLayerNack{MediaSSRC: 7, Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{65999 % 65536, 0, 100, 65000})}).Marshal()
	r := i.BindRTCPReader(interceptor.RTCPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		return copy(b, nack), a, nil
	}))
	writes = nil
	if _, _, err := r.Read(make([]byte, 1500), nil); err != nil {
		t.Fatal(err)
	}
	// 65000 fell out of the 512-packet history; 65999 (n=999), 0 (n=536), 100 (n=636) are in it.
	want := map[uint16]int{65999 % 65536: 999, 0: 536, 100: 636}
	if len(writes) != len(want) {
		t.Fatalf("resent %d packets, want %d: %+v", len(writes), len(want), writes)
	}
	for _, s := range writes {
		n, ok := want[s.seq]
		if !ok || &s.payload[0] != &payloads[n][0] {
			t.Errorf("resent seq %d with a payload that is not the shared one", s.seq)
		}
	}
}

// The SDP fragment parser and the offer inspection never panic, whatever
// the client sends.
func FuzzWebRTCOfferAndFragment(f *testing.F) {
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\na=ice-ufrag:abc\r\n")
	f.Add("a=ice-ufrag:x\r\na=ice-pwd:y\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n")
	f.Add("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		parseSDPFrag(s)
		var offer sdp.SessionDescription
		if offer.UnmarshalString(s) == nil {
			desc, offered := sessionFromOffer(&offer)
			if len(offered) == 0 || len(desc.Medias) > 2 {
				t.Fatalf("sessionFromOffer: %d medias, offered %v", len(desc.Medias), offered)
			}
			offers(&offer, "video", "H264")
			iceUfrag(&offer)
		}
	})
}

func TestParseSDPFrag(t *testing.T) {
	cands, ufrag, err := parseSDPFrag("a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\na=end-of-candidates\r\n")
	if err != nil || ufrag != "EsAw" || len(cands) != 1 || *cands[0].SDPMid != "0" || !strings.HasPrefix(cands[0].Candidate, "candidate:1387637174 ") {
		t.Fatalf("got %+v %q %v", cands, ufrag, err)
	}
	if _, _, err := parseSDPFrag("a=candidate:1 1 udp\r\n"); err == nil {
		t.Error("a candidate with missing fields was accepted")
	}
	if _, _, err := parseSDPFrag("garbage\r\n"); err == nil {
		t.Error("a line that is not SDP was accepted")
	}
}
