// Package tap records every IP frame that reaches or leaves an interface,
// whatever socket (if any) would take it: TCP SYNs that never get an
// answer, ICMP, datagrams for ports nobody listens on.
package tap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/netns"
)

// Packet is what a tap saw of one frame.
type Packet struct {
	At           time.Time
	Src, Dst     netip.Addr
	Proto        uint8 // 6 tcp, 17 udp, 1 icmp, 58 icmpv6
	SPort, DPort uint16
	SYN, ACK     bool
	ICMPType     uint8
	Payload      []byte
}

func (p Packet) String() string {
	switch p.Proto {
	case 6:
		return fmt.Sprintf("tcp %s:%d > %s:%d syn=%v ack=%v", p.Src, p.SPort, p.Dst, p.DPort, p.SYN, p.ACK)
	case 17:
		return fmt.Sprintf("udp %s:%d > %s:%d %q", p.Src, p.SPort, p.Dst, p.DPort, trim(p.Payload))
	case 1, 58:
		return fmt.Sprintf("icmp %s > %s type %d %q", p.Src, p.Dst, p.ICMPType, trim(p.Payload))
	}
	return fmt.Sprintf("proto %d %s > %s", p.Proto, p.Src, p.Dst)
}

func trim(b []byte) []byte {
	if len(b) > 48 {
		return b[:48]
	}
	return b
}

// Tap holds the frames seen on one interface.
type Tap struct {
	where string
	mu    sync.Mutex
	pkts  []Packet
	f     *os.File
}

// Start records every IP frame that reaches (or leaves) ifname in the
// network namespace ns (pinned under /run/netns; "": the caller's own),
// until the test ends.
func Start(tb testing.TB, ns, ifname string) *Tap {
	tb.Helper()
	tp := &Tap{where: ns + "/" + ifname}
	open := func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := htons(unix.ETH_P_ALL)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("opening a packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("binding the packet socket to %s: %w", ifname, err)
		}
		tp.f = os.NewFile(uintptr(fd), "tap "+tp.where)
		return nil
	}
	var err error
	if ns == "" {
		err = open()
	} else {
		err = netns.RunIn(ns, open)
	}
	if err != nil {
		tb.Fatalf("tap on %s: %v", tp.where, err)
	}
	go tp.read()
	tb.Cleanup(func() { tp.f.Close() })
	return tp
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (tp *Tap) read() {
	buf := make([]byte, 65536)
	for {
		n, err := tp.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		if p, ok := parse(buf[:n]); ok {
			p.At = time.Now()
			tp.mu.Lock()
			tp.pkts = append(tp.pkts, p)
			tp.mu.Unlock()
		}
	}
}

// parse reads an Ethernet frame carrying IPv4 or IPv6.
func parse(b []byte) (Packet, bool) {
	var p Packet
	if len(b) < 14 {
		return p, false
	}
	etype := binary.BigEndian.Uint16(b[12:])
	b = b[14:]
	var l4 []byte
	switch etype {
	case 0x0800:
		if len(b) < 20 {
			return p, false
		}
		ihl := int(b[0]&0x0f) * 4
		if len(b) < ihl {
			return p, false
		}
		p.Proto = b[9]
		p.Src = netip.AddrFrom4([4]byte(b[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		total := int(binary.BigEndian.Uint16(b[2:]))
		if total > len(b) || total < ihl {
			total = len(b)
		}
		l4 = b[ihl:total]
	case 0x86dd:
		if len(b) < 40 {
			return p, false
		}
		p.Src = netip.AddrFrom16([16]byte(b[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		nh := b[6]
		l4 = b[40:]
		for nh == 0 || nh == 43 || nh == 60 { // hop-by-hop, routing, destination options
			if len(l4) < 8 {
				return p, false
			}
			n := (int(l4[1]) + 1) * 8
			if len(l4) < n {
				return p, false
			}
			nh, l4 = l4[0], l4[n:]
		}
		p.Proto = nh
	default:
		return p, false
	}
	switch p.Proto {
	case 6:
		if len(l4) >= 20 {
			p.SPort, p.DPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
			p.SYN, p.ACK = l4[13]&0x02 != 0, l4[13]&0x10 != 0
			off := int(l4[12]>>4) * 4
			if off <= len(l4) {
				p.Payload = slices.Clone(l4[off:])
			}
		}
	case 17:
		if len(l4) >= 8 {
			p.SPort, p.DPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
			p.Payload = slices.Clone(l4[8:])
		}
	case 1, 58:
		if len(l4) >= 8 {
			p.ICMPType = l4[0]
			p.Payload = slices.Clone(l4[8:])
		}
	}
	return p, true
}

// Mark returns a position: Count and Describe then look only at frames
// seen after it.
func (tp *Tap) Mark() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return len(tp.pkts)
}

func (tp *Tap) matching(from int, pred func(Packet) bool) []Packet {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var out []Packet
	for _, p := range tp.pkts[min(from, len(tp.pkts)):] {
		if pred(p) {
			out = append(out, p)
		}
	}
	return out
}

// Count returns the number of frames seen since from that pred accepts.
func (tp *Tap) Count(from int, pred func(Packet) bool) int {
	return len(tp.matching(from, pred))
}

// Describe lists the frames that Count counts, for failure messages.
func (tp *Tap) Describe(from int, pred func(Packet) bool) string {
	ps := tp.matching(from, pred)
	var out []string
	for i, p := range ps {
		if i == 10 {
			out = append(out, fmt.Sprintf("  ... %d more", len(ps)-10))
			break
		}
		out = append(out, "  "+p.String())
	}
	return strings.Join(out, "\n")
}

// SYNTo accepts a TCP SYN (no ACK) to dst:port.
func SYNTo(dst netip.Addr, port uint16) func(Packet) bool {
	return func(p Packet) bool { return p.Proto == 6 && p.SYN && !p.ACK && p.Dst == dst && p.DPort == port }
}

// WithToken accepts a frame whose payload carries token.
func WithToken(token string) func(Packet) bool {
	return func(p Packet) bool { return bytes.Contains(p.Payload, []byte(token)) }
}

// EchoTo accepts an ICMP or ICMPv6 echo request to dst whose payload
// carries pattern.
func EchoTo(dst netip.Addr, pattern []byte) func(Packet) bool {
	return func(p Packet) bool {
		return (p.Proto == 1 && p.ICMPType == 8 || p.Proto == 58 && p.ICMPType == 128) &&
			p.Dst == dst && bytes.Contains(p.Payload, pattern)
	}
}
