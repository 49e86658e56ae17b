package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nszone/nszone/e2e/internal/sender"
	"github.com/nszone/nszone/e2e/internal/sink"
	"github.com/nszone/nszone/lab"
	"github.com/nszone/nszone/zones"
)

// Published ports of an offline zone, in both families: one for every
// address of the host's, one for the host alone, one UDP.
const publishZones = `version: 1
zones:
  web:
    allow: []
    publish: ["8080:%[1]d/tcp", "127.0.0.1:5432:%[1]d/tcp", "8053:%[1]d/udp"]
  other:
    allow: [internet, lan, host]
`

// TestPublish: a server in an offline zone is reached on the host's ports
// from the LAN and from the host itself, in both families, replies
// included; the loopback-only port from the host alone; the zone still
// opens nothing; another zone does not reach the published port. status
// shows the ports; a port a program of the host's holds is refused.
func TestPublish(t *testing.T) { onBothVariants(t, func(t *testing.T, _ string) { testPublish(t) }) }

func testPublish(t *testing.T) {
	guardHost(t)
	file := writeZones(t, fmt.Sprintf(publishZones, portZone))
	mustRun(t, "up", "-c", file)
	t.Cleanup(func() { run(t, nil, "down", "-c", file) })
	web := sink.Listen(t, "web", sink.Options{TCP: []int{portZone}, UDP: []int{portZone}, Echo: true})
	h4, h6 := theLab.HostAddr4.Addr(), theLab.HostAddr6.Addr()
	at := func(kind string, a netip.Addr, port int) string {
		return kind + ":" + netip.AddrPortFrom(a, uint16(port)).String()
	}
	reached := func(where, what string, targets ...string) {
		t.Helper()
		for tg, st := range send(t, where, sender.Token("pub"), 2, targets...) {
			if st.OK == 0 {
				t.Errorf("%s cannot reach %s at %s: %s", what, "web's published port", tg, st.LastErr)
			}
		}
	}
	lan := "netns:" + lab.LANNS
	reached(lan, "the LAN", at("tcp", h4, 8080), at("tcp", h6, 8080), at("udprr", h4, 8053), at("udprr", h6, 8053))
	reached(atHost, "the host", at("tcp", h4, 8080), at("tcp", h6, 8080), at("tcp", netip.MustParseAddr("127.0.0.1"), 8080),
		at("tcp", netip.MustParseAddr("127.0.0.1"), 5432))

	// Refused: the loopback-only port from the LAN, another zone, and
	// anything the zone itself would open.
	before := web.Conns()
	for tg, st := range send(t, lan, sender.Token("pub-no"), 2, at("tcp", h4, 5432), at("tcp", h6, 5432)) {
		if st.OK > 0 {
			t.Errorf("the LAN reached the host-only port at %s", tg)
		}
	}
	for tg, st := range send(t, "other", sender.Token("pub-other"), 2, at("tcp", h4, 8080), at("tcp", h6, 8080)) {
		if st.OK > 0 {
			t.Errorf("zone other reached web's published port at %s", tg)
		}
	}
	waitInFlight()
	if n := web.Conns() - before; n > 0 {
		t.Errorf("%d connections arrived in web that nothing may make", n)
	}
	for tg, st := range send(t, "web", sender.Token("pub-out"), 2, at("tcp", theLab.LANServer4, 80),
		at("tcp", theLab.InetServer4, 80), at("tcp", h4, portHost)) {
		if st.OK > 0 {
			t.Errorf("web, allowed nothing, opened %s", tg)
		}
	}

	// The host's rules flushed: the ports close, the zone opens nothing
	// still; up opens them again.
	flushHost(t)
	for tg, st := range send(t, "netns:web", sender.Token("pub-flush"), 2, at("tcp", theLab.LANServer4, 80), at("tcp", h4, portHost)) {
		if st.OK > 0 {
			t.Errorf("after a flush, web opened %s", tg)
		}
	}
	mustRun(t, "up", "-c", file)
	reached(lan, "the LAN, after a flush and up,", at("tcp", h4, 8080), at("tcp", h6, 8080))

	// check proves the TCP ports from the host, with a listener of its own
	// in the zone (the sink holds the zone's port here: it answers).
	ck, _ := checkJSONOf(t, "-c", file, "web")
	pub := ck.results("web", "published", "", "tcp")
	if len(pub) != 3 { // 8080 on both families, 5432 on 127.0.0.1
		t.Errorf("check web: %d published results, want 3: %+v", len(pub), pub)
	}
	for _, r := range pub {
		if !r.OK || r.Observed != "allow" {
			t.Errorf("check web: published %s: %+v", r.Target, r)
		}
	}

	st := status(t, "-c", file)
	if z := statusZone(st, "web"); z.State != "up" || !strings.Contains(strings.Join(z.Published, " "), fmt.Sprintf("127.0.0.1:5432->%d/tcp", portZone)) {
		t.Errorf("status of web: %s, published %v", z.State, z.Published)
	}

	// A port a program of the host's listens on is refused, and nothing changes.
	sink.Listen(t, "", sink.Options{TCP: []int{portHost + 100}})
	bad := writeZones(t, fmt.Sprintf(publishZones, portZone)+fmt.Sprintf("  more:\n    publish: [\"%d:80/tcp\"]\n", portHost+100))
	snap := snapshot(t)
	if r := run(t, nil, "up", "-c", bad); r.code != 2 || !strings.Contains(r.err, fmt.Sprintf("listens on tcp port %d", portHost+100)) {
		t.Errorf("up publishing a taken port: exit %d %s", r.code, r.err)
	}
	if after := snapshot(t); after != snap {
		t.Errorf("a refused up changed the host:\n%s", diffLines(snap, after))
	}
}

