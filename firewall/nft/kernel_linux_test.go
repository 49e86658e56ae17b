package nft

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/internal/kerneltest"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/veth"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { kerneltest.Main(m, "nft tests") }

// rootTest: root only, in the sandbox, no thread left in another namespace.
func rootTest(tb testing.TB) { tb.Helper(); kerneltest.Root(tb) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newNS makes a namespace pinned at netns.PinDir/name, set up as a zone's,
// and returns it open; both go after the test.
func newNS(tb testing.TB, name string) *netns.Handle {
	tb.Helper()
	return makeNS(tb, name, true)
}

func makeNS(tb testing.TB, name string, ipv6 bool) *netns.Handle {
	tb.Helper()
	if _, err := netns.CreateNamed(name, veth.SetUpNamespace("", ipv6), nil); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := netns.DeleteNamed(name, nil); err != nil {
			tb.Error(err)
		}
	})
	ns, err := netns.OpenNamed(name)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ns.Close() })
	return ns
}

// run runs a command inside the namespace name and returns its output.
func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := netns.StartIn(name, cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		tb.Fatalf("%s in %s: %v: %s", strings.Join(args, " "), name, err, out.String())
	}
	return out.String()
}

func needNft(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		tb.Skip("nft not installed (scripts/deps installs the nftables package)")
	}
}

// zoneGeneration reads the nftables ruleset generation of a namespace:
// every committed batch raises it, so an unchanged generation proves no
// write.
func zoneGeneration(tb testing.TB, name string) uint32 {
	tb.Helper()
	ns, err := netns.OpenNamed(name)
	if err != nil {
		tb.Fatal(err)
	}
	defer ns.Close()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns.Fd()})
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	gen, err := generationOn(c)
	if err != nil {
		tb.Fatal(err)
	}
	return gen.ID
}

// wideZone is a zone of every kind of term, as nszone up would give it.
func wideZone(name string) firewall.Zone {
	z := sampleZones()[4]
	z.Name = name
	z.FromZoneAddrs = addrs("10.250.0.14", "fd6e:737a:0:1::2")
	return z
}

func TestAvailable(t *testing.T) {
	rootTest(t)
	if !Available() {
		t.Fatal("nf_tables not usable in the sandbox")
	}
}

