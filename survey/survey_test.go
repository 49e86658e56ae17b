package survey

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/config/zonesfile"
)

// TestInitZonesFile: whatever init finds, it writes a file that parses to
// the built-in zones, and says in comments what it found.
func TestInitZonesFile(t *testing.T) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	cases := []struct {
		name string
		m    Machine
		says []string
		ipv6 bool
	}{
		{"home", Machine{Uplink: "eth0", UplinkNets: []netip.Prefix{pfx("192.168.50.0/24"), pfx("fd00:50::/64")},
			DNS: []netip.Addr{addr("192.168.50.10")}, DNSFrom: "/etc/resolv.conf", IPv6: true, IPv6Default: true},
			[]string{"uplink   eth0 (the default route's interface)", "192.168.50.0/24, fd00:50::/64", "DNS      192.168.50.10 (from /etc/resolv.conf)",
				"IPv6     yes, with a default route", "Found now: eth0", "this machine's DNS servers (192.168.50.10)"}, true},
		{"resolved stub", Machine{Uplink: "wlp2s0", DNS: []netip.Addr{addr("192.0.2.53"), addr("2001:db8::53")},
			DNSFrom: "/run/systemd/resolve/resolv.conf", IPv6: true},
			[]string{"from /run/systemd/resolve/resolv.conf: /etc/resolv.conf names a local stub", "no IPv6 default route"}, true},
		{"offline machine", Machine{DNSErr: errors.New("no upstream DNS server found"), IPv6: true},
			[]string{"uplink   none: there is no default route", "DNS      none found"}, true},
		{"no ipv6", Machine{Uplink: "eth0", UplinkV6: "", IPv6: false},
			[]string{"IPv6     disabled on this machine", "ipv6: false    # IPv6 is disabled"}, false},
		{"split uplinks", Machine{Uplink: "eth0", UplinkV6: "wg0", IPv6: true, IPv6Default: true},
			[]string{"eth0 (the IPv4 default route's interface; IPv6's is wg0)"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := c.m.ZonesFile()
			f, err := zonesfile.Parse("zones.yaml", data)
			if err != nil {
				t.Fatalf("init wrote a file that does not parse: %v\n%s", err, data)
			}
			var names []string
			for _, z := range f.Zones {
				names = append(names, z.Name)
				if z.IPv6 != c.ipv6 {
					t.Errorf("zone %s: ipv6 %v, want %v", z.Name, z.IPv6, c.ipv6)
				}
				if !z.DNS.Auto {
					t.Errorf("zone %s: dns is not auto", z.Name)
				}
			}
			def := config.Default()
			if strings.Join(names, " ") != "wan lan offline" || f.Uplink != "auto" || len(f.LAN) != len(def.LAN) {
				t.Errorf("zones %v, uplink %q, lan %v", names, f.Uplink, f.LAN)
			}
			for i, z := range f.Zones {
				if got, want := termsText(z.Allow), termsText(def.Zones[i].Allow); got != want {
					t.Errorf("zone %s: allow %s, want %s", z.Name, got, want)
				}
			}
			for _, s := range c.says {
				if !strings.Contains(string(data), s) {
					t.Errorf("the file does not say %q:\n%s", s, data)
				}
			}
		})
	}
}

func termsText(ts []config.Term) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}
