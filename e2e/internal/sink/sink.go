// Package sink is the end-to-end tests' receiver: listeners in a network
// namespace that record every datagram and connection that arrives, so that
// a test counts traffic where it would land, not where it was sent.
package sink

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/netns"
)

// Options say what to listen on.
type Options struct {
	UDP, TCP []int        // ports, on both families
	Groups   []netip.Addr // multicast groups to join on Ifname
	Ifname   string       // default eth0
	Echo     bool         // answer every datagram and connection
}

type datagram struct {
	port int
	from netip.AddrPort
	data string
}

type conn struct {
	port int
	from netip.AddrPort
}

// Sink counts datagrams and accepted connections on its ports.
type Sink struct {
	where   string
	mu      sync.Mutex
	grams   []datagram
	conns   []conn
	closers []func() error
}

// Listen opens listeners in the network namespace ns (pinned under
// /run/netns; "": the caller's own), closed when the test ends. The
// sockets are made inside ns and stay there.
func Listen(tb testing.TB, ns string, o Options) *Sink {
	tb.Helper()
	s := &Sink{where: ns}
	if ns == "" {
		s.where = "host"
	}
	tb.Cleanup(s.close)
	open := func() error {
		for _, p := range o.UDP {
			for _, fam := range []string{"udp4", "udp6"} {
				addr := fmt.Sprintf("0.0.0.0:%d", p)
				if fam == "udp6" {
					addr = fmt.Sprintf("[::]:%d", p)
				}
				c, err := net.ListenPacket(fam, addr) // udp6: IPV6_V6ONLY
				if err != nil {
					return fmt.Errorf("listening on %s %s: %w", fam, addr, err)
				}
				s.closers = append(s.closers, c.Close)
				if err := join(c, fam == "udp6", o); err != nil {
					return err
				}
				go s.serveUDP(c, p, o.Echo)
			}
		}
		for _, p := range o.TCP {
			l, err := net.Listen("tcp", fmt.Sprintf(":%d", p)) // both families
			if err != nil {
				return fmt.Errorf("listening on tcp :%d: %w", p, err)
			}
			s.closers = append(s.closers, l.Close)
			go s.serveTCP(l, p, o.Echo)
		}
		return nil
	}
	var err error
	if ns == "" {
		err = open()
	} else {
		err = netns.RunIn(ns, open)
	}
	if err != nil {
		tb.Fatalf("listeners in %s: %v", s.where, err)
	}
	return s
}

func join(c net.PacketConn, v6 bool, o Options) error {
	var groups []netip.Addr
	for _, g := range o.Groups {
		if g.Is6() == v6 {
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 {
		return nil
	}
	name := o.Ifname
	if name == "" {
		name = "eth0"
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return err
	}
	rc, err := c.(*net.UDPConn).SyscallConn()
	if err != nil {
		return err
	}
	var jerr error
	err = rc.Control(func(fd uintptr) {
		for _, g := range groups {
			if g.Is4() {
				jerr = errors.Join(jerr, unix.SetsockoptIPMreqn(int(fd), unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP,
					&unix.IPMreqn{Multiaddr: g.As4(), Ifindex: int32(ifi.Index)}))
			} else {
				jerr = errors.Join(jerr, unix.SetsockoptIPv6Mreq(int(fd), unix.IPPROTO_IPV6, unix.IPV6_JOIN_GROUP,
					&unix.IPv6Mreq{Multiaddr: g.As16(), Interface: uint32(ifi.Index)}))
			}
		}
	})
	if err := errors.Join(err, jerr); err != nil {
		return fmt.Errorf("joining %v on %s: %w", groups, name, err)
	}
	return nil
}

func (s *Sink) serveUDP(c net.PacketConn, port int, echo bool) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		ap := from.(*net.UDPAddr).AddrPort()
		s.mu.Lock()
		s.grams = append(s.grams, datagram{port, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), string(buf[:n])})
		s.mu.Unlock()
		if echo {
			_, _ = c.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}
}

func (s *Sink) serveTCP(l net.Listener, port int, echo bool) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		ap := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		s.mu.Lock()
		s.conns = append(s.conns, conn{port, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())})
		s.mu.Unlock()
		go func() {
			defer c.Close()
			if echo {
				_, _ = c.Write([]byte("hello from " + s.where + "\n"))
			}
			// Read what the sender writes, for at most half a second.
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			_, _ = c.Read(make([]byte, 512))
		}()
	}
}

// matching returns the datagrams whose payload contains every one of parts.
func (s *Sink) matching(parts ...string) []datagram {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []datagram
	for _, g := range s.grams {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(g.data, p) }) {
			out = append(out, g)
		}
	}
	return out
}

// Count returns the number of datagrams whose payload contains every one
// of parts.
func (s *Sink) Count(parts ...string) int { return len(s.matching(parts...)) }

// Describe lists the datagrams matching parts, for failure messages.
func (s *Sink) Describe(parts ...string) string {
	var out []string
	for _, g := range s.matching(parts...) {
		out = append(out, fmt.Sprintf("  port %d from %s: %q", g.port, g.from, g.data))
		if len(out) == 10 {
			out = append(out, "  ...")
			break
		}
	}
	return strings.Join(out, "\n")
}

// ConnsFrom counts accepted connections on port whose source is in froms
// (any source when froms is empty).
func (s *Sink) ConnsFrom(port int, froms ...netip.Addr) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		if c.port == port && (len(froms) == 0 || slices.Contains(froms, c.from.Addr())) {
			n++
		}
	}
	return n
}

// Conns counts every accepted connection.
func (s *Sink) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Sink) close() {
	for _, c := range s.closers {
		_ = c()
	}
	s.closers = nil
}
