package firewall

import (
	"fmt"
	"net/netip"
)

// The inner wall: the same policy enforced a second time by iptables inside
// the zone's own network namespace, on its INPUT and OUTPUT. It holds when
// the host's rules are flushed (a firewalld reload, Docker restarting, an
// admin's iptables -F), and a program in the zone cannot change it without
// root on the host. It works on addresses, as it cannot see host interfaces.
//
//	zone OUTPUT ──► NSZ-OUT   loopback, replies, neighbour discovery, the
//	                          allow terms; everything else to NSZ-REFUSE
//	                NSZ-REFUSE  log the attempt (rate-limited), then reject it
//	zone INPUT  ──► NSZ-IN    loopback, replies, neighbour discovery, new
//	                          connections only from zones allowed to make them
const (
	innerOut = Prefix + "OUT"
	innerIn  = Prefix + "IN"
	// InnerRefuse is the inner wall's chain that logs and rejects.
	InnerRefuse = Prefix + "REFUSE"
)

// Refused connection attempts go to the kernel's log as NFLOG packets of
// group LogGroup, in the zone's own namespace, each its first LogSnaplen
// bytes (the headers); a reader there (nszone watch, nszone log -f) names
// them. The kernel passes at most LogRate a second after a burst of
// LogBurst, per zone and family, so a flood of refused packets costs a
// reader little and cannot fill anything. Only the log is limited: every
// attempt is refused.
const (
	LogGroup   = 28275 // "ns"
	LogSnaplen = 128
	LogRate    = 20
	LogBurst   = 50
)

// LogPrefix is the prefix of zone's logged packets.
func LogPrefix(zone string) string { return Comment + "-" + zone }

// refuse sends what r matches to NSZ-REFUSE.
func refuse(r rule) rule {
	r.target = jump(InnerRefuse)
	return r
}

// refuseRules are NSZ-REFUSE: the log (unless the zone says log: false),
// then a TCP reset or an ICMP error, as the host wall rejects.
func refuseRules(z Zone, f Family) []rule {
	c := Comment + "-" + z.Name
	var rs []rule
	if !z.NoLog {
		rs = append(rs, rule{comment: c,
			matches: []string{"-m", "limit", "--limit", fmt.Sprintf("%d/sec", LogRate), "--limit-burst", fmt.Sprint(LogBurst)},
			target: []string{"-j", "NFLOG", "--nflog-prefix", LogPrefix(z.Name), "--nflog-group", fmt.Sprint(LogGroup),
				"--nflog-size", fmt.Sprint(LogSnaplen)}})
	}
	return append(rs, rejectAll(c, f)...)
}

// InnerTables are the tables the inner wall uses.
var InnerTables = []Key{{IPv4, "filter"}, {IPv6, "filter"}}

// Multicast and broadcast count as lan: a zone without lan sends neither.
var localcast = []netip.Prefix{
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("ff00::/8"),
}

// IPv6 link-local destinations seen from a zone can only be the host's end
// of its link: they count as host.
var linkLocal = []netip.Prefix{netip.MustParsePrefix("fe80::/10")}

// BuildInner computes zone z's inner wall; lan is what "lan" means.
func BuildInner(z Zone, lan []netip.Prefix) Ruleset {
	rs := Ruleset{}
	for _, f := range Families {
		t := rs.table(f, "filter")
		t.Hooks["OUTPUT"] = innerOut
		t.Hooks["INPUT"] = innerIn
		t.Chains[innerOut] = renderAll(innerOut, innerOutRules(z, lan, f))
		t.Chains[innerIn] = renderAll(innerIn, innerInRules(z, f))
		t.Chains[InnerRefuse] = renderAll(InnerRefuse, refuseRules(z, f))
	}
	return rs
}

// addrRules accepts (allow) or refuses traffic to (or, with src, from) addrs.
func addrRules(addrs []netip.Addr, f Family, c string, src, allow bool) []rule {
	var ps []netip.Prefix
	for _, a := range addrs {
		ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
	}
	return prefixRules(ps, f, c, src, allow)
}

// prefixRules accepts (allow) or refuses traffic to (or, with src, from)
// the prefixes of family f.
func prefixRules(ps []netip.Prefix, f Family, c string, src, allow bool) []rule {
	var rs []rule
	for _, p := range prefixesOf(f, ps) {
		r := rule{dst: p, comment: c, target: accept}
		if src {
			r = rule{src: p, comment: c, target: accept}
		}
		if allow {
			rs = append(rs, r)
		} else {
			rs = append(rs, refuse(r))
		}
	}
	return rs
}

