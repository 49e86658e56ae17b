package probe

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestDNSQuery(t *testing.T) {
	q, err := dnsQuery("www.example", 4242)
	if err != nil {
		t.Fatal(err)
	}
	if isDNSReply(q, 4242) {
		t.Error("a query taken for a reply")
	}
	var m dnsmessage.Message
	if err := m.Unpack(q); err != nil || m.Questions[0].Name.String() != "www.example." {
		t.Fatalf("query %+v: %v", m, err)
	}
	m.Header.Response, m.Header.RCode = true, dnsmessage.RCodeNameError
	reply, _ := m.Pack()
	if !isDNSReply(reply, 4242) || isDNSReply(reply, 4243) {
		t.Error("reply not recognised by its id")
	}
}

// TestEchoOnLoopback runs the probes against check's own listener: TCP and
// UDP reach it, a closed port is a block at once, not after the timeout.
func TestEchoOnLoopback(t *testing.T) {
	lo := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	v6 := true
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		v6 = false // no IPv6 here
	} else {
		c.Close()
	}
	e, err := listenEcho(v6, lo)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tcp, udp := e.ports()
	ports := map[string]uint16{"tcp": tcp, "udp": udp}
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	if v6 {
		addrs = append(addrs, netip.MustParseAddr("::1"))
	}
	for _, a := range addrs {
		for _, proto := range []string{"tcp", "udp"} {
			if err := Attempt(proto, netip.AddrPortFrom(a, ports[proto]), "www.example"); err != nil {
				t.Errorf("%s to %s: %v", proto, a, err)
			}
		}
	}
	closed, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := closed.LocalAddr().(*net.UDPAddr).Port
	closed.Close()
	start := time.Now()
	for _, proto := range []string{"tcp", "udp"} {
		if err := Attempt(proto, netip.AddrPortFrom(addrs[0], uint16(port)), "www.example"); err == nil {
			t.Errorf("%s to a closed port got through", proto)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s to a closed port: %v", proto, err)
		}
	}
	if d := time.Since(start); d > Timeout {
		t.Errorf("refused probes took %v", d)
	}
	// UDP is echoed only to zones: the listener is no reflector.
	e2, err := listenEcho(false, []netip.Prefix{netip.MustParsePrefix("10.250.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	_, udp2 := e2.ports()
	if err := Attempt("udp", netip.AddrPortFrom(addrs[0], udp2), "www.example"); err == nil {
		t.Error("echoed to a sender outside the zones")
	}
}
