package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// Decide is the policy matching, once: what a zone's two walls, as Build
// and BuildInner make them from the same Policy, do with a new connection
// the zone opens, and why. check derives its expectations from it, up its
// DNS openings, explain its answer; a test holds it to the rules' own text.

// Dest is where a zone opens a connection.
type Dest struct {
	Addr  netip.Addr
	Proto string // "tcp" or "udp"; "" is a protocol no pinhole names a port of (ICMP)
	Port  uint16
}

// Classes of a destination, as check and explain name them; another
// zone's is "zone:NAME".
const (
	ClassHost     = "host"
	ClassLAN      = "lan"
	ClassInternet = "internet"
	ClassSelf     = "self" // the zone's own loopback and address: never walled
)

// Verdict is what the walls do with one connection.
type Verdict struct {
	Allow bool
	// Class is what the address is to the zone: host, zone:NAME, lan,
	// internet or self.
	Class string
	// Reason says why the address is in its class ("in lan by
	// 192.168.0.0/16", "a host address", "zone lan's link 10.250.0.4/30")
	// and, when blocked though a term names it, what closes it.
	Reason string
	// Term is the allow term that lets it through: internet, lan, host,
	// zone:NAME, or a pinhole as the zones file writes it
	// ("192.168.50.10:80/tcp"; a DNS opening is "ADDR:53"). "" when blocked.
	Term string
}

// Decide says what zone's walls do with a new connection to d. local are
// the host's own addresses now, every zone's gateway among them: the
// kernel delivers a connection to one of them to the host, whatever the
// rules listed when they were built. Other destinations are routed to the
// zone whose link holds them, else out of the uplink (a LAN behind another
// interface is not modelled). Multicast and broadcast stay on the zone's
// link, where its inner wall alone decides.
func (p Policy) Decide(zone string, local []netip.Addr, d Dest) (Verdict, error) {
	i := slices.IndexFunc(p.Zones, func(z Zone) bool { return z.Name == zone })
	if i < 0 {
		return Verdict{}, fmt.Errorf("zone %q has no policy", zone)
	}
	z := p.Zones[i]
	d.Addr = d.Addr.Unmap().WithZone("")
	a := d.Addr
	v, via := p.classify(z, local, a)
	if via == viaSelf {
		v.Allow = true
		return v, nil
	}
	if !z.enabled(familyOfAddr(a)) {
		v.Reason += "; the zone has no IPv6"
		return v, nil
	}
	iw := z.inner(p.LAN, d, true) // the inner wall's answer
	if via == viaLink {
		v.Allow, v.Term = iw.accept, iw.term
		if !iw.accept {
			v.Reason += "; " + iw.why
		}
		return v, nil
	}
	hw := p.hostWall(z, via, d) // the host wall's
	v.Allow = iw.accept && hw.accept
	switch {
	case !v.Allow && !hw.accept:
		v.Reason += "; " + hw.why
	case !v.Allow:
		v.Reason += "; " + iw.why
	case hw.pinhole || z.inner(p.LAN, d, false).accept:
		v.Term = hw.term
	default:
		// The host wall lets it through by a term the inner wall does not
		// (host, to another zone's gateway): the pinhole both pass decides.
		v.Term = iw.term
	}
	return v, nil
}

// Where the kernel takes a zone's connection.
const (
	viaSelf   = "self"   // the zone's own loopback
	viaHost   = "host"   // delivered to the host (its input hook)
	viaLink   = "link"   // multicast, broadcast: the zone's link only
	viaUplink = "uplink" // forwarded out of the uplink, or nowhere without one
	// otherwise: forwarded to the zone of that host interface
)

// classify names a's class and the way the kernel takes it.
func (p Policy) classify(z Zone, local []netip.Addr, a netip.Addr) (Verdict, string) {
	other := func() (Zone, netip.Prefix, bool) {
		for _, o := range p.Zones {
			for _, n := range []netip.Prefix{o.Net4, o.Net6} {
				if o.Name != z.Name && n.IsValid() && n.Contains(a) {
					return o, n, true
				}
			}
		}
		return Zone{}, netip.Prefix{}, false
	}
	own := z.Net4.IsValid() && z.Net4.Contains(a) || z.Net6.IsValid() && z.Net6.Contains(a)
	o, onet, inOther := other()
	switch {
	case a.IsLoopback():
		return Verdict{Class: ClassSelf, Reason: "the zone's own loopback"}, viaSelf
	case slices.Contains(local, a) && inOther:
		return Verdict{Class: "zone:" + o.Name, Reason: "zone " + o.Name + "'s gateway, a host address that counts as the zone's"}, viaHost
	case slices.Contains(local, a) && own:
		return Verdict{Class: ClassHost, Reason: "the zone's own gateway"}, viaHost
	case slices.Contains(local, a):
		return Verdict{Class: ClassHost, Reason: "a host address"}, viaHost
	case own:
		return Verdict{Class: ClassSelf, Reason: "the zone's own link: its own address (what else is there is nobody)"}, viaSelf
	case a.Is6() && a.IsLinkLocalUnicast():
		return Verdict{Class: ClassHost, Reason: "IPv6 link-local: on the zone's link, the host's end is all there is"}, viaHost
	case inOther:
		return Verdict{Class: "zone:" + o.Name, Reason: "zone " + o.Name + "'s link " + onet.String()}, o.HostIf
	}
	if by, ok := in(a, localcast); ok {
		return Verdict{Class: ClassLAN, Reason: "multicast or broadcast (" + by.String() + "), which counts as lan"}, viaLink
	}
	if by, ok := in(a, p.LAN); ok {
		return Verdict{Class: ClassLAN, Reason: "in lan by " + by.String()}, viaUplink
	}
	return Verdict{Class: ClassInternet, Reason: "outside lan and the host's addresses"}, viaUplink
}

