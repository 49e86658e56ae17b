package zones

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/veth"
)

// facts is what the desired state depends on besides the zones file.
type facts struct {
	uplink   string         // "" when there is none: lan and internet stay closed
	lan      []netip.Prefix // the file's lan list plus the uplink's own subnets
	addrs    []netip.Addr   // the host's own addresses
	prefixes []netip.Prefix // host routes and addresses, for choosing free subnets
	dns      resolvConf     // the host's real upstream DNS
	dnsErr   error
	nsswitch []byte
}

// ErrNoUplink is returned when the uplink named in the file does not exist.
var ErrNoUplink = errors.New("uplink does not exist")

func (m *Manager) facts(f *config.File) (*facts, error) {
	fc := &facts{lan: slices.Clone(f.LAN)}
	switch f.Uplink {
	case "auto", "":
		v4, v6, err := m.Kernel.DefaultRouteLink()
		if err != nil {
			return nil, fmt.Errorf("finding the uplink from the default route: %w", err)
		}
		fc.uplink = v4
		if fc.uplink == "" {
			fc.uplink = v6
		}
		if fc.uplink == "" {
			m.Log.Warn("no default route: zones get no internet or lan access until there is one and `nszone up` runs again")
		}
	default:
		ok, err := m.Kernel.LinkExists(f.Uplink)
		if err != nil {
			return nil, fmt.Errorf("looking up uplink %s: %w", f.Uplink, err)
		}
		if !ok {
			return nil, fmt.Errorf("%s:%d: uplink %q: %w", f.Path, f.UplinkLine, f.Uplink, ErrNoUplink)
		}
		fc.uplink = f.Uplink
	}
	if fc.uplink != "" {
		own, err := m.Kernel.LinkAddrs(fc.uplink)
		if err != nil {
			return nil, fmt.Errorf("reading the addresses of uplink %s: %w", fc.uplink, err)
		}
		for _, p := range own {
			if !p.Addr().IsLinkLocalUnicast() && !slices.Contains(fc.lan, p.Masked()) {
				fc.lan = append(fc.lan, p.Masked())
			}
		}
	}
	var err error
	if fc.addrs, err = m.Kernel.HostAddrs(); err != nil {
		return nil, fmt.Errorf("reading the host's addresses: %w", err)
	}
	if fc.prefixes, err = m.Kernel.HostPrefixes(); err != nil {
		return nil, fmt.Errorf("reading the host's routes: %w", err)
	}
	fc.dns, fc.dnsErr = upstreamDNS(m.Root)
	fc.nsswitch, _ = os.ReadFile(m.Root + "/etc/nsswitch.conf")
	return fc, nil
}

// desiredZone is one zone as the file and the host facts want it.
type desiredZone struct {
	cfg      *config.Zone
	pair     veth.Pair
	policy   firewall.Zone
	dns      []netip.Addr
	openings []string // DNS openings the policy needed, "ADDR:53"
	lan      []netip.Prefix
	resolv   []byte
	nsswitch []byte
}

// record returns the zone's ownership record (without the namespace id).
func (d *desiredZone) record() *Record {
	r := &Record{Name: d.cfg.Name, Pair: d.pair, Policy: d.policy, IPv6: d.cfg.IPv6, Openings: d.openings, LAN: d.lan, Access: d.cfg.Access}
	for _, t := range d.cfg.Allow {
		r.Allow = append(r.Allow, t.String())
	}
	for _, s := range d.dns {
		r.DNS = append(r.DNS, s.String())
	}
	return r
}

// desired computes the named zones of f (all when names is empty).
// Existing allocations are kept; new zones get the lowest free subnets.
func (m *Manager) desired(f *config.File, names []string, fc *facts, recs map[string]*Record) (map[string]*desiredZone, error) {
	al := &allocator{}
	for _, p := range fc.prefixes {
		if p.Bits() > 0 {
			al.take(p)
		}
	}
	// First pass: keep what every zone already has, so new zones avoid it.
	fixed := map[string]Allocation{}
	for _, z := range f.Zones {
		a, ok := m.allocation(z.Name)
		if r := recs[z.Name]; r != nil {
			a, ok = Allocation{Subnet4: r.Policy.Net4.String()}, true
			if r.Policy.Net6.IsValid() {
				a.Subnet6 = r.Policy.Net6.String()
			}
		}
		if z.Subnet.IsValid() {
			a.Subnet4, ok = z.Subnet.String(), true
		}
		if z.Subnet6.IsValid() {
			a.Subnet6, ok = z.Subnet6.String(), true
		}
		if ok {
			fixed[z.Name] = a
		}
	}
	for _, a := range fixed {
		for _, s := range []string{a.Subnet4, a.Subnet6} {
			if p, err := netip.ParsePrefix(s); err == nil {
				al.take(p)
			}
		}
	}
	out := map[string]*desiredZone{}
	for i := range f.Zones {
		z := &f.Zones[i]
		if len(names) > 0 && !slices.Contains(names, z.Name) {
			continue
		}
		a := fixed[z.Name]
		net4, err := netip.ParsePrefix(a.Subnet4)
		if err != nil {
			if net4, err = al.next(pool4, bits4); err != nil {
				return nil, fmt.Errorf("zone %s: %w", z.Name, err)
			}
		}
		var net6 netip.Prefix
		if z.IPv6 {
			if net6, err = netip.ParsePrefix(a.Subnet6); err != nil {
				if net6, err = al.next(pool6, bits6); err != nil {
					return nil, fmt.Errorf("zone %s: %w", z.Name, err)
				}
			}
		}
		d, err := buildZone(f, z, net4, net6, fc)
		if err != nil {
			return nil, err
		}
		out[z.Name] = d
	}
	return out, nil
}

