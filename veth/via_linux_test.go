package veth

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

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/netns"
)

func TestViaValidate(t *testing.T) {
	ok := Via{Zone: "z", HostIf: "nsz-z", Iface: "wg0", Table: 1001, Priority: ViaPriority}
	if err := ok.validate(); err != nil {
		t.Fatalf("%+v: %v", ok, err)
	}
	for _, c := range []struct {
		name string
		bend func(*Via)
	}{
		{"no iface", func(v *Via) { v.Iface = "" }},
		{"bad host end", func(v *Via) { v.HostIf = "a/b" }},
		{"iface is the host end", func(v *Via) { v.Iface = v.HostIf }},
		{"table 0", func(v *Via) { v.Table = 0 }},
		{"table main", func(v *Via) { v.Table = unix.RT_TABLE_MAIN }},
		{"table local", func(v *Via) { v.Table = unix.RT_TABLE_LOCAL }},
		{"table default", func(v *Via) { v.Table = unix.RT_TABLE_DEFAULT }},
		{"table negative", func(v *Via) { v.Table = -1 }},
		{"priority 1", func(v *Via) { v.Priority = 1 }},
		{"priority of main", func(v *Via) { v.Priority = 32766 }},
	} {
		v := ok
		c.bend(&v)
		if err := v.validate(); err == nil {
			t.Errorf("%s: %+v valid", c.name, v)
		}
	}
}

func TestViaGateway(t *testing.T) {
	route := func(dst string, idx int, gw string, metric int) netlink.Route {
		r := netlink.Route{Dst: ipNet(netip.MustParsePrefix(dst)), LinkIndex: idx, Priority: metric, Type: unix.RTN_UNICAST}
		if gw != "" {
			r.Gw = net.ParseIP(gw)
		}
		return r
	}
	multipath := route("0.0.0.0/0", 0, "", 5)
	multipath.MultiPath = []*netlink.NexthopInfo{{LinkIndex: 7, Gw: net.ParseIP("192.0.2.7")}, {LinkIndex: 3, Gw: net.ParseIP("192.0.2.3")}}
	onlink := route("0.0.0.0/0", 3, "198.51.100.9", 0)
	onlink.Flags = unix.RTNH_F_ONLINK
	unreachable := route("0.0.0.0/0", 3, "192.0.2.99", 0)
	unreachable.Type = unix.RTN_UNREACHABLE
	for _, c := range []struct {
		name   string
		routes []netlink.Route
		want   string
		onlink bool
	}{
		{"none", nil, "", false},
		{"point-to-point", []netlink.Route{route("10.8.0.0/24", 3, "", 0), route("0.0.0.0/0", 2, "192.0.2.1", 0)}, "", false},
		{"subnet route", []netlink.Route{route("10.9.0.0/16", 3, "10.8.0.1", 100)}, "10.8.0.1", false},
		{"default first", []netlink.Route{route("10.9.0.0/16", 3, "10.8.0.1", 1), route("0.0.0.0/0", 3, "10.8.0.254", 600)}, "10.8.0.254", false},
		{"lowest metric", []netlink.Route{route("0.0.0.0/0", 3, "10.8.0.2", 600), route("0.0.0.0/0", 3, "10.8.0.3", 100)}, "10.8.0.3", false},
		{"multipath hop", []netlink.Route{multipath}, "192.0.2.3", false},
		{"onlink", []netlink.Route{onlink}, "198.51.100.9", true},
		{"not unicast", []netlink.Route{unreachable}, "", false},
		{"v6", []netlink.Route{route("::/0", 3, "fe80::1", 1024)}, "fe80::1", false},
	} {
		gw, on := viaGateway(c.routes, 3)
		want := netip.Addr{}
		if c.want != "" {
			want = netip.MustParseAddr(c.want)
		}
		if gw != want || on != c.onlink {
			t.Errorf("%s: %v onlink %v, want %v onlink %v", c.name, gw, on, want, c.onlink)
		}
	}
}

