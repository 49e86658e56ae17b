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

// Published is one port of the host's forwarded into a zone.
type Published struct {
	// Addr is the host address it is reached on: invalid for every one of
	// the host's, a loopback address for the host alone.
	Addr     netip.Addr
	HostPort uint16
	ZonePort uint16
	Proto    string // "tcp" or "udp"
}

// loopback reports whether only the host itself reaches p.
func (p Published) loopback() bool { return p.Addr.IsValid() && p.Addr.IsLoopback() }

// in reports whether p is reached in family f.
func (p Published) in(f Family) bool {
	return !p.Addr.IsValid() || (f == IPv4) == p.Addr.Is4()
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

	// Addr4 and Addr6 are the zone's own addresses on its link, where its
	// published ports lead (Addr6 invalid without IPv6).
	Addr4, Addr6 netip.Addr
	Publish      []Published
	// Via is the interface the zone's internet traffic must leave by, ""
	// for the uplink.
	Via string
	// NoLog leaves the zone's refused connection attempts out of the
	// kernel's log (log: false); they are still refused and counted.
	NoLog bool

	// For the inner wall, which sees addresses, not interfaces:
	HostAddrs     []netip.Addr   `json:",omitempty"` // the host's own addresses, every zone's gateway included
	ToZoneAddrs   []netip.Addr   `json:",omitempty"` // addresses of the zones this zone may open connections to
	FromZoneAddrs []netip.Addr   `json:",omitempty"` // addresses of the zones that may open connections to this one
	ZoneNets      []netip.Prefix `json:",omitempty"` // every zone's link subnet
}

// Count is a number of packets and of their bytes.
type Count struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// FamilyCounters are what a zone sent of one family: let through (its
// loopback aside) and refused by its inner wall, and how much of what was
// refused the kernel's log got (the rest was over its rate: what nszone
// log shows is then not all there was).
type FamilyCounters struct {
	Allowed Count `json:"allowed"`
	Refused Count `json:"refused"`
	Logged  Count `json:"logged"`
}

// Counters are a zone's counters, both families.
type Counters struct {
	IPv4 FamilyCounters `json:"ipv4"`
	IPv6 FamilyCounters `json:"ipv6"`
}

