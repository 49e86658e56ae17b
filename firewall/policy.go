package firewall

import (
	"fmt"
	"net/netip"
	"strings"
)

// Pinhole opens one destination (optionally one protocol and port range).
type Pinhole struct {
	Dst    netip.Prefix
	Proto  string // "" (any protocol; tcp and udp when ports are set), "tcp" or "udp"
	PortLo uint16 // 0: any port
	PortHi uint16
}

// Zone is one zone's policy, in the terms the kernel needs.
type Zone struct {
	Name       string
	HostIf     string       // host end of the zone's veth
	Uplink     string       // "" when there is none: internet and lan then stay closed
	Net4, Net6 netip.Prefix // the zone's link subnets (masquerade sources); Net6 invalid without IPv6
	IPv6       bool
	Internet   bool
	LAN        bool
	Host       bool
	ToHostIfs  []string // host ends of the zones this zone may open connections to
	Pinholes   []Pinhole

	// For the inner wall, which sees addresses, not interfaces:
	HostAddrs     []netip.Addr   `json:",omitempty"` // the host's own addresses, every zone's gateway included
	ToZoneAddrs   []netip.Addr   `json:",omitempty"` // addresses of the zones this zone may open connections to
	FromZoneAddrs []netip.Addr   `json:",omitempty"` // addresses of the zones that may open connections to this one
	ZoneNets      []netip.Prefix `json:",omitempty"` // every zone's link subnet
}

// Policy is every zone's policy plus what "lan" means.
type Policy struct {
	LAN        []netip.Prefix
	Zones      []Zone
	IfWildcard string // matches every zone interface ("nsz-+"): interfaces without a policy pass nothing
}

// Chain names. They never change between versions: leftovers of an older
// nszone must stay findable.
const (
	chainForward     = Prefix + "FORWARD"
	chainInput       = Prefix + "INPUT"
	chainOutput      = Prefix + "OUTPUT"
	chainPostrouting = Prefix + "POSTROUTING"
)

// ZoneChains returns the names of the filter chains of zone z.
func ZoneChains(z string) (out, in, host, hostOut string) {
	p := Prefix + z
	return p + "-out", p + "-in", p + "-host", p + "-hout"
}

// rule is one rule before rendering; render puts its parts in the order
// iptables-save prints them, so rendered rules compare equal to the kernel's.
type rule struct {
	src, dst, in, out, proto string
	matches                  []string // after the comment, e.g. "-m", "tcp", "--dport", "53"
	comment                  string
	target                   []string // "-j", "ACCEPT", ...
}

func (r rule) render(chain string) string {
	parts := []string{"-A", chain}
	add := func(flag, v string) {
		if v != "" {
			parts = append(parts, flag, v)
		}
	}
	add("-s", r.src)
	add("-d", r.dst)
	add("-i", r.in)
	add("-o", r.out)
	add("-p", r.proto)
	parts = append(parts, "-m", "comment", "--comment", r.comment)
	parts = append(parts, r.matches...)
	parts = append(parts, r.target...)
	return strings.Join(parts, " ")
}

var (
	accept  = []string{"-j", "ACCEPT"}
	drop    = []string{"-j", "DROP"}
	replies = []string{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"}
	invalid = []string{"-m", "conntrack", "--ctstate", "INVALID"}
)

func jump(c string) []string { return []string{"-j", c} }

func reject(f Family) []string {
	if f == IPv6 {
		return []string{"-j", "REJECT", "--reject-with", "icmp6-adm-prohibited"}
	}
	return []string{"-j", "REJECT", "--reject-with", "icmp-admin-prohibited"}
}

// rejecting turns r into the rules that reject what it matches: TCP gets a
// reset, everything else an ICMP error, so programs fail at once instead of
// timing out (Linux TCP retries after an ICMPv6 error for a second).
func rejecting(r rule, f Family) []rule {
	tcp, other := r, r
	tcp.proto, tcp.target = "tcp", []string{"-j", "REJECT", "--reject-with", "tcp-reset"}
	other.target = reject(f)
	return []rule{tcp, other}
}

// rejectAll ends a chain, rejecting everything.
func rejectAll(comment string, f Family) []rule {
	return rejecting(rule{comment: comment}, f)
}

// neighbourDiscovery lets the zone's own link resolve addresses (IPv6 has no ARP).
func neighbourDiscovery(comment string) []rule {
	var rs []rule
	for _, t := range []string{"135", "136"} {
		rs = append(rs, rule{proto: "ipv6-icmp", comment: comment,
			matches: []string{"-m", "icmp6", "--icmpv6-type", t}, target: accept})
	}
	return rs
}

func familyOf(p netip.Prefix) Family {
	if p.Addr().Is4() {
		return IPv4
	}
	return IPv6
}

func prefixesOf(f Family, ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		if familyOf(p) == f {
			out = append(out, p.Masked().String())
		}
	}
	return out
}

