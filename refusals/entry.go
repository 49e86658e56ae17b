// Package refusals is nszone's log of the connection attempts its zones'
// walls refused: the entries, the bounded ring of files in /run/nszone
// that keeps the recent ones, and the collector that turns the kernel's
// log of each zone (NFLOG, see firewall.LogGroup) into entries.
package refusals

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Entry is one refused connection attempt.
type Entry struct {
	Time  time.Time  `json:"time"`
	Zone  string     `json:"zone"`
	Proto string     `json:"proto"` // tcp, udp, icmp, ipv6-icmp, or the protocol's number
	Src   netip.Addr `json:"src"`
	Sport uint16     `json:"sport,omitempty"`
	Dst   netip.Addr `json:"dst"`
	Dport uint16     `json:"dport"` // for ICMP, the message's type
	// Class is what the destination is to the zone, as explain names it:
	// lan, host, internet or zone:NAME; ClassUnknown while the zones'
	// records or the host's addresses could not be read.
	Class string `json:"class"`
	// UID owns the socket that tried.
	UID *int `json:"uid,omitempty"`
}

// ClassUnknown is an entry's class when it could not be told.
const ClassUnknown = "unknown"

// endpoint writes an address and port as a dialer takes them.
func endpoint(a netip.Addr, port uint16, proto string) string {
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return a.String()
	}
	return netip.AddrPortFrom(a, port).String()
}

// Columns are the table's headings, in Row's order.
var Columns = []string{"TIME", "ZONE", "PROTO", "SOURCE", "DESTINATION", "CLASS"}

// Row is e as a row of the table: the time in local time to the
// millisecond, ICMP's message type after the destination.
func (e Entry) Row() []string {
	dst := endpoint(e.Dst, e.Dport, e.Proto)
	if e.Proto == "icmp" || e.Proto == "ipv6-icmp" {
		dst += " type " + strconv.Itoa(int(e.Dport))
	}
	return []string{e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Zone, e.Proto,
		endpoint(e.Src, e.Sport, e.Proto), dst, e.Class}
}

// String is e in one line, as the journal gets it.
func (e Entry) String() string {
	s := fmt.Sprintf("blocked connection: zone %s %s %s -> %s (%s)", e.Zone, e.Proto,
		endpoint(e.Src, e.Sport, e.Proto), endpoint(e.Dst, e.Dport, e.Proto), e.Class)
	if e.UID != nil {
		s += fmt.Sprintf(" uid %d", *e.UID)
	}
	return s
}

// flowKey is what makes two logged packets one attempt: a retransmitted
// SYN, a resent datagram from the same socket.
type flowKey struct {
	zone, proto  string
	src, dst     netip.Addr
	sport, dport uint16
}

func (e Entry) key() flowKey {
	return flowKey{e.Zone, e.Proto, e.Src, e.Dst, e.Sport, e.Dport}
}

// dedup passes the first packet of each flow and drops the others seen
// within window of the flow's last packet.
type dedup struct {
	window time.Duration
	max    int // flows remembered; beyond it, the expired are forgotten
	seen   map[flowKey]time.Time
}

func newDedup(window time.Duration, max int) *dedup {
	return &dedup{window: window, max: max, seen: map[flowKey]time.Time{}}
}

// first reports whether e starts a flow, and remembers it.
func (d *dedup) first(e Entry) bool {
	k := e.key()
	last, ok := d.seen[k]
	d.seen[k] = e.Time
	if ok && e.Time.Sub(last) < d.window {
		return false
	}
	if len(d.seen) > d.max {
		for k, t := range d.seen {
			if e.Time.Sub(t) >= d.window {
				delete(d.seen, k)
			}
		}
		if len(d.seen) > d.max {
			clear(d.seen) // a flood of distinct flows: forget, and log some twice
		}
	}
	return true
}
