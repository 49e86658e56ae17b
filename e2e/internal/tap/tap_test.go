package tap

import (
	"net/netip"
	"testing"
)

func TestParse(t *testing.T) {
	eth := func(etype uint16) []byte { return append(make([]byte, 12), byte(etype>>8), byte(etype)) }
	// IPv4, UDP 1000 > 9999 carrying "hi".
	v4 := append(eth(0x0800),
		0x45, 0, 0, 30, 0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
		0x03, 0xe8, 0x27, 0x0f, 0, 10, 0, 0, 'h', 'i')
	p, ok := parse(v4)
	if !ok || p.Proto != 17 || p.Src != netip.MustParseAddr("192.0.2.1") || p.Dst != netip.MustParseAddr("192.0.2.2") ||
		p.SPort != 1000 || p.DPort != 9999 || string(p.Payload) != "hi" || !WithToken("hi")(p) {
		t.Errorf("IPv4 UDP: %v %v", p, ok)
	}
	// IPv6, a hop-by-hop header, then a TCP SYN to port 80.
	v6 := append(eth(0x86dd), 0x60, 0, 0, 0, 0, 28, 0, 64)
	v6 = append(v6, netip.MustParseAddr("2001:db8::1").AsSlice()...)
	v6 = append(v6, netip.MustParseAddr("2001:db8::2").AsSlice()...)
	v6 = append(v6, 6, 0, 0, 0, 0, 0, 0, 0) // hop-by-hop: next header TCP
	v6 = append(v6, 0x30, 0x39, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0)
	p, ok = parse(v6)
	if !ok || !SYNTo(netip.MustParseAddr("2001:db8::2"), 80)(p) || p.SPort != 12345 {
		t.Errorf("IPv6 TCP SYN: %v %v", p, ok)
	}
	if _, ok := parse(eth(0x0806)); ok {
		t.Error("an ARP frame parsed as IP")
	}
}