// pinholeRules renders one pinhole for family f (none when it is of the other family).
func pinholeRules(p Pinhole, f Family, comment string) []rule {
	if familyOf(p.Dst) != f {
		return nil
	}
	dst := p.Dst.Masked().String()
	if p.PortLo == 0 {
		return []rule{{dst: dst, proto: p.Proto, comment: comment, target: accept}}
	}
	ports := fmt.Sprint(p.PortLo)
	if p.PortHi > p.PortLo {
		ports = fmt.Sprintf("%d:%d", p.PortLo, p.PortHi)
	}
	protos := []string{"tcp", "udp"}
	if p.Proto != "" {
		protos = []string{p.Proto}
	}
	var rs []rule
	for _, proto := range protos {
		rs = append(rs, rule{dst: dst, proto: proto, comment: comment,
			matches: []string{"-m", proto, "--dport", ports}, target: accept})
	}
	return rs
}

// Build computes the ruleset that enforces p. No zones, no rules: applying
// an empty policy removes everything nszone owns.
func Build(p Policy) Ruleset {
	rs := Ruleset{}
	if len(p.Zones) == 0 {
		return rs
	}
	for _, f := range Families {
		buildFilter(rs.table(f, "filter"), p, f)
		if nat := buildNAT(p, f); len(nat) > 0 {
			t := rs.table(f, "nat")
			t.Hooks["POSTROUTING"] = chainPostrouting
			t.Chains[chainPostrouting] = nat
		}
	}
	return rs
}

func buildFilter(t *Table, p Policy, f Family) {
	t.Hooks["FORWARD"] = chainForward
	t.Hooks["INPUT"] = chainInput
	t.Hooks["OUTPUT"] = chainOutput
	for name, rs := range filterChains(p, f) {
		t.Chains[name] = renderAll(name, rs)
	}
}

// filterChains is the host wall's filter table of family f, chain by chain:
// the iptables chains render it, and the host's nftables tables hold the
// same rules (HostRules).
func filterChains(p Policy, f Family) map[string][]rule {
	chains := map[string][]rule{}
	// Every zone's own traffic is dispatched before any traffic into a
	// zone: the source zone's chain alone decides a zone-to-zone connection
	// (the target's -in chain lets only replies through).
	// Replies on zone interfaces are accepted first, as every zone chain
	// would: a packet of an established flow then costs two rules, however
	// many zones there are. Only new connections walk the dispatch.
	w := p.IfWildcard
	fwd := []rule{
		{in: w, comment: Comment, matches: replies, target: accept},
		{out: w, comment: Comment, matches: replies, target: accept},
	}
	input := []rule{{in: w, comment: Comment, matches: replies, target: accept}}
	output := []rule{{out: w, comment: Comment, matches: replies, target: accept}}
	var fwdIn []rule
	for _, z := range p.Zones {
		out, in, host, hout := ZoneChains(z.Name)
		c := Comment + "-" + z.Name
		fwd = append(fwd, rule{in: z.HostIf, comment: c, target: jump(out)})
		fwdIn = append(fwdIn, rule{out: z.HostIf, comment: c, target: jump(in)})
		input = append(input, rule{in: z.HostIf, comment: c, target: jump(host)})
		output = append(output, rule{out: z.HostIf, comment: c, target: jump(hout)})
		chains[out] = zoneOut(z, p.LAN, p.IfWildcard, f)
		chains[in] = zoneIn(z)
		chains[host] = zoneHost(z, f)
		chains[hout] = zoneHostOut(z, f)
	}
	// Catch-alls: a zone interface whose policy is not (yet, or any more)
	// in place passes nothing.
	fwd = append(append(fwd, fwdIn...), rejecting(rule{in: w, comment: Comment}, f)...)
	fwd = append(fwd, rule{out: w, comment: Comment, target: drop})
	input = append(input, rejecting(rule{in: w, comment: Comment}, f)...)
	output = append(output, rejecting(rule{out: w, comment: Comment}, f)...)
	chains[chainForward] = fwd
	chains[chainInput] = input
	chains[chainOutput] = output
	return chains
}

