package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/nszone/nszone/firewall"
	"golang.org/x/sys/unix"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

var defaultLAN = prefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
	"100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10")

// sampleZones are the zones of firewall's sample policy, with the fields only
// the inner wall uses filled in: every kind of term, pinholes with and
// without protocol and ports, sources and an IPv4-only zone.
func sampleZones() []firewall.Zone {
	host := addrs("10.250.0.1", "10.250.0.5", "10.250.0.9", "10.250.0.13", "192.168.50.2", "fd00:50::2", "fd6e:737a:0:1::1")
	nets := prefixes("10.250.0.0/30", "10.250.0.4/30", "10.250.0.8/30", "10.250.0.12/30",
		"fd6e:737a:0:1::/64", "fd6e:737a:0:2::/64", "fd6e:737a:0:3::/64")
	zs := []firewall.Zone{
		{Name: "wan", IPv6: true, Internet: true,
			Pinholes: []firewall.Pinhole{{Dst: netip.MustParsePrefix("192.168.50.10/32"), PortLo: 53, PortHi: 53}}},
		{Name: "lan", IPv6: true, LAN: true,
			FromZoneAddrs: addrs("10.250.0.14", "fd6e:737a:0:1::2")},
		{Name: "offline", IPv6: true},
		{Name: "web", Internet: true, Host: true, ToZoneAddrs: addrs("10.250.0.6"),
			Pinholes: []firewall.Pinhole{
				{Dst: netip.MustParsePrefix("192.168.50.10/32"), Proto: "tcp", PortLo: 22, PortHi: 22},
				{Dst: netip.MustParsePrefix("192.168.60.0/24")},
				{Dst: netip.MustParsePrefix("2001:db8::1/128"), Proto: "udp", PortLo: 1000, PortHi: 2000},
			}},
		{Name: "both", IPv6: true, Internet: true, LAN: true, Host: true,
			ToZoneAddrs: addrs("10.250.0.2", "fd6e:737a:0:1::2"),
			Pinholes: []firewall.Pinhole{
				{Dst: netip.MustParsePrefix("2001:db8::/32"), Proto: "tcp", PortLo: 8000, PortHi: 8080},
				{Dst: netip.MustParsePrefix("2001:db8:1::/48"), Proto: "udp"},
				{Dst: netip.MustParsePrefix("198.51.100.0/24"), Proto: "udp", PortLo: 5000, PortHi: 5010},
			}},
	}
	for i := range zs {
		zs[i].HostAddrs, zs[i].ZoneNets = host, nets
	}
	return zs
}

// Every form InnerRules produces translates, and the sample covers them all.
func TestTranslateInnerRules(t *testing.T) {
	forms := map[string]bool{}
	sets := 0
	for _, z := range sampleZones() {
		rules := firewall.InnerRules(z, defaultLAN)
		chains, err := compile(innerSpec, rules)
		if err != nil {
			t.Fatalf("zone %s: %v", z.Name, err)
		}
		n := 0
		tags := map[string]bool{}
		for _, c := range chains {
			for i, r := range c.rules {
				if !strings.HasPrefix(r.comment, "nszone-"+z.Name+" #"+fmt.Sprint(i+1)+" ") || tags[r.comment] {
					t.Errorf("zone %s: chain %s rule %d: comment %q", z.Name, c.name, i+1, r.comment)
				}
				tags[r.comment] = true
				if len(r.comment) > maxComment {
					t.Errorf("comment %q too long", r.comment)
				}
				if _, log := r.exprs[len(r.exprs)-1].(*expr.Log); log && c.name == firewall.InnerRefuse {
					continue // logs and goes on to the reject
				}
				if v := r.exprs[len(r.exprs)-1]; !isVerdict(v) {
					t.Errorf("zone %s: rule %d of %s does not end in a verdict: %#v", z.Name, i+1, c.name, v)
				}
			}
			n += len(c.rules)
			// A rule that looks its destination up stands for one per address.
			for _, r := range c.rules {
				for _, e := range r.exprs {
					if l, ok := e.(*expr.Lookup); ok {
						n += len(setOf(c, l.SetName).elems) - 1
						sets++
					}
				}
			}
		}
		want := len(rules[firewall.IPv4]) + len(rules[firewall.IPv6])
		if n != want {
			t.Errorf("zone %s: %d nftables rules (host addresses counted one by one), want %d", z.Name, n, want)
		}
		for _, f := range firewall.Families {
			for _, r := range rules[f] {
				forms[form(r)] = true
			}
		}
	}
	for _, want := range []string{
		"-o lo -j ACCEPT", "-i lo -j ACCEPT",
		"-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "-m conntrack --ctstate INVALID -j DROP",
		"-p ipv6-icmp -m icmp6 --icmpv6-type N -j ACCEPT",
		"-d P -p tcp -m tcp --dport N -j ACCEPT", "-d P -p udp -m udp --dport N -j ACCEPT",
		"-d P -p udp -m udp --dport N:M -j ACCEPT", "-d P -p tcp -m tcp --dport N:M -j ACCEPT",
		"-d P -p udp -j ACCEPT", "-d P -j ACCEPT", "-s P -j ACCEPT",
		"-d P -j NSZ-REFUSE", "-j NSZ-REFUSE",
		"-p tcp -j REJECT --reject-with tcp-reset",
		"-j REJECT --reject-with icmp-admin-prohibited", "-j REJECT --reject-with icmp6-adm-prohibited",
		"-j ACCEPT", "-j DROP",
	} {
		if !forms[want] {
			t.Errorf("the sample lacks the form %q; it has %v", want, forms)
		}
	}
	if sets == 0 {
		t.Error("no rule looks its destination up in a set")
	}
}