// Apply writes once and then never again; the kernel shows what was meant;
// Missing names outside damage, and Apply repairs it.
func TestApplyAndRepair(t *testing.T) {
	rootTest(t)
	needNft(t)
	const zone = "nftwall"
	ns := newNS(t, zone)
	z := wideZone(zone)
	rules := firewall.InnerRules(z, defaultLAN)
	want, _ := compile(innerSpec, rules)
	nOut, nIn, nRefuse := len(want[0].rules), len(want[1].rules), len(want[2].rules)

	if gaps, err := Missing(ns, rules); err != nil || !equal(gaps, "inner wall: table inet nszone missing") {
		t.Fatalf("Missing before Apply: %q %v", gaps, err)
	}
	gen0 := zoneGeneration(t, zone)
	if changed, err := Apply(ns, rules, quiet); err != nil || !changed {
		t.Fatalf("first Apply: changed=%v err=%v", changed, err)
	}
	gen1 := zoneGeneration(t, zone)
	if gen1 != gen0+1 {
		t.Errorf("first Apply: generation %d -> %d, want one batch", gen0, gen1)
	}
	if changed, err := Apply(ns, rules, quiet); err != nil || changed {
		t.Fatalf("second Apply: changed=%v err=%v", changed, err)
	}
	if gen2 := zoneGeneration(t, zone); gen2 != gen1 {
		t.Errorf("second Apply wrote: generation %d -> %d", gen1, gen2)
	}
	if gaps, err := Missing(ns, rules); err != nil || len(gaps) != 0 {
		t.Fatalf("Missing after Apply: %q %v", gaps, err)
	}
	if gen := zoneGeneration(t, zone); gen != gen1 {
		t.Errorf("Missing wrote: generation %d -> %d", gen1, gen)
	}

	kernelHolds(t, zone, want)

	listing := run(t, zone, "nft", "list", "ruleset")
	t.Logf("nft list ruleset in %s:\n%s", zone, listing)
	listing = regexp.MustCompile(` counter packets \d+ bytes \d+`).ReplaceAllString(listing, "")
	for _, s := range []string{
		"table inet nszone {",
		"chain output {", "type filter hook output priority filter; policy accept;",
		"chain input {", "type filter hook input priority filter; policy accept;",
		`meta nfproto ipv4 oifname "lo" accept comment "nszone-` + zone + ` #1 `,
		`meta nfproto ipv4 iifname "lo" accept`,
		"ct state established,related accept", "ct state invalid drop",
		"icmpv6 type nd-neighbor-solicit accept", "icmpv6 type nd-neighbor-advert accept",
		"ip daddr @output_1 accept", "set output_1 {", "type ipv4_addr", "10.250.0.1,", "ip6 daddr @output_2 accept",
		"ip daddr 10.250.0.4/30 jump NSZ-REFUSE", "ip6 daddr fd6e:737a:0:2::/64 jump NSZ-REFUSE",
		"meta nfproto ipv4 jump NSZ-REFUSE", "chain NSZ-REFUSE {",
		`meta nfproto ipv4 limit rate 20/second burst 50 packets log prefix "nszone-nftwall" group 28275 snaplen 128`,
		`meta nfproto ipv6 limit rate 20/second burst 50 packets log prefix "nszone-nftwall" group 28275 snaplen 128`, "ip6 daddr fe80::/10 accept",
		"ip6 daddr 2001:db8::/32 tcp dport 8000-8080 accept", "ip daddr 198.51.100.0/24 udp dport 5000-5010 accept",
		"meta l4proto udp ip6 daddr 2001:db8:1::/48 accept", "meta nfproto ipv4 accept", "meta nfproto ipv6 accept",
		"meta nfproto ipv4 drop", "meta nfproto ipv6 drop",
		"ip saddr 10.250.0.14 accept", "ip6 saddr fd6e:737a:0:1::2 accept",
		"meta l4proto tcp reject with tcp reset",
		"reject with icmp admin-prohibited", "reject with icmpv6 admin-prohibited",
	} {
		if !strings.Contains(listing, s) {
			t.Errorf("nft list ruleset lacks %q", s)
		}
	}
	if n := strings.Count(listing, ` comment "nszone-`+zone+` #`); n != nOut+nIn+nRefuse {
		t.Errorf("nft list ruleset shows %d nszone rules, want %d", n, nOut+nIn+nRefuse)
	}

	damage := []struct {
		name string
		cmd  string
		gaps []string
	}{
		{"flush", "nft flush table inet nszone", []string{
			fmt.Sprintf("inner wall: chain output has 0 rules, want %d", nOut),
			fmt.Sprintf("inner wall: chain input has 0 rules, want %d", nIn),
			fmt.Sprintf("inner wall: chain NSZ-REFUSE has 0 rules, want %d", nRefuse)}},
		{"delete", "nft delete table inet nszone", []string{"inner wall: table inet nszone missing"}},
		{"dormant", "nft add table inet nszone { flags dormant; }", []string{"inner wall: table inet nszone is dormant"}},
		{"chain", "nft delete chain inet nszone input", []string{"inner wall: chain input missing"}},
		{"insert", "nft insert rule inet nszone output accept", []string{
			fmt.Sprintf("inner wall: chain output has %d rules, want %d", nOut+1, nOut)}},
		{"extra", "nft add chain inet nszone sneak { type filter hook output priority -10; policy drop; }", []string{
			"inner wall: chain sneak is not nszone's"}},
		{"element", "nft delete element inet nszone output_1 { 10.250.0.1 }", []string{
			"inner wall: set output_1 lacks 10.250.0.1"}},
		{"element added", "nft add element inet nszone output_1 { 192.0.2.99 }", []string{
			"inner wall: set output_1 holds 192.0.2.99, not nszone's"}},
		{"set", "nft add set inet nszone sneak { type ipv4_addr; }", []string{"inner wall: set sneak is not nszone's"}},
	}
	for _, d := range damage {
		run(t, zone, strings.Fields(d.cmd)...)
		gaps, err := Missing(ns, rules)
		if err != nil || !equal(gaps, d.gaps...) {
			t.Errorf("after %s: Missing = %q %v, want %q", d.cmd, gaps, err, d.gaps)
		}
		if changed, err := Apply(ns, rules, quiet); err != nil || !changed {
			t.Errorf("repairing %s: changed=%v err=%v", d.name, changed, err)
		}
		if gaps, err := Missing(ns, rules); err != nil || len(gaps) != 0 {
			t.Errorf("after repairing %s: Missing = %q %v", d.name, gaps, err)
		}
	}

	// A changed policy replaces the wall; the old one is then reported.
	narrow := z
	narrow.Internet, narrow.LAN = false, false
	narrowRules := firewall.InnerRules(narrow, defaultLAN)
	if changed, err := Apply(ns, narrowRules, quiet); err != nil || !changed {
		t.Fatalf("narrowing: changed=%v err=%v", changed, err)
	}
	if gaps, err := Missing(ns, rules); err != nil || len(gaps) == 0 {
		t.Errorf("Missing of the old policy after narrowing: %q %v", gaps, err)
	}
	if gaps, err := Missing(ns, narrowRules); err != nil || len(gaps) != 0 {
		t.Errorf("Missing after narrowing: %q %v", gaps, err)
	}

	// An untranslatable rule fails before anything is written.
	before := zoneGeneration(t, zone)
	bad := firewall.InnerRules(z, defaultLAN)
	bad[firewall.IPv4] = append(bad[firewall.IPv4], firewall.Rule{Chain: "NSZ-OUT", Target: []string{"-j", "LOG"}})
	if _, err := Apply(ns, bad, quiet); err == nil || !strings.Contains(err.Error(), "LOG") {
		t.Errorf("Apply of an untranslatable rule: %v", err)
	}
	if gen := zoneGeneration(t, zone); gen != before {
		t.Errorf("a refused Apply wrote: generation %d -> %d", before, gen)
	}
}

