package firewall

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

var defaultLAN = mustPrefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
	"100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10")

// samplePolicy covers every kind of term: internet, lan, host, zone:, pinholes
// with and without protocol and ports, a DNS opening and an IPv4-only zone.
func samplePolicy() Policy {
	return Policy{
		LAN:        defaultLAN,
		IfWildcard: "nsz-+",
		Zones: []Zone{
			{Name: "wan", HostIf: "nsz-wan", Uplink: "eth0", IPv6: true, Internet: true,
				Net4: netip.MustParsePrefix("10.250.0.0/30"), Net6: netip.MustParsePrefix("fd6e:737a:0:1::/64"),
				Pinholes: []Pinhole{
					{Dst: netip.MustParsePrefix("192.168.50.10/32"), PortLo: 53, PortHi: 53},
				}},
			{Name: "lan", HostIf: "nsz-lan", Uplink: "eth0", IPv6: true, LAN: true,
				Net4: netip.MustParsePrefix("10.250.0.4/30"), Net6: netip.MustParsePrefix("fd6e:737a:0:2::/64")},
			{Name: "offline", HostIf: "nsz-offline", Uplink: "eth0", IPv6: true,
				Net4: netip.MustParsePrefix("10.250.0.8/30"), Net6: netip.MustParsePrefix("fd6e:737a:0:3::/64")},
			{Name: "web", HostIf: "nsz-web", Uplink: "eth0", IPv6: false, Internet: true, Host: true,
				ToHostIfs: []string{"nsz-lan"},
				Net4:      netip.MustParsePrefix("10.250.0.12/30"),
				Pinholes: []Pinhole{
					{Dst: netip.MustParsePrefix("192.168.50.10/32"), Proto: "tcp", PortLo: 22, PortHi: 22},
					{Dst: netip.MustParsePrefix("192.168.60.0/24")},
					{Dst: netip.MustParsePrefix("2001:db8::1/128"), Proto: "udp", PortLo: 1000, PortHi: 2000},
				}},
		},
	}
}

func TestBuildGolden(t *testing.T) {
	got := Build(samplePolicy()).String()
	path := filepath.Join("..", "testdata", "firewall", "sample.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("Build differs from %s (run go test ./firewall -update and review the diff):\n%s", path, got)
	}
}

// The inner wall of the sample's web zone: host allowed, zone:lan, pinholes, IPv4 only.
func TestBuildInnerGolden(t *testing.T) {
	p := samplePolicy()
	var got strings.Builder
	for _, i := range []int{0, 1, 3} {
		z := p.Zones[i]
		z.HostAddrs = []netip.Addr{netip.MustParseAddr("10.250.0.1"), netip.MustParseAddr("192.168.50.2"), netip.MustParseAddr("fd00:50::2")}
		z.ZoneNets = mustPrefixes("10.250.0.0/30", "10.250.0.4/30", "fd6e:737a:0:1::/64")
		if z.Name == "web" {
			z.ToZoneAddrs = []netip.Addr{netip.MustParseAddr("10.250.0.6")}
		}
		if z.Name == "lan" {
			z.FromZoneAddrs = []netip.Addr{netip.MustParseAddr("10.250.0.14")}
		}
		got.WriteString("## zone " + z.Name + "\n" + BuildInner(z, p.LAN).String())
	}
	path := filepath.Join("..", "testdata", "firewall", "inner.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("BuildInner differs from %s (run go test ./firewall -update and review the diff):\n%s", path, got.String())
	}
}

func TestBuildEmptyPolicyOwnsNothing(t *testing.T) {
	if rs := Build(Policy{IfWildcard: "nsz-+"}); len(rs) != 0 {
		t.Fatalf("empty policy built %d tables", len(rs))
	}
}

func TestPinholeRendering(t *testing.T) {
	c := "nszone-z"
	cases := []struct {
		p    Pinhole
		f    Family
		want []string
	}{
		{Pinhole{Dst: netip.MustParsePrefix("192.0.2.1/32")}, IPv4,
			[]string{"-A X -d 192.0.2.1/32 -m comment --comment nszone-z -j ACCEPT"}},
		{Pinhole{Dst: netip.MustParsePrefix("192.0.2.1/32")}, IPv6, nil},
		{Pinhole{Dst: netip.MustParsePrefix("192.0.2.0/24"), PortLo: 53, PortHi: 53}, IPv4, []string{
			"-A X -d 192.0.2.0/24 -p tcp -m comment --comment nszone-z -m tcp --dport 53 -j ACCEPT",
			"-A X -d 192.0.2.0/24 -p udp -m comment --comment nszone-z -m udp --dport 53 -j ACCEPT"}},
		{Pinhole{Dst: netip.MustParsePrefix("2001:db8::/64"), Proto: "udp", PortLo: 10, PortHi: 20}, IPv6, []string{
			"-A X -d 2001:db8::/64 -p udp -m comment --comment nszone-z -m udp --dport 10:20 -j ACCEPT"}},
	}
	for _, tc := range cases {
		var got []string
		for _, r := range pinholeRules(tc.p, tc.f, c) {
			got = append(got, r.render("X"))
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%+v %s:\n got %q\nwant %q", tc.p, tc.f, got, tc.want)
		}
	}
}

// commentsOf is what nft.HostComments would read of a ruleset.
func commentsOf(rs Ruleset) map[Key]map[string][]string {
	out := map[Key]map[string][]string{}
	for k, t := range rs {
		c := map[string][]string{}
		for b := range t.Hooks {
			c[b] = []string{Comment}
		}
		for name, rules := range t.Chains {
			for _, r := range rules {
				_, after, _ := strings.Cut(r, "--comment ")
				comment, _, _ := strings.Cut(after, " ")
				c[name] = append(c[name], comment)
			}
		}
		out[k] = c
	}
	return out
}

