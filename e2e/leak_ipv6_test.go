package e2e

import (
	"encoding/binary"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/e2e/internal/sender"
	"github.com/nszone/nszone/e2e/internal/sink"
	"github.com/nszone/nszone/e2e/internal/tap"
	"github.com/nszone/nszone/lab"
)

const ipv6Zones = `version: 1
zones:
  wan:
    allow: [internet]
  vfour:
    allow: [internet]
    ipv6: false
`

// TestLeakIPv6: ipv6: false means no IPv6 at all; router advertisements are
// ignored; link-local addresses lead nowhere but the zone's own link, on
// which neighbour discovery works.
func TestLeakIPv6(t *testing.T) {
	guardHost(t)
	l := theLab
	mustRun(t, "up", "-c", writeZones(t, ipv6Zones))
	inet4, inet6 := pageURL(l.InetServer4, 80), pageURL(l.InetServer6, 80)

	// ipv6: false, beside a zone that has it (positive control).
	if r := runAt(t, "vfour", 10*time.Second, nil, "ip", "-6", "-o", "addr"); r.code != 0 || strings.TrimSpace(r.out) != "" {
		t.Errorf("vfour (ipv6: false) has IPv6 addresses (exit %d):\n%s%s", r.code, r.out, r.err)
	}
	if r := runAt(t, "vfour", 10*time.Second, nil, "ip", "-6", "route", "show", "table", "all"); strings.TrimSpace(r.out) != "" {
		t.Errorf("vfour (ipv6: false) has IPv6 routes:\n%s", r.out)
	}
	for _, k := range []string{"all", "default", "eth0", "lo"} {
		r := runAt(t, "vfour", 10*time.Second, nil, "cat", "/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6")
		if strings.TrimSpace(r.out) != "1" {
			t.Errorf("vfour: net.ipv6.conf.%s.disable_ipv6 = %q, want 1 %s", k, strings.TrimSpace(r.out), r.err)
		}
	}
	expectUnreached(t, "ipv6: false", "vfour", inet6)
	expectReached(t, "ipv6: false", "vfour", inet4)
	if r := runAt(t, "wan", 10*time.Second, nil, "ip", "-6", "-o", "addr", "show", "scope", "global"); !strings.Contains(r.out, "inet6") {
		t.Errorf("positive control: wan has no global IPv6 address:\n%s", r.out)
	}
	expectReached(t, "default ipv6", "wan", inet4, inet6)

	// Router advertisements are not taken.
	for _, k := range []string{"all", "default", "eth0"} {
		r := runAt(t, "wan", 10*time.Second, nil, "cat", "/proc/sys/net/ipv6/conf/"+k+"/accept_ra")
		if strings.TrimSpace(r.out) != "0" {
			t.Errorf("wan: net.ipv6.conf.%s.accept_ra = %q, want 0", k, strings.TrimSpace(r.out))
		}
	}

	// Neighbour discovery on the zone's own link works: the gateway is
	// resolved after traffic through it, while the gateway itself is refused.
	_, wanGW := zoneAddrs(t, "wan")
	wanOwn, _ := zoneAddrs(t, "wan")
	var gw6, own6 netip.Addr
	for _, a := range wanGW {
		if a.Is6() {
			gw6 = a
		}
	}
	for _, a := range wanOwn {
		if a.Is6() {
			own6 = a
		}
	}
	start := time.Now()
	if r := runAt(t, "wan", 10*time.Second, nil, "ping", "-6", "-c1", "-W2", gw6.String()); r.code == 0 {
		t.Errorf("wan pings its gateway %s (the host, not allowed):\n%s", gw6, r.out)
	} else if time.Since(start) > 1500*time.Millisecond {
		t.Logf("ping from wan to its gateway was not refused at once (%v): %s", time.Since(start), r.out)
	}
	neigh := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(gw6.String()) + ` .*lladdr \S+.*(REACHABLE|STALE|DELAY|PROBE|PERMANENT)`)
	if r := runAt(t, "wan", 10*time.Second, nil, "ip", "-6", "neigh", "show", "dev", "eth0"); !neigh.MatchString(r.out) {
		t.Errorf("neighbour discovery: wan has not resolved its gateway %s:\n%s", gw6, r.out)
	}
	hostNeigh := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(own6.String()) + ` .*lladdr \S+`)
	if r := runAt(t, atHost, 10*time.Second, nil, "ip", "-6", "neigh", "show", "dev", "nsz-wan"); !hostNeigh.MatchString(r.out) {
		t.Errorf("neighbour discovery: the host has not resolved wan's %s:\n%s", own6, r.out)
	}

	// Link-local: the LAN server's link-local address is not reachable from
	// wan (nor from the host's link-local side of wan's link); from the host
	// it is (positive control).
	lanLL := ifAddrs(t, lab.LANNS, "eth0", true)
	if len(lanLL) == 0 {
		t.Fatalf("the LAN server has no link-local address")
	}
	llURL := "http://[" + lanLL[0].String() + "%25eth0]/"
	expectUnreached(t, "link-local", "wan", llURL)
	expectReached(t, "link-local", atHost, llURL)
	lanSink := sink.Listen(t, lab.LANNS, sink.Options{UDP: []int{portUDP}})
	tok := sender.Token("ll-wan")
	llTarget := "udp:" + targetAddr(lanLL[0], portUDP, "eth0")
	send(t, "wan", tok, 5, llTarget)
	tokHost := sender.Token("ll-host")
	send(t, atHost, tokHost, 5, llTarget)
	waitInFlight()
	if n := lanSink.Count(tok); n > 0 {
		t.Errorf("wan's datagrams to the LAN server's link-local address arrived: %d", n)
	}
	if lanSink.Count(tokHost) == 0 {
		t.Errorf("positive control: the host's datagrams to the LAN server's link-local address do not arrive")
	}

	// A router advertisement sent into the zones (with the host's rules
	// flushed, so that it gets there) changes nothing in them.
	flushHost(t)
	bad := netip.MustParsePrefix("2001:db8:bad::/64")
	wanTap := tap.Start(t, "wan", "eth0")
	vfourTap := tap.Start(t, "vfour", "eth0")
	wm, vm := wanTap.Mark(), vfourTap.Mark()
	sendRA(t, "nsz-wan", bad)
	// Without IPv6 in the zone, the host's end of its link has none
	// either: nothing can send an RA there.
	vfourRA := len(ifAddrs(t, atHost, "nsz-vfour", true)) > 0
	if vfourRA {
		sendRA(t, "nsz-vfour", bad)
	}
	time.Sleep(time.Second)
	isRA := func(p tap.Packet) bool { return p.Proto == 58 && p.ICMPType == 134 }
	if wanTap.Count(wm, isRA) == 0 || vfourRA && vfourTap.Count(vm, isRA) == 0 {
		t.Errorf("positive control: the router advertisements did not reach the zones (wan %d, vfour %d)", wanTap.Count(wm, isRA), vfourTap.Count(vm, isRA))
	}
	for _, z := range []string{"wan", "vfour"} {
		a := runAt(t, "netns:"+z, 10*time.Second, nil, "ip", "-6", "addr")
		r := runAt(t, "netns:"+z, 10*time.Second, nil, "ip", "-6", "route", "show", "table", "all")
		if strings.Contains(a.out, "2001:db8:bad") || strings.Contains(r.out, "2001:db8:bad") || strings.Contains(r.out, "proto ra") {
			t.Errorf("zone %s took a router advertisement:\n%s%s", z, a.out, r.out)
		}
		if z == "vfour" && strings.TrimSpace(a.out) != "" {
			t.Errorf("vfour has IPv6 after a router advertisement:\n%s", a.out)
		}
	}
}

