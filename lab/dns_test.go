package lab

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

var testZone = records{
	"www.example.":     {netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8:113::10")},
	"nas.lan.example.": {netip.MustParseAddr("192.168.50.10"), netip.MustParseAddr("fd00:50::10")},
}

type query struct {
	name   string
	qtype  dnsmessage.Type
	class  dnsmessage.Class
	opcode dnsmessage.OpCode
	edns   int // EDNS payload size; 0: no OPT record
	extra  int // more questions
}

func (q query) pack(t *testing.T) []byte {
	t.Helper()
	class := q.class
	if class == 0 {
		class = dnsmessage.ClassINET
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0xbeef, RecursionDesired: true, OpCode: q.opcode})
	must(t, b.StartQuestions())
	for range 1 + q.extra {
		must(t, b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(q.name), Type: q.qtype, Class: class}))
	}
	must(t, b.StartAdditionals())
	if q.edns > 0 {
		var h dnsmessage.ResourceHeader
		must(t, h.SetEDNS0(q.edns, dnsmessage.RCodeSuccess, false))
		must(t, b.OPTResource(h, dnsmessage.OPTResource{}))
	}
	msg, err := b.Finish()
	must(t, err)
	return msg
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type parsed struct {
	hdr       dnsmessage.Header
	questions []dnsmessage.Question
	answers   []string
	soa       bool
	opt       bool
}

func parse(t *testing.T, msg []byte) parsed {
	t.Helper()
	var p dnsmessage.Parser
	var r parsed
	var err error
	r.hdr, err = p.Start(msg)
	must(t, err)
	r.questions, err = p.AllQuestions()
	must(t, err)
	answers, err := p.AllAnswers()
	must(t, err)
	for _, a := range answers {
		switch body := a.Body.(type) {
		case *dnsmessage.AResource:
			r.answers = append(r.answers, a.Header.Name.String()+" "+netip.AddrFrom4(body.A).String())
		case *dnsmessage.AAAAResource:
			r.answers = append(r.answers, a.Header.Name.String()+" "+netip.AddrFrom16(body.AAAA).String())
		default:
			r.answers = append(r.answers, a.Header.Name.String()+" "+a.Header.Type.String())
		}
	}
	auth, err := p.AllAuthorities()
	must(t, err)
	r.soa = len(auth) == 1 && auth[0].Header.Type == dnsmessage.TypeSOA
	add, err := p.AllAdditionals()
	must(t, err)
	r.opt = len(add) == 1 && add[0].Header.Type == dnsmessage.TypeOPT
	return r
}

func TestRespond(t *testing.T) {
	tests := []struct {
		name    string
		q       query
		rcode   dnsmessage.RCode
		answers []string
		soa     bool
	}{
		{"A", query{name: "www.example.", qtype: dnsmessage.TypeA}, dnsmessage.RCodeSuccess, []string{"www.example. 203.0.113.10"}, false},
		{"AAAA", query{name: "www.example.", qtype: dnsmessage.TypeAAAA}, dnsmessage.RCodeSuccess, []string{"www.example. 2001:db8:113::10"}, false},
		{"LAN A", query{name: "nas.lan.example.", qtype: dnsmessage.TypeA}, dnsmessage.RCodeSuccess, []string{"nas.lan.example. 192.168.50.10"}, false},
		{"LAN AAAA", query{name: "nas.lan.example.", qtype: dnsmessage.TypeAAAA}, dnsmessage.RCodeSuccess, []string{"nas.lan.example. fd00:50::10"}, false},
		{"case kept", query{name: "WwW.ExAmple.", qtype: dnsmessage.TypeA}, dnsmessage.RCodeSuccess, []string{"WwW.ExAmple. 203.0.113.10"}, false},
		{"ANY", query{name: "www.example.", qtype: dnsmessage.TypeALL}, dnsmessage.RCodeSuccess, []string{"www.example. 203.0.113.10", "www.example. 2001:db8:113::10"}, false},
		{"NODATA", query{name: "www.example.", qtype: dnsmessage.TypeMX}, dnsmessage.RCodeSuccess, nil, true},
		{"empty non-terminal", query{name: "lan.example.", qtype: dnsmessage.TypeA}, dnsmessage.RCodeSuccess, nil, true},
		{"NXDOMAIN", query{name: "nope.example.", qtype: dnsmessage.TypeA}, dnsmessage.RCodeNameError, nil, true},
		{"NXDOMAIN elsewhere", query{name: "golang.org.", qtype: dnsmessage.TypeAAAA}, dnsmessage.RCodeNameError, nil, true},
		{"no suffix match", query{name: "xwww.example.", qtype: dnsmessage.TypeA}, dnsmessage.RCodeNameError, nil, true},
		{"root SOA", query{name: ".", qtype: dnsmessage.TypeSOA}, dnsmessage.RCodeSuccess, []string{". TypeSOA"}, false},
		{"CHAOS", query{name: "version.bind.", qtype: dnsmessage.TypeTXT, class: dnsmessage.ClassCHAOS}, dnsmessage.RCodeRefused, nil, false},
		{"opcode", query{name: "www.example.", qtype: dnsmessage.TypeA, opcode: 2}, dnsmessage.RCodeNotImplemented, nil, false},
		{"two questions", query{name: "www.example.", qtype: dnsmessage.TypeA, extra: 1}, dnsmessage.RCodeFormatError, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := respond(tt.q.pack(t), testZone, true)
			if resp == nil {
				t.Fatal("no response")
			}
			r := parse(t, resp)
			if r.hdr.ID != 0xbeef || !r.hdr.Response || !r.hdr.Authoritative || !r.hdr.RecursionDesired || r.hdr.RecursionAvailable {
				t.Errorf("header %+v", r.hdr)
			}
			if r.hdr.RCode != tt.rcode {
				t.Errorf("rcode %v, want %v", r.hdr.RCode, tt.rcode)
			}
			if !slices.Equal(r.answers, tt.answers) {
				t.Errorf("answers %q, want %q", r.answers, tt.answers)
			}
			if r.soa != tt.soa {
				t.Errorf("SOA in authority: %v, want %v", r.soa, tt.soa)
			}
			if tt.rcode != dnsmessage.RCodeFormatError && (len(r.questions) != 1 || r.questions[0].Name.String() != tt.q.name) {
				t.Errorf("question not echoed: %v", r.questions)
			}
			if r.opt {
				t.Error("OPT in a reply to a query without one")
			}
		})
	}
}

