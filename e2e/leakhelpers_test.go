package e2e

// Helpers of the leak suite (leak_test.go): a sender that runs inside a zone
// (this test binary, re-executed in helper mode), listeners and packet taps
// that count what really arrives in a lab namespace, a zone or the host, and
// the host firewall changes the suite makes (always inside the sandbox) and
// undoes.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/sandbox"
)

// leakHelperEnv makes this test binary a sender instead of a test run: the
// suite starts it inside zones (nszone exec / ip netns exec) and on the host.
const leakHelperEnv = "NSZONE_E2E_LEAK_HELPER"

func init() {
	if os.Getenv(leakHelperEnv) == "1" {
		os.Exit(leakHelperMain(os.Args[1:], os.Stdout))
	}
}

// ---------------------------------------------------------------------------
// The sender (runs as its own process, in a zone or on the host).

// leakTarget is one destination: kind udp (one-way datagrams), udprr (a
// datagram that wants a reply), tcp (a connection) or icmp (echo requests),
// and an address: HOST:PORT (HOST may be [v6%zone]) or, for icmp, HOST.
type leakTarget struct{ kind, addr string }

func (t leakTarget) String() string { return t.kind + ":" + t.addr }

func parseLeakTarget(s string) (leakTarget, error) {
	kind, addr, ok := strings.Cut(s, ":")
	if !ok || !slices.Contains([]string{"udp", "udprr", "tcp", "icmp"}, kind) {
		return leakTarget{}, fmt.Errorf("bad target %q (want udp:, udprr:, tcp: or icmp:)", s)
	}
	return leakTarget{kind, addr}, nil
}

// leakStat is what a sender did for one target.
type leakStat struct {
	Sent, Errors, OK int // OK: datagram sent, connection made, reply received
	LastErr          string
}

func leakHelperMain(args []string, out *os.File) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "leak helper: want send or stream")
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
	var targets []leakTarget
	for _, a := range fs.Args() {
		t, err := parseLeakTarget(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "leak helper:", err)
			return 2
		}
		targets = append(targets, t)
	}
	if args[0] != "send" && args[0] != "stream" {
		fmt.Fprintf(os.Stderr, "leak helper: unknown mode %q\n", args[0])
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
	stats := make([]leakStat, len(targets))
	var wg sync.WaitGroup
	for k, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &leakSender{token: *token, timeout: *timeout, stats: map[string]*leakStat{}}
			defer s.close()
			pause := *gap
			if t.kind == "tcp" || t.kind == "udprr" {
				pause = max(pause, 20*time.Millisecond)
			}
			for i := 0; ; i++ {
				if args[0] == "send" && (i >= *n || t.kind != "udp" && t.kind != "icmp" && i >= *tcpN) {
					break
				}
				select {
				case <-stop:
					stats[k] = *s.stat(t)
					return
				default:
				}
				s.once(t, i)
				time.Sleep(pause)
			}
			stats[k] = *s.stat(t)
		}()
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

type leakSender struct {
	token      string
	timeout    time.Duration
	stats      map[string]*leakStat
	udp4, udp6 net.PacketConn
	icmp4      int
	icmp6      int
}

func (s *leakSender) stat(t leakTarget) *leakStat {
	st := s.stats[t.String()]
	if st == nil {
		st = &leakStat{}
		s.stats[t.String()] = st
	}
	return st
}