// A new host address changes the elements of a set, in one small batch:
// no rule is written again, and the wall is then exactly as wanted, as
// apply remembers it (so that the next apply need not read it).
func TestApplyHostAddress(t *testing.T) {
	rootTest(t)
	needNft(t)
	const zone = "nftaddr"
	ns := newNS(t, zone)
	z := wideZone(zone)
	if _, err := Apply(ns, firewall.InnerRules(z, defaultLAN), quiet); err != nil {
		t.Fatal(err)
	}
	handles := run(t, zone, "nft", "-a", "list", "chain", "inet", "nszone", "output")
	for _, a := range []string{"198.51.100.7", "2001:db8:ff::7", ""} {
		w := z
		if a != "" {
			w.HostAddrs = append(slices.Clone(z.HostAddrs), netip.MustParseAddr(a))
		}
		rules := firewall.InnerRules(w, defaultLAN)
		gen := zoneGeneration(t, zone)
		if changed, err := Apply(ns, rules, quiet); err != nil || !changed {
			t.Fatalf("adding %q: changed=%v err=%v", a, changed, err)
		}
		if g := zoneGeneration(t, zone); g != gen+1 {
			t.Errorf("adding %q: generation %d -> %d, want one batch", a, gen, g)
		}
		if gaps, err := Missing(ns, rules); err != nil || len(gaps) != 0 {
			t.Fatalf("adding %q: Missing = %q %v", a, gaps, err)
		}
		if now := run(t, zone, "nft", "-a", "list", "chain", "inet", "nszone", "output"); now != handles {
			t.Errorf("adding %q rewrote rules:\n%s\nwas\n%s", a, now, handles)
		}
		if a != "" && !strings.Contains(run(t, zone, "nft", "list", "table", "inet", "nszone"), a) {
			t.Errorf("the wall does not list %s", a)
		}
		want, _ := compile(innerSpec, rules)
		cur, err := readIn(ns.Fd(), inet)
		if err != nil {
			t.Fatal(err)
		}
		if w := wanted(want, false); !reflect.DeepEqual(cur, w) {
			t.Errorf("adding %q: the kernel holds\n%#v\napply remembers\n%#v", a, cur, w)
		}
		g, err := Generation(ns)
		if err != nil {
			t.Fatal(err)
		}
		known.Lock()
		k := known.tables[knownKey{g.Cookie, inet}]
		known.Unlock()
		if k.id != g.ID {
			t.Errorf("adding %q: apply remembers the wall at generation %d, it is at %d", a, k.id, g.ID)
		}
	}
}

