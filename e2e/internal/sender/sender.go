// Package sender is the end-to-end tests' traffic source: a process that
// runs in a zone or on the host (the test binary, started again with Env
// set), sends datagrams, connections and pings to targets, every payload
// carrying a token, and reports per target what it did on lines that
// Results reads.
package sender

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Env set to 1 makes the test binary a sender instead of a test run: its
// arguments are then Main's.
const Env = "NSZONE_E2E_LEAK_HELPER"

// Target is one destination: kind udp (one-way datagrams), udprr (a
// datagram that wants a reply), tcp (a connection) or icmp (echo requests),
// and an address: HOST:PORT (HOST may be [v6%zone]) or, for icmp, HOST.
type Target struct{ Kind, Addr string }

func (t Target) String() string { return t.Kind + ":" + t.Addr }

// ParseTarget reads a target as String writes it.
func ParseTarget(s string) (Target, error) {
	kind, addr, ok := strings.Cut(s, ":")
	if !ok || !slices.Contains([]string{"udp", "udprr", "tcp", "icmp"}, kind) {
		return Target{}, fmt.Errorf("bad target %q (want udp:, udprr:, tcp: or icmp:)", s)
	}
	return Target{kind, addr}, nil
}

// Stat is what a sender did for one target.
type Stat struct {
	Sent, Errors, OK int // OK: datagram sent, connection made, reply received
	LastErr          string
}

// Token makes a payload marker unique to one test step.
func Token(what string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "LEAK-" + what + "-" + hex.EncodeToString(b)
}

// Main is the sender: args are "send" (n attempts per target, then a
// report) or "stream" (sending until SIGTERM or -dur, with STREAMING
// printed once started), flags, and targets. It returns the exit status.
func Main(args []string, out io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "sender: want send or stream")
		return 2
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	n := fs.Int("n", 3, "send: attempts per target")
	tcpN := fs.Int("tcpn", 2, "send: attempts per tcp or udprr target at most (a refused IPv6 connection can take a second)")
	gap := fs.Duration("gap", 2*time.Millisecond, "pause between rounds")
	token := fs.String("token", "LEAK", "put in every payload")
	dur := fs.Duration("dur", 30*time.Second, "stream: stop after this long at most")
	timeout := fs.Duration("timeout", time.Second, "TCP connect and UDP reply timeout")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var targets []Target
	for _, a := range fs.Args() {
		t, err := ParseTarget(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sender:", err)
			return 2
		}
		targets = append(targets, t)
	}
	if args[0] != "send" && args[0] != "stream" {
		fmt.Fprintf(os.Stderr, "sender: unknown mode %q\n", args[0])
		return 2
	}
	// Each target has its own goroutine and sockets: a refused IPv6
	// connection takes a second, and must not hold the datagrams up.
	stop := make(chan struct{})
	if args[0] == "stream" {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		go func() {
			select {
			case <-sigs:
			case <-time.After(*dur):
			}
			close(stop)
		}()
	}
	stats := make([]Stat, len(targets))
	var wg sync.WaitGroup
	for k, t := range targets {
		wg.Go(func() {
			s := &sender{token: *token, timeout: *timeout}
			defer s.close()
			pause := *gap
			if t.Kind == "tcp" || t.Kind == "udprr" {
				pause = max(pause, 20*time.Millisecond)
			}
			for i := 0; ; i++ {
				if args[0] == "send" && (i >= *n || t.Kind != "udp" && t.Kind != "icmp" && i >= *tcpN) {
					break
				}
				select {
				case <-stop:
					stats[k] = s.stat
					return
				default:
				}
				s.once(t, i)
				time.Sleep(pause)
			}
			stats[k] = s.stat
		})
	}
	if args[0] == "stream" {
		fmt.Fprintln(out, "STREAMING")
	}
	wg.Wait()
	for k, t := range targets {
		st := stats[k]
		fmt.Fprintf(out, "RESULT %s sent=%d errors=%d ok=%d lasterr=%q\n", t, st.Sent, st.Errors, st.OK, st.LastErr)
	}
	return 0
}

var resultRE = regexp.MustCompile(`(?m)^RESULT (\S+) sent=(\d+) errors=(\d+) ok=(\d+) lasterr=(".*")$`)

