package veth

import (
	"encoding/binary"
	"errors"
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

	"github.com/nszone/nszone/internal/kerneltest"
	"github.com/nszone/nszone/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { kerneltest.Main(m, "veth tests") }

// rootTest: root only, in the sandbox, no thread left in another namespace.
func rootTest(t *testing.T) { t.Helper(); kerneltest.Root(t) }

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// newZone creates a namespace and removes it after the test.
func newZone(t *testing.T, name string, ipv6 bool) netns.NsID {
	t.Helper()
	id, err := netns.CreateNamed(name, SetUpNamespace("", ipv6), testLog(t))
	if err != nil {
		t.Fatalf("CreateNamed(%s): %v", name, err)
	}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name, nil); err != nil {
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

// mustEnsure ensures p with the host side read in one batch, as up does for
// zones that exist (the tests' other calls read it live).
func mustEnsure(t *testing.T, p Pair, wantChanged bool) {
	t.Helper()
	changed, err := EnsurePair(p, mustHostLinks(t), testLog(t))
	if err != nil {
		t.Fatalf("EnsurePair(%s): %v", p.Zone, err)
	}
	if changed != wantChanged {
		t.Fatalf("EnsurePair(%s) changed = %v, want %v", p.Zone, changed, wantChanged)
	}
}

// mustInspect inspects p reading the host side live and from a batch, and
// wants the same answer from both.
func mustInspect(t *testing.T, p Pair) []string {
	t.Helper()
	missing, err := InspectPair(p, nil)
	if err != nil {
		t.Fatalf("InspectPair(%s): %v", p.Zone, err)
	}
	batched, err := InspectPair(p, mustHostLinks(t))
	if err != nil {
		t.Fatalf("InspectPair(%s) with the host's links read in one batch: %v", p.Zone, err)
	}
	if !slices.Equal(missing, batched) {
		t.Errorf("InspectPair(%s) = %q read live, %q with the host's links in one batch", p.Zone, missing, batched)
	}
	return missing
}

func mustHostLinks(t *testing.T) *HostLinks {
	t.Helper()
	h, err := ReadHostLinks()
	if err != nil {
		t.Fatalf("ReadHostLinks: %v", err)
	}
	return h
}

// zoneHandle is a netlink handle in the zone's namespace, for checks.
func zoneHandle(t *testing.T, zone string) *netlink.Handle {
	t.Helper()
	ns, err := netns.OpenNamed(zone)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := HandleIn(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// ping sends ICMP echo requests to dst from the namespace ns (nil: the
// test's own) and waits for a reply; no ping binary needed.
func ping(ns *netns.Handle, dst netip.Addr) error {
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
	if ns != nil {
		err = ns.Do(listen) // the socket stays in ns
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
// namespace: proof that a call wrote nothing. h reads the same namespace, so
// that settle can tell when the kernel is done with earlier changes.
type monitor struct {
	fd    int
	where string
	h     *netlink.Handle
}

func newMonitor(t *testing.T, ns *netns.Handle, where string) *monitor {
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
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		m.h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	}
	var err error
	if ns != nil {
		err = ns.Do(open)
	} else {
		err = open()
	}
	if m.fd >= 0 {
		t.Cleanup(func() { unix.Close(m.fd) })
	}
	if m.h != nil {
		t.Cleanup(m.h.Close)
	}
	if err != nil {
		t.Fatalf("monitoring netlink %s: %v", where, err)
	}
	return m
}

// events returns the notifications that arrived so far, waiting up to d, as
// "WHERE: type N (what it says)".
func (m *monitor) events(d time.Duration) []string {
	var out []string
	buf := make([]byte, 1<<16)
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		n, _, err := unix.Recvfrom(m.fd, buf, 0)
		if errors.Is(err, unix.ENOBUFS) {
			// The socket overflowed: what was lost may have been a write.
			out = append(out, m.where+": notifications lost (ENOBUFS)")
			continue
		}
		if err != nil {
			continue // timeout
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			out = append(out, fmt.Sprintf("%s: unreadable notification: %v", m.where, err))
		}
		for _, msg := range msgs {
			out = append(out, fmt.Sprintf("%s: type %d (%s)", m.where, msg.Header.Type, describe(msg)))
		}
	}
	return out
}

// describe renders a link, address or route notification, so that a failure
// says what changed: "new address fe80::1/64 ifindex 2 scope 253 flags
// permanent port 0" is the kernel finishing duplicate address detection, not
// a write by the code under test.
func describe(msg syscall.NetlinkMessage) string {
	var b strings.Builder
	verb := map[uint16]string{unix.RTM_NEWLINK: "new link", unix.RTM_DELLINK: "deleted link",
		unix.RTM_NEWADDR: "new address", unix.RTM_DELADDR: "deleted address",
		unix.RTM_NEWROUTE: "new route", unix.RTM_DELROUTE: "deleted route",
		unix.RTM_NEWNETCONF: "new netconf", unix.RTM_DELNETCONF: "deleted netconf"}[msg.Header.Type]
	if verb == "" {
		verb = "message"
	}
	b.WriteString(verb)
	attrs, _ := syscall.ParseNetlinkRouteAttr(&msg) // nil for netconf and the unknown
	u32 := func(v []byte) uint32 {
		if len(v) < 4 {
			return 0
		}
		return binary.NativeEndian.Uint32(v)
	}
	ip := func(v []byte) string {
		a, ok := netip.AddrFromSlice(v)
		if !ok {
			return "?"
		}
		return a.String()
	}
	switch d := msg.Data; msg.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		if len(d) < unix.SizeofIfInfomsg {
			break
		}
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFLA_IFNAME:
				b.WriteString(" " + strings.TrimRight(string(a.Value), "\x00"))
			case unix.IFLA_OPERSTATE:
				if len(a.Value) > 0 {
					fmt.Fprintf(&b, " oper %s", netlink.LinkOperState(a.Value[0]))
				}
			}
		}
		fmt.Fprintf(&b, " ifindex %d flags %#x", int32(u32(d[4:])), u32(d[8:]))
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if len(d) < unix.SizeofIfAddrmsg {
			break
		}
		flags := uint32(d[2])
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFA_ADDRESS:
				fmt.Fprintf(&b, " %s/%d", ip(a.Value), d[1])
			case unix.IFA_FLAGS:
				flags = u32(a.Value)
			}
		}
		fmt.Fprintf(&b, " ifindex %d scope %d flags %s", u32(d[4:]), d[3], ifaFlags(flags))
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		if len(d) < unix.SizeofRtMsg {
			break
		}
		dst, table := "default", uint32(d[4])
		if d[1] > 0 {
			dst = fmt.Sprintf("?/%d", d[1])
		}
		var rest string
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.RTA_DST:
				dst = fmt.Sprintf("%s/%d", ip(a.Value), d[1])
			case unix.RTA_GATEWAY:
				rest += " via " + ip(a.Value)
			case unix.RTA_OIF:
				rest += fmt.Sprintf(" oif %d", u32(a.Value))
			case unix.RTA_PRIORITY:
				rest += fmt.Sprintf(" metric %d", u32(a.Value))
			case unix.RTA_TABLE:
				table = u32(a.Value)
			}
		}
		fmt.Fprintf(&b, " %s%s table %d type %d proto %d", dst, rest, table, d[7], d[5])
	}
	// The port of the socket whose request caused it; 0 for the kernel's own
	// changes, and for IPv6 addresses always.
	fmt.Fprintf(&b, " port %d", msg.Header.Pid)
	return b.String()
}