func TestMissingByCount(t *testing.T) {
	want := Build(samplePolicy())
	if gaps := MissingByCount(commentsOf(want), want, "wan"); len(gaps) != 0 {
		t.Fatalf("intact ruleset: %v", gaps)
	}
	damaged := commentsOf(want)
	damaged[Key{IPv4, "filter"}]["NSZ-wan-out"] = nil                                             // flushed
	damaged[Key{IPv6, "filter"}]["FORWARD"] = []string{"", Comment}                               // a jump above ours
	damaged[Key{IPv6, "filter"}]["NSZ-FORWARD"] = damaged[Key{IPv6, "filter"}]["NSZ-FORWARD"][1:] // a dispatch rule gone
	got := strings.Join(MissingByCount(damaged, want, "wan"), "\n")
	for _, w := range []string{"ipv4 filter: chain NSZ-wan-out", "ipv6 filter: jump from FORWARD", "ipv6 filter: rules in NSZ-FORWARD"} {
		if !strings.Contains(got, w) {
			t.Errorf("gaps lack %q:\n%s", w, got)
		}
	}
	if gaps := MissingByCount(damaged, want, "lan"); strings.Contains(strings.Join(gaps, " "), "NSZ-wan-out") {
		t.Errorf("zone lan blamed for wan's chain: %v", gaps)
	}
}

// manyZones is a policy of n internet zones, as scripts/bench brings up.
func manyZones(n int) Policy {
	p := Policy{LAN: defaultLAN, IfWildcard: "nsz-+"}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("z%03d", i)
		p.Zones = append(p.Zones, Zone{Name: name, HostIf: "nsz-" + name, Uplink: "eth0", IPv6: true, Internet: true,
			Net4: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250, byte(i * 4 / 256), byte(i * 4 % 256)}), 30),
			Net6: netip.MustParsePrefix(fmt.Sprintf("fd6e:737a:7a6f:%x::/64", i))})
	}
	return p
}

// BenchmarkBuild200 is rule generation for 200 zones.
func BenchmarkBuild200(b *testing.B) {
	p := manyZones(200)
	for b.Loop() {
		Build(p)
	}
}

// clone copies a ruleset deeply enough to damage it.
func clone(rs Ruleset) Ruleset {
	out := Ruleset{}
	for k, t := range rs {
		c := &Table{Chains: map[string][]string{}, Hooks: maps.Clone(t.Hooks), Above: maps.Clone(t.Above)}
		for name, rules := range t.Chains {
			c.Chains[name] = slices.Clone(rules)
		}
		out[k] = c
	}
	return out
}

func TestMissing(t *testing.T) {
	want := Build(samplePolicy())
	for _, z := range samplePolicy().Zones {
		if gaps := Missing(clone(want), want, z.Name); len(gaps) != 0 {
			t.Fatalf("intact ruleset, zone %s: %v", z.Name, gaps)
		}
	}
	cur := clone(want)
	cur[Key{IPv4, "filter"}].Chains["NSZ-wan-out"] = nil // flushed
	v6 := cur[Key{IPv6, "filter"}]
	delete(v6.Hooks, "FORWARD") // a jump gone
	v6.Chains["NSZ-FORWARD"] = slices.DeleteFunc(v6.Chains["NSZ-FORWARD"], func(r string) bool {
		return strings.Contains(r, "--comment "+Comment+"-wan ") // wan's dispatch rules gone
	})
	v6.Chains["NSZ-lan-in"] = append(v6.Chains["NSZ-lan-in"], "-A NSZ-lan-in -j ACCEPT") // one added
	delete(cur, Key{IPv6, "nat"})                                                        // a table gone
	c := NewChecker(cur, want)
	got := strings.Join(c.Missing("wan"), "\n")
	for _, w := range []string{"ipv4 filter: chain NSZ-wan-out", "ipv6 filter: jump from FORWARD", "ipv6 filter: rules in NSZ-FORWARD"} {
		if !strings.Contains(got, w) {
			t.Errorf("wan's gaps lack %q:\n%s", w, got)
		}
	}
	lan := strings.Join(c.Missing("lan"), "\n")
	if strings.Contains(lan, "NSZ-wan-out") || strings.Contains(lan, "rules in NSZ-FORWARD") || !strings.Contains(lan, "ipv6 filter: chain NSZ-lan-in") {
		t.Errorf("lan's gaps: %s", lan)
	}
	// The checker answers as reading every chain for each zone did.
	for _, z := range samplePolicy().Zones {
		if a, b := c.Missing(z.Name), naiveMissing(cur, want, z.Name); !slices.Equal(a, b) {
			t.Errorf("zone %s: %v, reading every chain: %v", z.Name, a, b)
		}
	}
}

// naiveMissing is Missing as it was before Checker: every chain of want
// read again for each zone.
func naiveMissing(cur, want Ruleset, zone string) []string {
	var out []string
	mark := "--comment " + Comment + "-" + zone + " "
	own := Prefix + zone + "-"
	for _, k := range want.Keys() {
		w, c := want[k], cur[k]
		if c == nil {
			c = newTable()
		}
		out = append(out, hookGaps(k, c, w)...)
		for _, name := range slices.Sorted(maps.Keys(w.Chains)) {
			have, ok := c.Chains[name]
			if strings.HasPrefix(name, own) {
				if !ok || !slices.Equal(have, w.Chains[name]) {
					out = append(out, fmt.Sprintf("%s: chain %s", k, name))
				}
				continue
			}
			if !slices.Equal(withMark(have, mark), withMark(w.Chains[name], mark)) {
				out = append(out, fmt.Sprintf("%s: rules in %s", k, name))
			}
		}
	}
	return out
}
