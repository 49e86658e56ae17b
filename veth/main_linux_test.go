package veth

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nszone/nszone/sandbox"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// homeNS is the network namespace of the test process: the sandbox's.
var homeNS NsID

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 && !sandbox.Active() {
		if err := sandbox.Reexec(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if !sandbox.Active() {
			fmt.Fprintln(os.Stderr, "veth tests: not in a sandbox, refusing to run as root")
			os.Exit(1)
		}
	}
	var err error
	if homeNS, err = nsIDOf("/proc/self/ns/net"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// rootTest skips without root and, after the test, checks that no thread
// was left in another network namespace.
func rootTest(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: run scripts/test")
	}
	t.Cleanup(func() { checkThreads(t) })
}

func nsIDOf(path string) (NsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return NsID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return NsID{Dev: st.Dev, Ino: st.Ino}, nil
}

// strayThreads lists this process's threads that are not in homeNS.
func strayThreads() []string {
	tasks, _ := os.ReadDir("/proc/self/task")
	var out []string
	for _, task := range tasks {
		id, err := nsIDOf("/proc/self/task/" + task.Name() + "/ns/net")
		if err == nil && id != homeNS { // an error: the thread just exited
			out = append(out, task.Name())
		}
	}
	return out
}

// checkThreads fails the test when a thread stays in another namespace. A
// dying thread may still be exiting, so it waits a little before failing.
func checkThreads(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		stray := strayThreads()
		if len(stray) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("threads %v of process %d stay in another network namespace", stray, os.Getpid())
			return
		}
	}
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// newZone creates a namespace and removes it after the test.
func newZone(t *testing.T, name string, ipv6 bool) NsID {
	t.Helper()
	id, err := CreateNamed(name, ipv6, testLog(t))
	if err != nil {
		t.Fatalf("CreateNamed(%s): %v", name, err)
	}
	t.Cleanup(func() {
		if err := DeleteNamed(name, nil); err != nil {
			t.Errorf("DeleteNamed(%s): %v", name, err)
		}
	})
	return id
}

// testPair is the pair of zone number n.
func testPair(zone string, n int, ipv6 bool) Pair {
	p := Pair{
		Zone: zone, HostName: "nsz-" + zone, PeerName: "eth0", Alias: "nszone:" + zone,
		Host4: netip.MustParsePrefix(fmt.Sprintf("10.250.%d.1/30", n)),
		Zone4: netip.MustParsePrefix(fmt.Sprintf("10.250.%d.2/30", n)),
	}
	if ipv6 {
		p.Host6 = netip.MustParsePrefix(fmt.Sprintf("fd6e:737a:0:%x::1/64", n))
		p.Zone6 = netip.MustParsePrefix(fmt.Sprintf("fd6e:737a:0:%x::2/64", n))
	}
	return p
}

func mustEnsure(t *testing.T, p Pair, wantChanged bool) {
	t.Helper()
	changed, err := EnsurePair(p, testLog(t))
	if err != nil {
		t.Fatalf("EnsurePair(%s): %v", p.Zone, err)
	}
	if changed != wantChanged {
		t.Fatalf("EnsurePair(%s) changed = %v, want %v", p.Zone, changed, wantChanged)
	}
}

func mustInspect(t *testing.T, p Pair) []string {
	t.Helper()
	missing, err := InspectPair(p)
	if err != nil {
		t.Fatalf("InspectPair(%s): %v", p.Zone, err)
	}
	return missing
}

// zoneHandle is a netlink handle in the zone's namespace, for checks.
func zoneHandle(t *testing.T, zone string) *netlink.Handle {
	t.Helper()
	ns, err := OpenNamed(zone)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := handleIn(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// ping sends ICMP echo requests to dst from the namespace ns (netns.None():
// the test's own) and waits for a reply; no ping binary needed.
func ping(ns netns.NsHandle, dst netip.Addr) error {
	network, request, reply := "ip4:icmp", byte(8), byte(0)
	if dst.Is6() {
		network, request, reply = "ip6:ipv6-icmp", 128, 129
	}
	var c net.PacketConn
	listen := func() (err error) {
		c, err = net.ListenPacket(network, "")
		return err
	}
	var err error
	if ns.IsOpen() {
		err = inNamespace(ns, listen) // the socket stays in ns
	} else {
		err = listen()
	}
	if err != nil {
		return err
	}
	defer c.Close()
	id := uint16(os.Getpid())
	lastErr := error(nil)
	for seq := uint16(1); seq <= 3; seq++ {
		msg := []byte{request, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'n', 's', 'z'}
		if dst.Is4() { // the kernel computes ICMPv6 checksums itself
			sum := icmpChecksum(msg)
			msg[2], msg[3] = byte(sum>>8), byte(sum)
		}
		if _, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			lastErr = err
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				lastErr = err
				break
			}
			if n >= 8 && buf[0] == reply && binary.BigEndian.Uint16(buf[4:]) == id &&
				binary.BigEndian.Uint16(buf[6:]) == seq && addrOf(from.(*net.IPAddr).IP) == dst {
				return nil
			}
		}
	}
	return fmt.Errorf("no echo reply from %s: %w", dst, lastErr)
}