func TestRespondEDNS(t *testing.T) {
	r := parse(t, respond(query{name: "www.example.", qtype: dnsmessage.TypeA, edns: 4096}.pack(t), testZone, true))
	if !r.opt || r.hdr.RCode != dnsmessage.RCodeSuccess || len(r.answers) != 1 {
		t.Errorf("EDNS query: opt %v rcode %v answers %v", r.opt, r.hdr.RCode, r.answers)
	}

	// EDNS version 1 is unknown: BADVERS, an extended RCODE.
	msg := query{name: "www.example.", qtype: dnsmessage.TypeA, edns: 1232}.pack(t)
	msg[len(msg)-5] = 1 // the OPT record ends in TTL (ext. RCODE, VERSION, flags) and RDLEN 0
	var p dnsmessage.Parser
	hdr, err := p.Start(respond(msg, testZone, true))
	must(t, err)
	must(t, p.SkipAllQuestions())
	must(t, p.SkipAllAnswers())
	must(t, p.SkipAllAuthorities())
	opt, err := p.AdditionalHeader()
	must(t, err)
	if got := opt.ExtendedRCode(hdr.RCode); got != rcodeBadVers {
		t.Errorf("version 1: rcode %v, want BADVERS", got)
	}
}

func TestRespondDrops(t *testing.T) {
	if respond([]byte{1, 2, 3}, testZone, true) != nil {
		t.Error("answered a message shorter than a header")
	}
	resp := respond(query{name: "www.example.", qtype: dnsmessage.TypeA}.pack(t), testZone, true)
	if respond(resp, testZone, true) != nil {
		t.Error("answered a response")
	}
	// A header followed by garbage: FORMERR with the same ID.
	r := parse(t, respond([]byte{0xbe, 0xef, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff}, testZone, true))
	if r.hdr.RCode != dnsmessage.RCodeFormatError || r.hdr.ID != 0xbeef {
		t.Errorf("garbage question: %+v", r.hdr)
	}
}

func TestRespondTruncates(t *testing.T) {
	big := records{}
	for i := range 40 {
		big["many.example."] = append(big["many.example."], netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)}))
	}
	q := query{name: "many.example.", qtype: dnsmessage.TypeAAAA}.pack(t)
	udp := parse(t, respond(q, big, true))
	if !udp.hdr.Truncated || len(udp.answers) != 0 {
		t.Errorf("over UDP: truncated %v with %d answers", udp.hdr.Truncated, len(udp.answers))
	}
	tcp := parse(t, respond(q, big, false))
	if tcp.hdr.Truncated || len(tcp.answers) != 40 {
		t.Errorf("over TCP: truncated %v with %d answers", tcp.hdr.Truncated, len(tcp.answers))
	}
}

// TestServers runs the servers on loopback and asks them with Go's own
// resolver and HTTP client.
func TestServers(t *testing.T) {
	httpL, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	udp, err := net.ListenPacket("udp", tcp.Addr().String())
	must(t, err)
	s := serve(slog.New(slog.DiscardHandler), "hello\n", testZone, httpL, udp, tcp)
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing: %v", err)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, network := range []string{"udp", "tcp"} {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, tcp.Addr().String())
		}}
		addrs, err := r.LookupNetIP(ctx, "ip", "www.example")
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		if !slices.Equal(addrs, testZone["www.example."]) {
			t.Errorf("%s: www.example is %v", network, addrs)
		}
		_, err = r.LookupNetIP(ctx, "ip", "nope.example")
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
			t.Errorf("%s: nope.example: %v, want not found", network, err)
		}
	}

	resp, err := http.Get("http://" + httpL.Addr().String() + "/")
	must(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	must(t, err)
	if string(body) != "hello\n" {
		t.Errorf("http body %q", body)
	}
}