func renderAll(chain string, rs []rule) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.render(chain)
	}
	return out
}

// enabled reports whether the zone has family f at all.
func (z Zone) enabled(f Family) bool { return f == IPv4 || z.IPv6 }

// zoneOut is what the zone may open through the host (forwarded traffic).
func zoneOut(z Zone, lan []netip.Prefix, wildcard string, f Family) []rule {
	c := Comment + "-" + z.Name
	rs := []rule{
		{comment: c, matches: replies, target: accept},
		{comment: c, matches: invalid, target: drop},
	}
	if !z.enabled(f) {
		return append(rs, rejectAll(c, f)...)
	}
	for _, to := range z.ToHostIfs {
		rs = append(rs, rule{out: to, comment: c, target: accept})
	}
	// Other zones are never reached through a pinhole or lan/internet terms.
	rs = append(rs, rejecting(rule{out: wildcard, comment: c}, f)...)
	for _, ph := range z.Pinholes {
		rs = append(rs, pinholeRules(ph, f, c)...)
	}
	if z.Uplink != "" {
		lans := prefixesOf(f, lan)
		switch {
		case z.LAN && z.Internet:
			rs = append(rs, rule{out: z.Uplink, comment: c, target: accept})
		case z.LAN:
			for _, d := range lans {
				rs = append(rs, rule{dst: d, out: z.Uplink, comment: c, target: accept})
			}
		case z.Internet:
			for _, d := range lans {
				rs = append(rs, rejecting(rule{dst: d, out: z.Uplink, comment: c}, f)...)
			}
			rs = append(rs, rule{out: z.Uplink, comment: c, target: accept})
		}
	}
	return append(rs, rejectAll(c, f)...)
}

// zoneIn lets only replies into the zone: nothing else reaches into a zone.
// Zone-to-zone connections are decided by the source zone's chain alone.
func zoneIn(z Zone) []rule {
	c := Comment + "-" + z.Name
	return []rule{
		{comment: c, matches: replies, target: accept},
		{comment: c, target: drop},
	}
}

// zoneHost is what the zone may open to the host's own addresses.
func zoneHost(z Zone, f Family) []rule {
	c := Comment + "-" + z.Name
	rs := []rule{
		{comment: c, matches: replies, target: accept},
		{comment: c, matches: invalid, target: drop},
	}
	if z.enabled(f) {
		if f == IPv6 {
			rs = append(rs, neighbourDiscovery(c)...)
		}
		if z.Host {
			rs = append(rs, rule{comment: c, target: accept})
		} else {
			// A pinhole (or a DNS server) may be one of the host's addresses.
			for _, ph := range z.Pinholes {
				rs = append(rs, pinholeRules(ph, f, c)...)
			}
		}
	}
	return append(rs, rejectAll(c, f)...)
}

// zoneHostOut keeps the host's own programs out of the zone, but for
// replies and the neighbour discovery the link needs.
func zoneHostOut(z Zone, f Family) []rule {
	c := Comment + "-" + z.Name
	rs := []rule{{comment: c, matches: replies, target: accept}}
	if f == IPv6 && z.IPv6 {
		rs = append(rs, neighbourDiscovery(c)...)
	}
	return append(rs, rejectAll(c, f)...)
}

// buildNAT masquerades each zone's traffic toward the uplink.
func buildNAT(p Policy, f Family) []string {
	var out []string
	for _, z := range p.Zones {
		if z.Uplink == "" || !z.enabled(f) {
			continue
		}
		src := z.Net4
		if f == IPv6 {
			src = z.Net6
		}
		if !src.IsValid() {
			continue
		}
		r := rule{src: src.Masked().String(), out: z.Uplink, comment: Comment + "-" + z.Name,
			target: []string{"-j", "MASQUERADE"}}
		out = append(out, r.render(chainPostrouting))
	}
	return out
}
