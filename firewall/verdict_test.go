package firewall

import (
	"net/netip"
	"testing"
)

// firstMatch walks z's inner NSZ-OUT rules of family f as the kernel would
// for a new connection to a on a port no pinhole names, and returns whether
// the first rule that decides accepts it.
func firstMatch(z Zone, lan []netip.Prefix, f Family, a netip.Addr) bool {
	for _, r := range InnerRules(z, lan)[f] {
		if r.Chain != innerOut || r.Out != "" || len(r.Matches) > 0 || r.Proto != "" {
			continue // loopback, replies, ND, a port or protocol: not this packet
		}
		if r.Dst != "" && !netip.MustParsePrefix(r.Dst).Contains(a) {
			continue
		}
		return r.Target[1] == "ACCEPT"
	}
	return false
}

// InnerVerdict agrees with the inner wall's own rules for addresses of
// every class, in every zone of the sample policy.
func TestInnerVerdictAgreesWithRules(t *testing.T) {
	addrs := []string{"192.0.2.7", "198.51.100.9", "2001:db8:77::7", "192.168.50.77", "fd00:50::77",
		"172.18.0.1", "10.250.0.2", "10.250.0.6", "fd6e:737a:7a6f::1", "fe80::1", "224.0.0.251", "ff02::1", "192.168.60.5"}
	for _, z := range samplePolicy().Zones {
		z.HostAddrs = nil
		z.ZoneNets = mustPrefixes("10.250.0.0/16", "fd6e:737a:7a6f::/48")
		if z.Name == "web" {
			z.ToZoneAddrs = []netip.Addr{netip.MustParseAddr("10.250.0.6")}
		}
		for _, s := range addrs {
			a := netip.MustParseAddr(s)
			f := IPv4
			if a.Is6() {
				f = IPv6
			}
			if got, want := InnerVerdict(z, defaultLAN, a), firstMatch(z, defaultLAN, f, a); got != want {
				t.Errorf("zone %s, %s: InnerVerdict %v, the rules say %v", z.Name, a, got, want)
			}
		}
	}
}
