package zonesfile

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/nszone/nszone/config"
)

// Allow-term grammar (the zones file's "allow" list):
//
//	internet | lan | host | zone:NAME
//	ADDR | CIDR                          any port, any protocol
//	ADDR:PORTS[/PROTO]                   IPv4 only; PORTS is PORT or LOW-HIGH
//	CIDR:PORTS[/PROTO]                   IPv4 network with ports, e.g. 10.0.0.0/8:443/tcp
//	[V6ADDR]:PORTS[/PROTO]               IPv6 with ports needs brackets
//	[V6CIDR]:PORTS[/PROTO]               e.g. [fd00::/8]:53/udp
//
// PROTO is tcp or udp; without it a port means both. A bare IPv6 address
// (two or more colons, no brackets) is always an address without a port:
// "2001:db8::1:443" is the address 2001:db8::1:443, not port 443.

var errNoTerm = errors.New("empty allow term")

// parseTerm parses one allow term. Errors are plain messages; the caller
// adds file and line. A zone: term's target is checked by the caller.
func parseTerm(s string) (config.Term, error) {
	t := config.Term{Raw: s}
	switch s {
	case "":
		return t, errNoTerm
	case "internet":
		t.Kind = config.TermInternet
		return t, nil
	case "lan":
		t.Kind = config.TermLAN
		return t, nil
	case "host":
		t.Kind = config.TermHost
		return t, nil
	}
	if name, ok := strings.CutPrefix(s, "zone:"); ok {
		if !config.ZoneNameRE().MatchString(name) {
			return t, fmt.Errorf("invalid zone name %q in %q: must match %s", name, s, config.ZoneNameRE())
		}
		t.Kind, t.Zone = config.TermZone, name
		return t, nil
	}
	if isWord(s) {
		return t, fmt.Errorf("unknown allow term %q (want internet, lan, host, zone:NAME, or an address with optional :PORT[-PORT][/tcp|/udp])", s)
	}

	t.Kind = config.TermAddr
	addr, ports, bracket, hasPort := s, "", false, false
	if rest, ok := strings.CutPrefix(s, "["); ok {
		a, after, ok := strings.Cut(rest, "]")
		switch {
		case !ok:
			return t, fmt.Errorf("missing \"]\" in %q", s)
		case after == "":
			return t, fmt.Errorf("brackets without a port in %q (write %s for any port, or [%s]:PORT)", s, a, a)
		case after[0] != ':':
			return t, fmt.Errorf("want \":PORT\" after \"]\" in %q", s)
		}
		addr, ports, bracket, hasPort = a, after[1:], true, true
	} else if strings.Count(s, ":") == 1 {
		addr, ports, _ = strings.Cut(s, ":")
		hasPort = true
	}

	p, err := parsePrefix(addr, s)
	if err != nil {
		if !hasPort && (strings.HasSuffix(s, "/tcp") || strings.HasSuffix(s, "/udp")) {
			if strings.Contains(s, ":") {
				return t, fmt.Errorf("%w (an ipv6 address with a port needs brackets: [ADDR]:PORT/PROTO)", err)
			}
			return t, fmt.Errorf("%w (a protocol needs a port: ADDR:PORT/PROTO)", err)
		}
		return t, err
	}
	if bracket && !p.Addr().Is6() {
		return t, fmt.Errorf("brackets are for ipv6 addresses only in %q (write %s:%s)", s, addr, ports)
	}
	t.Prefix = p
	if hasPort {
		if t.PortLo, t.PortHi, t.Proto, err = parsePorts(ports, s); err != nil {
			return t, err
		}
	}
	return t, nil
}

// isWord reports whether s cannot be the start of an address: IPv4 starts
// with a digit, IPv6 with a hex group or a colon, and brackets with "[".
// So "lna", "Host:22", "zone :lan" and " lan" are words; "fe80::1" and
// "add:22" (an IPv4-style address that is wrong) are not.
func isWord(s string) bool {
	c := s[0]
	if c == '[' || c == ':' || '0' <= c && c <= '9' {
		return false
	}
	if !isHex(c) {
		return true
	}
	head, _, colon := strings.Cut(s, ":")
	if !colon {
		return true
	}
	for i := 0; i < len(head); i++ {
		if !isHex(head[i]) {
			return true
		}
	}
	return false
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// parsePrefix parses an address (which becomes /32 or /128) or a CIDR
// without host bits. in is the whole text it came from, for messages.
func parsePrefix(a, in string) (netip.Prefix, error) {
	where := ""
	if a != in {
		where = fmt.Sprintf(" in %q", in)
	}
	if strings.Contains(a, "/") {
		p, err := netip.ParsePrefix(a)
		switch {
		case err != nil:
			return p, fmt.Errorf("invalid prefix %q%s", a, where)
		case p.Addr().Is4In6():
			return p, fmt.Errorf("prefix %s%s is ipv4-mapped ipv6; write it as ipv4", p, where)
		case p != p.Masked():
			return p, fmt.Errorf("prefix %s%s has host bits set (did you mean %s?)", p, where, p.Masked())
		}
		return p, nil
	}
	ip, err := parseAddr(a, where)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// parseAddr parses a single address; where is appended to messages.
func parseAddr(a, where string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(a)
	switch {
	case err != nil:
		return ip, fmt.Errorf("invalid address %q%s", a, where)
	case ip.Zone() != "":
		return ip, fmt.Errorf("address %q%s has a zone (%%%s); scoped addresses are not allowed", a, where, ip.Zone())
	case ip.Is4In6():
		return ip, fmt.Errorf("address %s%s is ipv4-mapped ipv6; write %s", a, where, ip.Unmap())
	}
	return ip, nil
}

// parsePorts parses PORT, LOW-HIGH, each optionally followed by /tcp or /udp.
func parsePorts(s, in string) (lo, hi uint16, proto string, err error) {
	s, proto, hasProto := strings.Cut(s, "/")
	if hasProto && proto != "tcp" && proto != "udp" {
		return 0, 0, "", fmt.Errorf("invalid protocol %q in %q (want tcp or udp)", proto, in)
	}
	l, h, isRange := strings.Cut(s, "-")
	if lo, err = parsePort(l, in); err != nil {
		return 0, 0, "", err
	}
	hi = lo
	if isRange {
		if hi, err = parsePort(h, in); err != nil {
			return 0, 0, "", err
		}
		if lo > hi {
			return 0, 0, "", fmt.Errorf("invalid port range %d-%d in %q (low port above high)", lo, hi, in)
		}
	}
	return lo, hi, proto, nil
}

// parsePort parses a decimal port 1-65535.
func parsePort(s, in string) (uint16, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("invalid port %q in %q", s, in)
	}
	n := 0
	for i := 0; i < len(s) && n <= 65535; i++ {
		n = n*10 + int(s[i]-'0')
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("invalid port %s in %q", s, in)
	}
	return uint16(n), nil
}

// termKey is what makes two terms the same rule, whatever their spelling.
type termKey struct {
	kind   config.TermKind
	zone   string
	prefix netip.Prefix
	proto  string
	lo, hi uint16
}

func keyOf(t config.Term) termKey {
	return termKey{t.Kind, t.Zone, t.Prefix, t.Proto, t.PortLo, t.PortHi}
}

// isIPv6 reports whether the term names IPv6 addresses only.
func isIPv6(t config.Term) bool { return t.Kind == config.TermAddr && t.Prefix.Addr().Is6() }
