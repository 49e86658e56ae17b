// Package config is what nszone's zones file says: its zones, their allow
// terms, DNS, who may enter them, and the built-in default. Finding,
// reading and validating the file (YAML, version 1) is package
// config/zonesfile: kept apart so that what needs only the meaning (package
// zones, and through it the setuid nszone-enter, which reads nszone's
// records and never a zones file) links no YAML parser.
package config

import (
	"fmt"
	"net/netip"
	"slices"
)

// TermKind is the kind of one allow term.
type TermKind int

const (
	TermInternet TermKind = iota // "internet"
	TermLAN                      // "lan"
	TermHost                     // "host"
	TermZone                     // "zone:NAME"
	TermAddr                     // "ADDR", "CIDR", "ADDR:PORT/PROTO", "[V6]:LOW-HIGH"
)

// Term is one parsed allow term.
type Term struct {
	Kind   TermKind
	Raw    string       // as written in the file
	Line   int          // line in the file; 0 for the built-in default
	Zone   string       // TermZone: the target zone's name
	Prefix netip.Prefix // TermAddr: the destination (a host address becomes /32 or /128)
	Proto  string       // TermAddr: "" (both tcp and udp when a port is given; any protocol without a port), "tcp" or "udp"
	PortLo uint16       // TermAddr: 0 when no port was given
	PortHi uint16       // TermAddr: equal to PortLo for a single port
}

// DNS is a zone's DNS setting.
type DNS struct {
	Auto    bool         // "auto" (the default): the host's real upstream servers
	Servers []netip.Addr // an explicit list; empty with Auto false means no DNS
	Line    int
}

// Zone is one zone of the file.
type Zone struct {
	Name    string
	Line    int
	Allow   []Term
	DNS     DNS
	IPv6    bool         // default true
	Subnet  netip.Prefix // optional fixed IPv4 link subnet (at least /30); invalid when unset
	Subnet6 netip.Prefix // optional fixed IPv6 link subnet (at least /126); invalid when unset
	Access  Access
	// Publish lists the zone's services reachable from outside it.
	Publish []Publish
	// Via is the interface the zone's internet traffic must leave by
	// (a VPN's wg0, tun0); "" for the uplink. ViaLine is its line.
	Via     string
	ViaLine int
	// NoLog is log: false: the zone's refused connection attempts are not
	// logged (nszone log); they are still refused and counted.
	NoLog bool
}

// Publish is one publish: entry: a port of the host's forwarded to a port
// of the zone.
type Publish struct {
	Raw  string // as written in the file
	Line int
	// Addr is the host address it is published on: invalid for every
	// address of the host's, 127.0.0.1 or ::1 for the host itself only.
	Addr     netip.Addr
	HostPort uint16
	ZonePort uint16
	Proto    string // "tcp", "udp", or "" for both
}

// Protos lists the protocols p forwards.
func (p Publish) Protos() []string {
	if p.Proto == "" {
		return []string{"tcp", "udp"}
	}
	return []string{p.Proto}
}

// LoopbackOnly reports whether p is reachable from the host itself only.
func (p Publish) LoopbackOnly() bool { return p.Addr.IsValid() && p.Addr.IsLoopback() }

// Overlaps reports whether p and q would take the same port of the host's.
func (p Publish) Overlaps(q Publish) bool {
	if p.HostPort != q.HostPort || (p.Proto != "" && q.Proto != "" && p.Proto != q.Proto) {
		return false
	}
	return !p.Addr.IsValid() || !q.Addr.IsValid() || p.Addr == q.Addr
}

// Access says who may enter a zone without sudo, through the setuid helper
// nszone-enter, and how programs run there. Names are resolved when someone
// enters, so a user created after up is known.
type Access struct {
	Users      []string `json:"users,omitempty"`        // user names
	Groups     []string `json:"groups,omitempty"`       // group names; members of any may enter
	NoNewPrivs bool     `json:"no_new_privs,omitempty"` // programs start with PR_SET_NO_NEW_PRIVS
	// Confine is what a program in the zone reaches besides the network:
	// ConfineDesktop, ConfineStrict or ConfineNone ("" in a record written
	// before there was a choice: desktop).
	Confine string `json:"confine,omitempty"`
}

// Confinements, as confine: names them.
const (
	// ConfineDesktop: its own PID namespace and /proc, a private /tmp (the
	// X11 socket directory bound in), of the runtime directory only the
	// display and sound sockets, the session bus through a filter, no other
	// unix socket of the host's.
	ConfineDesktop = "desktop"
	// ConfineStrict: as desktop, with no display, sound or bus at all.
	ConfineStrict = "strict"
	// ConfineNone: the network namespace and the /etc/netns binds only,
	// as ip netns exec.
	ConfineNone = "none"
)

// Confinements lists the values confine: takes.
var Confinements = []string{ConfineDesktop, ConfineStrict, ConfineNone}

// ConfineOr is a's confinement, desktop when a record predates the key.
func (a Access) ConfineOr() string {
	if a.Confine == "" {
		return ConfineDesktop
	}
	return a.Confine
}

// Equal reports whether a and b let in the same names the same way.
func (a Access) Equal(b Access) bool {
	return slices.Equal(a.Users, b.Users) && slices.Equal(a.Groups, b.Groups) && a.NoNewPrivs == b.NoNewPrivs &&
		a.ConfineOr() == b.ConfineOr()
}

// Check holds the targets that `nszone check` probes.
type Check struct {
	Internet []string // "HOST:PORT"
	LAN      []string
	DNS      []string // names to resolve
}

// File is a parsed, validated zones file.
type File struct {
	Path       string // "" for the built-in default
	Version    int
	Uplink     string // "auto" or an interface name
	UplinkLine int
	LAN        []netip.Prefix
	Zones      []Zone // in file order
	Check      Check
}

// Error is a problem in a zones file, printed as FILE:LINE: what is wrong.
type Error struct {
	File string
	Line int // 1-based; 0 when no line applies (missing file, empty file, ...)
	Msg  string
	Err  error // the underlying cause (an I/O or yaml error), if any
}

func (e *Error) Error() string {
	name := e.File
	if name == "" {
		name = "built-in default"
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", name, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", name, e.Msg)
}

// Unwrap returns the underlying cause, so errors.Is(err, fs.ErrNotExist) works.
func (e *Error) Unwrap() error { return e.Err }

// Zone returns the zone called name, or nil.
func (f *File) Zone(name string) *Zone {
	for i := range f.Zones {
		if f.Zones[i].Name == name {
			return &f.Zones[i]
		}
	}
	return nil
}