// sendRA sends a router advertisement (a default router and an
// autoconfiguration prefix) from the host out of ifname to all nodes.
func sendRA(t testing.TB, ifname string, prefix netip.Prefix) {
	t.Helper()
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		t.Fatalf("raw ICMPv6 socket: %v", err)
	}
	defer unix.Close(fd)
	for _, o := range []int{unix.IPV6_MULTICAST_HOPS, unix.IPV6_UNICAST_HOPS} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, o, 255); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index); err != nil {
		t.Fatal(err)
	}
	// From the host's link-local address on the link, as a router's must be.
	if ll := ifAddrs(t, atHost, ifname, true); len(ll) > 0 {
		if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: ll[0].As16(), ZoneId: uint32(ifi.Index)}); err != nil {
			t.Logf("binding the RA to %s on %s: %v", ll[0], ifname, err)
		}
	}
	msg := []byte{134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0} // hop limit 64, router lifetime 1800 s
	opt := make([]byte, 32)
	opt[0], opt[1], opt[2], opt[3] = 3, 4, byte(prefix.Bits()), 0xc0 // prefix information: on-link, autonomous
	binary.BigEndian.PutUint32(opt[4:], 86400)
	binary.BigEndian.PutUint32(opt[8:], 14400)
	copy(opt[16:], prefix.Addr().AsSlice())
	msg = append(msg, opt...)
	allNodes := netip.MustParseAddr("ff02::1")
	for range 3 {
		if err := unix.Sendto(fd, msg, 0, &unix.SockaddrInet6{Addr: allNodes.As16(), ZoneId: uint32(ifi.Index)}); err != nil {
			t.Fatalf("sending a router advertisement on %s: %v", ifname, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
