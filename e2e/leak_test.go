package e2e

// The leak suite (issue 3): what a zone must never reach, tried with real
// traffic and counted where it would arrive (a listener or a packet tap in
// the destination's namespace), never where it is sent. Every negative check
// has a positive control beside it, so that no test passes because nothing
// works at all.

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/lab"
	"github.com/nszone/nszone/zones"
)

// Ports of the suite's own listeners (the lab's servers use 53 and 80).
const (
	leakUDPPort  = 9999 // one-way datagrams to a lab server
	leakTCPPort  = 9998 // connection attempts to a lab server
	leakHostPort = 9997 // services on the simulated host
	leakZonePort = 9996 // services inside zones
)

func leakURL(a netip.Addr, port int) string {
	return "http://" + netip.AddrPortFrom(a, uint16(port)).String() + "/"
}

// leakExpectUnreached checks that curl at where fails for every URL.
func leakExpectUnreached(t testing.TB, phase, where string, urls ...string) {
	t.Helper()
	for _, u := range urls {
		r := leakRun(t, where, 20*time.Second, nil, "curl", "-g", "-sS", "--max-time", "3", "-o", "/dev/null", u)
		if r.code == 0 {
			t.Errorf("%s: %s reached %s (it must not)", phase, where, u)
		}
	}
}

// leakExpectReached checks that curl at where gets the page at every URL.
func leakExpectReached(t testing.TB, phase, where string, urls ...string) {
	t.Helper()
	for _, u := range urls {
		r := leakRun(t, where, 20*time.Second, nil, "curl", "-g", "-sS", "--max-time", "3", u)
		if r.code != 0 || !strings.Contains(r.out, "lab-") {
			t.Errorf("%s (positive control): %s cannot reach %s: exit %d %s%s", phase, where, u, r.code, r.out, r.err)
		}
	}
}

// leakPattern is an ICMP payload pattern for ping -p, and its bytes.
func leakPattern() (string, []byte) {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b), b
}

func udpTargets(port int, addrs ...netip.Addr) []string {
	var out []string
	for _, a := range addrs {
		out = append(out, "udp:"+netip.AddrPortFrom(a, uint16(port)).String())
	}
	return out
}

// TestLeakHostFlush is the flush case: the host's rules flushed in every
// table of both families and both iptables variants, the policies ACCEPT and
// forwarding on (a firewalld reload, a Docker restart, an admin's iptables
// -F). The inner wall alone must then keep every zone to its policy: no TCP,
// no one-way UDP, no ICMP toward anything forbidden arrives. status says
// degraded, and up repairs.
func TestLeakHostFlush(t *testing.T) {
	leakBegin(t)
	l := theLab
	file := writeZones(t, defaultZones)
	mustRun(t, "up", "-c", file)

	lanTap := leakStartTap(t, lab.LANNS, "eth0")
	lanSink := leakListen(t, lab.LANNS, leakListenOpts{UDP: []int{leakUDPPort}})
	inetSink := leakListen(t, lab.InetNS, leakListenOpts{UDP: []int{leakUDPPort}})
	hostSink := leakListen(t, leakHost, leakListenOpts{UDP: []int{leakHostPort}, TCP: []int{leakHostPort}})
	lanZoneSink := leakListen(t, "lan", leakListenOpts{UDP: []int{leakZonePort}, TCP: []int{leakZonePort}})
	_, wanGW := leakZoneAddrs(t, "wan")
	lanZone, _ := leakZoneAddrs(t, "lan")
	hostAddrs := append([]netip.Addr{l.HostAddr4.Addr(), l.HostAddr6.Addr()}, wanGW...)

	leakFlushHost(t)

	for z, s := range leakStates(t) {
		if !strings.HasPrefix(s, "degraded") {
			t.Errorf("after the flush, status says zone %s is %q, want degraded", z, s)
		}
	}

	mark := lanTap.mark()
	// TCP from wan to the LAN server: refused, and no SYN reaches the LAN.
	leakExpectUnreached(t, "after the flush", "netns:wan", leakURL(l.LANServer4, 80), leakURL(l.LANServer6, 80))
	// One-way UDP from wan: to the LAN server, the host, the lan zone.
	tokWan := leakToken("flush-wan")
	targets := udpTargets(leakUDPPort, l.LANServer4, l.LANServer6)
	targets = append(targets, udpTargets(leakHostPort, hostAddrs...)...)
	targets = append(targets, udpTargets(leakZonePort, lanZone...)...)
	for _, a := range append(slices.Clone(hostAddrs), lanZone...) {
		port := leakHostPort
		if slices.Contains(lanZone, a) {
			port = leakZonePort
		}
		targets = append(targets, "tcp:"+netip.AddrPortFrom(a, uint16(port)).String())
	}
	res := leakSend(t, "netns:wan", tokWan, 20, targets...)
	for tg, st := range res {
		if strings.HasPrefix(tg, "tcp:") && st.OK > 0 {
			t.Errorf("after the flush, wan connected to %s (%d times)", tg, st.OK)
		}
	}
	// ICMP from wan to the LAN server.
	pat, patBytes := leakPattern()
	for _, a := range []netip.Addr{l.LANServer4, l.LANServer6} {
		if r := leakRun(t, "netns:wan", 10*time.Second, nil, "ping", "-c2", "-W1", "-i0.2", "-p", pat, a.String()); r.code == 0 {
			t.Errorf("after the flush, wan pings %s:\n%s", a, r.out)
		}
	}
	// lan may not reach the internet, offline nothing at all.
	tokLan := leakToken("flush-lan")
	leakSend(t, "netns:lan", tokLan, 10, udpTargets(leakUDPPort, l.InetServer4, l.InetServer6)...)
	tokOff := leakToken("flush-offline")
	leakSend(t, "netns:offline", tokOff, 10, append(udpTargets(leakUDPPort, l.LANServer4, l.LANServer6, l.InetServer4, l.InetServer6),
		udpTargets(leakHostPort, l.HostAddr4.Addr(), l.HostAddr6.Addr())...)...)
	// Positive control: the zones still send what they may (one-way: with
	// the host's NAT flushed no reply finds its way back).
	tokWanInet := leakToken("flush-wan-inet")
	leakSend(t, "netns:wan", tokWanInet, 10, udpTargets(leakUDPPort, l.InetServer4, l.InetServer6)...)
	leakSettle()

	toLAN := func(p leakPkt) bool { return p.dst == l.LANServer4 || p.dst == l.LANServer6 }
	if n := lanSink.count(tokWan); n > 0 {
		t.Errorf("after the flush, %d datagrams from wan arrived at the LAN server:\n%s", n, lanSink.describe(tokWan))
	}
	for _, a := range []netip.Addr{l.LANServer4, l.LANServer6} {
		if n := lanTap.count(mark, leakSYNTo(a, 80)); n > 0 {
			t.Errorf("after the flush, %d TCP SYNs from wan reached %s:80:\n%s", n, a, lanTap.describe(mark, leakSYNTo(a, 80)))
		}
		if n := lanTap.count(mark, leakEchoTo(a, patBytes)); n > 0 {
			t.Errorf("after the flush, %d pings from wan reached %s", n, a)
		}
	}
	if n := lanTap.count(mark, func(p leakPkt) bool { return toLAN(p) && leakWithToken("LEAK-flush-")(p) }); n > 0 {
		t.Errorf("after the flush, %d frames of the zones' probes reached the LAN:\n%s", n, lanTap.describe(mark, leakWithToken("LEAK-flush-")))
	}
	if n := hostSink.count(tokWan); n > 0 || hostSink.connCount() > 0 {
		t.Errorf("after the flush, wan reached the host: %d datagrams, %d connections:\n%s", n, hostSink.connCount(), hostSink.describe(tokWan))
	}
	if n := lanZoneSink.count(tokWan); n > 0 || lanZoneSink.connCount() > 0 {
		t.Errorf("after the flush, wan reached the lan zone: %d datagrams, %d connections", n, lanZoneSink.connCount())
	}
	if n := inetSink.count(tokLan); n > 0 {
		t.Errorf("after the flush, %d datagrams from zone lan reached the internet:\n%s", n, inetSink.describe(tokLan))
	}
	if n := lanSink.count(tokOff) + inetSink.count(tokOff) + hostSink.count(tokOff); n > 0 {
		t.Errorf("after the flush, %d datagrams from zone offline arrived somewhere", n)
	}
	if n := inetSink.count(tokWanInet); n == 0 {
		t.Errorf("after the flush (positive control): wan's one-way datagrams to the internet do not arrive either: the zone sends nothing at all?")
	}

	// Positive controls: the same probes from the host arrive.
	mark = lanTap.mark()
	leakExpectReached(t, "after the flush", leakHost, leakURL(l.LANServer4, 80), leakURL(l.LANServer6, 80))
	tokHost := leakToken("flush-host")
	leakSend(t, leakHost, tokHost, 5, udpTargets(leakUDPPort, l.LANServer4, l.LANServer6)...)
	for _, a := range []netip.Addr{l.LANServer4, l.LANServer6} {
		if r := leakRun(t, leakHost, 10*time.Second, nil, "ping", "-c2", "-W1", "-i0.2", "-p", pat, a.String()); r.code != 0 {
			t.Errorf("positive control: the host cannot ping %s: %s%s", a, r.out, r.err)
		}
	}
	leakSettle()
	for _, a := range []netip.Addr{l.LANServer4, l.LANServer6} {
		if lanTap.count(mark, leakSYNTo(a, 80)) == 0 || lanTap.count(mark, leakEchoTo(a, patBytes)) == 0 {
			t.Errorf("positive control: the tap in %s saw no SYN or no ping from the host to %s", lab.LANNS, a)
		}
		if lanSink.count(tokHost, a.String()) == 0 && lanSink.count(tokHost, "["+a.String()+"]") == 0 {
			t.Errorf("positive control: the host's datagrams to %s did not arrive:\n%s", a, lanSink.describe(tokHost))
		}
	}

	// up puts the host's wall back.
	mustRun(t, "up", "-c", file)
	for z, s := range leakStates(t) {
		if s != "up" {
			t.Errorf("after up, zone %s is %q", z, s)
		}
	}
	leakExpectReached(t, "after the flush and up", "wan", leakURL(l.InetServer4, 80), leakURL(l.InetServer6, 80))
	leakExpectUnreached(t, "after the flush and up", "wan", leakURL(l.LANServer4, 80), leakURL(l.LANServer6, 80))
}

