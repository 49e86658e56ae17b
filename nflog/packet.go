// Package nflog reads the packets the kernel's netfilter logs to an NFLOG
// group (iptables -j NFLOG, nftables log group) in one network namespace,
// and reads a logged packet's headers: protocol, addresses and ports.
package nflog

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Packet is one logged packet.
type Packet struct {
	Time    time.Time // when the kernel logged it, or when it was read
	Prefix  string    // the log rule's prefix
	Payload []byte    // the packet from its network header on, cut at the rule's snaplen
	UID     int       // the sending socket's owner; -1 when unknown
}

// Flow is what a logged packet's headers say.
type Flow struct {
	Proto    string // "tcp", "udp", "icmp", "ipv6-icmp", or the protocol's number
	Src, Dst netip.Addr
	// Sport and Dport are the ports of TCP and UDP; for ICMP and ICMPv6,
	// Dport is the message's type.
	Sport, Dport uint16
}

var protoNames = map[byte]string{1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp"}

// IPv6 extension headers that the protocol's header follows.
var ipv6Ext = map[byte]bool{0: true, 43: true, 60: true}

// ParseFlow reads the IPv4 or IPv6 header at the start of b and the
// transport header after it. A packet cut before its ports gives the
// addresses and protocol alone.
func ParseFlow(b []byte) (Flow, error) {
	if len(b) < 1 {
		return Flow{}, fmt.Errorf("empty packet")
	}
	var f Flow
	var proto byte
	var rest []byte
	switch b[0] >> 4 {
	case 4:
		ihl := int(b[0]&0x0f) * 4
		if len(b) < 20 || ihl < 20 || len(b) < ihl {
			return Flow{}, fmt.Errorf("IPv4 header cut short (%d bytes)", len(b))
		}
		proto = b[9]
		f.Src, _ = netip.AddrFromSlice(b[12:16])
		f.Dst, _ = netip.AddrFromSlice(b[16:20])
		rest = b[ihl:]
		if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
			rest = nil // a later fragment has no transport header
		}
	case 6:
		if len(b) < 40 {
			return Flow{}, fmt.Errorf("IPv6 header cut short (%d bytes)", len(b))
		}
		proto = b[6]
		f.Src, _ = netip.AddrFromSlice(b[8:24])
		f.Dst, _ = netip.AddrFromSlice(b[24:40])
		rest = b[40:]
		for ipv6Ext[proto] && len(rest) >= 8 {
			n := 8 * (int(rest[1]) + 1)
			if len(rest) < n {
				rest = nil
				break
			}
			proto, rest = rest[0], rest[n:]
		}
	default:
		return Flow{}, fmt.Errorf("not an IP packet (version %d)", b[0]>>4)
	}
	f.Proto = protoNames[proto]
	if f.Proto == "" {
		f.Proto = strconv.Itoa(int(proto))
	}
	switch {
	case (proto == 6 || proto == 17 || proto == 132) && len(rest) >= 4:
		f.Sport, f.Dport = binary.BigEndian.Uint16(rest[0:2]), binary.BigEndian.Uint16(rest[2:4])
	case (proto == 1 || proto == 58) && len(rest) >= 1:
		f.Dport = uint16(rest[0])
	}
	return f, nil
}