func icmpChecksum(b []byte) uint16 {
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

// monitor receives the link, address, route and netconf notifications of one
// namespace: proof that a call wrote nothing.
type monitor struct {
	fd    int
	where string
}

func newMonitor(t *testing.T, ns netns.NsHandle, where string) *monitor {
	t.Helper()
	m := &monitor{fd: -1, where: where}
	open := func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		m.fd = fd
		var groups uint32
		for _, g := range []uint32{unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR,
			unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE, unix.RTNLGRP_IPV4_NETCONF, unix.RTNLGRP_IPV6_NETCONF} {
			groups |= 1 << (g - 1)
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}
	var err error
	if ns.IsOpen() {
		err = inNamespace(ns, open)
	} else {
		err = open()
	}
	if m.fd >= 0 {
		t.Cleanup(func() { unix.Close(m.fd) })
	}
	if err != nil {
		t.Fatalf("monitoring netlink %s: %v", where, err)
	}
	return m
}

// events returns the notifications that arrived so far, waiting up to d.
func (m *monitor) events(d time.Duration) []string {
	var out []string
	buf := make([]byte, 1<<16)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		n, _, err := unix.Recvfrom(m.fd, buf, 0)
		if err != nil {
			continue // timeout; ENOBUFS would also mean events were lost
		}
		msgs, _ := syscall.ParseNetlinkMessage(buf[:n])
		for _, msg := range msgs {
			out = append(out, fmt.Sprintf("%s: type %d %s %s", m.where, msg.Header.Type, time.Now().Format("15:04:05.000"), describe(msg)))
		}
	}
	return out
}

func describe(msg syscall.NetlinkMessage) string {
	attrs, _ := syscall.ParseNetlinkRouteAttr(&msg)
	var b strings.Builder
	switch msg.Header.Type {
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if len(msg.Data) < unix.SizeofIfAddrmsg {
			return "short"
		}
		fmt.Fprintf(&b, "ifindex %d fam %d scope %d flags %#x", binary.NativeEndian.Uint32(msg.Data[4:]), msg.Data[0], msg.Data[3], msg.Data[2])
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFA_ADDRESS:
				ip, _ := netip.AddrFromSlice(a.Value)
				fmt.Fprintf(&b, " addr %s/%d", ip, msg.Data[1])
			case unix.IFA_FLAGS:
				fmt.Fprintf(&b, " ifa_flags %#x", binary.NativeEndian.Uint32(a.Value))
			}
		}
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		if len(msg.Data) < unix.SizeofRtMsg {
			return "short"
		}
		fmt.Fprintf(&b, "fam %d dstlen %d table %d proto %d scope %d type %d", msg.Data[0], msg.Data[1], msg.Data[4], msg.Data[5], msg.Data[6], msg.Data[7])
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.RTA_DST:
				ip, _ := netip.AddrFromSlice(a.Value)
				fmt.Fprintf(&b, " dst %s", ip)
			case unix.RTA_GATEWAY:
				ip, _ := netip.AddrFromSlice(a.Value)
				fmt.Fprintf(&b, " gw %s", ip)
			case unix.RTA_OIF:
				fmt.Fprintf(&b, " oif %d", binary.NativeEndian.Uint32(a.Value))
			case unix.RTA_TABLE:
				fmt.Fprintf(&b, " table %d", binary.NativeEndian.Uint32(a.Value))
			}
		}
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		fmt.Fprintf(&b, "ifindex %d flags %#x", binary.NativeEndian.Uint32(msg.Data[4:]), binary.NativeEndian.Uint32(msg.Data[8:]))
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFLA_IFNAME:
				fmt.Fprintf(&b, " name %s", strings.TrimRight(string(a.Value), "\x00"))
			case unix.IFLA_OPERSTATE:
				fmt.Fprintf(&b, " oper %d", a.Value[0])
			}
		}
	}
	return fmt.Sprintf("pid %d seq %d %s", msg.Header.Pid, msg.Header.Seq, b.String())
}

// settle waits until no monitor has seen anything for a while: IPv6
// duplicate address detection and carrier changes report late.
func settle(t *testing.T, ms ...*monitor) {
	t.Helper()
	quiet := time.Now()
	for start := time.Now(); time.Since(quiet) < 1500*time.Millisecond; {
		if time.Since(start) > 30*time.Second {
			t.Fatal("netlink never went quiet")
		}
		for _, m := range ms {
			if len(m.events(100*time.Millisecond)) > 0 {
				quiet = time.Now()
			}
		}
	}
}

// snapshot renders the links, addresses and main routes of a namespace.
func snapshot(t *testing.T, h *netlink.Handle) string {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range links {
		a := l.Attrs()
		lines = append(lines, fmt.Sprintf("link %d %s %s %v mtu %d alias %q peer %d", a.Index, a.Name, l.Type(), a.Flags, a.MTU, a.Alias, a.ParentIndex))
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, ad := range addrs {
			lines = append(lines, fmt.Sprintf("addr %s %s scope %d", a.Name, ad.IPNet, ad.Scope))
		}
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		lines = append(lines, "route "+r.String())
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