func buildZone(f *config.File, z *config.Zone, net4, net6 netip.Prefix, fc *facts) (*desiredZone, error) {
	d := &desiredZone{cfg: z, lan: fc.lan}
	d.pair = veth.Pair{Zone: z.Name, HostName: HostIf(z.Name), PeerName: peerName, Alias: alias(z.Name)}
	d.pair.Host4, d.pair.Zone4 = hostAndZone(net4)
	if net6.IsValid() {
		d.pair.Host6, d.pair.Zone6 = hostAndZone(net6)
	}
	p := firewall.Zone{Name: z.Name, HostIf: d.pair.HostName, Uplink: fc.uplink, Net4: net4, Net6: net6, IPv6: z.IPv6}
	p.Addr4, p.Via, p.NoLog = d.pair.Zone4.Addr(), z.Via, z.NoLog
	if d.pair.Zone6.IsValid() {
		p.Addr6 = d.pair.Zone6.Addr()
	}
	for _, pub := range z.Publish {
		for _, proto := range pub.Protos() {
			p.Publish = append(p.Publish, firewall.Published{Addr: pub.Addr, HostPort: pub.HostPort, ZonePort: pub.ZonePort, Proto: proto})
		}
	}
	for _, t := range z.Allow {
		switch t.Kind {
		case config.TermInternet:
			p.Internet = true
		case config.TermLAN:
			p.LAN = true
		case config.TermHost:
			p.Host = true
		case config.TermZone:
			p.ToHostIfs = append(p.ToHostIfs, HostIf(t.Zone))
		case config.TermAddr:
			p.Pinholes = append(p.Pinholes, firewall.Pinhole{Dst: t.Prefix, Proto: t.Proto, PortLo: t.PortLo, PortHi: t.PortHi})
		}
	}
	switch {
	case z.DNS.Auto:
		// A zone allowed nothing gets no DNS either: an opening to a
		// resolver is a way out (DNS tunnels), and offline means offline.
		if len(z.Allow) > 0 {
			if fc.dnsErr != nil && len(fc.dns.servers) == 0 {
				break
			}
			for _, s := range fc.dns.servers {
				if s.Is6() && !z.IPv6 {
					continue
				}
				d.dns = append(d.dns, s)
				if !dnsVerdict(s, p, fc).Allow {
					p.Pinholes = append(p.Pinholes, firewall.Pinhole{Dst: netip.PrefixFrom(s, s.BitLen()), PortLo: 53, PortHi: 53})
					d.openings = append(d.openings, netip.AddrPortFrom(s, 53).String())
				}
			}
		}
	default:
		for _, s := range z.DNS.Servers {
			v := dnsVerdict(s, p, fc)
			if !v.Allow {
				return nil, &config.Error{File: f.Path, Line: z.DNS.Line, Msg: fmt.Sprintf(
					"zone %q: dns server %s is not reachable under the zone's policy (allow %s, or add %q)",
					z.Name, s, v.Class, netip.AddrPortFrom(s, 53).String()+"/udp")}
			}
			if z.Via != "" && v.Class != "internet" {
				// Only the internet goes through the via interface: asking
				// this server would leave by another way.
				return nil, &config.Error{File: f.Path, Line: z.DNS.Line, Msg: fmt.Sprintf(
					"zone %q: dns server %s is %s (%s), not reached through via %s: name one on the far side of %s",
					z.Name, s, v.Class, v.Reason, z.Via, z.Via)}
			}
			d.dns = append(d.dns, s)
		}
	}
	d.policy = p
	d.resolv = zoneResolvConf(z.Name, d.dns, fc.dns.other)
	d.nsswitch = zoneNsswitch(fc.nsswitch)
	return d, nil
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// dnsVerdict is what policy p's walls do with the zone's query to DNS
// server s (UDP 53), and the class of s. It is asked before the links
// exist: the inner wall will list the host's addresses. The uplink counts
// as there: whether a server needs an opening is a question of the terms,
// not of the moment (an opening made while there is no uplink would go
// when it comes back, and reach nothing meanwhile).
func dnsVerdict(s netip.Addr, p firewall.Zone, fc *facts) firewall.Verdict {
	p.HostAddrs = fc.addrs
	if p.Uplink == "" {
		p.Uplink = "uplink"
	}
	v, _ := firewall.Policy{LAN: fc.lan, Zones: []firewall.Zone{p}}.Decide(p.Name, fc.addrs,
		firewall.Dest{Addr: s, Proto: "udp", Port: 53})
	return v
}