// The via lab, in the test's namespace as the host:
//
//	zone t-via (10.250.20.2) --nsz-t-via-- host --vu-up-- t-vnet: the internet, the main table's default route
//	                                            --wg0---- t-vtun: the far end of the tunnel
//
// wg0 is a veth whose peer is in t-vtun. Both far ends own the "internet"
// address 198.51.100.1 (and 2001:db8:100::1) on their eth0, so which one a
// datagram reaches tells the way it took; each routes back to the host, so
// echoes come back without address translation.
var (
	viaNet4, viaNet6   = netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:100::1")
	viaLAN4, viaLAN6   = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:1::1")
	viaTunGw4, viaGw6  = netip.MustParseAddr("172.16.99.2"), netip.MustParseAddr("2001:db8:99::2")
	viaInternet        = []netip.Addr{viaNet4, viaNet6}
	viaTestPort        = 40123
	viaTableForTest    = 1001
	viaUnreachableText = "unreachable default metric 2147483647"
)

type viaLab struct {
	p          Pair
	v          Via
	h          *netlink.Handle
	zone       *netns.Handle
	tun, inet  net.PacketConn // listeners on the far ends
	sent       int
	zoneSocket net.PacketConn
}

func newViaLab(t *testing.T) *viaLab {
	t.Helper()
	l := &viaLab{h: hostHandle(t)}
	for _, kv := range [][2]string{{"net/ipv4/ip_forward", "1"}, {"net/ipv6/conf/all/forwarding", "1"}} {
		old, err := GetSysctl(kv[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := SetSysctl(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = SetSysctl(kv[0], old) })
	}
	newZone(t, "t-via", true)
	l.p = testPair("t-via", 20, true)
	t.Cleanup(func() { _ = DeletePair(l.p.Zone, l.p.HostName, l.p.Alias, nil) })
	mustEnsure(t, l.p, true)
	l.v = Via{Zone: "t-via", HostIf: l.p.HostName, Iface: "wg0", Table: viaTableForTest, Priority: ViaPriority, IPv6: true}
	t.Cleanup(func() {
		if err := DeleteVia(l.v, nil); err != nil {
			t.Errorf("DeleteVia: %v", err)
		}
	})

	newZone(t, "t-vnet", true)
	newZone(t, "t-vtun", true)
	l.farLink(t, "vu-up", "t-vnet", []string{"192.0.2.2/24", "2001:db8:1::2/64"}, []string{"192.0.2.1/24", "2001:db8:1::1/64"})
	l.farLink(t, "wg0", "t-vtun", []string{"172.16.99.1/30", "2001:db8:99::1/64"}, []string{"172.16.99.2/30", "2001:db8:99::2/64"})
	up, err := l.h.LinkByName("vu-up")
	if err != nil {
		t.Fatal(err)
	}
	for _, gw := range []netip.Addr{viaLAN4, viaLAN6} {
		r := &netlink.Route{LinkIndex: up.Attrs().Index, Dst: ipNet(netip.PrefixFrom(anyOf(gw), 0)), Gw: gw.AsSlice()}
		if err := l.h.RouteAdd(r); err != nil {
			t.Fatalf("default route via %s: %v", gw, err)
		}
	}
	if l.zone, err = netns.OpenNamed("t-via"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.zone.Close() })
	l.tun, l.inet = l.listen(t, "t-vtun"), l.listen(t, "t-vnet")
	if err := l.zone.Do(func() (err error) { l.zoneSocket, err = net.ListenPacket("udp", ":0"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.zoneSocket.Close() })
	return l
}

func anyOf(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// farLink makes the veth name on the host with its peer eth0 in the
// namespace far, the addresses given on each end, the internet address on
// the peer too, and far's default routes back to the host.
func (l *viaLab) farLink(t *testing.T, name, far string, host, peer []string) {
	t.Helper()
	ns, err := netns.OpenNamed(far)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	v := netlink.NewVeth(netlink.LinkAttrs{Name: name, TxQLen: -1})
	v.PeerName, v.PeerNamespace = "eth0", netlink.NsFd(ns.Fd())
	if err := l.h.LinkAdd(v); err != nil {
		t.Fatalf("veth %s to %s: %v", name, far, err)
	}
	t.Cleanup(func() {
		if hl, err := l.h.LinkByName(name); err == nil {
			_ = l.h.LinkDel(hl)
		}
	})
	var gws []netip.Addr
	for _, a := range host {
		gws = append(gws, netip.MustParsePrefix(a).Addr())
	}
	bringUp(t, l.h, name, host, nil)
	bringUp(t, zoneHandle(t, far), "eth0", append(slices.Clone(peer), viaNet4.String()+"/32", viaNet6.String()+"/128"), gws)
}

// bringUp sets the link name up with addrs on it and default routes via gws;
// what is there already stays.
func bringUp(t *testing.T, h *netlink.Handle, name string, addrs []string, gws []netip.Addr) {
	t.Helper()
	link, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if err := h.AddrReplace(link, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix(a)), Flags: unix.IFA_F_NODAD}); err != nil {
			t.Fatalf("address %s on %s: %v", a, name, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
	for _, gw := range gws {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(netip.PrefixFrom(anyOf(gw), 0)), Gw: gw.AsSlice()}
		if err := h.RouteReplace(r); err != nil {
			t.Fatalf("default route via %s: %v", gw, err)
		}
	}
}

func (l *viaLab) listen(t *testing.T, far string) net.PacketConn {
	t.Helper()
	ns, err := netns.OpenNamed(far)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	var c net.PacketConn
	if err := ns.Do(func() (err error) { c, err = net.ListenPacket("udp", fmt.Sprintf(":%d", viaTestPort)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// routeGet asks the host's kernel how it would forward a packet from the
// zone to dst: the link's name and the gateway, or the error. An
// unreachable route answers EHOSTUNREACH; no route at all, ENETUNREACH.
func (l *viaLab) routeGet(t *testing.T, dst netip.Addr) (string, netip.Addr, error) {
	t.Helper()
	src := l.p.Zone4.Addr()
	if dst.Is6() {
		src = l.p.Zone6.Addr()
	}
	routes, err := l.h.RouteGetWithOptions(dst.AsSlice(), &netlink.RouteGetOptions{Iif: l.p.HostName, SrcAddr: src.AsSlice()})
	if err != nil {
		return "", netip.Addr{}, err
	}
	if len(routes) == 0 {
		t.Fatalf("route get %s: no route and no error", dst)
	}
	link, err := l.h.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		t.Fatalf("route get %s: link %d: %v", dst, routes[0].LinkIndex, err)
	}
	return link.Attrs().Name, addrOf(routes[0].Gw), nil
}

// mustLeaveBy wants the zone's packets to dst forwarded through dev.
func (l *viaLab) mustLeaveBy(t *testing.T, dev string, dsts ...netip.Addr) {
	t.Helper()
	for _, dst := range dsts {
		if got, _, err := l.routeGet(t, dst); err != nil || got != dev {
			t.Errorf("route get %s iif %s: dev %q, %v; want dev %s", dst, l.p.HostName, got, err, dev)
		}
	}
}

// mustBeHeld wants the zone's packets to dst unreachable, and none of the
// datagrams sent to reach either far end.
func (l *viaLab) mustBeHeld(t *testing.T, dsts ...netip.Addr) {
	t.Helper()
	for _, dst := range dsts {
		if got, _, err := l.routeGet(t, dst); !errors.Is(err, unix.EHOSTUNREACH) {
			t.Errorf("route get %s iif %s: dev %q, %v; want unreachable", dst, l.p.HostName, got, err)
		}
		if tun, inet := l.arrivals(t, dst); tun || inet {
			t.Errorf("datagram from the zone to %s reached the tunnel's end %v, the internet by the uplink %v; want neither", dst, tun, inet)
		}
	}
}

// mustTunnel wants the zone's packets to the internet to leave by wg0 and
// arrive at the tunnel's far end only, and echoes to come back.
func (l *viaLab) mustTunnel(t *testing.T) {
	t.Helper()
	l.mustLeaveBy(t, "wg0", viaInternet...)
	for _, dst := range viaInternet {
		if tun, inet := l.arrivals(t, dst); !tun || inet {
			t.Errorf("datagram from the zone to %s reached the tunnel's end %v, the internet by the uplink %v; want the tunnel only", dst, tun, inet)
		}
		if err := ping(l.zone, dst); err != nil {
			t.Errorf("ping %s from the zone: %v", dst, err)
		}
	}
}

// arrivals sends three datagrams from the zone to dst and reports which far
// ends received one.
func (l *viaLab) arrivals(t *testing.T, dst netip.Addr) (tun, inet bool) {
	t.Helper()
	l.sent++
	token := fmt.Sprintf("nszone via %d", l.sent)
	for range 3 {
		if _, err := l.zoneSocket.WriteTo([]byte(token), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(viaTestPort)))); err != nil {
			t.Fatalf("sending to %s from the zone: %v", dst, err)
		}
	}
	var wg sync.WaitGroup
	got := func(c net.PacketConn, seen *bool) {
		defer wg.Done()
		_ = c.SetReadDeadline(time.Now().Add(700 * time.Millisecond))
		buf := make([]byte, 100)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == token {
				*seen = true
			}
		}
	}
	wg.Add(2)
	go got(l.tun, &tun)
	go got(l.inet, &inet)
	wg.Wait()
	return tun, inet
}

func (l *viaLab) inspect(t *testing.T) []string {
	t.Helper()
	gaps, err := InspectVia(l.v)
	if err != nil {
		t.Fatalf("InspectVia: %v", err)
	}
	return gaps
}

func (l *viaLab) ensure(t *testing.T, wantChanged bool) {
	t.Helper()
	changed, err := EnsureVia(l.v, testLog(t))
	if err != nil {
		t.Fatalf("EnsureVia: %v", err)
	}
	if changed != wantChanged {
		t.Fatalf("EnsureVia changed = %v, want %v", changed, wantChanged)
	}
}

func (l *viaLab) wantGaps(t *testing.T, when string, want ...string) {
	t.Helper()
	if gaps := l.inspect(t); !slices.Equal(gaps, want) {
		t.Errorf("%s: InspectVia = %q, want %q", when, gaps, want)
	}
}

// state renders all rules and the routes of the via's table, both families.
func (l *viaLab) state(t *testing.T) string {
	t.Helper()
	var lines []string
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := l.h.RuleList(family)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			lines = append(lines, fmt.Sprintf("family %d rule %d iif %s table %d proto %d suppress %d",
				family, r.Priority, r.IifName, r.Table, r.Protocol, r.SuppressPrefixlen))
		}
		routes, err := l.h.RouteListFiltered(family, &netlink.Route{Table: l.v.Table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			lines = append(lines, fmt.Sprintf("family %d route %s type %d proto %d", family, r, r.Type, r.Protocol))
		}
	}
	return strings.Join(lines, "\n")
}

