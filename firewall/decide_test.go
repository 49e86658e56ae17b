package firewall

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// packet is a zone's new connection as the walls see it: the interfaces
// the kernel's routing gave it, and its addresses, protocol and port.
type packet struct {
	in, out  string
	src, dst netip.Addr
	proto    string // "tcp", "udp", or "" for another protocol
	port     uint16
}

// evalChain walks chain's rules over pkt as the kernel would, following
// jumps, and returns the target that decides it ("" when the chain ends
// without one). The rules are read from their iptables text.
func evalChain(t *testing.T, rules []Rule, chain string, pkt packet) string {
	t.Helper()
	found := false
	for _, r := range rules {
		if r.Chain != chain {
			continue
		}
		found = true
		if !ruleMatches(t, r, pkt) {
			continue
		}
		if len(r.Target) < 2 || r.Target[0] != "-j" {
			t.Fatalf("rule %q: target %v", r.Text(), r.Target)
		}
		switch target := r.Target[1]; target {
		case "ACCEPT", "DROP", "REJECT":
			return target
		case "NFLOG":
			continue // logs, decides nothing
		default:
			if v := evalChain(t, rules, target, pkt); v != "" {
				return v
			}
		}
	}
	if !found {
		t.Fatalf("no chain %s", chain)
	}
	return ""
}

func ruleMatches(t *testing.T, r Rule, pkt packet) bool {
	iface := func(want, got string) bool {
		if w, ok := strings.CutSuffix(want, "+"); ok {
			return got != "" && strings.HasPrefix(got, w)
		}
		return want == "" || want == got
	}
	addr := func(want string, got netip.Addr) bool {
		return want == "" || netip.MustParsePrefix(want).Contains(got)
	}
	if !iface(r.In, pkt.in) || !iface(r.Out, pkt.out) || !addr(r.Src, pkt.src) || !addr(r.Dst, pkt.dst) ||
		r.Proto != "" && r.Proto != pkt.proto {
		return false
	}
	for i := 0; i < len(r.Matches); i++ {
		switch m := r.Matches[i]; m {
		case "-m":
			i++ // the module; its options follow
		case "--ctstate":
			i++
			if !slices.Contains(strings.Split(r.Matches[i], ","), "NEW") {
				return false
			}
		case "--limit", "--limit-burst":
			i++ // limits the log alone
		case "--dport":
			i++
			lo, hi, _ := strings.Cut(r.Matches[i], ":")
			if hi == "" {
				hi = lo
			}
			l, err1 := strconv.Atoi(lo)
			h, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				t.Fatalf("rule %q: port %q", r.Text(), r.Matches[i])
			}
			if int(pkt.port) < l || int(pkt.port) > h {
				return false
			}
		default:
			t.Fatalf("rule %q: the evaluator does not know %s", r.Text(), m)
		}
	}
	return true
}

// wallsAccept is what the rules built for p say of zone z's new connection
// to d: through its inner wall's OUTPUT, then the host's INPUT (a local
// address) or FORWARD, routed as Decide documents it.
func wallsAccept(t *testing.T, p Policy, z Zone, local []netip.Addr, d Dest) bool {
	a := d.Addr
	f := familyOfAddr(a)
	src := z.Net4.Masked().Addr().Next().Next()
	if f == IPv6 {
		src = z.Net6.Masked().Addr().Next().Next()
	}
	own := z.Net4.Contains(a) || z.Net6.IsValid() && z.Net6.Contains(a)
	pkt := packet{out: "eth0", src: src, dst: a, proto: d.Proto, port: d.Port}
	if a.IsLoopback() || own && !slices.Contains(local, a) {
		pkt.out = "lo" // the zone's own address goes over its loopback
	}
	if evalChain(t, InnerRules(z, p.LAN)[f], innerOut, pkt) != "ACCEPT" {
		return false
	}
	if _, ok := in(a, localcast); ok || pkt.out == "lo" {
		return true // never leaves the zone's link
	}
	pkt.in, pkt.out = z.HostIf, ""
	if slices.Contains(local, a) || a.Is6() && a.IsLinkLocalUnicast() {
		return evalChain(t, HostRules(p)[f], chainInput, pkt) == "ACCEPT"
	}
	pkt.out = z.Uplink
	if pkt.out == "" {
		pkt.out = "eth9" // no default route: some other interface
	}
	for _, o := range p.Zones {
		if o.Net4.Contains(a) || o.Net6.IsValid() && o.Net6.Contains(a) {
			pkt.out = o.HostIf
		}
	}
	return evalChain(t, HostRules(p)[f], chainForward, pkt) == "ACCEPT"
}

