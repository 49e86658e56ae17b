package e2e

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nszone/nszone/e2e/internal/sender"
	"github.com/nszone/nszone/e2e/internal/sink"
	"github.com/nszone/nszone/e2e/internal/tap"
	"github.com/nszone/nszone/lab"
)

// TestLeakHostFlush is the flush case: the host's rules flushed in every
// table of both families and both iptables variants, the policies ACCEPT and
// forwarding on (a firewalld reload, a Docker restart, an admin's iptables
// -F). The inner wall alone must then keep every zone to its policy: no TCP,
// no one-way UDP, no ICMP toward anything forbidden arrives. status says
// degraded, and up repairs.
func TestLeakHostFlush(t *testing.T) {
	guardHost(t)
	l := theLab
	file := writeZones(t, defaultZones)
	mustRun(t, "up", "-c", file)

	lanTap := tap.Start(t, lab.LANNS, "eth0")
	lanSink := sink.Listen(t, lab.LANNS, sink.Options{UDP: []int{portUDP}})
	inetSink := sink.Listen(t, lab.InetNS, sink.Options{UDP: []int{portUDP}})
	hostSink := sink.Listen(t, atHost, sink.Options{UDP: []int{portHost}, TCP: []int{portHost}})
	lanZoneSink := sink.Listen(t, "lan", sink.Options{UDP: []int{portZone}, TCP: []int{portZone}})
	_, wanGW := zoneAddrs(t, "wan")
	lanZone, _ := zoneAddrs(t, "lan")
	hostAddrs := append([]netip.Addr{l.HostAddr4.Addr(), l.HostAddr6.Addr()}, wanGW...)

	flushHost(t)

	for z, s := range zoneStates(t) {
		if !strings.HasPrefix(s, "degraded") {
			t.Errorf("after the flush, status says zone %s is %q, want degraded", z, s)
		}
	}

	mark := lanTap.Mark()
	// TCP from wan to the LAN server: refused, and no SYN reaches the LAN.
	expectUnreached(t, "after the flush", "netns:wan", pageURL(l.LANServer4, 80), pageURL(l.LANServer6, 80))
	// One-way UDP from wan: to the LAN server, the host, the lan zone.
	tokWan := sender.Token("flush-wan")
	targets := udpTargets(portUDP, l.LANServer4, l.LANServer6)
	targets = append(targets, udpTargets(portHost, hostAddrs...)...)
	targets = append(targets, udpTargets(portZone, lanZone...)...)
	for _, a := range append(slices.Clone(hostAddrs), lanZone...) {
		port := portHost
		if slices.Contains(lanZone, a) {
			port = portZone
		}
		targets = append(targets, "tcp:"+netip.AddrPortFrom(a, uint16(port)).String())
	}
	res := send(t, "netns:wan", tokWan, 20, targets...)
	for tg, st := range res {
		if strings.HasPrefix(tg, "tcp:") && st.OK > 0 {
			t.Errorf("after the flush, wan connected to %s (%d times)", tg, st.OK)
		}
	}
	// ICMP from wan to the LAN server.
	pat, patBytes := pingPattern()
	for _, a := range []netip.Addr{l.LANServer4, l.LANServer6} {
		if r := runAt(t, "netns:wan", 10*time.Second, nil, "ping", "-c2", "-W1", "-i0.2", "-p", pat, a.String()); r.code == 0 {
			t.Errorf("after the flush, wan pings %s:\n%s", a, r.out)
		}
	}
	// lan may not reach the internet, offline nothing at all.
	tokLan := sender.Token("flush-lan")
	send(t, "netns:lan", tokLan, 10, udpTargets(portUDP, l.InetServer4, l.InetServer6)...)
	tokOff := sender.Token("flush-offline")
	send(t, "netns:offline", tokOff, 10, append(udpTargets(portUDP, l.LANServer4, l.LANServer6, l.InetServer4, l.InetServer6),
		udpTargets(portHost, l.HostAddr4.Addr(), l.HostAddr6.Addr())...)...)
	// Positive control: the zones still send what they may (one-way: with
	// the host's NAT flushed no reply finds its way back).
	tokWanInet := sender.Token("flush-wan-inet")
	send(t, "netns:wan", tokWanInet, 10, udpTargets(portUDP, l.InetServer4, l.InetServer6)...)
	waitInFlight()

	toLAN := func(p tap.Packet) bool { return p.Dst == l.LANServer4 || p.Dst == l.LANServer6 }
	if n := lanSink.Count(tokWan); n > 0 {
		t.Errorf("after the flush, %d datagrams from wan arrived at the LAN server:\n%s", n, lanSink.Describe(tokWan))
	}
	for _, a := range []netip.Addr{l.LANServer4, l.LANServer6} {
		if n := lanTap.Count(mark, tap.SYNTo(a, 80)); n > 0 {
			t.Errorf("after the flush, %d TCP SYNs from wan reached %s:80:\n%s", n, a, lanTap.Describe(mark, tap.SYNTo(a, 80)))
		}
		if n := lanTap.Count(mark, tap.EchoTo(a, patBytes)); n > 0 {
			t.Errorf("after the flush, %d pings from wan reached %s", n, a)
		}
	}
	if n := lanTap.Count(mark, func(p tap.Packet) bool { return toLAN(p) && tap.WithToken("LEAK-flush-")(p) }); n > 0 {
		t.Errorf("after the flush, %d frames of the zones' probes reached the LAN:\n%s", n, lanTap.Describe(mark, tap.WithToken("LEAK-flush-")))
	}
	if n := hostSink.Count(tokWan); n > 0 || hostSink.Conns() > 0 {
		t.Errorf("after the flush, wan reached the host: %d datagrams, %d connections:\n%s", n, hostSink.Conns(), hostSink.Describe(tokWan))
	}
	if n := lanZoneSink.Count(tokWan); n > 0 || lanZoneSink.Conns() > 0 {
		t.Errorf("after the flush, wan reached the lan zone: %d datagrams, %d connections", n, lanZoneSink.Conns())
	}
	if n := inetSink.Count(tokLan); n > 0 {
		t.Errorf("after the flush, %d datagrams from zone lan reached the internet:\n%s", n, inetSink.Describe(tokLan))
	}
	if n := lanSink.Count(tokOff) + inetSink.Count(tokOff) + hostSink.Count(tokOff); n > 0 {
		t.Errorf("after the flush, %d datagrams from zone offline arrived somewhere", n)
	}
	if n := inetSink.Count(tokWanInet); n == 0 {
		t.Errorf("after the flush (positive control): wan's one-way datagrams to the internet do not arrive either: the zone sends nothing at all?")
	}

	// Positive controls: the same probes from the host arrive.
	mark = lanTap.Mark()
	expectReached(t, "after the flush", atHost, pageURL(l.LANServer4, 80), pageURL(l.LANServer6, 80))
	tokHost := sender.Token("flush-host")
	send(t, atHost, tokHost, 5, udpTargets(portUDP, l.LANServer4, l.LANServer6)...)
	for _, a := range []netip.Addr{l.LANServer4, l.LANServer6} {
		if r := runAt(t, atHost, 10*time.Second, nil, "ping", "-c2", "-W1", "-i0.2", "-p", pat, a.String()); r.code != 0 {
			t.Errorf("positive control: the host cannot ping %s: %s%s", a, r.out, r.err)
		}
	}
	waitInFlight()
	for _, a := range []netip.Addr{l.LANServer4, l.LANServer6} {
		if lanTap.Count(mark, tap.SYNTo(a, 80)) == 0 || lanTap.Count(mark, tap.EchoTo(a, patBytes)) == 0 {
			t.Errorf("positive control: the tap in %s saw no SYN or no ping from the host to %s", lab.LANNS, a)
		}
		if lanSink.Count(tokHost, a.String()) == 0 && lanSink.Count(tokHost, "["+a.String()+"]") == 0 {
			t.Errorf("positive control: the host's datagrams to %s did not arrive:\n%s", a, lanSink.Describe(tokHost))
		}
	}

	// up puts the host's wall back.
	mustRun(t, "up", "-c", file)
	for z, s := range zoneStates(t) {
		if s != "up" {
			t.Errorf("after up, zone %s is %q", z, s)
		}
	}
	expectReached(t, "after the flush and up", "wan", pageURL(l.InetServer4, 80), pageURL(l.InetServer6, 80))
	expectUnreached(t, "after the flush and up", "wan", pageURL(l.LANServer4, 80), pageURL(l.LANServer6, 80))
}
