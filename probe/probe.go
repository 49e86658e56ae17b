// Package probe makes the observations of nszone check: one TCP or UDP
// attempt from the calling thread's network namespace, and the listeners
// that answer them, on the host and in zones. Package check plans the
// observations and says what each should see; neither is linked by
// nszone-enter, which links zones for its readiness check, nor are their
// dependencies (docs/security.md).
package probe

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Timeout bounds one attempt. Forbidden attempts are rejected by the
// firewall (a reset, an ICMP error), so only a dropped packet waits this long.
const Timeout = 1500 * time.Millisecond

// Listen opens a listener on ephemeral ports of the unspecified addresses
// of the calling thread's namespace, IPv6 too when v6: TCP connections are
// accepted and closed, UDP datagrams from zones (and link-local senders)
// sent back. stop closes it.
func Listen(v6 bool, zones []netip.Prefix) (tcp, udp uint16, stop func(), err error) {
	e, err := listenEcho(v6, zones)
	if err != nil {
		return 0, 0, nil, err
	}
	tcp, udp = e.ports()
	return tcp, udp, e.Close, nil
}

// Attempt makes one connection in the calling thread's namespace: TCP is
// allowed when the handshake completes; UDP when a reply comes back (a DNS
// query for dnsName, which DNS servers and the listeners both answer).
func Attempt(proto string, dst netip.AddrPort, dnsName string) error {
	if proto == "tcp" {
		c, err := net.DialTimeout("tcp", dst.String(), Timeout)
		if err != nil {
			return err
		}
		return c.Close()
	}
	id := randomID()
	q, err := dnsQuery(dnsName, id)
	if err != nil {
		return err
	}
	return exchangeUDP(dst, q, func(b []byte) bool { return isDNSReply(b, id) || string(b) == string(q) })
}

// exchangeUDP sends payload until a reply that isReply accepts comes back,
// resending twice within Timeout, as a resolver would.
func exchangeUDP(dst netip.AddrPort, payload []byte, isReply func([]byte) bool) error {
	c, err := net.DialTimeout("udp", dst.String(), Timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	end := time.Now().Add(Timeout)
	buf := make([]byte, 4096)
	for {
		if _, err := c.Write(payload); err != nil {
			return err
		}
		next := time.Now().Add(Timeout / 3)
		if next.After(end) {
			next = end
		}
		c.SetReadDeadline(next)
		for {
			n, err := c.Read(buf)
			if err == nil {
				if isReply(buf[:n]) {
					return nil
				}
				continue
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Now().Before(end) {
				break // resend
			}
			return err
		}
	}
}

func randomID() uint16 {
	var b [2]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint16(b[:])
}

func dnsQuery(name string, id uint16) ([]byte, error) {
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	n, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, fmt.Errorf("dns name %q: %w", name, err)
	}
	msg := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
	}
	return msg.Pack()
}

// isDNSReply accepts any answer to query id, an error code included: the
// server was reached.
func isDNSReply(b []byte, id uint16) bool {
	var p dnsmessage.Parser
	h, err := p.Start(b)
	return err == nil && h.Response && h.ID == id
}

// echo is a check listener: TCP connections are accepted and closed, UDP
// datagrams from a zone are sent back. Its sockets keep the namespace they
// were made in, so it is served from any goroutine.
type echo struct {
	tcp  net.Listener
	udp  []net.PacketConn // IPv4, then IPv6 on the same port
	port uint16           // of the UDP sockets
	wg   sync.WaitGroup
}

// listenEcho opens a listener on ephemeral ports of the unspecified
// addresses, IPv6 too when v6. UDP is echoed only to zones (and link-local
// senders): check is no reflector.
//
// A UDP reply must come from the address the probe was sent to, or the
// prober's connected socket drops it, and the kernel would pick the source
// by route (the zone's gateway) for every host address. So each datagram's
// destination is read and used as the reply's source; that needs one socket
// per family (IPv6's packet information cannot carry an IPv4 source).
func listenEcho(v6 bool, zones []netip.Prefix) (_ *echo, err error) {
	e := &echo{}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	tcpNet, tcpAddr := "tcp4", "0.0.0.0:0"
	if v6 {
		tcpNet, tcpAddr = "tcp", ":0" // dual-stack: TCP replies go out on the connection
	}
	if e.tcp, err = net.Listen(tcpNet, tcpAddr); err != nil {
		return nil, err
	}
	u4, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		return nil, err
	}
	e.udp = append(e.udp, u4)
	e.port = uint16(u4.LocalAddr().(*net.UDPAddr).Port)
	p4 := ipv4.NewPacketConn(u4)
	if err := p4.SetControlMessage(ipv4.FlagDst, true); err != nil {
		return nil, fmt.Errorf("asking for packet information: %w", err)
	}
	var p6 *ipv6.PacketConn
	if v6 {
		u6, err := net.ListenPacket("udp6", fmt.Sprintf("[::]:%d", e.port)) // udp6: IPv6 only
		if err != nil {
			return nil, err
		}
		e.udp = append(e.udp, u6)
		p6 = ipv6.NewPacketConn(u6)
		if err := p6.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
			return nil, fmt.Errorf("asking for packet information: %w", err)
		}
	}
	e.wg.Go(func() {
		for {
			c, err := e.tcp.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	e.wg.Go(func() {
		buf := make([]byte, 4096)
		for {
			n, cm, from, err := p4.ReadFrom(buf)
			if err != nil {
				return
			}
			if cm != nil && fromZone(from, zones) {
				p4.WriteTo(buf[:n], &ipv4.ControlMessage{Src: cm.Dst}, from)
			}
		}
	})
	if p6 != nil {
		e.wg.Go(func() {
			buf := make([]byte, 4096)
			for {
				n, cm, from, err := p6.ReadFrom(buf)
				if err != nil {
					return
				}
				// The interface too: a link-local sender is reached only through it.
				if cm != nil && fromZone(from, zones) {
					p6.WriteTo(buf[:n], &ipv6.ControlMessage{Src: cm.Dst, IfIndex: cm.IfIndex}, from)
				}
			}
		})
	}
	return e, nil
}

// ports are the listener's TCP and UDP ports.
func (e *echo) ports() (tcp, udp uint16) {
	return uint16(e.tcp.Addr().(*net.TCPAddr).Port), e.port
}

func (e *echo) Close() {
	if e.tcp != nil {
		e.tcp.Close()
	}
	for _, u := range e.udp {
		u.Close()
	}
	e.wg.Wait()
}

// fromZone reports whether a datagram came from a zone: one of its subnets,
// or an IPv6 link-local address, which only a directly attached link has.
func fromZone(from net.Addr, zones []netip.Prefix) bool {
	ua, ok := from.(*net.UDPAddr)
	if !ok {
		return false
	}
	a := ua.AddrPort().Addr().Unmap().WithZone("")
	if a.Is6() && a.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range zones {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