var nftCounters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// TestLeakRefusedAtOnce: a forbidden connection fails at once (a TCP
// reset or an ICMP error the kernel acts on), for both families, so that
// programs in a zone do not hang (README: "programs fail at once instead of
// hanging"). Positive control: the allowed ones connect.
func TestLeakRefusedAtOnce(t *testing.T) {
	leakBegin(t)
	l := theLab
	mustRun(t, "up", "-c", writeZones(t, defaultZones))
	_, wanGW := leakZoneAddrs(t, "wan")
	lanZone, _ := leakZoneAddrs(t, "lan")
	var targets []string
	for _, a := range append(append([]netip.Addr{l.LANServer4, l.LANServer6, l.HostAddr4.Addr(), l.HostAddr6.Addr()}, wanGW...), lanZone...) {
		targets = append(targets, "tcp:"+netip.AddrPortFrom(a, 80).String())
	}
	allowed := []string{"tcp:" + netip.AddrPortFrom(l.InetServer4, 80).String(), "tcp:" + netip.AddrPortFrom(l.InetServer6, 80).String()}
	// A one-second connect timeout: the kernel retries a SYN after one second.
	args := append([]string{leakSelfPath(t), "send", "-n", "1", "-tcpn", "1", "-token", leakToken("fast"), "-timeout", "900ms"}, append(targets, allowed...)...)
	r := leakRun(t, "wan", 30*time.Second, []string{leakHelperEnv + "=1"}, args...)
	res := parseLeakResults(r.out)
	if len(res) != len(targets)+len(allowed) {
		t.Fatalf("sender: exit %d %s%s", r.code, r.out, r.err)
	}
	for _, tg := range targets {
		switch st := res[tg]; {
		case st.OK > 0:
			t.Errorf("wan connected to %s", tg)
		case strings.Contains(st.LastErr, "timeout"):
			t.Errorf("wan's connection to %s was not refused at once: %s", tg, st.LastErr)
		}
	}
	for _, tg := range allowed {
		if res[tg].OK == 0 {
			t.Errorf("positive control: wan cannot connect to %s: %s", tg, res[tg].LastErr)
		}
	}
}

// leakInnerRules is every rule inside a zone's namespace, as both iptables
// variants and nft see them, without counters.
func leakInnerRules(t testing.TB, zone string) string {
	t.Helper()
	var b strings.Builder
	for _, argv := range [][]string{{"iptables-nft-save"}, {"ip6tables-nft-save"}, {"iptables-legacy-save"}, {"ip6tables-legacy-save"}, {"nft", "list", "ruleset"}} {
		r := leakRun(t, "netns:"+zone, 10*time.Second, nil, argv...)
		fmt.Fprintf(&b, "== %s (exit %d)\n", argv[0], r.code)
		for _, l := range strings.Split(r.out, "\n") {
			if !strings.HasPrefix(l, "#") {
				l = counters.ReplaceAllString(l, "[]")
				b.WriteString(nftCounters.ReplaceAllString(l, "counter") + "\n")
			}
		}
	}
	return b.String()
}