// kernelHolds checks that the kernel holds exactly the compiled rules,
// expressions and all, as the nftables package decodes them.
func kernelHolds(t *testing.T, zone string, want []wantChain) {
	t.Helper()
	ns, err := netns.OpenNamed(zone)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	table := &nftables.Table{Name: Table, Family: inet}
	for _, w := range want {
		rules, err := c.GetRules(table, &nftables.Chain{Name: w.name, Table: table})
		if err != nil {
			t.Fatalf("chain %s: %v", w.name, err)
		}
		if len(rules) != len(w.rules) {
			t.Fatalf("chain %s: %d rules, want %d", w.name, len(rules), len(w.rules))
		}
		for i, r := range rules {
			if !reflect.DeepEqual(r.Exprs, w.rules[i].exprs) {
				t.Errorf("chain %s rule %d:\nkernel %s\n  want %s", w.name, i+1, exprText(r.Exprs), exprText(w.rules[i].exprs))
			}
		}
	}
}

// An IPv4-only zone (IPv6 off in its namespace) gets its wall too.
func TestApplyIPv4OnlyZone(t *testing.T) {
	rootTest(t)
	const zone = "nftv4"
	ns := makeNS(t, zone, false)
	z := sampleZones()[3]
	z.Name = zone
	rules := firewall.InnerRules(z, defaultLAN)
	if changed, err := Apply(ns, rules, quiet); err != nil || !changed {
		t.Fatalf("Apply: changed=%v err=%v", changed, err)
	}
	if changed, err := Apply(ns, rules, quiet); err != nil || changed {
		t.Fatalf("second Apply: changed=%v err=%v", changed, err)
	}
	if gaps, err := Missing(ns, rules); err != nil || len(gaps) != 0 {
		t.Fatalf("Missing: %q %v", gaps, err)
	}
	want, _ := compile(innerSpec, rules)
	kernelHolds(t, zone, want)
}

func equal(got []string, want ...string) bool {
	return strings.Join(got, "\n") == strings.Join(want, "\n")
}