func setOf(c wantChain, name string) wantSet {
	for _, ws := range c.sets {
		if ws.name == name {
			return ws
		}
	}
	return wantSet{}
}

// The host's addresses, one rule or a TCP reset and a reject each, become
// one rule per pattern that looks them up in a set, and nothing else does.
func TestAddrRun(t *testing.T) {
	acc := func(d string) firewall.Rule {
		return firewall.Rule{Chain: "NSZ-OUT", Dst: d, Target: []string{"-j", "ACCEPT"}, Comment: "nszone-z"}
	}
	rej := func(d string) []firewall.Rule {
		tcp, other := acc(d), acc(d)
		tcp.Proto, tcp.Target = "tcp", []string{"-j", "REJECT", "--reject-with", "tcp-reset"}
		other.Target = []string{"-j", "REJECT", "--reject-with", "icmp-admin-prohibited"}
		return []firewall.Rule{tcp, other}
	}
	cat := slices.Concat[[]firewall.Rule]
	one := func(rs ...firewall.Rule) []firewall.Rule { return rs }
	for _, tc := range []struct {
		name         string
		rs           []firewall.Rule
		group, addrs int
	}{
		{"accepts", one(acc("10.0.0.1/32"), acc("10.0.0.2/32"), acc("10.0.0.0/8")), 1, 2},
		{"one accept", one(acc("10.0.0.1/32"), acc("10.0.0.0/8")), 1, 1},
		{"rejections", cat(rej("10.0.0.1/32"), rej("10.0.0.2/32"), rej("10.0.0.3/32"), one(acc("10.0.0.4/32"))), 2, 3},
		{"one rejection", cat(rej("fd00::1/128"), rej("fd00::/64")), 2, 1},
		{"a prefix", one(acc("10.0.0.0/8"), acc("10.0.0.1/32")), 1, 0},
		{"no destination", one(acc(""), acc("10.0.0.1/32")), 1, 0},
		{"twice the same", one(acc("10.0.0.1/32"), acc("10.0.0.1/32")), 1, 1},
		{"another target", one(acc("10.0.0.1/32"), rej("10.0.0.2/32")[1]), 1, 1},
		{"the pattern broken", cat(rej("10.0.0.1/32"), one(rej("10.0.0.2/32")[0], acc("10.0.0.2/32"))), 2, 1},
	} {
		if g, n := addrRun(tc.rs); g != tc.group || n != tc.addrs {
			t.Errorf("%s: addrRun = %d, %d; want %d, %d", tc.name, g, n, tc.group, tc.addrs)
		}
	}
}

func isVerdict(e expr.Any) bool {
	switch e.(type) {
	case *expr.Verdict, *expr.Reject:
		return true
	}
	return false
}

