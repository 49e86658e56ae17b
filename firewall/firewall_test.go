package firewall

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
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
