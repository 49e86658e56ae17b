package veth

import (
	"net/netip"
	"strings"
	"testing"
)

func validPair() Pair {
	return Pair{
		Zone: "wan", HostName: "nsz-wan", PeerName: "eth0", Alias: "nszone:wan",
		Host4: netip.MustParsePrefix("10.250.0.1/30"), Zone4: netip.MustParsePrefix("10.250.0.2/30"),
		Host6: netip.MustParsePrefix("fd6e:737a:0:1::1/64"), Zone6: netip.MustParsePrefix("fd6e:737a:0:1::2/64"),
	}
}

func TestPairValidate(t *testing.T) {
	if err := validPair().validate(); err != nil {
		t.Fatalf("valid pair refused: %v", err)
	}
	no6 := validPair()
	no6.Host6, no6.Zone6 = netip.Prefix{}, netip.Prefix{}
	if err := no6.validate(); err != nil {
		t.Fatalf("pair without IPv6 refused: %v", err)
	}
	bad := map[string]func(p *Pair){
		"empty zone":            func(p *Pair) { p.Zone = "" },
		"zone with slash":       func(p *Pair) { p.Zone = "a/b" },
		"zone dotdot":           func(p *Pair) { p.Zone = ".." },
		"long host name":        func(p *Pair) { p.HostName = "nsz-0123456789ab" },
		"host name with colon":  func(p *Pair) { p.HostName = "nsz:wan" },
		"empty peer name":       func(p *Pair) { p.PeerName = "" },
		"same names":            func(p *Pair) { p.PeerName = p.HostName },
		"empty alias":           func(p *Pair) { p.Alias = "" },
		"no IPv4":               func(p *Pair) { p.Host4, p.Zone4 = netip.Prefix{}, netip.Prefix{} },
		"IPv6 as host4":         func(p *Pair) { p.Host4 = p.Host6 },
		"4in6 as zone4":         func(p *Pair) { p.Zone4 = netip.MustParsePrefix("::ffff:10.250.0.2/126") },
		"different subnets":     func(p *Pair) { p.Zone4 = netip.MustParsePrefix("10.250.0.6/30") },
		"same address":          func(p *Pair) { p.Zone4 = p.Host4 },
		"prefix lengths differ": func(p *Pair) { p.Zone4 = netip.MustParsePrefix("10.250.0.2/29") },
		"only host6":            func(p *Pair) { p.Zone6 = netip.Prefix{} },
		"IPv4 as zone6":         func(p *Pair) { p.Zone6 = p.Zone4 },
		"negative mtu":          func(p *Pair) { p.MTU = -1 },
		"tiny mtu":              func(p *Pair) { p.MTU = 67 },
		"mtu too low for IPv6":  func(p *Pair) { p.MTU = 1279 },
	}
	for name, change := range bad {
		p := validPair()
		change(&p)
		if err := p.validate(); err == nil {
			t.Errorf("%s: accepted %+v", name, p)
		}
	}
	low := no6
	low.MTU = 576 // fine without IPv6
	if err := low.validate(); err != nil {
		t.Errorf("IPv4-only pair with mtu 576 refused: %v", err)
	}
}

func TestSysctlPath(t *testing.T) {
	good := map[string]string{
		"net.ipv4.ip_forward":                 "/proc/sys/net/ipv4/ip_forward",
		"net.ipv6.conf.all.accept_ra":         "/proc/sys/net/ipv6/conf/all/accept_ra",
		"net/ipv6/conf/eth0.100/disable_ipv6": "/proc/sys/net/ipv6/conf/eth0.100/disable_ipv6", // slash form keeps the dot
		ifSysctl("eth0.100", "accept_ra"):     "/proc/sys/net/ipv6/conf/eth0.100/accept_ra",
		"net/ipv4/conf/../conf/all/rp_filter": "/proc/sys/net/ipv4/conf/all/rp_filter",
	}
	for key, want := range good {
		got, err := sysctlPath(key)
		if err != nil || got != want {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	for _, key := range []string{"", "../../etc/passwd", "net/../../../etc/shadow", "/"} {
		if got, err := sysctlPath(key); err == nil {
			t.Errorf("sysctlPath(%q) = %q, want an error", key, got)
		}
	}
}

func TestCheckNames(t *testing.T) {
	for _, n := range []string{"nsz-wan", "eth0", "a", "nsz-0123456789a", "eth0.100"} {
		if err := checkIfName(n); err != nil {
			t.Errorf("checkIfName(%q): %v", n, err)
		}
	}
	for _, n := range []string{"", ".", "..", "a b", "a/b", "a:b", strings.Repeat("x", 16)} {
		if checkIfName(n) == nil {
			t.Errorf("checkIfName(%q) accepted", n)
		}
	}
}
