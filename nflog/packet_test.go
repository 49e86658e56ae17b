package nflog

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseFlow(t *testing.T) {
	const (
		v4tcp = "45000028 00004000 4006 0000 0a fa0002 c0a8320a" + " d431 0050 00000000"
		// IPv6, next header hop-by-hop (0), then UDP (17) after 8 bytes.
		v6hbh = "60000000 0010 00 40" + "fd6e737a000000010000000000000002" + "2001 0db8 0000 0000 0000 0000 0000 0053" +
			"11 00 0000 00000000" + "c350 0035 0008 0000"
		v6icmp = "60000000 0008 3a 40" + "fd6e737a000000010000000000000002" + "ff020000000000000000000000000001" + "80 00 0000"
		v4frag = "45000028 00000010 4011 0000 0a fa0002 c0a8320a" + " d431 0050"
	)
	cases := []struct {
		name, pkt string
		want      Flow
		err       bool
	}{
		{"ipv4 tcp", v4tcp, Flow{Proto: "tcp", Src: netip.MustParseAddr("10.250.0.2"), Dst: netip.MustParseAddr("192.168.50.10"), Sport: 0xd431, Dport: 80}, false},
		{"ipv6 udp after hop-by-hop", v6hbh, Flow{Proto: "udp", Src: netip.MustParseAddr("fd6e:737a:0:1::2"), Dst: netip.MustParseAddr("2001:db8::53"), Sport: 50000, Dport: 53}, false},
		{"ipv6 icmp", v6icmp, Flow{Proto: "ipv6-icmp", Src: netip.MustParseAddr("fd6e:737a:0:1::2"), Dst: netip.MustParseAddr("ff02::1"), Dport: 128}, false},
		{"ipv4 later fragment", v4frag, Flow{Proto: "udp", Src: netip.MustParseAddr("10.250.0.2"), Dst: netip.MustParseAddr("192.168.50.10")}, false},
		{"cut before the ports", "45000028 00004000 4006 0000 0a fa0002 c0a8320a", Flow{Proto: "tcp", Src: netip.MustParseAddr("10.250.0.2"), Dst: netip.MustParseAddr("192.168.50.10")}, false},
		{"cut in the header", "45000028 00004000 4006", Flow{}, true},
		{"not ip", "1234", Flow{}, true},
	}
	for _, c := range cases {
		got, err := ParseFlow(hexBytes(t, c.pkt))
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%s: %+v %v, want %+v (error %v)", c.name, got, err, c.want, c.err)
		}
	}
}
