package zones

import (
	"fmt"
	"hash/fnv"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/veth"
)

// checkPublished refuses, before anything changes, a published host port
// that a program of the host's already listens on: the zone would take
// its connections.
func (m *Manager) checkPublished(f *config.File, want map[string]*desiredZone) error {
	for _, name := range slices.Sorted(maps.Keys(want)) {
		for _, p := range want[name].cfg.Publish {
			for _, proto := range p.Protos() {
				taken, err := m.Kernel.Listening(proto, p.Addr, p.HostPort)
				if err != nil {
					return fmt.Errorf("looking for the host's listeners: %w", err)
				}
				if taken {
					return &config.Error{File: f.Path, Line: p.Line, Msg: fmt.Sprintf(
						"zone %q: publish %q: a program of the host's listens on %s port %d already", name, p.Raw, proto, p.HostPort)}
				}
			}
		}
	}
	return nil
}

// viaOf is the policy routing of a zone whose internet goes through z.Via.
func viaOf(z firewall.Zone) veth.Via {
	return veth.Via{Zone: z.Name, HostIf: z.HostIf, Iface: z.Via, Table: viaTable(z.Name), Priority: veth.ViaPriority, IPv6: z.IPv6}
}

// viaTable is the routing table of zone's via: the same for the zone
// whatever else is up, and out of the way of the tables in common use
// (main, local, default, and the small numbers admins and VPN clients
// take).
func viaTable(zone string) int {
	h := fnv.New32a()
	h.Write([]byte(zone))
	return 0x6e000000 | int(h.Sum32()&0xffffff)
}

// ensureVia puts z's via in place, or takes away the one the zone had.
func (m *Manager) ensureVia(name string, z firewall.Zone, old *Record) (bool, error) {
	if z.Via == "" {
		if old != nil && old.Policy.Via != "" {
			return true, m.Kernel.DeleteVia(viaOf(old.Policy))
		}
		return false, nil
	}
	changed, err := m.Kernel.EnsureVia(viaOf(z))
	if err != nil {
		return changed, fmt.Errorf("zone %s: via %s: %w", name, z.Via, err)
	}
	return changed, nil
}

// localnet is the sysctl that lets the host's loopback reach a zone's
// published ports through its host end (the host wall drops what a zone
// sends to 127.0.0.0/8 in turn).
func localnet(z firewall.Zone) string { return "net.ipv4.conf." + z.HostIf + ".route_localnet" }

// publishes4 reports whether z has IPv4 published ports, which the host's
// loopback reaches.
func publishes4(z firewall.Zone) bool {
	return z.Addr4.IsValid() && slices.ContainsFunc(z.Publish, func(p firewall.Published) bool { return !p.Addr.Is6() })
}

// A zone that publishes no more gets it back at 0: the host wall drops a
// zone's packets to 127.0.0.0/8 only while some zone publishes.
func (m *Manager) ensureLocalnet(z firewall.Zone) (bool, error) {
	want := "0"
	if publishes4(z) {
		want = "1"
	}
	if v, err := m.Kernel.Sysctl(localnet(z)); err == nil && v == want {
		return false, nil
	}
	if err := m.Kernel.SetSysctl(localnet(z), want); err != nil {
		return false, fmt.Errorf("zone %s: %w", z.Name, err)
	}
	return true, nil
}

// publishGaps is what keeps z's via or published ports from working: the
// zone is degraded, but closed (nothing leaves another way).
func (m *Manager) publishGaps(z firewall.Zone) []string {
	var out []string
	if z.Via != "" {
		gaps, err := m.Kernel.InspectVia(viaOf(z))
		if err != nil {
			gaps = append(gaps, err.Error())
		}
		for _, g := range gaps {
			out = append(out, "via "+z.Via+": "+g)
		}
	}
	if publishes4(z) {
		if v, err := m.Kernel.Sysctl(localnet(z)); err != nil || v != "1" {
			out = append(out, localnet(z)+" (the host's loopback cannot reach the published ports)")
		}
	}
	return out
}

// publishedList is PublishedText in one line, "none" for none.
func publishedList(ps []firewall.Published) string {
	if len(ps) == 0 {
		return "none"
	}
	return strings.Join(PublishedText(ps), ", ")
}

// PublishedText says each published port as status and plan show it:
// "8080->80/tcp", "127.0.0.1:5432->5432/tcp", "[2001:db8::1]:53->53/udp".
func PublishedText(ps []firewall.Published) []string {
	out := []string{}
	for _, p := range ps {
		host := fmt.Sprint(p.HostPort)
		if p.Addr.IsValid() {
			host = netip.AddrPortFrom(p.Addr, p.HostPort).String()
		}
		out = append(out, fmt.Sprintf("%s->%d/%s", host, p.ZonePort, p.Proto))
	}
	return out
}