// decidePolicy is the sample policy with more kinds of term, its inner
// walls completed as nszone up completes them, and the host's addresses.
func decidePolicy(uplink string) (Policy, []netip.Addr) {
	p := samplePolicy()
	pfx := netip.MustParsePrefix
	p.Zones = append(p.Zones,
		Zone{Name: "both", HostIf: "nsz-both", IPv6: true, Internet: true, LAN: true,
			Net4: pfx("10.250.0.16/30"), Net6: pfx("fd6e:737a:0:5::/64"),
			Pinholes: []Pinhole{
				{Dst: pfx("10.250.0.5/32")},                                // lan's gateway
				{Dst: pfx("10.250.0.2/32"), Proto: "tcp", PortLo: 80},      // wan's address; PortHi 0 is one port
				{Dst: pfx("fd00:50::2/128"), Proto: "udp", PortLo: 53},     // a host address
				{Dst: pfx("10.250.99.0/24"), PortLo: 7000, PortHi: 7001}}}, // the pool, no zone's
		Zone{Name: "hostonly", HostIf: "nsz-hostonly", IPv6: true, Host: true, ToHostIfs: []string{"nsz-web", "nsz-both"},
			Net4: pfx("10.250.0.20/30"), Net6: pfx("fd6e:737a:0:6::/64"),
			Pinholes: []Pinhole{{Dst: pfx("0.0.0.0/0"), Proto: "udp", PortLo: 53, PortHi: 53}}},
	)
	local := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"), netip.MustParseAddr("192.168.50.2"),
		netip.MustParseAddr("fd00:50::2"), netip.MustParseAddr("fe80::1")}
	ranges := mustPrefixes("10.250.0.0/16", "fd6e:737a::/48")
	var inner []netip.Addr // the host's addresses as inner walls list them
	for _, a := range local {
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() {
			inner = append(inner, a)
		}
	}
	zoneAddrs := func(z Zone) (gw, own []netip.Addr) {
		for _, n := range []netip.Prefix{z.Net4, z.Net6} {
			if n.IsValid() && (n == z.Net4 || z.IPv6) {
				gw = append(gw, n.Masked().Addr().Next())
				own = append(own, n.Masked().Addr().Next().Next())
			}
		}
		return gw, own
	}
	for i := range p.Zones {
		z := &p.Zones[i]
		z.Uplink = uplink
		gw, _ := zoneAddrs(*z)
		local = append(local, gw...)
		z.HostAddrs, z.ZoneNets = append(slices.Clone(inner), gw...), ranges
		for _, o := range p.Zones {
			_, own := zoneAddrs(o)
			if slices.Contains(z.ToHostIfs, o.HostIf) {
				z.ToZoneAddrs = append(z.ToZoneAddrs, own...)
			}
			if slices.Contains(o.ToHostIfs, z.HostIf) {
				z.FromZoneAddrs = append(z.FromZoneAddrs, own...)
			}
		}
	}
	return p, local
}

// TestDecideAgreesWithRules: for every zone of the policies below, every
// kind of destination, port and protocol, Decide says what the rules Build
// and BuildInner make say, read from their text.
func TestDecideAgreesWithRules(t *testing.T) {
	addrs := []string{
		"203.0.113.10", "2001:db8:113::10", "2001:db8::1", // internet, a pinhole's
		"192.168.50.10", "192.168.60.5", "fd00:50::10", "10.1.2.3", "169.254.1.1", // lan
		"192.168.50.2", "fd00:50::2", "fe80::1", "fe80::a", "192.168.50.3", // the host's; the last only "now"
		"10.250.0.1", "10.250.0.5", "fd6e:737a:0:2::1", "10.250.0.13", // zones' gateways
		"10.250.0.2", "10.250.0.6", "fd6e:737a:0:2::2", "10.250.0.14", "10.250.0.18", "10.250.0.7", // zones' addresses, and no one's
		"10.250.99.9", "fd6e:737a:0:99::9", // the pool, outside every zone
		"224.0.0.251", "255.255.255.255", "ff02::fb", "127.0.0.1", "::1", // link and loopback
	}
	type port struct {
		proto string
		port  uint16
	}
	ports := []port{{"tcp", 22}, {"tcp", 53}, {"udp", 53}, {"tcp", 80}, {"udp", 1500}, {"udp", 2001}, {"tcp", 7001}, {"", 0}}
	for _, uplink := range []string{"eth0", ""} {
		p, local := decidePolicy(uplink)
		for _, now := range [][]netip.Addr{local, append(slices.Clone(local), netip.MustParseAddr("192.168.50.3"))} {
			for _, z := range p.Zones {
				for _, s := range addrs {
					for _, pt := range ports {
						d := Dest{Addr: netip.MustParseAddr(s), Proto: pt.proto, Port: pt.port}
						v, err := p.Decide(z.Name, now, d)
						if err != nil {
							t.Fatal(err)
						}
						want := wallsAccept(t, p, z, now, d)
						if v.Allow != want {
							t.Errorf("uplink %q, zone %s to %s %s/%d: Decide %+v, the rules say allow=%v",
								uplink, z.Name, s, pt.proto, pt.port, v, want)
						}
						if v.Allow == (v.Term == "") && v.Class != ClassSelf {
							t.Errorf("zone %s to %s %s/%d: %+v: a term exactly when allowed", z.Name, s, pt.proto, pt.port, v)
						}
					}
				}
			}
		}
	}
}