func ifaFlags(f uint32) string {
	var names []string
	for _, n := range []struct {
		bit  uint32
		name string
	}{{unix.IFA_F_TENTATIVE, "tentative"}, {unix.IFA_F_OPTIMISTIC, "optimistic"}, {unix.IFA_F_DADFAILED, "dadfailed"},
		{unix.IFA_F_NODAD, "nodad"}, {unix.IFA_F_PERMANENT, "permanent"}, {unix.IFA_F_SECONDARY, "secondary"}} {
		if f&n.bit != 0 {
			names = append(names, n.name)
			f &^= n.bit
		}
	}
	if f != 0 || len(names) == 0 {
		names = append(names, fmt.Sprintf("%#x", f))
	}
	return strings.Join(names, ",")
}

// unsettled lists what the kernel has yet to finish in the monitor's
// namespace on its own, each item bound to end in notifications:
//   - a link whose oper state does not follow its carrier yet: linkwatch
//     runs late (up to a second, more under load), and only then does IPv6
//     configure the link, adding its link-local address;
//   - a tentative IPv6 address: duplicate address detection of a link-local
//     address ends 1 to 2 seconds after its link comes up (later under load)
//     with an RTM_NEWADDR and an RTM_NEWROUTE for its local route, and is
//     silent meanwhile.
func (m *monitor) unsettled(t *testing.T) []string {
	t.Helper()
	links, err := retryDump(m.h.LinkList)
	if err != nil {
		t.Fatalf("listing links %s: %v", m.where, err)
	}
	var out []string
	for _, l := range links {
		a := l.Attrs()
		if a.RawFlags&unix.IFF_UP == 0 {
			continue
		}
		carrier := a.RawFlags&unix.IFF_LOWER_UP != 0
		if oper := a.OperState; carrier && oper != netlink.OperUp && oper != netlink.OperUnknown || !carrier && oper == netlink.OperUp {
			out = append(out, fmt.Sprintf("%s: link %s has carrier %v, oper state %s", m.where, a.Name, carrier, oper))
		}
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return m.h.AddrList(nil, netlink.FAMILY_V6) })
	if err != nil {
		t.Fatalf("listing addresses %s: %v", m.where, err)
	}
	for _, a := range addrs {
		if a.Flags&unix.IFA_F_TENTATIVE != 0 && a.Flags&unix.IFA_F_DADFAILED == 0 {
			out = append(out, fmt.Sprintf("%s: address %s on ifindex %d tentative", m.where, a.IPNet, a.LinkIndex))
		}
	}
	return out
}

// settle waits until the kernel is done with what earlier changes set off in
// the monitors' namespaces (see unsettled), then until no notification came
// for a while, so that nothing of it is left to arrive. A quiet time alone
// would not do: duplicate address detection is silent for up to 2 seconds
// before it reports, and a quiet time shorter than that let its report land
// on the next check as if the code under test had written it.
func settle(t *testing.T, ms ...*monitor) {
	t.Helper()
	const quiet = time.Second
	start, last := time.Now(), time.Now()
	var waited []string // for the log: what was pending, each once
	for {
		for _, m := range ms {
			if len(m.events(50*time.Millisecond)) > 0 {
				last = time.Now()
			}
		}
		var pending []string
		for _, m := range ms {
			pending = append(pending, m.unsettled(t)...)
		}
		for _, p := range pending {
			if !slices.Contains(waited, p) {
				waited = append(waited, p)
			}
		}
		switch {
		case len(pending) > 0:
			last = time.Now()
		case time.Since(last) >= quiet:
			t.Logf("settled in %v, after %q", time.Since(start).Round(time.Millisecond), waited)
			return
		}
		if time.Since(start) > 30*time.Second {
			if len(pending) == 0 {
				pending = []string{"notifications kept coming"}
			}
			t.Fatalf("the kernel never settled: %q", pending)
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