// The wall does what the iptables inner wall does, packet by packet. Zone
// nftz (walled) and peer nftp (unwalled) share a link; the peer listens on
// every port tried, so a refusal can only come from the wall.
func TestWallBehaviour(t *testing.T) {
	rootTest(t)
	const zone, peer = "nftz", "nftp"
	ns := newNS(t, zone)
	newNS(t, peer)
	for _, c := range []string{
		"ip -n nftz link add eth0 type veth peer name eth0 netns nftp",
		"ip -n nftz addr add 10.99.0.1/24 dev eth0",
		"ip -n nftz addr add fd99::1/64 dev eth0 nodad",
		"ip -n nftp addr add 10.99.0.2/24 dev eth0",
		"ip -n nftp addr add 10.99.0.3/24 dev eth0",
		"ip -n nftp addr add fd99::2/64 dev eth0 nodad",
		"ip -n nftz link set eth0 up",
		"ip -n nftp link set eth0 up",
	} {
		if out, err := exec.Command("sh", "-c", c).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", c, err, out)
		}
	}
	z := firewall.Zone{Name: zone, IPv6: true, Pinholes: []firewall.Pinhole{
		{Dst: netip.MustParsePrefix("10.99.0.2/32"), Proto: "tcp", PortLo: 80, PortHi: 80},
		{Dst: netip.MustParsePrefix("fd99::2/128"), Proto: "tcp", PortLo: 80, PortHi: 80},
	}}
	if _, err := Apply(ns, firewall.InnerRules(z, defaultLAN), quiet); err != nil {
		t.Fatal(err)
	}

	for _, a := range []string{"10.99.0.2:80", "10.99.0.2:81", "10.99.0.3:80", "[fd99::2]:80", "[fd99::2]:81"} {
		listenTCP(t, peer, a)
	}
	for _, a := range []string{"10.99.0.2:53", "[fd99::2]:53"} {
		listenUDP(t, peer, a)
	}
	listenTCP(t, zone, "10.99.0.1:8080")
	listenTCP(t, zone, "[fd99::1]:8080")

	for _, c := range []struct {
		addr string
		want error // nil: connects and reads the peer's greeting
	}{
		{"10.99.0.2:80", nil},
		{"10.99.0.2:81", unix.ECONNREFUSED},
		{"10.99.0.3:80", unix.ECONNREFUSED},
		{"[fd99::2]:80", nil}, // neighbour discovery passes both ways
		{"[fd99::2]:81", unix.ECONNREFUSED},
	} {
		start := time.Now()
		err := dialTCP(zone, c.addr, 3*time.Second)
		took := time.Since(start)
		switch {
		case c.want == nil && err != nil:
			t.Errorf("tcp %s from the zone: %v, want a connection", c.addr, err)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("tcp %s from the zone: %v, want %v", c.addr, err, c.want)
		case c.want != nil && took > time.Second:
			t.Errorf("tcp %s from the zone: refused after %v, want at once", c.addr, took)
		}
	}
	// Forbidden UDP: the wall answers with ICMP administratively prohibited
	// (host unreachable in IPv4, EACCES in IPv6), never the peer's port unreachable.
	for _, c := range []struct {
		addr string
		want error
	}{{"10.99.0.2:53", unix.EHOSTUNREACH}, {"[fd99::2]:53", unix.EACCES}} {
		if err := udpError(zone, c.addr); !errors.Is(err, c.want) {
			t.Errorf("udp %s from the zone: %v, want %v", c.addr, err, c.want)
		}
	}
	// Nothing gets into the zone unasked: dropped, not refused.
	for _, a := range []string{"10.99.0.1:8080", "[fd99::1]:8080"} {
		err := dialTCP(peer, a, 500*time.Millisecond)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("tcp %s from the peer: %v, want a timeout", a, err)
		}
	}
	// Replacing the wall leaves no gap: connections to a port both policies
	// forbid keep failing while the table is replaced again and again.
	wider := z
	wider.Pinholes = append([]firewall.Pinhole{{Dst: netip.MustParsePrefix("10.99.0.2/32"), Proto: "tcp", PortLo: 82, PortHi: 82}}, z.Pinholes...)
	policies := []map[firewall.Family][]firewall.Rule{firewall.InnerRules(wider, defaultLAN), firewall.InnerRules(z, defaultLAN)}
	stop, done := make(chan struct{}), make(chan error)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if changed, err := Apply(ns, policies[i%2], quiet); err != nil || !changed {
				<-stop
				done <- fmt.Errorf("replacement %d: changed=%v err=%v", i, changed, err)
				return
			}
		}
	}()
	attempts := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); attempts++ {
		if err := dialTCP(zone, "10.99.0.2:81", time.Second); !errors.Is(err, unix.ECONNREFUSED) {
			t.Errorf("tcp 10.99.0.2:81 while the wall is replaced, attempt %d: %v", attempts+1, err)
			break
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	gen := zoneGeneration(t, zone)
	t.Logf("%d refused attempts while the wall was replaced (generation now %d)", attempts, gen)

	// Control: without the wall the same attempts get through.
	delTable(t, zone)
	if err := dialTCP(zone, "10.99.0.2:81", 3*time.Second); err != nil {
		t.Errorf("tcp 10.99.0.2:81 without the wall: %v", err)
	}
	if err := dialTCP(peer, "10.99.0.1:8080", 3*time.Second); err != nil {
		t.Errorf("tcp 10.99.0.1:8080 from the peer without the wall: %v", err)
	}
	if err := udpError(zone, "10.99.0.2:53"); err == nil || err.Error() != "got an answer" {
		t.Errorf("udp 10.99.0.2:53 without the wall: %v, want an answer", err)
	}
}

// delTable deletes the table through netlink (no nft binary needed).
func delTable(tb testing.TB, zone string) {
	tb.Helper()
	ns, err := netns.OpenNamed(zone)
	if err != nil {
		tb.Fatal(err)
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		tb.Fatal(err)
	}
	c.DelTable(&nftables.Table{Name: Table, Family: inet})
	if err := c.Flush(); err != nil {
		tb.Fatal(err)
	}
}

// listenTCP listens in namespace ns and greets every connection with "hi".
func listenTCP(tb testing.TB, ns, addr string) {
	tb.Helper()
	var l net.Listener
	err := netns.RunIn(ns, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
}

// listenUDP echoes datagrams in namespace ns.
func listenUDP(tb testing.TB, ns, addr string) {
	tb.Helper()
	var pc net.PacketConn
	err := netns.RunIn(ns, func() (err error) {
		pc, err = net.ListenPacket("udp", addr)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// dialTCP connects from namespace ns and reads the greeting.
func dialTCP(ns, addr string, timeout time.Duration) error {
	var c net.Conn
	err := netns.RunIn(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	if err != nil {
		return unwrapNetErr(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
		return fmt.Errorf("reading the greeting: %q %v", buf, err)
	}
	return nil
}

// udpError sends a datagram from namespace ns on a connected socket and
// returns the error the socket then reports.
func udpError(ns, addr string) error {
	var c net.Conn
	if err := netns.RunIn(ns, func() (err error) {
		c, err = net.Dial("udp", addr)
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	// The write itself may fail (EPERM: the wall dropped it on the way out);
	// the ICMP error reaches the socket anyway.
	c.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 16))
	if err == nil {
		return errors.New("got an answer")
	}
	return unwrapNetErr(err)
}

// unwrapNetErr keeps net.Error timeouts and reveals the errno otherwise.
func unwrapNetErr(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// Counters counts what the zone sends: let through and refused, per
// family, with their bytes; loopback counts nowhere.
func TestCounters(t *testing.T) {
	rootTest(t)
	needNft(t)
	const zone = "nftcount"
	ns := newNS(t, zone)
	rules := firewall.InnerRules(wideZone(zone), defaultLAN)
	if _, err := Apply(ns, rules, quiet); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{
		"ip link add c0 type veth peer name c1", "ip link set c0 up", "ip link set c1 up",
		"ip addr add 10.250.0.2/30 dev c0", "ip route add default via 10.250.0.1",
		"ip -6 addr add fd6e:737a:0:9::2/64 dev c0 nodad", "ip -6 route add default via fd6e:737a:0:9::1",
	} {
		run(t, zone, strings.Fields(c)...)
	}
	before, err := Counters(ns, rules)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 100)
	send := func(to string, n int) {
		err := ns.Do(func() error {
			c, err := net.ListenPacket("udp", ":0")
			if err != nil {
				return err
			}
			defer c.Close()
			for range n {
				// A refused datagram fails the call (EPERM) and is counted.
				if _, err := c.WriteTo(payload, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(to))); err != nil && !errors.Is(err, unix.EPERM) {
					return err
				}
			}
			lo, err := net.Dial("udp", "127.0.0.1:9") // counts nowhere
			if err != nil {
				return err
			}
			defer lo.Close()
			_, err = lo.Write(payload)
			return err
		})
		if err != nil {
			t.Fatalf("sending to %s: %v", to, err)
		}
	}
	send("198.18.0.1:9", 3)         // the internet: let through
	send("10.250.0.6:9", 2)         // another zone's link: refused
	send("[2001:db8::1]:9", 3)      // the internet, IPv6
	send("[fd6e:737a:0:2::2]:9", 2) // another zone's, IPv6
	after, err := Counters(ns, rules)
	if err != nil {
		t.Fatal(err)
	}
	v4 := firewall.FamilyCounters{
		Allowed: firewall.Count{Packets: after.IPv4.Allowed.Packets - before.IPv4.Allowed.Packets, Bytes: after.IPv4.Allowed.Bytes - before.IPv4.Allowed.Bytes},
		Refused: firewall.Count{Packets: after.IPv4.Refused.Packets - before.IPv4.Refused.Packets, Bytes: after.IPv4.Refused.Bytes - before.IPv4.Refused.Bytes},
		Logged:  firewall.Count{Packets: after.IPv4.Logged.Packets - before.IPv4.Logged.Packets, Bytes: after.IPv4.Logged.Bytes - before.IPv4.Logged.Bytes},
	}
	if want := (firewall.FamilyCounters{Allowed: firewall.Count{Packets: 3, Bytes: 3 * 128}, Refused: firewall.Count{Packets: 2, Bytes: 2 * 128},
		Logged: firewall.Count{Packets: 2, Bytes: 2 * 128}}); v4 != want {
		t.Errorf("IPv4 counters moved by %+v, want %+v", v4, want)
	}
	if d := after.IPv6.Allowed.Packets - before.IPv6.Allowed.Packets; d < 3 {
		t.Errorf("IPv6 allowed packets moved by %d, want 3 at least", d)
	}
	if d := after.IPv6.Refused.Packets - before.IPv6.Refused.Packets; d < 2 || after.IPv6.Refused.Bytes-before.IPv6.Refused.Bytes < 2*148 {
		t.Errorf("IPv6 refused moved by %d packets, %d bytes", d, after.IPv6.Refused.Bytes-before.IPv6.Refused.Bytes)
	}
}