func innerOutRules(z Zone, lan []netip.Prefix, f Family) []rule {
	c := Comment + "-" + z.Name
	rs := []rule{
		{out: "lo", comment: c, target: accept},
		{comment: c, matches: replies, target: accept},
		{comment: c, matches: invalid, target: drop},
	}
	if !z.enabled(f) {
		return append(rs, refuse(rule{comment: c}))
	}
	if f == IPv6 {
		rs = append(rs, neighbourDiscovery(c)...)
	}
	for _, ph := range z.Pinholes {
		rs = append(rs, pinholeRules(ph, f, c)...)
	}
	rs = append(rs, addrRules(z.HostAddrs, f, c, false, z.Host)...)
	rs = append(rs, prefixRules(linkLocal, f, c, false, z.Host)...)
	rs = append(rs, addrRules(z.ToZoneAddrs, f, c, false, true)...)
	rs = append(rs, prefixRules(z.ZoneNets, f, c, false, false)...)
	lans := append(append([]netip.Prefix{}, lan...), localcast...)
	switch {
	case z.LAN && z.Internet:
		rs = append(rs, rule{comment: c, target: accept})
	case z.LAN:
		rs = append(rs, prefixRules(lans, f, c, false, true)...)
	case z.Internet:
		rs = append(rs, prefixRules(lans, f, c, false, false)...)
		rs = append(rs, rule{comment: c, target: accept})
	}
	return append(rs, refuse(rule{comment: c}))
}

func innerInRules(z Zone, f Family) []rule {
	c := Comment + "-" + z.Name
	rs := []rule{
		{in: "lo", comment: c, target: accept},
		{comment: c, matches: replies, target: accept},
		{comment: c, matches: invalid, target: drop},
	}
	if z.enabled(f) {
		if f == IPv6 {
			rs = append(rs, neighbourDiscovery(c)...)
		}
		rs = append(rs, addrRules(z.FromZoneAddrs, f, c, true, true)...)
		for _, p := range z.Publish {
			if p.in(f) {
				rs = append(rs, rule{proto: p.Proto, comment: c,
					matches: []string{"-m", p.Proto, "--dport", fmt.Sprint(p.ZonePort)}, target: accept})
			}
		}
	}
	return append(rs, rule{comment: c, target: drop})
}

// Rule is one rule in structured form, for a backend that does not speak
// iptables (the inner wall's nftables backend).
type Rule struct {
	Chain                    string
	Src, Dst, In, Out, Proto string   // "" = any
	Matches                  []string // iptables match arguments: conntrack --ctstate, icmp6 --icmpv6-type, tcp/udp --dport
	Target                   []string // -j ACCEPT, -j DROP, -j REJECT --reject-with KIND
	Comment                  string
}

// Text renders r in `iptables -S` form.
func (r Rule) Text() string {
	return rule{src: r.Src, dst: r.Dst, in: r.In, out: r.Out, proto: r.Proto, matches: r.Matches,
		comment: r.Comment, target: r.Target}.render(r.Chain)
}

// InnerChains are the inner wall's base chains and the built-in chains
// that jump to them; NSZ-REFUSE is a chain of its own, which NSZ-OUT jumps to.
var InnerChains = map[string]string{innerOut: "OUTPUT", innerIn: "INPUT"}

// InnerRules returns z's inner wall as structured rules per family, in
// chain order (NSZ-OUT, NSZ-IN, NSZ-REFUSE); BuildInner renders the same rules.
func InnerRules(z Zone, lan []netip.Prefix) map[Family][]Rule {
	out := map[Family][]Rule{}
	for _, f := range Families {
		for _, c := range []struct {
			name  string
			rules []rule
		}{{innerOut, innerOutRules(z, lan, f)}, {innerIn, innerInRules(z, f)}, {InnerRefuse, refuseRules(z, f)}} {
			for _, r := range c.rules {
				out[f] = append(out[f], r.structured(c.name))
			}
		}
	}
	return out
}

// InnerVerdict says whether z's inner wall alone lets a new connection to
// a through, of a protocol no pinhole names a port of: status asks it of a
// host address the wall does not list yet. Decide walks the same wall.
func InnerVerdict(z Zone, lan []netip.Prefix, a netip.Addr) bool {
	return z.inner(lan, Dest{Addr: a.Unmap().WithZone("")}, true).accept
}
