package e2e

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nszone/nszone/e2e/internal/sender"
	"github.com/nszone/nszone/e2e/internal/sink"
)

const hostZones = `version: 1
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
	guardHost(t)
	l := theLab
	// Another interface of the host, with addresses outside lan (as a VPN's
	// or docker0's could be), there before up.
	extra4, extra6 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:77::1")
	addHostLink(t, "leakdum0", netip.PrefixFrom(extra4, 24), netip.PrefixFrom(extra6, 64))

	file := writeZones(t, hostZones)
	mustRun(t, "up", "-c", file)
	hostSink := sink.Listen(t, atHost, sink.Options{UDP: []int{portHost}, TCP: []int{portHost}})
	_, wanGW := zoneAddrs(t, "wan")
	_, hzGW := zoneAddrs(t, "hz")
	_, otherGW := zoneAddrs(t, "other")
	wanLL := ifAddrs(t, atHost, "nsz-wan", true)
	hzLL := ifAddrs(t, atHost, "nsz-hz", true)
	uplinkLL := ifAddrs(t, atHost, l.Uplink, true)
	if len(wanLL) == 0 || len(hzLL) == 0 || len(uplinkLL) == 0 {
		t.Fatalf("link-local addresses missing: nsz-wan %v, nsz-hz %v, %s %v", wanLL, hzLL, l.Uplink, uplinkLL)
	}
	common := []netip.Addr{l.HostAddr4.Addr(), l.HostAddr6.Addr(), extra4, extra6}
	// Addresses written as the zone must use them (link-local: via its eth0).
	targetsOf := func(gws []netip.Addr, ll []netip.Addr, more ...netip.Addr) []string {
		var out []string
		for _, a := range append(append(append(slices.Clone(common), gws...), ll...), more...) {
			hp := targetAddr(a, portHost, "eth0")
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
			flushHost(t)
		}
		conns := hostSink.Conns()
		tok := sender.Token("host-wan")
		res := send(t, ph.wan, tok, 2, wanTargets...)
		waitInFlight()
		for tg, st := range res {
			if strings.HasPrefix(tg, "tcp:") && st.OK > 0 {
				t.Errorf("%s: wan connected to the host at %s", ph.name, tg)
			}
		}
		if n := hostSink.Count(tok); n > 0 || hostSink.Conns() > conns {
			t.Errorf("%s: wan reached the host's services: %d datagrams, %d connections:\n%s", ph.name, n, hostSink.Conns()-conns, hostSink.Describe(tok))
		}
		// Positive control: hz (allow [host]) reaches every one of them.
		tok = sender.Token("host-hz")
		res = send(t, ph.hz, tok, 2, hzTargets...)
		waitInFlight()
		for tg, st := range res {
			if strings.HasPrefix(tg, "tcp:") && st.OK == 0 {
				t.Errorf("%s (positive control): hz cannot connect to the host at %s: %s", ph.name, tg, st.LastErr)
			}
			if strings.HasPrefix(tg, "udp:") && hostSink.Count(tok, tg) == 0 {
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
	hp := netip.AddrPortFrom(late4, portHost).String()
	// wanReachesLate sends from wan to the host's service on late4 and
	// counts what arrived there: datagrams, and connections (accepted by the
	// host, or that the sender saw made).
	wanReachesLate := func(t *testing.T, what string) (datagrams, conns int) {
		t.Helper()
		before := hostSink.Conns()
		tok := sender.Token(what)
		res := send(t, "netns:wan", tok, 2, "tcp:"+hp, "udp:"+hp)
		waitInFlight()
		return hostSink.Count(tok), hostSink.Conns() - before + res["tcp:"+hp].OK
	}
	mustRun(t, "up", "-c", file) // the phases above flushed everything
	addHostLink(t, "leakdum1", netip.PrefixFrom(late4, 32))
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
		flushIPTables(t)
		if n, conns := wanReachesLate(t, "host-late1"); n+conns > 0 {
			t.Errorf("after an iptables reload: wan reached the host's new address %s: %d datagrams, %d connections", late4, n, conns)
		}
	})

	// Does the next up learn the new address? Then, flushed again, wan
	// must stay out and hz get in.
	t.Run("up again, then a flush: address added after up", func(t *testing.T) {
		out := mustRun(t, "up", "-c", file)
		t.Logf("up after the address was added:\n%s", out)
		flushHost(t)
		if n, conns := wanReachesLate(t, "host-late2"); n+conns > 0 {
			t.Errorf("after a new up and a flush: wan reached the host's service on %s: %d datagrams, %d connections", late4, n, conns)
		}
		res := send(t, "netns:hz", sender.Token("host-late2-hz"), 2, "tcp:"+hp)
		if res["tcp:"+hp].OK == 0 {
			t.Errorf("after a new up and a flush (positive control): hz [host] cannot connect to %s: %s", hp, res["tcp:"+hp].LastErr)
		}
	})
}

// addHostLink adds an interface to the simulated host (a veth pair with both
// ends in the host: the dummy driver may be missing), removed when the test
// ends.
func addHostLink(t testing.TB, name string, addrs ...netip.Prefix) {
	t.Helper()
	hostCmd(t, true, "ip", "link", "add", name, "type", "veth", "peer", "name", name+"p")
	t.Cleanup(func() { runCmd(t, nil, "ip", "link", "del", name) })
	hostCmd(t, true, "ip", "link", "set", name+"p", "up")
	for _, a := range addrs {
		args := []string{"addr", "add", a.String(), "dev", name}
		if a.Addr().Is6() {
			args = append(args, "nodad")
		}
		hostCmd(t, true, "ip", args...)
	}
	hostCmd(t, true, "ip", "link", "set", name, "up")
}