// form abstracts a rule's addresses and numbers away.
func form(r firewall.Rule) string {
	var parts []string
	add := func(flag, v string) {
		if v != "" {
			parts = append(parts, flag, v)
		}
	}
	if r.Src != "" {
		add("-s", "P")
	}
	if r.Dst != "" {
		add("-d", "P")
	}
	add("-i", r.In)
	add("-o", r.Out)
	add("-p", r.Proto)
	for i, m := range r.Matches {
		if i > 0 && (r.Matches[i-1] == "--dport" || r.Matches[i-1] == "--icmpv6-type") {
			if strings.Contains(m, ":") {
				m = "N:M"
			} else {
				m = "N"
			}
		}
		parts = append(parts, m)
	}
	return strings.Join(append(parts, r.Target...), " ")
}

func meta(k expr.MetaKey) *expr.Meta { return &expr.Meta{Key: k, Register: 1} }

// The expressions are those nft itself writes for the same rule (see `nft
// --debug=netlink`), so that `nft list ruleset` shows them in its own terms.
func TestTranslateExpressions(t *testing.T) {
	v4 := []expr.Any{meta(expr.MetaKeyNFPROTO), cmpEq([]byte{unix.NFPROTO_IPV4})}
	v6 := []expr.Any{meta(expr.MetaKeyNFPROTO), cmpEq([]byte{unix.NFPROTO_IPV6})}
	cat := func(parts ...[]expr.Any) []expr.Any {
		var out []expr.Any
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	cases := []struct {
		f    firewall.Family
		r    firewall.Rule
		want []expr.Any
	}{
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Out: "lo", Target: []string{"-j", "ACCEPT"}}, cat(v4, []expr.Any{
			meta(expr.MetaKeyOIFNAME), cmpEq([]byte("lo\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")),
			&expr.Verdict{Kind: expr.VerdictAccept}})},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Dst: "10.0.0.0/8", Proto: "udp",
			Matches: []string{"-m", "udp", "--dport", "1000:2000"},
			Target:  []string{"-j", "REJECT", "--reject-with", "icmp-admin-prohibited"}}, cat(v4, []expr.Any{
			meta(expr.MetaKeyL4PROTO), cmpEq([]byte{17}),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
			cmpEq([]byte{10, 0, 0, 0}),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: []byte{0x03, 0xe8}},
			&expr.Cmp{Op: expr.CmpOpLte, Register: 1, Data: []byte{0x07, 0xd0}},
			&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 13}})},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-IN", Src: "10.250.0.14/32", Matches: []string{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"},
			Target: []string{"-j", "DROP"}}, cat(v4, []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			cmpEq([]byte{10, 250, 0, 14}),
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: nativeU32(6), Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
			&expr.Verdict{Kind: expr.VerdictDrop}})},
		{firewall.IPv6, firewall.Rule{Chain: "NSZ-OUT", Proto: "ipv6-icmp", Matches: []string{"-m", "icmp6", "--icmpv6-type", "135"},
			Target: []string{"-j", "ACCEPT"}}, cat(v6, []expr.Any{
			meta(expr.MetaKeyL4PROTO), cmpEq([]byte{58}),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			cmpEq([]byte{135}),
			&expr.Verdict{Kind: expr.VerdictAccept}})},
		{firewall.IPv6, firewall.Rule{Chain: "NSZ-OUT", Dst: "fe80::/10", Proto: "tcp", Matches: []string{"-m", "tcp", "--dport", "22"},
			Target: []string{"-j", "REJECT", "--reject-with", "tcp-reset"}}, cat(v6, []expr.Any{
			meta(expr.MetaKeyL4PROTO), cmpEq([]byte{6}),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: append([]byte{0xff, 0xc0}, make([]byte, 14)...), Xor: make([]byte, 16)},
			cmpEq(netip.MustParseAddr("fe80::").AsSlice()),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			cmpEq([]byte{0, 22}),
			&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}})},
		{firewall.IPv6, firewall.Rule{Chain: "NSZ-IN", In: "nsz-+", Src: "::/0",
			Target: []string{"-j", "REJECT", "--reject-with", "icmp6-adm-prohibited"}}, cat(v6, []expr.Any{
			meta(expr.MetaKeyIIFNAME), cmpEq([]byte("nsz-")),
			&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 1}})},
	}
	for _, tc := range cases {
		got, err := translate(inet, tc.f, tc.r, "")
		if err != nil {
			t.Errorf("%s %q: %v", tc.f, tc.r.Text(), err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %q:\n got %s\nwant %s", tc.f, tc.r.Text(), exprText(got), exprText(tc.want))
		}
	}
}