// ours lists the rules for the zone's host end and the routes of the via's
// table that carry ViaProtocol.
func (l *viaLab) ours(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(l.state(t), "\n") {
		if strings.Contains(line, fmt.Sprintf("proto %d", ViaProtocol)) {
			out = append(out, line)
		}
	}
	return out
}

// newRuleMonitor receives the host's route and rule notifications.
func newRuleMonitor(t *testing.T, h *netlink.Handle) *monitor {
	t.Helper()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	var groups uint32
	for _, g := range []uint32{unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE, unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE} {
		groups |= 1 << (g - 1)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return &monitor{fd: fd, where: "host", h: h}
}

// eventOrder checks that in events, as rendered by monitor.events, all of
// first come before any of then, each a substring of an event, and that
// there are wantFirst of first.
func eventOrder(t *testing.T, what string, events []string, first, then string, wantFirst int) {
	t.Helper()
	n := 0
	for _, e := range events {
		switch {
		case strings.Contains(e, first):
			n++
		case strings.Contains(e, then) && n < wantFirst:
			t.Errorf("%s: %q came before the %d %q: %q", what, e, wantFirst, first, events)
			return
		}
	}
	if n != wantFirst {
		t.Errorf("%s: %d of %q, want %d: %q", what, n, first, wantFirst, events)
	}
}

func TestVia(t *testing.T) {
	rootTest(t)
	l := newViaLab(t)
	table := fmt.Sprintf("table %d", l.v.Table)

	// Without a via the zone reaches the internet by the uplink: the lab's
	// leak is real, and the checks below would see it.
	l.mustLeaveBy(t, "vu-up", viaInternet...)
	if tun, inet := l.arrivals(t, viaNet4); tun || !inet {
		t.Fatalf("without a via: tunnel %v, internet %v; want the internet only", tun, inet)
	}
	prio := fmt.Sprintf("rule %d iif nsz-t-via lookup ", ViaPriority)
	prev := fmt.Sprintf("rule %d iif nsz-t-via lookup main suppress_prefixlength 0", ViaPriority-1)
	l.wantGaps(t, "before EnsureVia",
		viaUnreachableText+" missing in "+table,
		"IPv6 "+viaUnreachableText+" missing in "+table,
		"default route dev wg0 metric 1024 missing in "+table,
		"IPv6 default route dev wg0 metric 1024 missing in "+table,
		prev+" missing", prio+"1001 missing",
		"IPv6 "+prev+" missing", "IPv6 "+prio+"1001 missing")

	// The unreachable defaults come before any rule.
	mon := newRuleMonitor(t, l.h)
	settle(t, mon)
	l.ensure(t, true)
	eventOrder(t, "EnsureVia", mon.events(300*time.Millisecond), "table 1001 type 7 proto 110", "type 32 (", 2)
	l.wantGaps(t, "after EnsureVia")
	l.mustTunnel(t)

	// What the main table has specific routes for stays there: the LAN.
	l.mustLeaveBy(t, "vu-up", viaLAN4, viaLAN6)
	for _, dst := range []netip.Addr{viaLAN4, viaLAN6, l.p.Host4.Addr(), viaTunGw4} {
		if err := ping(l.zone, dst); err != nil {
			t.Errorf("ping %s from the zone: %v", dst, err)
		}
	}

	// Again: nothing to do, nothing written.
	settle(t, mon)
	before := l.state(t)
	l.ensure(t, false)
	if ev := mon.events(300 * time.Millisecond); len(ev) > 0 {
		t.Errorf("the second EnsureVia wrote: %q", ev)
	}
	if after := l.state(t); after != before {
		t.Errorf("the second EnsureVia changed the state:\n%s\n---\n%s", before, after)
	}

	// wg0 without carrier (its far end down): the route stays, the zone's
	// traffic goes nowhere else, and InspectVia says so.
	far := zoneHandle(t, "t-vtun")
	farEnd, err := far.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := far.LinkSetDown(farEnd); err != nil {
		t.Fatal(err)
	}
	l.wantGaps(t, "far end down", "interface wg0 has no carrier")
	l.mustLeaveBy(t, "wg0", viaInternet...)
	for _, dst := range viaInternet {
		if tun, inet := l.arrivals(t, dst); tun || inet {
			t.Errorf("wg0 without carrier: datagram to %s reached the tunnel's end %v, the internet %v", dst, tun, inet)
		}
	}
	l.ensure(t, false)
	bringUp(t, far, "eth0", []string{"172.16.99.2/30", "2001:db8:99::2/64", viaNet4.String() + "/32", viaNet6.String() + "/128"},
		[]netip.Addr{netip.MustParseAddr("172.16.99.1"), netip.MustParseAddr("2001:db8:99::1")})
	l.wantGaps(t, "far end up again")
	l.mustTunnel(t)

	// wg0 down: the kernel takes the routes through it away, and the zone's
	// internet traffic is held, not let out by the uplink.
	wg, err := l.h.LinkByName("wg0")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.h.LinkSetDown(wg); err != nil {
		t.Fatal(err)
	}
	l.wantGaps(t, "wg0 down", "interface wg0 down")
	l.mustBeHeld(t, viaInternet...)
	l.ensure(t, false)
	l.mustBeHeld(t, viaNet4)
	l.mustLeaveBy(t, "vu-up", viaLAN4, viaLAN6)

	// Up again: still held until EnsureVia puts the routes back.
	// IPv6 drops its addresses when a link goes down: a VPN client
	// would set them again.
	bringUp(t, l.h, "wg0", []string{"2001:db8:99::1/64"}, nil)
	l.wantGaps(t, "wg0 up again",
		"default route dev wg0 metric 1024 missing in "+table,
		"IPv6 default route dev wg0 metric 1024 missing in "+table)
	l.mustBeHeld(t, viaInternet...)
	l.ensure(t, true)
	l.wantGaps(t, "wg0 up again, EnsureVia")
	l.mustTunnel(t)

	// wg0 gone, then made anew.
	if err := l.h.LinkDel(wg); err != nil {
		t.Fatal(err)
	}
	l.wantGaps(t, "wg0 deleted", "interface wg0 missing")
	l.mustBeHeld(t, viaInternet...)
	l.ensure(t, false)
	l.farLink(t, "wg0", "t-vtun", []string{"172.16.99.1/30", "2001:db8:99::1/64"}, []string{"172.16.99.2/30", "2001:db8:99::2/64"})
	l.mustBeHeld(t, viaInternet...)
	l.ensure(t, true)
	l.wantGaps(t, "wg0 made anew")
	l.mustTunnel(t)

	// A gateway on wg0 in the main table (a second uplink, say): the
	// route goes by it, the one without a gateway goes.
	if wg, err = l.h.LinkByName("wg0"); err != nil {
		t.Fatal(err)
	}
	for _, gw := range []netip.Addr{viaTunGw4, viaGw6} {
		r := &netlink.Route{LinkIndex: wg.Attrs().Index, Dst: ipNet(netip.PrefixFrom(anyOf(gw), 0)), Gw: gw.AsSlice(), Priority: 2000}
		if err := l.h.RouteAdd(r); err != nil {
			t.Fatal(err)
		}
	}
	gaps := l.inspect(t)
	for _, want := range []string{
		fmt.Sprintf("stray default route ifindex %d metric 1024 in %s", wg.Attrs().Index, table),
		"default route via 172.16.99.2 dev wg0 metric 1024 missing in " + table,
		"IPv6 default route via 2001:db8:99::2 dev wg0 metric 1024 missing in " + table,
	} {
		if !slices.Contains(gaps, want) {
			t.Errorf("gateway on wg0: InspectVia = %q, want %q among them", gaps, want)
		}
	}
	l.ensure(t, true)
	l.wantGaps(t, "gateway on wg0, EnsureVia")
	for _, gw := range []netip.Addr{viaTunGw4, viaGw6} {
		dst := viaNet4
		if gw.Is6() {
			dst = viaNet6
		}
		if dev, via, err := l.routeGet(t, dst); err != nil || dev != "wg0" || via != gw {
			t.Errorf("route get %s: dev %q via %v, %v; want dev wg0 via %v", dst, dev, via, err, gw)
		}
	}
	l.mustTunnel(t)

	// DeleteVia, then another's rule and route: its rule like ours but for
	// the protocol, and before ours, so that DeleteVia would find it first
	// if it took the wrong one; and a rule of ours that the via does not
	// want, which goes.
	if err := DeleteVia(l.v, testLog(t)); err != nil {
		t.Fatal(err)
	}
	if left := l.ours(t); len(left) > 0 {
		t.Errorf("after DeleteVia: %q", left)
	}
	foreignRule := netlink.NewRule()
	foreignRule.Priority, foreignRule.IifName, foreignRule.Table, foreignRule.Protocol = ViaPriority, l.p.HostName, l.v.Table, unix.RTPROT_STATIC
	strayRule := netlink.NewRule()
	strayRule.Priority, strayRule.IifName, strayRule.Table, strayRule.Protocol = ViaPriority+5, l.p.HostName, 999, ViaProtocol
	foreignRoute := &netlink.Route{Dst: ipNet(netip.MustParsePrefix("203.0.113.0/24")), Table: l.v.Table, Type: unix.RTN_BLACKHOLE, Protocol: unix.RTPROT_STATIC}
	for _, err := range []error{l.h.RuleAdd(foreignRule), l.h.RuleAdd(strayRule), l.h.RouteAdd(foreignRoute)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = l.h.RuleDel(foreignRule); _ = l.h.RouteDel(foreignRoute) })
	l.ensure(t, true)
	l.wantGaps(t, "again after DeleteVia, stray rule removed")
	// The other's rule comes first among those at our priority.
	st := l.state(t)
	theirs, ours := strings.Index(st, fmt.Sprintf("family 2 rule %d iif nsz-t-via table 1001 proto 4 ", ViaPriority)),
		strings.Index(st, fmt.Sprintf("family 2 rule %d iif nsz-t-via table 1001 proto 110 ", ViaPriority))
	if theirs < 0 || ours < 0 || theirs > ours {
		t.Errorf("want the other's rule before ours:\n%s", st)
	}
	l.mustTunnel(t)
	if err := l.h.RuleAdd(strayRule); err != nil {
		t.Fatal(err)
	}
	l.wantGaps(t, "with a stray rule", fmt.Sprintf("stray rule %d iif nsz-t-via lookup 999", ViaPriority+5))
	l.ensure(t, true)
	l.wantGaps(t, "stray rule removed")

	// IPv6 off: its rules go, then its routes.
	v4 := l.v
	v4.IPv6 = false
	if changed, err := EnsureVia(v4, testLog(t)); err != nil || !changed {
		t.Fatalf("EnsureVia without IPv6: %v, %v", changed, err)
	}
	if gaps, err := InspectVia(v4); err != nil || len(gaps) > 0 {
		t.Errorf("InspectVia without IPv6: %q, %v", gaps, err)
	}
	for _, line := range l.ours(t) {
		if strings.HasPrefix(line, "family 10 ") {
			t.Errorf("IPv6 off, still: %s", line)
		}
	}
	l.ensure(t, true)
	l.wantGaps(t, "IPv6 on again")

	// DeleteVia: rules first, then routes; nothing of ours left, another's
	// rule and route in place; and the zone is as it was before the via.
	settle(t, mon)
	if err := DeleteVia(l.v, testLog(t)); err != nil {
		t.Fatal(err)
	}
	eventOrder(t, "DeleteVia", mon.events(300*time.Millisecond), "type 33 (", "type 25 (", 4)
	if left := l.ours(t); len(left) > 0 {
		t.Errorf("after DeleteVia: %q", left)
	}
	state := l.state(t)
	for _, want := range []string{fmt.Sprintf("rule %d iif nsz-t-via table 1001 proto 4", ViaPriority), "203.0.113.0/24"} {
		if !strings.Contains(state, want) {
			t.Errorf("after DeleteVia, %q is gone:\n%s", want, state)
		}
	}
	if err := DeleteVia(l.v, nil); err != nil {
		t.Errorf("DeleteVia again: %v", err)
	}
	if err := l.h.RuleDel(foreignRule); err != nil {
		t.Fatal(err)
	}
	l.mustLeaveBy(t, "vu-up", viaInternet...)
}