func (s *leakSender) close() {
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
func (s *leakSender) payload(t leakTarget, i int) []byte {
	return fmt.Appendf(nil, "%s %s #%d", s.token, t, i)
}

// udpConn returns an unconnected socket of the family of addr that may
// send broadcasts.
func (s *leakSender) udpConn(v6 bool) (net.PacketConn, error) {
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

func (s *leakSender) once(t leakTarget, i int) {
	st := s.stat(t)
	st.Sent++
	err := s.do(t, i)
	if err != nil {
		st.Errors++
		st.LastErr = err.Error()
		return
	}
	st.OK++
}

func (s *leakSender) do(t leakTarget, i int) error {
	switch t.kind {
	case "udp":
		ua, err := net.ResolveUDPAddr("udp", t.addr)
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
		c, err := net.Dial("udp", t.addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write(s.payload(t, i)); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(s.timeout))
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
		c, err := net.DialTimeout("tcp", t.addr, s.timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(s.timeout))
		_, err = c.Write(s.payload(t, i))
		return err
	case "icmp":
		return s.ping(t, i)
	}
	return fmt.Errorf("unknown kind %s", t.kind)
}

// ping sends one ICMP echo request with the token in its payload, from a
// raw socket (the sender runs as root in its zone).
func (s *leakSender) ping(t leakTarget, i int) error {
	host, zone, _ := strings.Cut(t.addr, "%")
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
		binary.BigEndian.PutUint16(msg[2:], leakChecksum(msg))
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

func leakChecksum(b []byte) uint16 {
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

// ---------------------------------------------------------------------------
// Starting senders and programs from the tests.

var (
	leakSelfOnce sync.Once
	leakSelf     string
)

func leakSelfPath(t testing.TB) string {
	t.Helper()
	leakSelfOnce.Do(func() {
		if p, err := os.Executable(); err == nil && leakSelf == "" { // privateTmp's copy first
			leakSelf = p
		}
	})
	if leakSelf == "" {
		t.Fatal("cannot find the test binary to run as a sender")
	}
	return leakSelf
}

// leakWhere says where a program runs: leakHost (the simulated host, this
// process's network namespace), a zone name (through nszone exec, as a
// user would start it), or "netns:ZONE" (through ip netns exec: a program
// already running in the zone, which works in a degraded zone too).
const leakHost = ""

func leakArgv(t testing.TB, where string, argv ...string) []string {
	t.Helper()
	switch {
	case where == leakHost:
		return argv
	case strings.HasPrefix(where, "netns:"):
		return append([]string{"ip", "netns", "exec", strings.TrimPrefix(where, "netns:")}, argv...)
	default:
		return append([]string{nszoneBin, "exec", where, "--"}, argv...)
	}
}

// leakRun runs argv at where, killing it (by its PID) after timeout.
func leakRun(t testing.TB, where string, timeout time.Duration, env []string, argv ...string) result {
	t.Helper()
	full := leakArgv(t, where, argv...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, full[0], full[1:]...)
	c.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	began := time.Now()
	err := c.Run()
	if d := time.Since(began); d > 3*time.Second {
		t.Logf("slow (%v): %q", d.Round(time.Millisecond), full)
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("running %q: %v", full, err)
		}
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	if ctx.Err() != nil {
		t.Errorf("%q did not finish in %v (killed): %s%s", full, timeout, o.String(), e.String())
	}
	return result{o.String(), e.String(), code}
}

var leakResultRE = regexp.MustCompile(`(?m)^RESULT (\S+) sent=(\d+) errors=(\d+) ok=(\d+) lasterr=(".*")$`)

func parseLeakResults(out string) map[string]leakStat {
	res := map[string]leakStat{}
	for _, m := range leakResultRE.FindAllStringSubmatch(out, -1) {
		var st leakStat
		st.Sent, _ = strconv.Atoi(m[2])
		st.Errors, _ = strconv.Atoi(m[3])
		st.OK, _ = strconv.Atoi(m[4])
		st.LastErr, _ = strconv.Unquote(m[5])
		res[m[1]] = st
	}
	return res
}

// leakSend runs the sender at where: n attempts at each target, every
// payload carrying token. It returns what the sender saw per target.
func leakSend(t testing.TB, where, token string, n int, targets ...string) map[string]leakStat {
	t.Helper()
	args := append([]string{leakSelfPath(t), "send", "-n", strconv.Itoa(n), "-token", token, "-timeout", "800ms", "-gap", "5ms", "-tcpn", "1"}, targets...)
	r := leakRun(t, where, 60*time.Second, []string{leakHelperEnv + "=1"}, args...)
	res := parseLeakResults(r.out)
	if r.code != 0 || len(res) != len(targets) {
		t.Fatalf("sender at %q did not run: exit %d\n%s%s", where, r.code, r.out, r.err)
	}
	return res
}

// leakStream is a sender started in the background.
type leakStream struct {
	cmd  *exec.Cmd
	out  leakSyncBuf
	done chan struct{}
}

// leakSyncBuf is a buffer a child process writes while the test reads it.
type leakSyncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *leakSyncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *leakSyncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// leakStartStream starts a sender at where that sends to every target in
// turn, without pause but gap, until stopped (at most dur).
func leakStartStream(t testing.TB, where, token string, dur time.Duration, targets ...string) *leakStream {
	t.Helper()
	argv := leakArgv(t, where, append([]string{leakSelfPath(t), "stream", "-token", token,
		"-dur", dur.String(), "-gap", "2ms", "-timeout", "150ms"}, targets...)...)
	s := &leakStream{cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	s.cmd.Env = append(os.Environ(), leakHelperEnv+"=1")
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting the prober at %q: %v", where, err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.stop() })
	return s
}

// stop ends the stream (SIGTERM to its PID, then SIGKILL) and returns
// what it sent.
func (s *leakStream) stop() map[string]leakStat {
	endProcess(s.cmd.Process, s.done, 3*time.Second)
	return parseLeakResults(s.out.String())
}

// endProcess ends a process the test started, by its PID: SIGTERM, then
// SIGKILL after grace; done closes once it has been waited for.
func endProcess(p *os.Process, done <-chan struct{}, grace time.Duration) {
	select {
	case <-done:
		return
	default:
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		p.Kill()
		<-done
	}
}

// alive reports whether the stream still runs and is in the namespace
// pinned at /run/netns/zone (not in one that a down left behind).
func (s *leakStream) alive(zone string) bool {
	select {
	case <-s.done:
		return false
	default:
	}
	var a, b unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", s.cmd.Process.Pid), &a) != nil || unix.Stat(netns.PinDir+"/"+zone, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// leakToken makes a payload marker unique to one test step.
func leakToken(what string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "LEAK-" + what + "-" + hex.EncodeToString(b)
}

// ---------------------------------------------------------------------------
// Receivers: listeners that count what arrives.

type leakDatagram struct {
	port int
	from netip.AddrPort
	data string
}

type leakConn struct {
	port int
	from netip.AddrPort
}

// leakSink counts datagrams and accepted connections on its ports.
type leakSink struct {
	where   string
	mu      sync.Mutex
	grams   []leakDatagram
	conns   []leakConn
	closers []func() error
}

type leakListenOpts struct {
	UDP, TCP []int        // ports, on both families
	Groups   []netip.Addr // multicast groups to join on Ifname
	Ifname   string       // default eth0
	Echo     bool         // answer every datagram and connection
}

// leakListen opens listeners in the network namespace ns (pinned under
// /run/netns; leakHost: this process's own, the simulated host). The
// sockets are made inside ns and stay there.
func leakListen(t testing.TB, ns string, o leakListenOpts) *leakSink {
	t.Helper()
	s := &leakSink{where: ns}
	if ns == leakHost {
		s.where = "host"
	}
	t.Cleanup(s.close)
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
				if err := leakJoin(c, fam == "udp6", o); err != nil {
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
	if ns == leakHost {
		err = open()
	} else {
		err = netns.RunIn(ns, open)
	}
	if err != nil {
		t.Fatalf("listeners in %s: %v", s.where, err)
	}
	return s
}

func leakJoin(c net.PacketConn, v6 bool, o leakListenOpts) error {
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

func (s *leakSink) serveUDP(c net.PacketConn, port int, echo bool) {
	buf := make([]byte, 2048)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		ap := from.(*net.UDPAddr).AddrPort()
		s.mu.Lock()
		s.grams = append(s.grams, leakDatagram{port, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), string(buf[:n])})
		s.mu.Unlock()
		if echo {
			c.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}
}

func (s *leakSink) serveTCP(l net.Listener, port int, echo bool) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		ap := c.RemoteAddr().(*net.TCPAddr).AddrPort()
		s.mu.Lock()
		s.conns = append(s.conns, leakConn{port, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())})
		s.mu.Unlock()
		go func() {
			defer c.Close()
			if echo {
				c.Write([]byte("hello from " + s.where + "\n"))
			}
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			buf := make([]byte, 512)
			c.Read(buf)
		}()
	}
}

// count returns the datagrams whose payload contains every one of parts.
func (s *leakSink) count(parts ...string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
next:
	for _, g := range s.grams {
		for _, p := range parts {
			if !strings.Contains(g.data, p) {
				continue next
			}
		}
		n++
	}
	return n
}

// describe lists the datagrams matching parts, for failure messages.
func (s *leakSink) describe(parts ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
next:
	for _, g := range s.grams {
		for _, p := range parts {
			if !strings.Contains(g.data, p) {
				continue next
			}
		}
		out = append(out, fmt.Sprintf("  port %d from %s: %q", g.port, g.from, g.data))
		if len(out) == 10 {
			out = append(out, "  ...")
			break
		}
	}
	return strings.Join(out, "\n")
}

// connsFrom counts accepted connections on port whose source is in froms
// (any source when froms is empty).
func (s *leakSink) connsFrom(port int, froms ...netip.Addr) int {
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

func (s *leakSink) connCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *leakSink) close() {
	for _, c := range s.closers {
		c()
	}
	s.closers = nil
}

// ---------------------------------------------------------------------------
// Taps: every frame that reaches an interface, whatever socket (if any)
// would take it: TCP SYNs that never get an answer, ICMP, datagrams for
// ports nobody listens on.

type leakPkt struct {
	at           time.Time
	src, dst     netip.Addr
	proto        uint8 // 6 tcp, 17 udp, 1 icmp, 58 icmpv6
	sport, dport uint16
	syn, ack     bool
	icmpType     uint8
	payload      []byte
}

func (p leakPkt) String() string {
	switch p.proto {
	case 6:
		return fmt.Sprintf("tcp %s:%d > %s:%d syn=%v ack=%v", p.src, p.sport, p.dst, p.dport, p.syn, p.ack)
	case 17:
		return fmt.Sprintf("udp %s:%d > %s:%d %q", p.src, p.sport, p.dst, p.dport, leakTrim(p.payload))
	case 1, 58:
		return fmt.Sprintf("icmp %s > %s type %d %q", p.src, p.dst, p.icmpType, leakTrim(p.payload))
	}
	return fmt.Sprintf("proto %d %s > %s", p.proto, p.src, p.dst)
}

func leakTrim(b []byte) []byte {
	if len(b) > 48 {
		return b[:48]
	}
	return b
}

type leakTap struct {
	where string
	mu    sync.Mutex
	pkts  []leakPkt
	f     *os.File
}

// leakStartTap records every IP frame that reaches (or leaves) ifname in
// namespace ns (leakHost: this process's).
func leakStartTap(t testing.TB, ns, ifname string) *leakTap {
	t.Helper()
	tp := &leakTap{where: ns + "/" + ifname}
	open := func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(leakHtons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("opening a packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: leakHtons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("binding the packet socket to %s: %w", ifname, err)
		}
		tp.f = os.NewFile(uintptr(fd), "tap "+tp.where)
		return nil
	}
	var err error
	if ns == leakHost {
		err = open()
	} else {
		err = netns.RunIn(ns, open)
	}
	if err != nil {
		t.Fatalf("tap on %s: %v", tp.where, err)
	}
	go tp.read()
	t.Cleanup(func() { tp.f.Close() })
	return tp
}

func leakHtons(v uint16) uint16 { return v<<8 | v>>8 }

func (tp *leakTap) read() {
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
		if p, ok := leakParse(buf[:n]); ok {
			p.at = time.Now()
			tp.mu.Lock()
			tp.pkts = append(tp.pkts, p)
			tp.mu.Unlock()
		}
	}
}

// leakParse reads an Ethernet frame carrying IPv4 or IPv6.
func leakParse(b []byte) (leakPkt, bool) {
	var p leakPkt
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
		p.proto = b[9]
		p.src = netip.AddrFrom4([4]byte(b[12:16]))
		p.dst = netip.AddrFrom4([4]byte(b[16:20]))
		total := int(binary.BigEndian.Uint16(b[2:]))
		if total > len(b) || total < ihl {
			total = len(b)
		}
		l4 = b[ihl:total]
	case 0x86dd:
		if len(b) < 40 {
			return p, false
		}
		p.src = netip.AddrFrom16([16]byte(b[8:24]))
		p.dst = netip.AddrFrom16([16]byte(b[24:40]))
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
		p.proto = nh
	default:
		return p, false
	}
	switch p.proto {
	case 6:
		if len(l4) >= 20 {
			p.sport, p.dport = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
			p.syn, p.ack = l4[13]&0x02 != 0, l4[13]&0x10 != 0
			off := int(l4[12]>>4) * 4
			if off <= len(l4) {
				p.payload = slices.Clone(l4[off:])
			}
		}
	case 17:
		if len(l4) >= 8 {
			p.sport, p.dport = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
			p.payload = slices.Clone(l4[8:])
		}
	case 1, 58:
		if len(l4) >= 8 {
			p.icmpType = l4[0]
			p.payload = slices.Clone(l4[8:])
		}
	}
	return p, true
}

// mark returns a position: count and describe then look only at frames
// seen after it.
func (tp *leakTap) mark() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return len(tp.pkts)
}

func (tp *leakTap) matching(from int, pred func(leakPkt) bool) []leakPkt {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	var out []leakPkt
	for _, p := range tp.pkts[min(from, len(tp.pkts)):] {
		if pred(p) {
			out = append(out, p)
		}
	}
	return out
}

func (tp *leakTap) count(from int, pred func(leakPkt) bool) int {
	return len(tp.matching(from, pred))
}

func (tp *leakTap) describe(from int, pred func(leakPkt) bool) string {
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

// Predicates.
func leakSYNTo(dst netip.Addr, port uint16) func(leakPkt) bool {
	return func(p leakPkt) bool { return p.proto == 6 && p.syn && !p.ack && p.dst == dst && p.dport == port }
}

func leakWithToken(token string) func(leakPkt) bool {
	return func(p leakPkt) bool { return bytes.Contains(p.payload, []byte(token)) }
}

func leakEchoTo(dst netip.Addr, pattern []byte) func(leakPkt) bool {
	return func(p leakPkt) bool {
		return (p.proto == 1 && p.icmpType == 8 || p.proto == 58 && p.icmpType == 128) &&
			p.dst == dst && bytes.Contains(p.payload, pattern)
	}
}

// leakSettle gives packets in flight time to arrive before counting.
func leakSettle() { time.Sleep(300 * time.Millisecond) }

// ---------------------------------------------------------------------------
// The host's firewall, as other software changes it. Every command here runs
// in this process's network namespace: the sandbox's simulated host.

var (
	leakIPTBins   = []string{"iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy"}
	leakIPTTables = map[string][]string{
		"filter": {"INPUT", "FORWARD", "OUTPUT"},
		"nat":    nil, // its built-in chains cannot have another policy
		"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
		"raw":    {"PREROUTING", "OUTPUT"},
	}
	leakSysctls = []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"}
)

// leakHostCmd runs a command on the simulated host, refusing outside the
// sandbox. It returns the result; must: fail the test on a non-zero exit.
func leakHostCmd(t testing.TB, must bool, name string, args ...string) result {
	t.Helper()
	if !sandbox.Active() {
		t.Fatal("not in the sandbox: refusing to change this machine's firewall")
	}
	r := leakRun(t, leakHost, 30*time.Second, nil, append([]string{name}, args...)...)
	if must && r.code != 0 {
		t.Fatalf("%s %s: exit %d: %s%s", name, strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r
}

func leakSave(t testing.TB) map[string]string {
	t.Helper()
	saves := map[string]string{}
	for _, bin := range leakIPTBins {
		r := leakHostCmd(t, true, bin+"-save")
		saves[bin] = leakNormalSave(r.out, strings.Contains(bin, "legacy"))
	}
	return saves
}

// leakBegin checks the sandbox, records the host's firewall and forwarding,
// and makes sure that when the test ends every zone is down and both are
// as they were, whatever the test did to them.
func leakBegin(t testing.TB) {
	t.Helper()
	needSandbox(t)
	if r := run(t, nil, "down", "--all"); r.code != 0 {
		t.Fatalf("down --all before the test: exit %d %s", r.code, r.err)
	}
	saves := leakSave(t)
	sysctls := map[string]string{}
	for _, k := range leakSysctls {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		sysctls[k] = strings.TrimSpace(string(b))
	}
	t.Cleanup(func() {
		if r := run(t, nil, "down", "--all"); r.code != 0 {
			t.Errorf("down --all after the test: exit %d %s%s", r.code, r.out, r.err)
		}
		now := leakSave(t)
		for _, bin := range leakIPTBins {
			if now[bin] == saves[bin] {
				continue
			}
			if strings.Contains(bin, "nft") {
				// Tables too (a simulated firewalld may have deleted them).
				fam := "ip"
				if strings.HasPrefix(bin, "ip6") {
					fam = "ip6"
				}
				for _, table := range []string{"filter", "nat", "mangle", "raw"} {
					runCmd(t, nil, "nft", "delete", "table", fam, table)
				}
			} else {
				for table := range leakIPTTables {
					runCmd(t, nil, bin, "-t", table, "-F")
					runCmd(t, nil, bin, "-t", table, "-X")
				}
			}
			c := exec.Command(bin + "-restore")
			c.Stdin = strings.NewReader(saves[bin] + "\n")
			if out, err := c.CombinedOutput(); err != nil {
				t.Errorf("restoring the host's %s rules: %v: %s", bin, err, out)
			}
		}
		if now := leakSave(t); !maps2Equal(now, saves) {
			for _, bin := range leakIPTBins {
				if now[bin] != saves[bin] {
					t.Errorf("the host's %s rules are not as before the test:\n%s", bin, diffLines(saves[bin], now[bin]))
				}
			}
		}
		for k, v := range sysctls {
			if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
				t.Errorf("restoring %s: %v", k, err)
			}
		}
	})
}

// leakNormalSave drops comments and counters from iptables-save output and,
// for the legacy variant, tables that hold nothing: a legacy table, once
// touched (iptables-legacy -t raw -F), cannot be removed again.
func leakNormalSave(out string, dropEmpty bool) string {
	var keep, table []string
	empty := true
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "#") || l == "":
		case strings.HasPrefix(l, "*"):
			table, empty = []string{l}, true
		case l == "COMMIT":
			if !empty || !dropEmpty {
				keep = append(append(keep, table...), l)
			}
			table = nil
		default:
			l = counters.ReplaceAllString(l, "[0:0]")
			if !strings.HasPrefix(l, ":") || !strings.HasSuffix(l, " ACCEPT [0:0]") {
				empty = false
			}
			table = append(table, l)
		}
	}
	return strings.Join(keep, "\n")
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// leakFlushHost does what a firewalld reload, a Docker restart, an admin's
// `iptables -F` or an nftables.service reload does to nszone's host wall:
// every table of both families in both iptables variants flushed, the
// policies ACCEPT, every nftables table gone, forwarding on.
func leakFlushHost(t testing.TB) {
	t.Helper()
	leakFlushIPTables(t)
	// And what Debian's nftables.service does on reload (its nftables.conf
	// starts with "flush ruleset"): every nftables table goes, native ones
	// and iptables-nft's alike.
	if _, err := exec.LookPath("nft"); err == nil {
		leakHostCmd(t, true, "nft", "flush", "ruleset")
		if r := leakHostCmd(t, true, "nft", "list", "ruleset"); strings.TrimSpace(r.out) != "" {
			t.Fatalf("nft list ruleset after the flush:\n%s", r.out)
		}
	}
	for _, k := range leakSysctls {
		if err := os.WriteFile("/proc/sys/"+k, []byte("1"), 0o644); err != nil {
			t.Fatalf("turning forwarding on: %v", err)
		}
	}
	for _, bin := range leakIPTBins {
		if r := leakHostCmd(t, true, bin+"-save"); strings.Contains(r.out, "\n-A ") {
			t.Fatalf("%s-save still shows rules after the flush:\n%s", bin, r.out)
		}
	}
}

// leakFlushIPTables does what a firewalld (iptables backend) or ufw reload,
// a Docker restart or an admin's `iptables -F` does: every iptables table
// of both families in both variants flushed, the policies ACCEPT. Native
// nftables tables (nszone's host wall among them) stay.
func leakFlushIPTables(t testing.TB) {
	t.Helper()
	for _, bin := range leakIPTBins {
		for table, builtins := range leakIPTTables {
			leakHostCmd(t, true, bin, "-t", table, "-F")
			for _, c := range builtins {
				leakHostCmd(t, true, bin, "-t", table, "-P", c, "ACCEPT")
			}
		}
	}
}

// leakZoneAddrs returns the zone's own addresses (from status) and its
// gateway addresses (the host end of its link), global ones first.
func leakZoneAddrs(t testing.TB, zone string) (own []netip.Addr, gw []netip.Addr) {
	t.Helper()
	st := status(t, zone)
	for _, z := range st.Zones {
		if z.Name != zone {
			continue
		}
		for _, a := range z.Addresses {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				t.Fatalf("status of %s: address %q: %v", zone, a, err)
			}
			own = append(own, p.Addr())
		}
	}
	if len(own) == 0 {
		t.Fatalf("status shows no address for zone %s: %+v", zone, st)
	}
	return own, leakIfAddrs(t, leakHost, "nsz-"+zone, false)
}