// Of is the counters of family f.
func (c *Counters) Of(f Family) *FamilyCounters {
	if f == IPv6 {
		return &c.IPv6
	}
	return &c.IPv4
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
	chainPrerouting  = Prefix + "PREROUTING" // nat: published ports, from outside the host
	chainNatOutput   = Prefix + "OUTPUT"     // nat: published ports, from the host itself
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
		if pre, out := buildPublish(p, f); len(pre)+len(out) > 0 {
			t := rs.table(f, "nat")
			t.Hooks["PREROUTING"], t.Hooks["OUTPUT"] = chainPrerouting, chainNatOutput
			t.Chains[chainPrerouting], t.Chains[chainNatOutput] = renderAll(chainPrerouting, pre), renderAll(chainNatOutput, out)
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
	if f == IPv4 && publishesLoopback(p) {
		// route_localnet, which lets the host's own loopback reach a
		// published port, would let a zone reach the host's 127.0.0.0/8;
		// the replies to the loopback's connections come in that way.
		input = append(input, rule{dst: "127.0.0.0/8", in: w, comment: Comment, target: drop})
	}
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
		chains[in] = zoneIn(z, f)
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
	if z.Via != "" {
		return append(append(rs, viaRules(z, prefixesOf(f, lan), f, c)...), rejectAll(c, f)...)
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

// viaRules: the lan through the uplink as the terms say, the internet only
// through the via interface; no other way out, so nothing leaves while it
// is gone.
func viaRules(z Zone, lans []string, f Family, c string) []rule {
	var rs []rule
	for _, d := range lans {
		switch {
		case z.LAN && z.Uplink != "":
			rs = append(rs, rule{dst: d, out: z.Uplink, comment: c, target: accept})
		case !z.LAN:
			rs = append(rs, rejecting(rule{dst: d, comment: c}, f)...)
		}
	}
	if z.Internet {
		rs = append(rs, rule{out: z.Via, comment: c, target: accept})
	}
	return rs
}

// zoneIn lets only replies into the zone, and new connections to its
// published ports; zone-to-zone connections are decided by the source
// zone's chain alone.
func zoneIn(z Zone, f Family) []rule {
	c := Comment + "-" + z.Name
	rs := []rule{{comment: c, matches: replies, target: accept}}
	for _, p := range z.Publish {
		if !p.loopback() {
			rs = append(rs, publishedRule(z, p, f, c)...)
		}
	}
	return append(rs, rule{comment: c, target: drop})
}

// publishedRule accepts new connections to p's port at the zone's address
// of family f (none when the zone has no such address or p is not of f).
func publishedRule(z Zone, p Published, f Family, c string) []rule {
	to := z.Addr4
	if f == IPv6 {
		to = z.Addr6
	}
	if !to.IsValid() || !p.in(f) || !z.enabled(f) {
		return nil
	}
	return []rule{{dst: netip.PrefixFrom(to, to.BitLen()).String(), proto: p.Proto, comment: c,
		matches: []string{"-m", p.Proto, "--dport", fmt.Sprint(p.ZonePort)}, target: accept}}
}

// publishesLoopback reports whether some zone is reached from the host's
// own 127.0.0.0/8: every IPv4 published port is.
func publishesLoopback(p Policy) bool {
	for _, z := range p.Zones {
		for _, pub := range z.Publish {
			if pub.in(IPv4) && z.Addr4.IsValid() {
				return true
			}
		}
	}
	return false
}

// buildPublish is the nat table's forwarding of published ports: from
// outside the host (PREROUTING) to the host's addresses, never its
// loopback, and from the host itself (OUTPUT), loopback included.
func buildPublish(p Policy, f Family) (pre, out []rule) {
	if f == IPv6 {
		// The kernel drops what leaves with a source of ::1.
		out = append(out, rule{src: "::1/128", comment: Comment, target: []string{"-j", "RETURN"}})
	}
	for _, z := range p.Zones {
		c := Comment + "-" + z.Name
		to := z.Addr4
		if f == IPv6 {
			to = z.Addr6
		}
		if !to.IsValid() || !z.enabled(f) {
			continue
		}
		for _, pub := range z.Publish {
			if !pub.in(f) {
				continue
			}
			r := rule{proto: pub.Proto, comment: c,
				matches: []string{"-m", "addrtype", "--dst-type", "LOCAL", "-m", pub.Proto, "--dport", fmt.Sprint(pub.HostPort)},
				target:  []string{"-j", "DNAT", "--to-destination", netip.AddrPortFrom(to, pub.ZonePort).String()}}
			if pub.Addr.IsValid() {
				r.dst, r.matches = netip.PrefixFrom(pub.Addr, pub.Addr.BitLen()).String(), r.matches[4:]
			}
			if !pub.loopback() {
				pre = append(pre, r)
			}
			out = append(out, r)
		}
	}
	if len(pre)+len(out) == 1 { // the ::1 return alone
		return nil, nil
	}
	return pre, out
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
	for _, p := range z.Publish {
		rs = append(rs, publishedRule(z, p, f, c)...)
	}
	return append(rs, rejectAll(c, f)...)
}

// buildNAT masquerades each zone's traffic toward the uplink and its via
// interface, and what the host's loopback sends to its published ports
// (which could not find its way back from a zone with a loopback source).
func buildNAT(p Policy, f Family) []string {
	var out []string
	masq := []string{"-j", "MASQUERADE"}
	for _, z := range p.Zones {
		if !z.enabled(f) {
			continue
		}
		src := z.Net4
		if f == IPv6 {
			src = z.Net6
		}
		if !src.IsValid() {
			continue
		}
		c := Comment + "-" + z.Name
		for _, o := range []string{z.Uplink, z.Via} {
			if o != "" {
				out = append(out, rule{src: src.Masked().String(), out: o, comment: c, target: masq}.render(chainPostrouting))
			}
		}
		if f == IPv4 && publishesLoopback(Policy{Zones: []Zone{z}}) {
			out = append(out, rule{src: "127.0.0.0/8", out: z.HostIf, comment: c, target: masq}.render(chainPostrouting))
		}
	}
	return out
}
