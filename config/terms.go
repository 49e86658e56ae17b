package config

import (
	"fmt"
	"strconv"
)

// String returns the canonical form of the term, itself a valid term that
// parses back to the same Term: "internet", "lan", "host", "zone:NAME";
// addresses as "192.168.50.10", "10.0.0.0/8", "2001:db8::1",
// "192.168.50.10:22/tcp", "10.0.0.0/8:8000-8080", "[2001:db8::1]:443/tcp".
// A single host is written without /32 or /128; no /PROTO means both.
func (t Term) String() string {
	switch t.Kind {
	case TermInternet:
		return "internet"
	case TermLAN:
		return "lan"
	case TermHost:
		return "host"
	case TermZone:
		return "zone:" + t.Zone
	case TermAddr:
		a := t.Prefix.String()
		if t.Prefix.IsSingleIP() {
			a = t.Prefix.Addr().String()
		}
		if t.PortLo == 0 {
			return a
		}
		if t.Prefix.Addr().Is6() {
			a = "[" + a + "]"
		}
		a += ":" + strconv.Itoa(int(t.PortLo))
		if t.PortHi != t.PortLo {
			a += "-" + strconv.Itoa(int(t.PortHi))
		}
		if t.Proto != "" {
			a += "/" + t.Proto
		}
		return a
	}
	return fmt.Sprintf("TermKind(%d)", int(t.Kind))
}

// String returns the kind's name as used in the file ("addr" for TermAddr).
func (k TermKind) String() string {
	switch k {
	case TermInternet:
		return "internet"
	case TermLAN:
		return "lan"
	case TermHost:
		return "host"
	case TermZone:
		return "zone"
	case TermAddr:
		return "addr"
	}
	return fmt.Sprintf("TermKind(%d)", int(k))
}
