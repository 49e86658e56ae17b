package zonesfile

import (
	"fmt"
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/nszone/nszone/config"
)

// parsePublish parses one publish: entry: ZONEPORT[/PROTO],
// HOSTPORT:ZONEPORT[/PROTO] or ADDR:HOSTPORT:ZONEPORT[/PROTO], ADDR an
// IPv4 address or an IPv6 one in brackets.
func parsePublish(s string) (config.Publish, error) {
	p := config.Publish{Raw: s}
	rest, proto, hasProto := strings.Cut(s, "/")
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return p, fmt.Errorf("invalid protocol %q in publish entry %q (want tcp or udp, or none for both)", proto, s)
		}
		p.Proto = proto
	}
	if strings.HasPrefix(rest, "[") {
		a, after, ok := strings.Cut(rest[1:], "]")
		if !ok || !strings.HasPrefix(after, ":") {
			return p, fmt.Errorf("invalid publish entry %q (want [IPV6]:HOSTPORT:ZONEPORT)", s)
		}
		addr, err := parseAddr(a, " in publish entry "+fmt.Sprintf("%q", s))
		if err != nil {
			return p, err
		}
		if !addr.Is6() {
			return p, fmt.Errorf("publish entry %q: brackets are for IPv6 addresses; write %s without them", s, addr)
		}
		p.Addr, rest = addr, after[1:]
		if strings.Count(rest, ":") != 1 {
			return p, fmt.Errorf("invalid publish entry %q (want [IPV6]:HOSTPORT:ZONEPORT)", s)
		}
	}
	parts := strings.Split(rest, ":")
	switch {
	case len(parts) == 3 && !p.Addr.IsValid():
		addr, err := parseAddr(parts[0], fmt.Sprintf(" in publish entry %q", s))
		if err != nil {
			return p, err
		}
		p.Addr, parts = addr, parts[1:]
	case len(parts) > 3:
		return p, fmt.Errorf("invalid publish entry %q (an IPv6 address goes in brackets: \"[::1]:8080:80\")", s)
	}
	if p.Addr == netip.IPv6Loopback() {
		// The kernel drops IPv6 packets from or to ::1 on any link but lo,
		// so no rule can carry them into a zone (IPv4 has route_localnet).
		return p, fmt.Errorf("publish entry %q: the kernel cannot forward [::1] into a zone; publish on 127.0.0.1 for the host only", s)
	}
	if p.Addr.IsValid() && (p.Addr.IsMulticast() || p.Addr.IsUnspecified() || p.Addr.IsLinkLocalUnicast()) {
		return p, fmt.Errorf("publish entry %q: %s is no address to publish on (want one of the host's, 127.0.0.1, or none for all)", s, p.Addr)
	}
	var err error
	if p.ZonePort, err = parsePort(parts[len(parts)-1], s); err != nil {
		return p, err
	}
	p.HostPort = p.ZonePort
	if len(parts) == 2 {
		if p.HostPort, err = parsePort(parts[0], s); err != nil {
			return p, err
		}
	}
	return p, nil
}

// publish reads a zone's publish: list.
func (d *decoder) publish(z *config.Zone, n *yaml.Node) ([]config.Publish, error) {
	where := fmt.Sprintf("in zone %q", z.Name)
	items, err := d.list(n, "publish "+where)
	if err != nil {
		return nil, err
	}
	out := make([]config.Publish, 0, len(items))
	for _, it := range items {
		s := it.Value
		if it.Kind != yaml.ScalarNode || it.Tag != "!!int" {
			if s, err = d.str(it, "publish entry "+where); err != nil {
				return nil, err
			}
		}
		p, err := parsePublish(s)
		if err != nil {
			return nil, d.errf(it.Line, "%v", err)
		}
		p.Line = it.Line
		if !z.IPv6 && p.Addr.Is6() {
			return nil, d.errf(p.Line, "zone %q has ipv6: false but publishes on the ipv6 address %s (%q)", z.Name, p.Addr, s)
		}
		out = append(out, p)
	}
	return out, nil
}

// published refuses a host port that two publish: entries take, in one
// zone or in two.
func (d *decoder) published(f *config.File) error {
	type entry struct {
		p    config.Publish
		zone string
	}
	var seen []entry
	for _, z := range f.Zones {
		for _, p := range z.Publish {
			for _, e := range seen {
				if e.p.Overlaps(p) {
					return d.errf(p.Line, "host port %s is published twice: by %q in zone %q and by %q in zone %q (line %d)",
						portText(p), p.Raw, z.Name, e.p.Raw, e.zone, e.p.Line)
				}
			}
			seen = append(seen, entry{p, z.Name})
		}
	}
	return nil
}

func portText(p config.Publish) string {
	s := fmt.Sprint(p.HostPort)
	if p.Proto != "" {
		s += "/" + p.Proto
	}
	if p.Addr.IsValid() {
		s = netip.AddrPortFrom(p.Addr, p.HostPort).String()
		if p.Proto != "" {
			s += "/" + p.Proto
		}
	}
	return s
}

// via reads a zone's via: the interface its internet traffic must leave by.
func (d *decoder) via(z *config.Zone, n *yaml.Node) (string, error) {
	s, err := d.str(n, fmt.Sprintf("via in zone %q", z.Name))
	if err != nil {
		return "", err
	}
	if why := ifnameProblem(s); why != "" {
		return "", d.errf(n.Line, "invalid via %q in zone %q: %s", s, z.Name, why)
	}
	return s, nil
}
