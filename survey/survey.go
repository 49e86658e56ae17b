// Package survey looks at this machine for `nszone init`, changing
// nothing, and writes the zones file init proposes for it. It is apart
// from zones, which lends it the host's upstream DNS, so that nothing that
// links zones (the setuid nszone-enter) links it.
package survey

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strings"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/veth"
	"github.com/nszone/nszone/zones"
)

// Machine is what `nszone init` finds on this machine, reading only.
type Machine struct {
	Uplink      string         // the default route's interface (IPv4 first); "" when there is none
	UplinkV6    string         // the IPv6 default route's interface, when it differs from Uplink
	UplinkNets  []netip.Prefix // the uplink's own subnets (lan includes them by itself)
	DNS         []netip.Addr   // the host's real upstream DNS servers
	DNSFrom     string         // the file they were read from
	DNSErr      error          // why no server was found
	IPv6        bool           // the kernel has IPv6 and it is not disabled
	IPv6Default bool           // there is an IPv6 default route
}

// Read looks at the machine: its uplink and that uplink's subnets, the real
// upstream DNS servers (never a 127.x stub) and whether it has IPv6. root
// prefixes the resolv.conf files read; "" on the real system.
func Read(root string) (*Machine, error) {
	m := &Machine{}
	v4, v6, err := veth.DefaultRouteLink()
	if err != nil {
		return nil, fmt.Errorf("finding the uplink from the default route: %w", err)
	}
	m.Uplink, m.IPv6Default = v4, v6 != ""
	switch {
	case m.Uplink == "":
		m.Uplink = v6
	case v6 != "" && v6 != v4:
		m.UplinkV6 = v6
	}
	for _, l := range []string{m.Uplink, m.UplinkV6} {
		if l == "" {
			continue
		}
		nets, err := veth.LinkAddrs(l)
		if err != nil {
			return nil, fmt.Errorf("reading the addresses of uplink %s: %w", l, err)
		}
		for _, p := range nets {
			if p = p.Masked(); !p.Addr().IsLinkLocalUnicast() && !slices.Contains(m.UplinkNets, p) {
				m.UplinkNets = append(m.UplinkNets, p)
			}
		}
	}
	m.DNS, m.DNSFrom, m.DNSErr = zones.UpstreamDNS(root)
	switch v, err := veth.GetSysctl("net.ipv6.conf.all.disable_ipv6"); {
	case errors.Is(err, fs.ErrNotExist):
		m.IPv6 = false // a kernel without IPv6
	case err != nil:
		return nil, fmt.Errorf("reading whether IPv6 is enabled: %w", err)
	default:
		m.IPv6 = v == "0"
	}
	return m, nil
}

// ZonesFile renders the commented zones file `nszone init` writes: the
// built-in zones wan, lan and offline, with what was found as comments,
// and ipv6: false on every zone when this machine has no IPv6 at all.
func (m *Machine) ZonesFile() []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	nets := func(ps []netip.Prefix) string {
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = p.String()
		}
		return strings.Join(s, ", ")
	}
	addrs := func(as []netip.Addr) string {
		s := make([]string, len(as))
		for i, a := range as {
			s[i] = a.String()
		}
		return strings.Join(s, ", ")
	}

	w("# nszone zones file, written by `nszone init`.")
	w("#")
	w("# What nszone init found on this machine:")
	switch {
	case m.Uplink == "":
		w("#   uplink   none: there is no default route. The zones come up closed to lan and")
		w("#            internet until there is one and `nszone up` runs again.")
	case m.UplinkV6 != "":
		w("#   uplink   %s (the IPv4 default route's interface; IPv6's is %s)", m.Uplink, m.UplinkV6)
	default:
		w("#   uplink   %s (the default route's interface)", m.Uplink)
	}
	if len(m.UplinkNets) > 0 {
		w("#   subnets  %s (the uplink's own: \"lan\" includes them)", nets(m.UplinkNets))
	}
	switch {
	case len(m.DNS) > 0 && m.DNSFrom != "" && m.DNSFrom != zones.ResolvConf:
		w("#   DNS      %s (from %s: %s names a local stub)", addrs(m.DNS), m.DNSFrom, zones.ResolvConf)
	case len(m.DNS) > 0:
		w("#   DNS      %s (from %s)", addrs(m.DNS), m.DNSFrom)
	default:
		w("#   DNS      none found (only a local stub, or no server at all): zones with dns: auto")
		w("#            get no DNS server until there is one and `nszone up` runs again")
	}
	switch {
	case !m.IPv6:
		w("#   IPv6     disabled on this machine: every zone below is IPv4 only (ipv6: false)")
	case m.IPv6Default:
		w("#   IPv6     yes, with a default route")
	default:
		w("#   IPv6     enabled, but no IPv6 default route: the zones get IPv6 on their links, and")
		w("#            reach the LAN and internet over IPv6 once the uplink has it")
	}
	w("#")
	w("# Check what it would do with `nszone plan`, then `nszone up`. With nszone.service")
	w("# enabled, `systemctl reload nszone` applies a change. Every key: README, nszone(1).")
	w("version: 1")
	w("")
	w("# The interface toward the LAN and the internet. auto follows the default route, so")
	w("# when that moves (Wi-Fi to Ethernet) the next `nszone up` moves the zones with it.")
	if m.Uplink != "" {
		w("# Found now: %s. Naming an interface binds the zones to it: they fail closed while", m.Uplink)
		w("# it is gone.")
	}
	w("uplink: auto")
	w("")
	w("# What the allow term \"lan\" means: this list (the default), plus the uplink's own")
	if len(m.UplinkNets) > 0 {
		w("# subnets (now %s).", nets(m.UplinkNets))
	} else {
		w("# subnets.")
	}
	w("lan:")
	for _, p := range config.DefaultLAN {
		w("  - %s", p)
	}
	w("")
	v6 := ""
	if !m.IPv6 {
		v6 = "    ipv6: false    # IPv6 is disabled on this machine"
	}
	dnsNote := "this machine's DNS servers"
	if len(m.DNS) > 0 {
		dnsNote += " (" + addrs(m.DNS) + ")"
	}
	w("# Each zone may open connections only to what its allow list names; replies come")
	w("# back, nothing else gets in. Terms: internet, lan, host, zone:NAME, ADDR, CIDR,")
	w("# ADDR:PORT[-PORT][/tcp|/udp] and [V6ADDR]:PORT[/PROTO].")
	w("zones:")
	w("  # The internet, and nothing on the LAN or on this machine.")
	w("  wan:")
	w("    allow: [internet]")
	w("    # auto: %s; where the policy does not reach", dnsNote)
	w("    # one (a resolver on the LAN), the zone gets a port-53-only opening to it.")
	w("    dns: auto")
	if v6 != "" {
		w(v6)
	}
	w("    # Who may run `nszone exec wan -- PROGRAM` without sudo (with nszone-enter")
	w("    # installed: make install ENTER=1). Nobody but root when unset.")
	w("    # users: [alice]")
	w("    # groups: [browsing]")
	w("")
	w("  # The LAN only: not the internet, not this machine.")
	w("  lan:")
	w("    allow: [lan]")
	w("    dns: auto")
	if v6 != "" {
		w(v6)
	}
	w("")
	w("  # Nothing at all: loopback only, and no DNS.")
	w("  offline:")
	w("    allow: []")
	if v6 != "" {
		w(v6)
	}
	w("")
	w("  # A zone of your own, for example:")
	w("  # web:")
	w("  #   allow: [internet, \"192.168.1.10:22/tcp\", host, \"zone:lan\"]")
	w("  #   ipv6: false")
	return []byte(b.String())
}