func nativeU32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func exprText(es []expr.Any) string {
	var parts []string
	for _, e := range es {
		parts = append(parts, fmt.Sprintf("%T%+v", e, e))
	}
	return strings.Join(parts, " ")
}

// Forms outside the closed set are errors, never skipped.
func TestTranslateRefusesUnknownForms(t *testing.T) {
	acc := []string{"-j", "ACCEPT"}
	cases := []struct {
		f firewall.Family
		r firewall.Rule
	}{
		{firewall.IPv4, firewall.Rule{Chain: "FORWARD", Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Target: []string{"-j", "RETURN"}}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Target: []string{"-j", "NSZ-wan-out"}}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Target: []string{"-j", "REJECT"}}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Target: []string{"-j", "REJECT", "--reject-with", "icmp-port-unreachable"}}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Target: []string{"-j", "REJECT", "--reject-with", "icmp6-adm-prohibited"}}},
		{firewall.IPv6, firewall.Rule{Chain: "NSZ-OUT", Target: []string{"-j", "REJECT", "--reject-with", "icmp-admin-prohibited"}}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Target: []string{"-j", "REJECT", "--reject-with", "tcp-reset"}}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Target: []string{"-j", "MASQUERADE"}}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Target: nil}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Proto: "sctp", Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Proto: "ipv6-icmp", Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Proto: "ipv6-icmp", Matches: []string{"-m", "icmp6", "--icmpv6-type", "135"}, Target: acc}},
		{firewall.IPv6, firewall.Rule{Chain: "NSZ-OUT", Matches: []string{"-m", "icmp6", "--icmpv6-type", "135"}, Target: acc}},
		{firewall.IPv6, firewall.Rule{Chain: "NSZ-OUT", Proto: "ipv6-icmp", Matches: []string{"-m", "icmp6", "--icmpv6-type", "neighbour-solicitation"}, Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Matches: []string{"-m", "state", "--state", "NEW"}, Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Matches: []string{"-m", "conntrack", "--ctstate", "SNAT"}, Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Matches: []string{"-m", "conntrack", "!", "--ctstate", "NEW"}, Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Matches: []string{"-m", "comment", "--comment", "x"}, Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Proto: "tcp", Matches: []string{"-m", "tcp", "--sport", "22"}, Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Proto: "udp", Matches: []string{"-m", "tcp", "--dport", "22"}, Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Matches: []string{"-m", "tcp", "--dport", "22"}, Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Proto: "tcp", Matches: []string{"-m", "tcp", "--dport", "2000:1000"}, Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Proto: "tcp", Matches: []string{"-m", "tcp", "--dport", "ssh"}, Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Proto: "tcp", Matches: []string{"-m", "tcp"}, Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Dst: "10.0.0.1/8", Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Dst: "10.0.0.1", Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Dst: "fd00::1/128", Target: acc}},
		{firewall.IPv6, firewall.Rule{Chain: "NSZ-OUT", Src: "10.0.0.1/32", Target: acc}},
		{firewall.IPv6, firewall.Rule{Chain: "NSZ-OUT", Src: "!fd00::/8", Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Out: "a-very-long-interface-name", Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", In: "+", Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", In: "!eth0", Target: acc}},
		{firewall.IPv4, firewall.Rule{Chain: "NSZ-OUT", Comment: strings.Repeat("x", 250), Target: acc}},
	}
	for _, tc := range cases {
		if _, err := compile(innerSpec, map[firewall.Family][]firewall.Rule{tc.f: {tc.r}}); err == nil {
			t.Errorf("%s %q (%+v): no error", tc.f, tc.r.Text(), tc.r)
		}
	}
	if _, err := compile(innerSpec, map[firewall.Family][]firewall.Rule{5: nil}); err == nil {
		t.Error("family 5: no error")
	}
}

// A rule's tag changes with anything its iptables text says, and with its family.
func TestTagsFollowTheRule(t *testing.T) {
	r := firewall.Rule{Chain: "NSZ-OUT", Dst: "10.0.0.0/8", Comment: "nszone-a", Target: []string{"-j", "ACCEPT"}}
	base := ruleHash(firewall.IPv4, r)
	r2 := r
	r2.Target = []string{"-j", "DROP"}
	r3 := r
	r3.Dst = "10.0.0.0/9"
	for _, h := range []string{ruleHash(firewall.IPv4, r2), ruleHash(firewall.IPv4, r3), ruleHash(firewall.IPv6, r)} {
		if h == base {
			t.Errorf("tag %s did not change", h)
		}
	}
}