// The lab's tunnel: wg0 on the host, a veth whose far end, in its own
// namespace, owns the internet server's address, so that what goes through
// the tunnel and what would leave by the uplink arrive in different places.
const (
	vpnNS   = "lab_vpn"
	vpnHost = "10.64.0.2/30"
	vpnFar  = "10.64.0.1/30"
)

func tunnelUp(t testing.TB) {
	t.Helper()
	for _, c := range [][]string{
		{"ip", "link", "add", "wg0", "type", "veth", "peer", "name", "far0", "netns", vpnNS},
		{"ip", "addr", "add", vpnHost, "dev", "wg0"},
		// No duplicate address detection: snapshots must not catch wg0's
		// link-local address still tentative.
		{"sysctl", "-qw", "net.ipv6.conf.wg0.accept_dad=0"},
		{"ip", "link", "set", "wg0", "up"},
		{"ip", "-n", vpnNS, "addr", "add", vpnFar, "dev", "far0"},
		{"ip", "-n", vpnNS, "addr", "add", theLab.InetServer4.String() + "/32", "dev", "far0"},
		{"ip", "-n", vpnNS, "link", "set", "far0", "up"},
		{"ip", "-n", vpnNS, "link", "set", "lo", "up"},
	} {
		if r := runCmd(t, nil, c[0], c[1:]...); r.code != 0 {
			t.Fatalf("%v: %s", c, r.err)
		}
	}
}

// labTunnel makes the tunnel's far end and wg0, both gone after the test.
func labTunnel(t testing.TB) {
	t.Helper()
	if r := runCmd(t, nil, "ip", "netns", "add", vpnNS); r.code != 0 {
		t.Fatal(r.err)
	}
	t.Cleanup(func() {
		runCmd(t, nil, "ip", "link", "del", "wg0")
		runCmd(t, nil, "ip", "netns", "del", vpnNS)
	})
	tunnelUp(t)
}

const viaZones = `version: 1
zones:
  vpn:
    allow: [internet]
    via: wg0
    dns: [%s]
`

// TestVia: a zone whose internet goes through wg0 reaches the internet
// server's address on the tunnel's far end, from wg0's address; with wg0
// down, then gone, nothing of it arrives anywhere over seconds of attempts
// (no fallback through the uplink), and status names wg0; with wg0 back,
// watch makes it work again without an admin; down leaves nothing.
func TestVia(t *testing.T) { onBothVariants(t, func(t *testing.T, _ string) { testVia(t) }) }

func testVia(t *testing.T) {
	guardHost(t)
	labTunnel(t) // once first: the namespace gets the id that ip netns list shows
	runCmd(t, nil, "ip", "link", "del", "wg0")
	before := snapshot(t)
	tunnelUp(t)
	file := writeZones(t, fmt.Sprintf(viaZones, theLab.InetServer4))
	mustRun(t, "up", "-c", file)
	far := sink.Listen(t, vpnNS, sink.Options{TCP: []int{portTCP}})
	inet := sink.Listen(t, lab.InetNS, sink.Options{TCP: []int{portTCP}})
	target := "tcp:" + netip.AddrPortFrom(theLab.InetServer4, portTCP).String()
	works := func() bool {
		st := send(t, "netns:vpn", sender.Token("via"), 1, target)[target]
		return st.OK > 0
	}
	if !works() {
		t.Fatal("vpn cannot reach the internet through wg0")
	}
	if n := far.ConnsFrom(portTCP, netip.MustParsePrefix(vpnHost).Addr()); n == 0 {
		t.Errorf("the tunnel's far end saw no connection from wg0's address")
	}
	if n := inet.Conns(); n > 0 {
		t.Errorf("%d connections of vpn's reached the internet server by the uplink", n)
	}

	ck, _ := checkJSONOf(t, "-c", file, "vpn")
	if via := ck.results("vpn", "via", "wg0", ""); len(via) != 1 || !strings.Contains(via[0].Note, "10.64.0.2") {
		t.Errorf("check vpn does not say what the internet sees: %+v", via)
	}

	w := startWatch(t, file)
	for _, cut := range []struct {
		name string
		cmd  []string
	}{{"down", []string{"ip", "link", "set", "wg0", "down"}}, {"gone", []string{"ip", "link", "del", "wg0"}}} {
		if r := runCmd(t, nil, cut.cmd[0], cut.cmd[1:]...); r.code != 0 {
			t.Fatal(r.err)
		}
		farBefore := far.Conns()
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			if works() {
				t.Errorf("wg0 %s: vpn still reaches the internet", cut.name)
				break
			}
		}
		waitInFlight()
		if n := inet.Conns(); n > 0 {
			t.Errorf("wg0 %s: %d connections of vpn's left by the uplink", cut.name, n)
		}
		if n := far.Conns() - farBefore; n > 0 {
			t.Errorf("wg0 %s: %d connections still arrived through it", cut.name, n)
		}
		z := statusZone(status(t, "-c", file), "vpn")
		if z.State != "degraded" || !strings.Contains(strings.Join(z.Missing, " "), "wg0") {
			t.Errorf("wg0 %s: status says %s, missing %v", cut.name, z.State, z.Missing)
		}
		if cut.name == "down" {
			runCmd(t, nil, "ip", "link", "set", "wg0", "up")
			eventually(t, "vpn works again with wg0 up, by watch", works)
		}
	}
	tunnelUp(t)
	eventually(t, "vpn works again with wg0 back, by watch", works)
	w.stop(t, syscall.SIGTERM)
	if n := inet.Conns(); n > 0 {
		t.Errorf("%d connections of vpn's left by the uplink", n)
	}
	mustRun(t, "down", "-c", file)
	runCmd(t, nil, "ip", "link", "del", "wg0")
	if after := snapshot(t); after != before {
		t.Errorf("down left something of the via:\n%s", diffLines(before, after))
	}
}