// leakIfAddrs lists the addresses of ifname in ns: global ones, or
// (linkLocal) the IPv6 link-local ones.
func leakIfAddrs(t testing.TB, ns, ifname string, linkLocal bool) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	get := func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			if p.Addr().IsLinkLocalUnicast() == linkLocal {
				out = append(out, p.Addr())
			}
		}
		return nil
	}
	var err error
	if ns == leakHost {
		err = get()
	} else {
		err = netns.RunIn(ns, get)
	}
	if err != nil {
		t.Fatalf("addresses of %s in %q: %v", ifname, ns, err)
	}
	return out
}

// leakHP renders addr:port for the sender; a link-local v6 gets the
// scope.
func leakHP(a netip.Addr, port int, scope string) string {
	if a.Is6() && a.IsLinkLocalUnicast() && scope != "" {
		return fmt.Sprintf("[%s%%%s]:%d", a.WithZone(""), scope, port)
	}
	return netip.AddrPortFrom(a, uint16(port)).String()
}

// leakIPTFor returns the iptables commands of the variant nszone uses on the
// host, as status reports it.
func leakIPTFor(t testing.TB) (v4, v6 string) {
	t.Helper()
	out := mustRun(t, "status", "-o", "json")
	switch {
	case strings.Contains(out, `"firewall": "iptables-legacy"`):
		return "iptables-legacy", "ip6tables-legacy"
	case strings.Contains(out, `"firewall": "iptables-nft"`):
		return "iptables-nft", "ip6tables-nft"
	}
	t.Fatalf("status -o json does not say which iptables it uses:\n%s", out)
	return "", ""
}

// leakStates returns each zone's state from status -o json, whatever its
// exit status, with what is missing.
func leakStates(t testing.TB) map[string]string {
	t.Helper()
	r := run(t, nil, "status", "-o", "json")
	var st statusJSON
	if err := json.Unmarshal([]byte(r.out), &st); err != nil {
		t.Fatalf("status -o json: exit %d: %v\n%s%s", r.code, err, r.out, r.err)
	}
	out := map[string]string{}
	for _, z := range st.Zones {
		out[z.Name] = z.State
		if len(z.Missing) > 0 {
			out[z.Name] += " (missing: " + strings.Join(z.Missing, "; ") + ")"
		}
	}
	return out
}