// gaps names what differs, in words, and nothing when all is in place.
func TestGaps(t *testing.T) {
	z := sampleZones()[0]
	want, err := compile(innerSpec, firewall.InnerRules(z, defaultLAN))
	if err != nil {
		t.Fatal(err)
	}

	if g := wanted(want, false).gaps(innerSpec, want); len(g) != 0 {
		t.Fatalf("the wall as written: %q", g)
	}
	out, in, refuse := len(want[0].rules), len(want[1].rules), len(want[2].rules)
	drop := uint32(nftables.ChainPolicyDrop)
	cases := []struct {
		name   string
		damage func(s *state)
		want   []string
	}{
		{"no table", func(s *state) { *s = state{} }, []string{"inner wall: table inet nszone missing"}},
		{"flushed", func(s *state) { s.comments = map[string][]string{} }, []string{
			fmt.Sprintf("inner wall: chain output has 0 rules, want %d", out),
			fmt.Sprintf("inner wall: chain input has 0 rules, want %d", in),
			fmt.Sprintf("inner wall: chain NSZ-REFUSE has 0 rules, want %d", refuse)}},
		{"dormant", func(s *state) { s.flags = unix.NFT_TABLE_F_DORMANT }, []string{"inner wall: table inet nszone is dormant"}},
		{"chain gone", func(s *state) { s.chains = slices.Delete(s.chains, 1, 2) }, []string{"inner wall: chain input missing"}},
		{"priority", func(s *state) { s.chains[0].priority = -10 }, []string{
			"inner wall: chain output is not type filter hook output priority filter policy accept"}},
		{"policy", func(s *state) { s.chains[0].policy = &drop }, []string{
			"inner wall: chain output is not type filter hook output priority filter policy accept"}},
		{"regular chain", func(s *state) { s.chains[1].hook, s.chains[1].typ = nil, "" }, []string{
			"inner wall: chain input is not type filter hook input priority filter policy accept"}},
		{"extra chain", func(s *state) { s.chains = append(s.chains, chain{name: "zz"}) }, []string{
			"inner wall: chain zz is not nszone's"}},
		{"one rule changed", func(s *state) { s.comments["output"][4] = "x" }, []string{"inner wall: rule 5 of chain output differs"}},
		{"swapped", func(s *state) {
			c := s.comments["output"]
			c[1], c[2] = c[2], c[1]
		}, []string{"inner wall: rule 2 of chain output differs", "inner wall: rule 3 of chain output differs"}},
		{"set gone", func(s *state) { delete(s.sets, "output_1") }, []string{"inner wall: set output_1 missing"}},
		{"set of another kind", func(s *state) {
			st := s.sets["output_1"]
			st.flags = unix.NFT_SET_INTERVAL
			s.sets["output_1"] = st
		}, []string{"inner wall: set output_1 is not a plain set of type ipv4_addr"}},
		{"element gone", func(s *state) { delete(s.sets["output_1"].elems, string(want[0].sets[0].elems[0])) }, []string{
			"inner wall: set output_1 lacks " + elemText(want[0].sets[0].elems[0])}},
		{"element added", func(s *state) { s.sets["output_1"].elems["\xc0\x00\x02\x63"] = true }, []string{
			"inner wall: set output_1 holds 192.0.2.99, not nszone's"}},
		{"extra set", func(s *state) { s.sets["sneak"] = set{} }, []string{"inner wall: set sneak is not nszone's"}},
		{"many changed", func(s *state) {
			for i := range s.comments["input"] {
				s.comments["input"][i] = ""
			}
		}, []string{"inner wall: rule 1 of chain input differs", "inner wall: rule 2 of chain input differs", "inner wall: rule 3 of chain input differs",
			fmt.Sprintf("inner wall: %d more rules of chain input differ", in-3)}},
	}
	for _, tc := range cases {
		s := wanted(want, false)
		tc.damage(s)
		if got := s.gaps(innerSpec, want); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: gaps %q, want %q", tc.name, got, tc.want)
		}
	}
}