// TestCrashPublishVia kills up and down at every fault point with a
// published port and a via zone: the via zone never leaves by the uplink,
// the offline zone opens nothing, the next up converges (the port answers,
// the via works), and down leaves no rule, route or sysctl behind.
func TestCrashPublishVia(t *testing.T) {
	guardHost(t)
	labTunnel(t)
	file := writeZones(t, fmt.Sprintf(viaZones, theLab.InetServer4)+
		fmt.Sprintf("  web:\n    allow: []\n    publish: [\"8080:%d/tcp\"]\n", portZone))
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	before := snapshot(t)
	inet := sink.Listen(t, lab.InetNS, sink.Options{TCP: []int{portTCP}})
	h4 := theLab.HostAddr4.Addr()
	leaks := func(when string) {
		t.Helper()
		if runCmd(t, nil, "ip", "netns", "exec", "vpn", "true").code == 0 {
			send(t, "netns:vpn", sender.Token("crash-via"), 1, "tcp:"+netip.AddrPortFrom(theLab.InetServer4, portTCP).String())
		}
		if runCmd(t, nil, "ip", "netns", "exec", "web", "true").code == 0 {
			for tg, st := range send(t, "netns:web", sender.Token("crash-web"), 1,
				"tcp:"+netip.AddrPortFrom(theLab.LANServer4, 80).String(), "tcp:"+netip.AddrPortFrom(h4, portHost).String()) {
				if st.OK > 0 {
					t.Errorf("%s: web opened %s", when, tg)
				}
			}
		}
		waitInFlight()
		if n := inet.Conns(); n > 0 {
			t.Errorf("%s: %d connections of vpn's left by the uplink", when, n)
		}
	}
	for _, point := range zones.FaultPoints {
		t.Run(point, func(t *testing.T) {
			down := strings.HasPrefix(point, "down-")
			if down || point == "up-remove" {
				mustRun(t, "up", "-c", file)
			}
			faulted, op := file, "up"
			if point == "up-remove" {
				faulted = writeZones(t, fmt.Sprintf(viaZones, theLab.InetServer4))
			}
			if down {
				op = "down"
			}
			if r := run(t, []string{zones.EnvFault + "=" + point}, op, "-c", faulted); r.code != 137 {
				t.Fatalf("%s killed at %s: exit %d\n%s%s", op, point, r.code, r.out, r.err)
			}
			leaks("after the kill at " + point)
			mustRun(t, "up", "-c", file)
			sink.Listen(t, "web", sink.Options{TCP: []int{portZone}})
			target := "tcp:" + netip.AddrPortFrom(h4, 8080).String()
			if st := send(t, "netns:"+lab.LANNS, sender.Token("crash-pub"), 2, target)[target]; st.OK == 0 {
				t.Errorf("after %s and up: the LAN cannot reach web's published port: %s", point, st.LastErr)
			}
			via := "tcp:" + netip.AddrPortFrom(theLab.InetServer4, portTCP).String()
			sink.Listen(t, vpnNS, sink.Options{TCP: []int{portTCP}})
			if st := send(t, "netns:vpn", sender.Token("crash-via-ok"), 1, via)[via]; st.OK == 0 {
				t.Errorf("after %s and up: vpn cannot reach the internet through wg0: %s", point, st.LastErr)
			}
			leaks("after recovery from " + point)
			mustRun(t, "down", "-c", file)
			if after := snapshot(t); after != before {
				t.Errorf("after %s at %s, up and down: host differs:\n%s", op, point, diffLines(before, after))
			}
		})
	}
}