// TestLeakNoRootInZone: a program in a zone, run as a user (through sudo),
// can change neither wall, whatever it tries.
func TestLeakNoRootInZone(t *testing.T) {
	leakBegin(t)
	file := writeZones(t, defaultZones)
	mustRun(t, "up", "-c", file, "wan")
	inner := leakInnerRules(t, "wan")
	if !strings.Contains(inner, "nszone-wan") {
		t.Fatalf("positive control: no inner wall (rules commented nszone-wan) seen in zone wan:\n%s", inner)
	}
	host := leakSave(t)
	nobody := []string{"SUDO_UID=65534", "SUDO_GID=65534", "SUDO_USER=nobody"}

	// Positive control: the user's programs do run, and reach the internet.
	if r := run(t, nobody, "exec", "wan", "--", "id", "-u"); r.code != 0 || strings.TrimSpace(r.out) != "65534" {
		t.Fatalf("positive control: exec as nobody: exit %d %q %s", r.code, r.out, r.err)
	}
	if r := run(t, nobody, append([]string{"exec", "wan", "--"}, curl(leakURL(theLab.InetServer4, 80))...)...); r.code != 0 {
		t.Errorf("positive control: nobody in wan cannot reach the internet: %d %s", r.code, r.err)
	}
	attempts := [][]string{
		{"iptables", "-F"},
		{"iptables", "-P", "OUTPUT", "ACCEPT"},
		{"iptables", "-I", "OUTPUT", "1", "-j", "ACCEPT"},
		{"iptables", "-t", "nat", "-F"},
		{"ip6tables", "-F"},
		{"iptables-nft", "-F"},
		{"iptables-legacy", "-F"},
		{"ip6tables-legacy", "-F"},
		{"nft", "flush", "ruleset"},
		{"unshare", "-r", "iptables", "-F"}, // root of a new user namespace is no root here
		{"unshare", "-r", "nft", "flush", "ruleset"},
		{"ip", "link", "set", "eth0", "down"},
		{"ip", "route", "add", "192.168.50.0/24", "dev", "eth0"},
		{"sysctl", "-w", "net.ipv6.conf.all.accept_ra=2"},
	}
	for _, a := range attempts {
		r := run(t, nobody, append([]string{"exec", "wan", "--"}, a...)...)
		switch {
		case r.code == 0:
			t.Errorf("as nobody in wan, %q succeeded (exit 0): %s%s", a, r.out, r.err)
		case r.code == 126 || r.code == 127:
			t.Logf("as nobody in wan, %q could not be run (exit %d): %s", a, r.code, r.err)
		default:
			t.Logf("as nobody in wan, %q: exit %d: %s", a, r.code, firstLine(r.err))
		}
	}
	if now := leakInnerRules(t, "wan"); now != inner {
		t.Errorf("the inner wall changed:\n%s", diffLines(inner, now))
	}
	if now := leakSave(t); !maps2Equal(now, host) {
		for k := range host {
			if now[k] != host[k] {
				t.Errorf("the host's %s rules changed:\n%s", k, diffLines(host[k], now[k]))
			}
		}
	}
	if s := leakStates(t)["wan"]; s != "up" {
		t.Errorf("after the attempts, wan is %q", s)
	}
	leakExpectUnreached(t, "after the attempts", "wan", leakURL(theLab.LANServer4, 80), leakURL(theLab.LANServer6, 80))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

const leakHostZones = `version: 1
zones:
  wan:
    allow: [internet]
  hz:
    allow: [host]
  other:
    allow: []
`

// TestLeakHost: a zone without host reaches none of the host's addresses
// (the uplink's, its own gateway, the other zones' gateways, another
// interface's, IPv6 link-local), neither with the host wall nor after a
// flush; a zone with host reaches them all.
func TestLeakHost(t *testing.T) {
	leakBegin(t)
	l := theLab
	// Another interface of the host, with addresses outside lan (as a VPN's
	// or docker0's could be), there before up.
	extra4, extra6 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:77::1")
	leakDummy(t, "leakdum0", netip.PrefixFrom(extra4, 24), netip.PrefixFrom(extra6, 64))

	file := writeZones(t, leakHostZones)
	mustRun(t, "up", "-c", file)
	hostSink := leakListen(t, leakHost, leakListenOpts{UDP: []int{leakHostPort}, TCP: []int{leakHostPort}})
	_, wanGW := leakZoneAddrs(t, "wan")
	_, hzGW := leakZoneAddrs(t, "hz")
	_, otherGW := leakZoneAddrs(t, "other")
	wanLL := leakIfAddrs(t, leakHost, "nsz-wan", true)
	hzLL := leakIfAddrs(t, leakHost, "nsz-hz", true)
	uplinkLL := leakIfAddrs(t, leakHost, l.Uplink, true)
	if len(wanLL) == 0 || len(hzLL) == 0 || len(uplinkLL) == 0 {
		t.Fatalf("link-local addresses missing: nsz-wan %v, nsz-hz %v, %s %v", wanLL, hzLL, l.Uplink, uplinkLL)
	}
	common := []netip.Addr{l.HostAddr4.Addr(), l.HostAddr6.Addr(), extra4, extra6}
	// Addresses written as the zone must use them (link-local: via its eth0).
	targetsOf := func(gws []netip.Addr, ll []netip.Addr, more ...netip.Addr) []string {
		var out []string
		for _, a := range append(append(append(slices.Clone(common), gws...), ll...), more...) {
			hp := leakHP(a, leakHostPort, "eth0")
			out = append(out, "tcp:"+hp, "udp:"+hp)
		}
		return out
	}
	wanTargets := targetsOf(append(append(slices.Clone(wanGW), hzGW...), otherGW...), wanLL, uplinkLL...)
	// A zone with host reaches the host through its own gateway; the other
	// zones' gateways are in zone subnets, closed to it like the zones.
	hzTargets := targetsOf(slices.Clone(hzGW), hzLL)

	phases := []struct {
		name, wan, hz string
		flush         bool
	}{
		{"with the host wall", "wan", "hz", false},
		{"after a flush of the host's rules", "netns:wan", "netns:hz", true},
	}
	for _, ph := range phases {
		if ph.flush {
			leakFlushHost(t)
		}
		conns := hostSink.connCount()
		tok := leakToken("host-wan")
		res := leakSend(t, ph.wan, tok, 2, wanTargets...)
		leakSettle()
		for tg, st := range res {
			if strings.HasPrefix(tg, "tcp:") && st.OK > 0 {
				t.Errorf("%s: wan connected to the host at %s", ph.name, tg)
			}
		}
		if n := hostSink.count(tok); n > 0 || hostSink.connCount() > conns {
			t.Errorf("%s: wan reached the host's services: %d datagrams, %d connections:\n%s", ph.name, n, hostSink.connCount()-conns, hostSink.describe(tok))
		}
		// Positive control: hz (allow [host]) reaches every one of them.
		tok = leakToken("host-hz")
		res = leakSend(t, ph.hz, tok, 2, hzTargets...)
		leakSettle()
		for tg, st := range res {
			if strings.HasPrefix(tg, "tcp:") && st.OK == 0 {
				t.Errorf("%s (positive control): hz cannot connect to the host at %s: %s", ph.name, tg, st.LastErr)
			}
			if strings.HasPrefix(tg, "udp:") && hostSink.count(tok, tg) == 0 {
				t.Errorf("%s (positive control): hz's datagrams to the host at %s do not arrive", ph.name, tg)
			}
		}

	}

	// An address the host gets after up (a VPN, docker0) is one the inner
	// walls were written without. The nftables host wall keeps every zone
	// from it by interface, so nothing opens: the zones stay up (status
	// notes the address for the zones it concerns), exec starts programs,
	// and a reload of the host's iptables rules lets nothing through.
	late4 := netip.MustParseAddr("192.0.2.77")
	hp := netip.AddrPortFrom(late4, leakHostPort).String()
	// wanReachesLate sends from wan to the host's service on late4 and
	// counts what arrived there: datagrams, and connections (accepted by the
	// host, or that the sender saw made).
	wanReachesLate := func(t *testing.T, what string) (datagrams, conns int) {
		t.Helper()
		before := hostSink.connCount()
		tok := leakToken(what)
		res := leakSend(t, "netns:wan", tok, 2, "tcp:"+hp, "udp:"+hp)
		leakSettle()
		return hostSink.count(tok), hostSink.connCount() - before + res["tcp:"+hp].OK
	}
	mustRun(t, "up", "-c", file) // the phases above flushed everything
	leakDummy(t, "leakdum1", netip.PrefixFrom(late4, 32))
	t.Run("address added after up opens nothing", func(t *testing.T) {
		for _, z := range status(t, "-c", file).Zones {
			notes := strings.Join(z.Notes, " ")
			if z.State != "up" {
				t.Errorf("zone %s after a new host address: %s %v", z.Name, z.State, z.Missing)
			}
			// wan may reach the internet, hz the host: for both the new
			// address is another class than the inner wall knows it by.
			if want := z.Name == "wan" || z.Name == "hz"; strings.Contains(notes, late4.String()) != want {
				t.Errorf("zone %s after a new host address: notes %q (want them to name %s: %v)", z.Name, notes, late4, want)
			}
		}
		if r := run(t, nil, "exec", "wan", "--", "true"); r.code != 0 {
			t.Errorf("exec after a new host address that opens nothing: exit %d %s", r.code, r.err)
		}
		leakFlushIPTables(t)
		if n, conns := wanReachesLate(t, "host-late1"); n+conns > 0 {
			t.Errorf("after an iptables reload: wan reached the host's new address %s: %d datagrams, %d connections", late4, n, conns)
		}
	})

	// Does the next up learn the new address? Then, flushed again, wan
	// must stay out and hz get in.
	t.Run("up again, then a flush: address added after up", func(t *testing.T) {
		out := mustRun(t, "up", "-c", file)
		t.Logf("up after the address was added:\n%s", out)
		leakFlushHost(t)
		if n, conns := wanReachesLate(t, "host-late2"); n+conns > 0 {
			t.Errorf("after a new up and a flush: wan reached the host's service on %s: %d datagrams, %d connections", late4, n, conns)
		}
		res := leakSend(t, "netns:hz", leakToken("host-late2-hz"), 2, "tcp:"+hp)
		if res["tcp:"+hp].OK == 0 {
			t.Errorf("after a new up and a flush (positive control): hz [host] cannot connect to %s: %s", hp, res["tcp:"+hp].LastErr)
		}
	})
}

// leakDummy adds an interface to the simulated host (a veth pair with both
// ends in the host: the dummy driver may be missing), removed when the test
// ends.
func leakDummy(t testing.TB, name string, addrs ...netip.Prefix) {
	t.Helper()
	leakHostCmd(t, true, "ip", "link", "add", name, "type", "veth", "peer", "name", name+"p")
	t.Cleanup(func() { runCmd(t, nil, "ip", "link", "del", name) })
	leakHostCmd(t, true, "ip", "link", "set", name+"p", "up")
	for _, a := range addrs {
		args := []string{"addr", "add", a.String(), "dev", name}
		if a.Addr().Is6() {
			args = append(args, "nodad")
		}
		leakHostCmd(t, true, "ip", args...)
	}
	leakHostCmd(t, true, "ip", "link", "set", name, "up")
}

const leakZoneZones = `version: 1
zones:
  a:
    allow: ["zone:b"]
  b:
    allow: []
  c:
    allow: []
`

// TestLeakZoneToZone: a [zone:b] reaches b (TCP, and UDP with its reply);
// b does not reach a; c reaches neither; a does not reach c. With the host
// wall and after a flush.
func TestLeakZoneToZone(t *testing.T) {
	leakBegin(t)
	mustRun(t, "up", "-c", writeZones(t, leakZoneZones))
	sinks := map[string]*leakSink{}
	addrs := map[string][]netip.Addr{}
	for _, z := range []string{"a", "b", "c"} {
		sinks[z] = leakListen(t, z, leakListenOpts{UDP: []int{leakZonePort}, TCP: []int{leakZonePort}, Echo: true})
		addrs[z], _ = leakZoneAddrs(t, z)
	}
	to := func(z string, kinds ...string) []string {
		var out []string
		for _, a := range addrs[z] {
			for _, k := range kinds {
				out = append(out, k+":"+netip.AddrPortFrom(a, leakZonePort).String())
			}
		}
		return out
	}
	for _, flush := range []bool{false, true} {
		phase, via := "with the host wall", ""
		if flush {
			leakFlushHost(t)
			phase, via = "after a flush of the host's rules", "netns:"
		}
		// Positive control: a reaches b, and b's replies come back.
		res := leakSend(t, via+"a", leakToken("z-a"), 2, to("b", "tcp", "udprr")...)
		for tg, st := range res {
			if st.OK == 0 {
				t.Errorf("%s (positive control): a [zone:b] cannot reach b at %s: %s", phase, tg, st.LastErr)
			}
		}
		forbidden := []struct{ from, to string }{{"b", "a"}, {"c", "a"}, {"c", "b"}, {"a", "c"}}
		before := map[string]int{}
		for z, s := range sinks {
			before[z] = s.connCount()
		}
		for _, f := range forbidden {
			tok := leakToken("z-" + f.from + f.to)
			res := leakSend(t, via+f.from, tok, 3, to(f.to, "tcp", "udp", "udprr")...)
			leakSettle()
			for tg, st := range res {
				if !strings.HasPrefix(tg, "udp:") && st.OK > 0 {
					t.Errorf("%s: %s reached %s at %s", phase, f.from, f.to, tg)
				}
			}
			if n := sinks[f.to].count(tok); n > 0 {
				t.Errorf("%s: %d datagrams from %s arrived in %s:\n%s", phase, n, f.from, f.to, sinks[f.to].describe(tok))
			}
		}
		for _, z := range []string{"a", "c"} {
			if n := sinks[z].connCount() - before[z]; n > 0 {
				t.Errorf("%s: %d connections arrived in zone %s, which no zone may reach", phase, n, z)
			}
		}
	}
}

const leakIPv6Zones = `version: 1
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
	leakBegin(t)
	l := theLab
	mustRun(t, "up", "-c", writeZones(t, leakIPv6Zones))
	inet4, inet6 := leakURL(l.InetServer4, 80), leakURL(l.InetServer6, 80)

	// ipv6: false, beside a zone that has it (positive control).
	if r := leakRun(t, "vfour", 10*time.Second, nil, "ip", "-6", "-o", "addr"); r.code != 0 || strings.TrimSpace(r.out) != "" {
		t.Errorf("vfour (ipv6: false) has IPv6 addresses (exit %d):\n%s%s", r.code, r.out, r.err)
	}
	if r := leakRun(t, "vfour", 10*time.Second, nil, "ip", "-6", "route", "show", "table", "all"); strings.TrimSpace(r.out) != "" {
		t.Errorf("vfour (ipv6: false) has IPv6 routes:\n%s", r.out)
	}
	for _, k := range []string{"all", "default", "eth0", "lo"} {
		r := leakRun(t, "vfour", 10*time.Second, nil, "cat", "/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6")
		if strings.TrimSpace(r.out) != "1" {
			t.Errorf("vfour: net.ipv6.conf.%s.disable_ipv6 = %q, want 1 %s", k, strings.TrimSpace(r.out), r.err)
		}
	}
	leakExpectUnreached(t, "ipv6: false", "vfour", inet6)
	leakExpectReached(t, "ipv6: false", "vfour", inet4)
	if r := leakRun(t, "wan", 10*time.Second, nil, "ip", "-6", "-o", "addr", "show", "scope", "global"); !strings.Contains(r.out, "inet6") {
		t.Errorf("positive control: wan has no global IPv6 address:\n%s", r.out)
	}
	leakExpectReached(t, "default ipv6", "wan", inet4, inet6)

	// Router advertisements are not taken.
	for _, k := range []string{"all", "default", "eth0"} {
		r := leakRun(t, "wan", 10*time.Second, nil, "cat", "/proc/sys/net/ipv6/conf/"+k+"/accept_ra")
		if strings.TrimSpace(r.out) != "0" {
			t.Errorf("wan: net.ipv6.conf.%s.accept_ra = %q, want 0", k, strings.TrimSpace(r.out))
		}
	}

	// Neighbour discovery on the zone's own link works: the gateway is
	// resolved after traffic through it, while the gateway itself is refused.
	_, wanGW := leakZoneAddrs(t, "wan")
	wanOwn, _ := leakZoneAddrs(t, "wan")
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
	if r := leakRun(t, "wan", 10*time.Second, nil, "ping", "-6", "-c1", "-W2", gw6.String()); r.code == 0 {
		t.Errorf("wan pings its gateway %s (the host, not allowed):\n%s", gw6, r.out)
	} else if time.Since(start) > 1500*time.Millisecond {
		t.Logf("ping from wan to its gateway was not refused at once (%v): %s", time.Since(start), r.out)
	}
	neigh := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(gw6.String()) + ` .*lladdr \S+.*(REACHABLE|STALE|DELAY|PROBE|PERMANENT)`)
	if r := leakRun(t, "wan", 10*time.Second, nil, "ip", "-6", "neigh", "show", "dev", "eth0"); !neigh.MatchString(r.out) {
		t.Errorf("neighbour discovery: wan has not resolved its gateway %s:\n%s", gw6, r.out)
	}
	hostNeigh := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(own6.String()) + ` .*lladdr \S+`)
	if r := leakRun(t, leakHost, 10*time.Second, nil, "ip", "-6", "neigh", "show", "dev", "nsz-wan"); !hostNeigh.MatchString(r.out) {
		t.Errorf("neighbour discovery: the host has not resolved wan's %s:\n%s", own6, r.out)
	}

	// Link-local: the LAN server's link-local address is not reachable from
	// wan (nor from the host's link-local side of wan's link); from the host
	// it is (positive control).
	lanLL := leakIfAddrs(t, lab.LANNS, "eth0", true)
	if len(lanLL) == 0 {
		t.Fatalf("the LAN server has no link-local address")
	}
	llURL := "http://[" + lanLL[0].String() + "%25eth0]/"
	leakExpectUnreached(t, "link-local", "wan", llURL)
	leakExpectReached(t, "link-local", leakHost, llURL)
	lanSink := leakListen(t, lab.LANNS, leakListenOpts{UDP: []int{leakUDPPort}})
	tok := leakToken("ll-wan")
	llTarget := "udp:" + leakHP(lanLL[0], leakUDPPort, "eth0")
	leakSend(t, "wan", tok, 5, llTarget)
	tokHost := leakToken("ll-host")
	leakSend(t, leakHost, tokHost, 5, llTarget)
	leakSettle()
	if n := lanSink.count(tok); n > 0 {
		t.Errorf("wan's datagrams to the LAN server's link-local address arrived: %d", n)
	}
	if lanSink.count(tokHost) == 0 {
		t.Errorf("positive control: the host's datagrams to the LAN server's link-local address do not arrive")
	}

	// A router advertisement sent into the zones (with the host's rules
	// flushed, so that it gets there) changes nothing in them.
	leakFlushHost(t)
	bad := netip.MustParsePrefix("2001:db8:bad::/64")
	wanTap := leakStartTap(t, "wan", "eth0")
	vfourTap := leakStartTap(t, "vfour", "eth0")
	wm, vm := wanTap.mark(), vfourTap.mark()
	leakSendRA(t, "nsz-wan", bad)
	// Without IPv6 in the zone, the host's end of its link has none
	// either: nothing can send an RA there.
	vfourRA := len(leakIfAddrs(t, leakHost, "nsz-vfour", true)) > 0
	if vfourRA {
		leakSendRA(t, "nsz-vfour", bad)
	}
	time.Sleep(time.Second)
	isRA := func(p leakPkt) bool { return p.proto == 58 && p.icmpType == 134 }
	if wanTap.count(wm, isRA) == 0 || vfourRA && vfourTap.count(vm, isRA) == 0 {
		t.Errorf("positive control: the router advertisements did not reach the zones (wan %d, vfour %d)", wanTap.count(wm, isRA), vfourTap.count(vm, isRA))
	}
	for _, z := range []string{"wan", "vfour"} {
		a := leakRun(t, "netns:"+z, 10*time.Second, nil, "ip", "-6", "addr")
		r := leakRun(t, "netns:"+z, 10*time.Second, nil, "ip", "-6", "route", "show", "table", "all")
		if strings.Contains(a.out, "2001:db8:bad") || strings.Contains(r.out, "2001:db8:bad") || strings.Contains(r.out, "proto ra") {
			t.Errorf("zone %s took a router advertisement:\n%s%s", z, a.out, r.out)
		}
		if z == "vfour" && strings.TrimSpace(a.out) != "" {
			t.Errorf("vfour has IPv6 after a router advertisement:\n%s", a.out)
		}
	}
}

// leakSendRA sends a router advertisement (a default router and an
// autoconfiguration prefix) from the host out of ifname to all nodes.
func leakSendRA(t testing.TB, ifname string, prefix netip.Prefix) {
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
	if ll := leakIfAddrs(t, leakHost, ifname, true); len(ll) > 0 {
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

// TestLeakBroadcastMulticast: broadcasts and multicasts from a zone without
// lan (mDNS, SSDP, LLMNR, NetBIOS, plain broadcast, both families) never
// reach the LAN, with the host wall or without; the same sent from the host
// do (positive control).
func TestLeakBroadcastMulticast(t *testing.T) {
	leakBegin(t)
	mustRun(t, "up", "-c", writeZones(t, defaultZones))
	groups := []netip.Addr{
		netip.MustParseAddr("224.0.0.251"), netip.MustParseAddr("239.255.255.250"),
		netip.MustParseAddr("ff02::1:3"), netip.MustParseAddr("ff02::fb"), netip.MustParseAddr("ff02::c"),
	}
	lanSink := leakListen(t, lab.LANNS, leakListenOpts{UDP: []int{9137, 137, 5353, 1900, 5355}, Groups: groups})
	lanTap := leakStartTap(t, lab.LANNS, "eth0")
	targets := []string{
		"udp:255.255.255.255:9137",
		"udp:255.255.255.255:137", // NetBIOS name service
		"udp:192.168.50.255:137",  // the LAN's own broadcast address
		"udp:224.0.0.251:5353",    // mDNS
		"udp:239.255.255.250:1900",
		"udp:[ff02::1:3%eth0]:5355", // LLMNR
		"udp:[ff02::fb%eth0]:5353",
		"udp:[ff02::c%eth0]:1900",
		"udp:[ff02::1%eth0]:9137", // all nodes
	}
	for _, flush := range []bool{false, true} {
		phase, via := "with the host wall", ""
		if flush {
			leakFlushHost(t)
			phase, via = "after a flush of the host's rules", "netns:"
		}
		mark := lanTap.mark()
		for _, z := range []string{"wan", "offline"} {
			tok := leakToken("bcast-" + z)
			leakSend(t, via+z, tok, 3, targets...)
			leakSettle()
			if n := lanSink.count(tok); n > 0 {
				t.Errorf("%s: %d broadcasts or multicasts from %s arrived in the LAN:\n%s", phase, n, z, lanSink.describe(tok))
			}
			if n := lanTap.count(mark, leakWithToken(tok)); n > 0 {
				t.Errorf("%s: %d frames from %s reached the LAN:\n%s", phase, n, z, lanTap.describe(mark, leakWithToken(tok)))
			}
		}
		tok := leakToken("bcast-host")
		leakSend(t, leakHost, tok, 3, targets...)
		leakSettle()
		for _, tg := range targets {
			if lanSink.count(tok, tg+" ") == 0 {
				t.Errorf("%s (positive control): the host's %s did not arrive in the LAN", phase, tg)
			}
		}
	}
}

var leakOpenRE = regexp.MustCompile(`(\d+)/open/(tcp|udp)`)

// leakNmap runs nmap at where and returns the open ports it reports, as
// "HOST PORT/PROTO".
func leakNmap(t testing.TB, where string, args ...string) []string {
	t.Helper()
	argv := append([]string{"nmap", "-n", "-Pn", "-T4", "--max-rtt-timeout", "300ms", "--max-retries", "1", "--host-timeout", "20s", "-oG", "-"}, args...)
	r := leakRun(t, where, 90*time.Second, nil, argv...)
	if r.code != 0 || !strings.Contains(r.out, "Nmap done") {
		t.Fatalf("nmap at %s %v: exit %d\n%s%s", where, args, r.code, r.out, r.err)
	}
	var open []string
	for _, line := range strings.Split(r.out, "\n") {
		if !strings.HasPrefix(line, "Host: ") || !strings.Contains(line, "Ports: ") {
			continue
		}
		host := strings.Fields(line)[1]
		for _, m := range leakOpenRE.FindAllStringSubmatch(line, -1) {
			open = append(open, host+" "+m[1]+"/"+m[2])
		}
	}
	return open
}

const leakNmapZones = `version: 1
zones:
  wan:
    allow: [internet]
    dns: [203.0.113.10]
  lan:
    allow: [lan]
  hz:
    allow: [host]
`

// TestLeakNmap scans from a zone with a real scanner (TCP connect, raw SYN
// and UDP scans, both families): nothing is open on the LAN or the host from
// wan; the same scans from lan and hz find the services (positive control).
func TestLeakNmap(t *testing.T) {
	leakBegin(t)
	if _, err := exec.LookPath("nmap"); err != nil {
		t.Skip("nmap is not installed (scripts/deps installs it)")
	}
	l := theLab
	// wan's DNS server is on the internet: no DNS opening into the LAN.
	mustRun(t, "up", "-c", writeZones(t, leakNmapZones))
	leakListen(t, leakHost, leakListenOpts{TCP: []int{leakHostPort}, UDP: []int{leakHostPort}})
	_, wanGW := leakZoneAddrs(t, "wan")
	_, hzGW := leakZoneAddrs(t, "hz")
	var hzGW6 netip.Addr
	for _, a := range hzGW {
		if a.Is6() {
			hzGW6 = a
		}
	}
	ports := fmt.Sprintf("22,53,80,443,%d", leakHostPort)
	var v4, v6 []string
	for _, a := range append(append([]netip.Addr{l.HostAddr4.Addr(), l.HostAddr6.Addr(), l.LANServer6, l.Gateway6}, wanGW...), hzGW...) {
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.String())
		}
	}
	scans := [][]string{
		{"-sT", "-p", ports, "192.168.50.0/28"},
		append([]string{"-sT", "-p", ports}, v4...),
		append([]string{"-6", "-sT", "-p", ports}, v6...),
		{"-sS", "-p", ports, l.LANServer4.String(), l.HostAddr4.Addr().String(), wanGW[0].String()},
		{"-6", "-sS", "-p", ports, l.LANServer6.String(), l.HostAddr6.Addr().String()},
		{"-sU", "-p", fmt.Sprintf("53,137,5353,%d", leakHostPort), l.LANServer4.String(), l.HostAddr4.Addr().String()},
		{"-6", "-sU", "-p", fmt.Sprintf("53,137,5353,%d", leakHostPort), l.LANServer6.String(), l.HostAddr6.Addr().String()},
	}
	for _, s := range scans {
		if open := leakNmap(t, "wan", s...); len(open) > 0 {
			t.Errorf("nmap %v from wan finds open: %v", s, open)
		}
	}
	// Positive controls: the scanner works, and finds what is allowed.
	want := []struct {
		zone string
		args []string
		open string
	}{
		{"wan", []string{"-sT", "-p", "80", l.InetServer4.String()}, l.InetServer4.String() + " 80/tcp"},
		{"wan", []string{"-6", "-sT", "-p", "80", l.InetServer6.String()}, l.InetServer6.String() + " 80/tcp"},
		{"lan", []string{"-sT", "-p", ports, "192.168.50.0/28"}, l.LANServer4.String() + " 80/tcp"},
		{"lan", []string{"-6", "-sT", "-p", "80", l.LANServer6.String()}, l.LANServer6.String() + " 80/tcp"},
		{"lan", []string{"-sU", "-p", "53", l.LANServer4.String()}, l.LANServer4.String() + " 53/udp"},
		{"hz", []string{"-sT", "-p", ports, l.HostAddr4.Addr().String()}, l.HostAddr4.Addr().String() + fmt.Sprintf(" %d/tcp", leakHostPort)},
		{"hz", []string{"-6", "-sT", "-p", ports, hzGW6.String()}, hzGW6.String() + fmt.Sprintf(" %d/tcp", leakHostPort)},
	}
	for _, w := range want {
		if open := leakNmap(t, w.zone, w.args...); !slices.Contains(open, w.open) {
			t.Errorf("positive control: nmap %v from %s finds %v, want %s open", w.args, w.zone, open, w.open)
		}
	}
}

// leakForeign is another program's firewall, applied to the host's
// variant (v4, v6 are its iptables commands).
type leakForeign struct {
	name   string
	apply  func(t *testing.T, v4, v6 string)
	marker string // a rule of its own that must survive nszone's up
}

func leakIPT(t testing.TB, bin string, rules ...string) {
	t.Helper()
	for _, r := range rules {
		leakHostCmd(t, true, bin, strings.Fields(r)...)
	}
}

var leakForeigners = []leakForeign{
	{"docker", func(t *testing.T, v4, v6 string) {
		for _, f := range []struct{ bin, net, lo string }{{v4, "172.17.0.0/16", "127.0.0.0/8"}, {v6, "fd00:d0c::/64", "::1/128"}} {
			leakIPT(t, f.bin,
				"-N DOCKER", "-N DOCKER-ISOLATION-STAGE-1", "-N DOCKER-ISOLATION-STAGE-2", "-N DOCKER-USER",
				"-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
				"-A DOCKER-ISOLATION-STAGE-1 -j RETURN",
				"-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
				"-A DOCKER-ISOLATION-STAGE-2 -j RETURN",
				"-A DOCKER-USER -j RETURN",
				"-P FORWARD DROP",
				// dockerd restarting after nszone: its jumps go on top.
				"-I FORWARD 1 -j DOCKER-USER",
				"-I FORWARD 2 -j DOCKER-ISOLATION-STAGE-1",
				"-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
				"-A FORWARD -o docker0 -j DOCKER",
				"-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
				"-A FORWARD -i docker0 -o docker0 -j ACCEPT",
				"-t nat -N DOCKER",
				"-t nat -I PREROUTING 1 -m addrtype --dst-type LOCAL -j DOCKER",
				"-t nat -I OUTPUT 1 ! -d "+f.lo+" -m addrtype --dst-type LOCAL -j DOCKER",
				"-t nat -I POSTROUTING 1 -s "+f.net+" ! -o docker0 -j MASQUERADE",
				"-t nat -A DOCKER -i docker0 -j RETURN",
			)
		}
	}, "-A FORWARD -j DOCKER-USER"},
	{"ufw", func(t *testing.T, v4, v6 string) {
		for _, f := range []struct{ bin, icmp, mdns, ssdp string }{
			{v4, "-p icmp --icmp-type echo-request", "224.0.0.251/32", "239.255.255.250/32"},
			{v6, "-p ipv6-icmp", "ff02::fb/128", "ff02::c/128"},
		} {
			var rules []string
			for _, c := range []string{"before", "after", "user", "reject"} {
				for _, h := range []string{"input", "output", "forward"} {
					rules = append(rules, "-N ufw-"+c+"-"+h)
				}
			}
			rules = append(rules,
				"-P INPUT DROP", "-P FORWARD DROP",
				"-A ufw-before-input -i lo -j ACCEPT",
				"-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
				"-A ufw-before-input -m conntrack --ctstate INVALID -j DROP",
				"-A ufw-before-input "+f.icmp+" -j ACCEPT",
				"-A ufw-before-input -d "+f.mdns+" -p udp --dport 5353 -j ACCEPT",
				"-A ufw-before-input -d "+f.ssdp+" -p udp --dport 1900 -j ACCEPT",
				"-A ufw-before-input -j ufw-user-input",
				"-A ufw-user-input -p tcp --dport 22 -j ACCEPT", // ufw allow ssh
				fmt.Sprintf("-A ufw-user-input -p udp --dport %d -j ACCEPT", leakHostPort),
				"-A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
				"-A ufw-before-forward "+f.icmp+" -j ACCEPT",
				"-A ufw-before-forward -j ufw-user-forward",
				"-A ufw-before-output -o lo -j ACCEPT",
				"-A ufw-before-output -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
				// ufw reloading after nszone: its jumps go on top.
				"-I INPUT 1 -j ufw-before-input", "-I INPUT 2 -j ufw-after-input", "-I INPUT 3 -j ufw-reject-input",
				"-I FORWARD 1 -j ufw-before-forward", "-I FORWARD 2 -j ufw-after-forward", "-I FORWARD 3 -j ufw-reject-forward",
				"-I OUTPUT 1 -j ufw-before-output", "-I OUTPUT 2 -j ufw-after-output",
			)
			leakIPT(t, f.bin, rules...)
		}
	}, "-A INPUT -j ufw-before-input"},
	{"firewalld", func(t *testing.T, v4, v6 string) {
		// A reload: everything flushed and deleted (nszone's chains too),
		// then firewalld's own chains.
		if strings.Contains(v4, "nft") {
			leakHostCmd(t, true, "nft", "flush", "ruleset")
		}
		for _, bin := range []string{v4, v6} {
			for table := range leakIPTTables {
				leakHostCmd(t, false, bin, "-t", table, "-F")
				leakHostCmd(t, false, bin, "-t", table, "-X")
			}
		}
		for _, f := range []struct{ bin, icmp, reject string }{
			{v4, "icmp", "icmp-host-prohibited"},
			{v6, "ipv6-icmp", "icmp6-adm-prohibited"},
		} {
			leakIPT(t, f.bin,
				"-N INPUT_direct", "-N INPUT_ZONES", "-N IN_public", "-N IN_public_allow",
				"-N FORWARD_direct", "-N FORWARD_IN_ZONES", "-N FORWARD_OUT_ZONES", "-N FWDI_public", "-N FWDO_public", "-N OUTPUT_direct",
				"-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT",
				"-A INPUT -i lo -j ACCEPT",
				"-A INPUT -j INPUT_direct",
				"-A INPUT -j INPUT_ZONES",
				"-A INPUT -m conntrack --ctstate INVALID -j DROP",
				"-A INPUT -j REJECT --reject-with "+f.reject,
				"-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT",
				"-A FORWARD -i lo -j ACCEPT",
				"-A FORWARD -j FORWARD_direct",
				"-A FORWARD -j FORWARD_IN_ZONES",
				"-A FORWARD -j FORWARD_OUT_ZONES",
				"-A FORWARD -m conntrack --ctstate INVALID -j DROP",
				"-A FORWARD -j REJECT --reject-with "+f.reject,
				"-A OUTPUT -o lo -j ACCEPT",
				"-A OUTPUT -j OUTPUT_direct",
				"-A INPUT_ZONES -g IN_public",
				"-A IN_public -j IN_public_allow",
				"-A IN_public -p "+f.icmp+" -j ACCEPT",
				"-A IN_public_allow -p tcp --dport 22 -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT",
				fmt.Sprintf("-A IN_public_allow -p udp --dport %d -j ACCEPT", leakHostPort),
				"-A FORWARD_IN_ZONES -g FWDI_public",
				"-A FORWARD_OUT_ZONES -g FWDO_public",
				"-A FWDI_public -p "+f.icmp+" -j ACCEPT",
				"-t nat -N POSTROUTING_ZONES",
				"-t nat -A POSTROUTING -j POSTROUTING_ZONES",
			)
		}
	}, "-A INPUT -j INPUT_ZONES"},
	{"accept-first", func(t *testing.T, v4, v6 string) {
		// An admin's (or a script's) blanket accepts on top.
		for _, bin := range []string{v4, v6} {
			leakIPT(t, bin, "-I INPUT 1 -j ACCEPT", "-I FORWARD 1 -j ACCEPT", "-I OUTPUT 1 -j ACCEPT")
		}
	}, "-A FORWARD -j ACCEPT"},
}

// TestLeakCoexistence: Docker, ufw and firewalld (simulated) load their
// rules after nszone. Until the next up the zones' policies still hold; up
// puts nszone's jumps first again, leaves the others' rules alone, and the
// zones work as their policies say.
func TestLeakCoexistence(t *testing.T) {
	needSandbox(t)
	l := theLab
	for _, fw := range leakForeigners {
		t.Run(fw.name, func(t *testing.T) {
			leakBegin(t)
			file := writeZones(t, defaultZones)
			mustRun(t, "up", "-c", file)
			v4, v6 := leakIPTFor(t)
			lanSink := leakListen(t, lab.LANNS, leakListenOpts{UDP: []int{leakUDPPort}})
			inetSink := leakListen(t, lab.InetNS, leakListenOpts{UDP: []int{leakUDPPort}})
			hostSink := leakListen(t, leakHost, leakListenOpts{UDP: []int{leakHostPort}, TCP: []int{22, leakHostPort}})
			lanTap := leakStartTap(t, lab.LANNS, "eth0")
			_, wanGW := leakZoneAddrs(t, "wan")

			fw.apply(t, v4, v6)

			policyHolds := func(phase string) {
				t.Helper()
				mark := lanTap.mark()
				conns := hostSink.connCount()
				leakExpectUnreached(t, phase, "netns:wan", leakURL(l.LANServer4, 80), leakURL(l.LANServer6, 80))
				tokWan := leakToken("coex-wan")
				targets := udpTargets(leakUDPPort, l.LANServer4, l.LANServer6)
				for _, a := range append([]netip.Addr{l.HostAddr4.Addr(), l.HostAddr6.Addr()}, wanGW...) {
					targets = append(targets, "tcp:"+netip.AddrPortFrom(a, 22).String(), "udp:"+netip.AddrPortFrom(a, leakHostPort).String())
				}
				leakSend(t, "netns:wan", tokWan, 5, targets...)
				tokLan := leakToken("coex-lan")
				leakSend(t, "netns:lan", tokLan, 5, udpTargets(leakUDPPort, l.InetServer4, l.InetServer6)...)
				tokHost := leakToken("coex-host")
				leakSend(t, leakHost, tokHost, 3, udpTargets(leakUDPPort, l.LANServer4, l.LANServer6)...)
				leakSettle()
				if n := lanSink.count(tokWan); n > 0 {
					t.Errorf("%s: %d datagrams from wan arrived at the LAN server", phase, n)
				}
				for _, a := range []netip.Addr{l.LANServer4, l.LANServer6} {
					if n := lanTap.count(mark, leakSYNTo(a, 80)); n > 0 {
						t.Errorf("%s: %d SYNs from wan reached %s:80", phase, n, a)
					}
				}
				if n := hostSink.count(tokWan); n > 0 || hostSink.connCount() > conns {
					t.Errorf("%s: wan reached the host's services: %d datagrams, %d connections", phase, n, hostSink.connCount()-conns)
				}
				if n := inetSink.count(tokLan); n > 0 {
					t.Errorf("%s: %d datagrams from zone lan arrived on the internet", phase, n)
				}
				if lanSink.count(tokHost) == 0 {
					t.Errorf("%s (positive control): the host's datagrams do not reach the LAN server", phase)
				}
			}
			policyHolds("after " + fw.name + ", before up")

			out := mustRun(t, "up", "-c", file)
			t.Logf("up after %s:\n%s", fw.name, out)
			for _, bin := range []string{v4, v6} {
				for _, h := range []struct{ table, chain, target string }{
					{"filter", "FORWARD", "NSZ-FORWARD"}, {"filter", "INPUT", "NSZ-INPUT"},
					{"filter", "OUTPUT", "NSZ-OUTPUT"}, {"nat", "POSTROUTING", "NSZ-POSTROUTING"},
				} {
					r := leakHostCmd(t, true, bin, "-t", h.table, "-S", h.chain)
					first := ""
					for _, line := range strings.Split(r.out, "\n") {
						if strings.HasPrefix(line, "-A ") {
							first = line
							break
						}
					}
					if !strings.Contains(first, "-j "+h.target) {
						t.Errorf("after %s and up: %s -t %s: the first rule of %s is %q, want nszone's jump to %s\n%s", fw.name, bin, h.table, h.chain, first, h.target, r.out)
					}
				}
				if r := leakHostCmd(t, true, bin+"-save"); !strings.Contains(r.out, fw.marker) {
					t.Errorf("after up, %s's rule %q is gone from %s:\n%s", fw.name, fw.marker, bin, r.out)
				}
			}
			// Never both variants.
			other := []string{"iptables-legacy", "ip6tables-legacy"}
			if strings.Contains(v4, "legacy") {
				other = []string{"iptables-nft", "ip6tables-nft"}
			}
			for _, bin := range other {
				if r := leakHostCmd(t, true, bin+"-save"); strings.Contains(r.out, "NSZ-") {
					t.Errorf("nszone uses %s, yet %s holds its chains:\n%s", v4, bin, r.out)
				}
			}
			for z, s := range leakStates(t) {
				if s != "up" {
					t.Errorf("after %s and up, zone %s is %q", fw.name, z, s)
				}
			}
			leakExpectReached(t, "after "+fw.name+" and up", "wan", leakURL(l.InetServer4, 80), leakURL(l.InetServer6, 80))
			leakExpectReached(t, "after "+fw.name+" and up", "lan", leakURL(l.LANServer4, 80), leakURL(l.LANServer6, 80))
			policyHolds("after " + fw.name + " and up")
			if out := mustRun(t, "up", "-c", file); !strings.Contains(out, "nothing to change") {
				t.Errorf("a second up after %s changed something:\n%s", fw.name, out)
			}
		})
	}
}

// TestLeakFailClosed: a prober in wan sends without pause to targets that
// every policy of the test forbids, while up narrows and widens wan's
// policy, down and up remove and remake it, and faults stop up and down
// half-way. Not one forbidden packet may arrive. Positive control: the
// prober's packets to a permitted target arrive all along.
func TestLeakFailClosed(t *testing.T) {
	leakBegin(t)
	l := theLab
	files := []string{
		writeZones(t, "version: 1\nzones:\n  wan:\n    allow: [internet]\n"),
		writeZones(t, "version: 1\nzones:\n  wan:\n    allow: [internet, \"192.168.50.10:80/tcp\"]\n"),
		writeZones(t, "version: 1\nzones:\n  wan:\n    allow: [internet, host]\n"),
	}
	mustRun(t, "up", "-c", files[0])
	lanSink := leakListen(t, lab.LANNS, leakListenOpts{UDP: []int{leakUDPPort}, TCP: []int{leakTCPPort}})
	lanTap := leakStartTap(t, lab.LANNS, "eth0")
	inetSink := leakListen(t, lab.InetNS, leakListenOpts{UDP: []int{leakUDPPort}, TCP: []int{leakTCPPort}})
	inetTap := leakStartTap(t, lab.InetNS, "eth0")

	tok := leakToken("prober")
	forbidden := []string{
		"udp:" + netip.AddrPortFrom(l.LANServer4, leakUDPPort).String(),
		"udp:" + netip.AddrPortFrom(l.LANServer6, leakUDPPort).String(),
		"tcp:" + netip.AddrPortFrom(l.LANServer4, leakTCPPort).String(),
		"tcp:" + netip.AddrPortFrom(l.LANServer6, leakTCPPort).String(),
		"icmp:" + l.LANServer4.String(),
		"icmp:" + l.LANServer6.String(),
	}
	permitted := []string{
		"udp:" + netip.AddrPortFrom(l.InetServer4, leakUDPPort).String(),
		"udp:" + netip.AddrPortFrom(l.InetServer6, leakUDPPort).String(),
		"tcp:" + netip.AddrPortFrom(l.InetServer4, leakTCPPort).String(),
		"icmp:" + l.InetServer4.String(),
	}
	targets := append(slices.Clone(forbidden), permitted...)
	var probers []*leakStream
	prober := func() {
		t.Helper()
		if len(probers) > 0 && probers[len(probers)-1].alive("wan") {
			return
		}
		if len(probers) > 0 {
			probers[len(probers)-1].stop()
		}
		if _, err := os.Stat("/run/netns/wan"); err != nil {
			return // wan is not there: nothing to probe from
		}
		// ip netns exec: a program in the zone, whatever state it is in.
		s := leakStartStream(t, "netns:wan", tok, 2*time.Minute, targets...)
		probers = append(probers, s)
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(s.out.String(), "STREAMING") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	prober()

	var steps []string
	var grew, stepsUp int
	step := func(name string, env []string, args ...string) {
		t.Helper()
		before := inetSink.count(tok)
		r := run(t, env, args...)
		if len(env) == 0 && r.code != 0 {
			t.Fatalf("step %s: nszone %v: exit %d %s%s", name, args, r.code, r.out, r.err)
		}
		prober()
		mid := inetSink.count(tok)
		waited := time.Now()
		wantUp := len(env) == 0 && args[0] == "up"
		for {
			if !wantUp {
				time.Sleep(50 * time.Millisecond)
				break
			}
			time.Sleep(50 * time.Millisecond)
			if inetSink.count(tok) > mid+5 || time.Since(waited) > 3*time.Second {
				break
			}
		}
		after := inetSink.count(tok)
		steps = append(steps, fmt.Sprintf("%s (exit %d): +%d during, +%d in %v after", name, r.code, mid-before, after-mid, time.Since(waited).Round(10*time.Millisecond)))
		if wantUp {
			stepsUp++
			if after > mid {
				grew++
			} else {
				t.Errorf("positive control: after step %s (wan up), none of the prober's datagrams reached the internet in 3s", name)
			}
		}
	}
	for i := 0; i < 20; i++ {
		f := files[i%len(files)]
		if i%4 == 3 {
			step(fmt.Sprintf("%d down wan", i), nil, "down", "-c", f, "wan")
			step(fmt.Sprintf("%d up wan", i), nil, "up", "-c", f, "wan")
			continue
		}
		step(fmt.Sprintf("%d up file %d", i, i%len(files)), nil, "up", "-c", f)
	}

	// Faults half-way through up and down (NSZONE_FAULT), when nszone has them.
	probe := run(t, []string{zones.EnvFault + "=up-records:error"}, "up", "-c", files[1])
	if probe.code == 0 {
		t.Logf("%s has no effect in this nszone: the fault part is skipped", zones.EnvFault)
	} else {
		mustRun(t, "up", "-c", files[0])
		prober()
		for i, point := range zones.FaultPoints {
			for _, mode := range []string{"", ":error"} {
				f := files[(i+1)%len(files)]
				if strings.HasPrefix(point, "down-") {
					step("fault "+point+mode, []string{zones.EnvFault + "=" + point + mode}, "down", "-c", f, "wan")
				} else {
					step("fault "+point+mode, []string{zones.EnvFault + "=" + point + mode}, "up", "-c", f)
				}
				step("converge after "+point+mode, nil, "up", "-c", f)
			}
		}
	}

	var sent []map[string]leakStat
	for _, p := range probers {
		sent = append(sent, p.stop())
	}
	leakSettle()
	t.Logf("%d probers; steps:\n  %s", len(probers), strings.Join(steps, "\n  "))

	toLAN := func(p leakPkt) bool { return p.dst == l.LANServer4 || p.dst == l.LANServer6 }
	if n := lanSink.count(tok); n > 0 {
		t.Errorf("%d forbidden datagrams arrived at the LAN server:\n%s", n, lanSink.describe(tok))
	}
	if n := lanSink.connsFrom(leakTCPPort); n > 0 {
		t.Errorf("%d forbidden connections arrived at the LAN server", n)
	}
	forbiddenPkt := func(p leakPkt) bool {
		return toLAN(p) && (leakWithToken(tok)(p) || p.proto == 6 && p.syn && !p.ack && p.dport == leakTCPPort)
	}
	if n := lanTap.count(0, forbiddenPkt); n > 0 {
		t.Errorf("%d forbidden packets reached the LAN:\n%s", n, lanTap.describe(0, forbiddenPkt))
	}
	// Positive controls.
	if inetSink.count(tok) == 0 || inetSink.connsFrom(leakTCPPort) == 0 {
		t.Errorf("positive control: the prober's permitted datagrams (%d) or connections (%d) never arrived", inetSink.count(tok), inetSink.connsFrom(leakTCPPort))
	}
	echo := func(p leakPkt) bool { return p.proto == 1 && p.icmpType == 8 && leakWithToken(tok)(p) }
	if inetTap.count(0, echo) == 0 {
		t.Errorf("positive control: the prober's permitted pings never arrived")
	}
	total := 0
	for _, s := range sent {
		for tg, st := range s {
			if slices.Contains(forbidden, tg) {
				total += st.Sent
			}
		}
	}
	t.Logf("the probers tried %d forbidden sends; %d/%d up steps saw permitted traffic arrive", total, grew, stepsUp)
	if total < 1000 {
		t.Errorf("positive control: only %d forbidden sends were tried", total)
	}
}

// TestLeakDNS: a zone's name service asks only the zone's resolv.conf: its
// nsswitch.conf says hosts: files dns, exec hides the host's resolver
// sockets, and dns: auto finds the real upstream server behind
// systemd-resolved's 127.0.0.53 stub.
func TestLeakDNS(t *testing.T) {
	leakBegin(t)
	l := theLab
	hostsLine := regexp.MustCompile(`(?m)^hosts:\s+files\s+dns\s*$`)

	// A systemd-resolved host: its directory with the D-Bus/varlink socket
	// and the upstream resolv.conf, and /etc/resolv.conf naming the stub.
	// Mounted in the sandbox's private mount namespace only.
	if fi, err := os.Stat("/run/systemd"); err != nil || !fi.IsDir() {
		t.Skip("no /run/systemd to mount over (the sandbox may only mount over what exists)")
	}
	if err := unix.Mount("nszone-leak", "/run/systemd", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=1m"); err != nil {
		t.Fatalf("mounting a tmpfs over /run/systemd in the sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount("/run/systemd", unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting /run/systemd: %v", err)
		}
	})
	if err := os.MkdirAll("/run/systemd/resolve", 0o755); err != nil {
		t.Fatal(err)
	}
	sock, err := net.Listen("unix", "/run/systemd/resolve/io.systemd.Resolve")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	upstream := fmt.Sprintf("# leak test: what systemd-resolved knows\nnameserver %s\n", l.Nameserver)
	stub := "# leak test: the stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lab.example\n"
	for name, content := range map[string]string{"resolv.conf": upstream, "stub-resolv.conf": stub} {
		if err := os.WriteFile("/run/systemd/resolve/"+name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	target, err := filepath.EvalSymlinks("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("/run/systemd/resolve/stub-resolv.conf", target, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("binding the stub resolv.conf over %s in the sandbox: %v", target, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", target, err)
		}
	})

	mustRun(t, "up", "-c", writeZones(t, defaultZones))
	if dns := strings.Join(statusZone(status(t), "wan").DNS, " "); dns != l.Nameserver.String() {
		t.Errorf("with the 127.0.0.53 stub, wan's DNS is %q, want the upstream %s", dns, l.Nameserver)
	}
	for _, z := range []string{"wan", "lan"} {
		b, err := os.ReadFile("/etc/netns/" + z + "/resolv.conf")
		if err != nil || strings.Contains(string(b), "127.") || !strings.Contains(string(b), "nameserver "+l.Nameserver.String()) {
			t.Errorf("/etc/netns/%s/resolv.conf: %v\n%s", z, err, b)
		}
		for _, where := range []string{z, "netns:" + z} {
			r := leakRun(t, where, 10*time.Second, nil, "cat", "/etc/nsswitch.conf")
			if !hostsLine.MatchString(r.out) {
				t.Errorf("%s sees an nsswitch.conf without hosts: files dns:\n%s%s", where, r.out, r.err)
			}
		}
		// Positive control: names resolve, through the zone's resolv.conf.
		if r := leakRun(t, z, 10*time.Second, nil, "getent", "ahostsv4", l.DNSName); r.code != 0 || !strings.Contains(r.out, l.InetServer4.String()) {
			t.Errorf("zone %s: getent ahostsv4 %s: exit %d %q %s", z, l.DNSName, r.code, r.out, r.err)
		}
	}
	// The host sees the resolver's socket (positive control); exec hides it.
	if r := leakRun(t, leakHost, 10*time.Second, nil, "ls", "-A", "/run/systemd/resolve"); !strings.Contains(r.out, "io.systemd.Resolve") {
		t.Fatalf("positive control: the host does not see the resolver socket: %s%s", r.out, r.err)
	}
	for _, dir := range []string{"/run/systemd/resolve", "/var/run/systemd/resolve"} {
		r := leakRun(t, "wan", 10*time.Second, nil, "sh", "-c", "ls -A "+dir+" 2>/dev/null; test -S "+dir+"/io.systemd.Resolve && echo SOCKET-VISIBLE; exit 0")
		if strings.TrimSpace(r.out) != "" {
			t.Errorf("inside nszone exec, %s shows: %q", dir, r.out)
		}
	}
	if r := leakRun(t, "wan", 10*time.Second, nil, "sh", "-c", "grep -c '/run/systemd/resolve' /proc/self/mountinfo || true"); strings.TrimSpace(r.out) == "0" {
		t.Logf("inside exec, /run/systemd/resolve is not a mount point: hidden some other way?")
	}
}