// TestDecideExplains: the class, its reason and the deciding term, as
// nszone explain will show them.
func TestDecideExplains(t *testing.T) {
	p, local := decidePolicy("eth0")
	a := netip.MustParseAddr
	cases := []struct {
		zone  string
		d     Dest
		allow bool
		class string
		term  string
		why   string // a part of the reason
	}{
		{"lan", Dest{a("192.168.50.10"), "tcp", 80}, true, "lan", "lan", "in lan by 192.168.0.0/16"},
		{"wan", Dest{a("192.168.50.10"), "tcp", 80}, false, "lan", "", "lan is not in the allow list"},
		{"wan", Dest{a("192.168.50.10"), "udp", 53}, true, "lan", "192.168.50.10:53", "in lan"},
		{"wan", Dest{a("203.0.113.10"), "tcp", 443}, true, "internet", "internet", "outside lan"},
		{"web", Dest{a("192.168.50.2"), "udp", 9}, true, "host", "host", "a host address"},
		{"web", Dest{a("10.250.0.13"), "tcp", 9}, true, "host", "host", "the zone's own gateway"},
		{"web", Dest{a("fe80::1%eth0"), "tcp", 9}, false, "host", "", "the zone has no IPv6"},
		{"web", Dest{a("10.250.0.6"), "tcp", 9}, true, "zone:lan", "zone:lan", "zone lan's link 10.250.0.4/30"},
		{"web", Dest{a("10.250.0.2"), "tcp", 9}, false, "zone:wan", "", "only through zone:NAME"},
		{"web", Dest{a("192.168.60.7"), "", 0}, true, "lan", "192.168.60.0/24", "in lan"},
		{"web", Dest{a("192.168.50.10"), "tcp", 22}, true, "lan", "192.168.50.10:22/tcp", "in lan"},
		{"both", Dest{a("10.250.0.5"), "tcp", 1}, true, "zone:lan", "10.250.0.5", "zone lan's gateway"},
		{"both", Dest{a("10.250.0.2"), "tcp", 80}, false, "zone:wan", "", "only through zone:NAME"},
		{"both", Dest{a("fd00:50::2"), "udp", 53}, true, "host", "[fd00:50::2]:53/udp", "a host address"},
		{"both", Dest{a("10.250.99.9"), "tcp", 1}, false, "lan", "", "in the zones' range 10.250.0.0/16"},
		{"hostonly", Dest{a("10.250.0.5"), "tcp", 1}, false, "zone:lan", "", "zone lan's gateway"},
		{"hostonly", Dest{a("10.250.0.18"), "udp", 1}, true, "zone:both", "zone:both", "zone both's link"},
		{"hostonly", Dest{a("192.168.50.2"), "udp", 53}, true, "host", "host", "a host address"},
		{"offline", Dest{a("ff02::fb"), "udp", 5353}, false, "lan", "", "multicast"},
		{"offline", Dest{a("127.0.0.1"), "tcp", 1}, true, "self", "", "loopback"},
	}
	for _, c := range cases {
		v, err := p.Decide(c.zone, local, c.d)
		if err != nil {
			t.Fatal(err)
		}
		if v.Allow != c.allow || v.Class != c.class || v.Term != c.term || !strings.Contains(v.Reason, c.why) {
			t.Errorf("zone %s to %v: %+v, want allow=%v class %s term %q reason with %q", c.zone, c.d, v, c.allow, c.class, c.term, c.why)
		}
	}
	if _, err := p.Decide("nosuch", local, Dest{Addr: a("192.0.2.1")}); err == nil {
		t.Error("a zone without a policy decided")
	}
	p, local = decidePolicy("")
	if v, _ := p.Decide("wan", local, Dest{a("203.0.113.10"), "tcp", 443}); v.Allow || !strings.Contains(v.Reason, "no uplink") {
		t.Errorf("internet without an uplink: %+v", v)
	}
}

// InnerVerdict agrees with the inner wall's own rules for addresses of
// every class, in every zone.
func TestInnerVerdictAgreesWithRules(t *testing.T) {
	p, _ := decidePolicy("eth0")
	for _, z := range p.Zones {
		for _, s := range []string{"192.0.2.7", "2001:db8:77::7", "192.168.50.77", "fd00:50::77", "172.18.0.1", "10.250.0.2",
			"10.250.0.6", "fd6e:737a:7a6f::1", "fe80::1", "224.0.0.251", "ff02::1", "192.168.60.5", "10.250.99.9"} {
			a := netip.MustParseAddr(s)
			pkt := packet{out: "eth0", dst: a}
			want := evalChain(t, InnerRules(z, p.LAN)[familyOfAddr(a)], innerOut, pkt) == "ACCEPT"
			if got := InnerVerdict(z, p.LAN, a); got != want {
				t.Errorf("zone %s, %s: InnerVerdict %v, the rules say %v", z.Name, a, got, want)
			}
		}
	}
}