// wallVerdict is one wall's answer.
type wallVerdict struct {
	accept  bool
	term    string // the term that accepts
	pinhole bool   // term is a pinhole
	why     string // what rejects
}

// inner walks z's inner NSZ-OUT for a new connection to d, in the order
// innerOutRules writes it; pinholes false leaves them out.
func (z Zone) inner(lan []netip.Prefix, d Dest, pinholes bool) wallVerdict {
	a := d.Addr
	if !z.enabled(familyOfAddr(a)) {
		return wallVerdict{why: "the zone has no IPv6"}
	}
	if pinholes {
		if ph, ok := z.pinhole(d); ok {
			return wallVerdict{accept: true, term: ph.String(), pinhole: true}
		}
	}
	if slices.Contains(z.HostAddrs, a) || a.Is6() && a.IsLinkLocalUnicast() {
		return z.term(z.Host, ClassHost)
	}
	if slices.Contains(z.ToZoneAddrs, a) {
		// The inner wall sees the address only; the host wall names the zone.
		return wallVerdict{accept: true, term: "zone"}
	}
	if by, ok := in(a, z.ZoneNets); ok {
		return wallVerdict{why: "in the zones' range " + by.String() + ", where only a zone's own address is open, through zone:NAME"}
	}
	_, lanish := in(a, append(slices.Clone(lan), localcast...))
	return z.outside(lanish)
}

// outside decides by the lan and internet terms.
func (z Zone) outside(lanish bool) wallVerdict {
	if lanish {
		return z.term(z.LAN, ClassLAN)
	}
	return z.term(z.Internet, ClassInternet)
}

// term accepts by term when the allow list has it.
func (z Zone) term(on bool, term string) wallVerdict {
	if on {
		return wallVerdict{accept: true, term: term}
	}
	return wallVerdict{why: term + " is not in the allow list"}
}

// hostWall walks the host's chains for a new connection to d, in the order
// filterChains writes them: NSZ-Z-host for the host, NSZ-Z-out otherwise.
func (p Policy) hostWall(z Zone, via string, d Dest) wallVerdict {
	ph, pin := z.pinhole(d)
	switch via {
	case viaHost:
		if pin && !z.Host {
			return wallVerdict{accept: true, term: ph.String(), pinhole: true}
		}
		return z.term(z.Host, ClassHost)
	case viaUplink:
	default: // another zone's link: its term alone, never a pinhole
		for _, o := range p.Zones {
			if o.HostIf == via && slices.Contains(z.ToHostIfs, via) {
				return wallVerdict{accept: true, term: "zone:" + o.Name}
			}
		}
		return wallVerdict{why: "other zones are reached only through zone:NAME"}
	}
	if pin {
		return wallVerdict{accept: true, term: ph.String(), pinhole: true}
	}
	if z.Uplink == "" {
		return wallVerdict{why: "no uplink: lan and internet stay closed"}
	}
	_, lanish := in(d.Addr, p.LAN)
	return z.outside(lanish)
}

// pinhole returns the first of z's pinholes that opens d, as pinholeRules
// renders them: no port is every port of any protocol, a port without a
// protocol is tcp and udp, and PortHi below PortLo is the single port PortLo.
func (z Zone) pinhole(d Dest) (Pinhole, bool) {
	for _, ph := range z.Pinholes {
		if !ph.Dst.Contains(d.Addr) || ph.Proto != "" && ph.Proto != d.Proto {
			continue
		}
		if ph.PortLo == 0 {
			return ph, true
		}
		if (d.Proto == "tcp" || d.Proto == "udp") && ph.PortLo <= d.Port && d.Port <= max(ph.PortHi, ph.PortLo) {
			return ph, true
		}
	}
	return Pinhole{}, false
}

// String writes ph as the zones file's allow term does: "192.168.50.10",
// "10.0.0.0/8:8000-8080", "[2001:db8::1]:443/tcp".
func (ph Pinhole) String() string {
	a := ph.Dst.Masked().String()
	if ph.Dst.IsSingleIP() {
		a = ph.Dst.Addr().String()
	}
	if ph.PortLo == 0 {
		return a
	}
	if ph.Dst.Addr().Is6() {
		a = "[" + a + "]"
	}
	a += ":" + strconv.Itoa(int(ph.PortLo))
	if ph.PortHi > ph.PortLo {
		a += "-" + strconv.Itoa(int(ph.PortHi))
	}
	if ph.Proto != "" {
		a += "/" + ph.Proto
	}
	return a
}

func familyOfAddr(a netip.Addr) Family {
	if a.Is4() || a.Is4In6() {
		return IPv4
	}
	return IPv6
}

// in returns the first of ps that holds a.
func in(a netip.Addr, ps []netip.Prefix) (netip.Prefix, bool) {
	for _, p := range ps {
		if p.Contains(a) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}