// Results reads Main's report: what it did, by target.
func Results(out string) map[string]Stat {
	res := map[string]Stat{}
	for _, m := range resultRE.FindAllStringSubmatch(out, -1) {
		var st Stat
		st.Sent, _ = strconv.Atoi(m[2])
		st.Errors, _ = strconv.Atoi(m[3])
		st.OK, _ = strconv.Atoi(m[4])
		st.LastErr, _ = strconv.Unquote(m[5])
		res[m[1]] = st
	}
	return res
}

// sender sends to one target, keeping its sockets between attempts.
type sender struct {
	token      string
	timeout    time.Duration
	stat       Stat
	udp4, udp6 net.PacketConn
	icmp4      int
	icmp6      int
}

func (s *sender) close() {
	if s.udp4 != nil {
		s.udp4.Close()
	}
	if s.udp6 != nil {
		s.udp6.Close()
	}
	if s.icmp4 > 0 {
		unix.Close(s.icmp4)
	}
	if s.icmp6 > 0 {
		unix.Close(s.icmp6)
	}
}

// payload names the token and the target, so a receiver can tell which
// send arrived.
func (s *sender) payload(t Target, i int) []byte {
	return fmt.Appendf(nil, "%s %s #%d", s.token, t, i)
}

// udpConn returns an unconnected socket of the family of addr that may
// send broadcasts.
func (s *sender) udpConn(v6 bool) (net.PacketConn, error) {
	p := &s.udp4
	network, laddr := "udp4", "0.0.0.0:0"
	if v6 {
		p, network, laddr = &s.udp6, "udp6", "[::]:0"
	}
	if *p != nil {
		return *p, nil
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
		})
		return errors.Join(err, serr)
	}}
	c, err := lc.ListenPacket(context.Background(), network, laddr)
	if err != nil {
		return nil, err
	}
	*p = c
	return c, nil
}

func (s *sender) once(t Target, i int) {
	s.stat.Sent++
	if err := s.do(t, i); err != nil {
		s.stat.Errors++
		s.stat.LastErr = err.Error()
		return
	}
	s.stat.OK++
}

func (s *sender) do(t Target, i int) error {
	switch t.Kind {
	case "udp":
		ua, err := net.ResolveUDPAddr("udp", t.Addr)
		if err != nil {
			return err
		}
		c, err := s.udpConn(ua.IP.To4() == nil)
		if err != nil {
			return err
		}
		_, err = c.WriteTo(s.payload(t, i), ua)
		return err
	case "udprr":
		c, err := net.Dial("udp", t.Addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write(s.payload(t, i)); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(s.timeout))
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if !bytes.Contains(buf[:n], []byte(s.token)) {
			return fmt.Errorf("reply %q does not echo the token", buf[:n])
		}
		return nil
	case "tcp":
		c, err := net.DialTimeout("tcp", t.Addr, s.timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(s.timeout))
		_, err = c.Write(s.payload(t, i))
		return err
	case "icmp":
		return s.ping(t, i)
	}
	return fmt.Errorf("unknown kind %s", t.Kind)
}

// ping sends one ICMP echo request with the token in its payload, from a
// raw socket (the sender runs as root in its zone).
func (s *sender) ping(t Target, i int) error {
	host, zone, _ := strings.Cut(t.Addr, "%")
	a, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	payload := s.payload(t, i)
	if a.Is4() {
		if s.icmp4 == 0 {
			if s.icmp4, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP); err != nil {
				s.icmp4 = 0
				return err
			}
		}
		msg := append([]byte{8, 0, 0, 0, 0x4c, 0x4b, byte(i >> 8), byte(i)}, payload...)
		binary.BigEndian.PutUint16(msg[2:], checksum(msg))
		return unix.Sendto(s.icmp4, msg, 0, &unix.SockaddrInet4{Addr: a.As4()})
	}
	if s.icmp6 == 0 {
		if s.icmp6, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6); err != nil {
			s.icmp6 = 0
			return err
		}
	}
	sa := &unix.SockaddrInet6{Addr: a.As16()}
	if zone != "" {
		ifi, err := net.InterfaceByName(zone)
		if err != nil {
			return err
		}
		sa.ZoneId = uint32(ifi.Index)
	}
	// The kernel fills in the ICMPv6 checksum.
	msg := append([]byte{128, 0, 0, 0, 0x4c, 0x4b, byte(i >> 8), byte(i)}, payload...)
	return unix.Sendto(s.icmp6, msg, 0, sa)
}

// checksum is the Internet checksum (RFC 1071) of b.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
