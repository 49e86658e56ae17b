package veth

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestDefaultLinkIndex(t *testing.T) {
	dflt := func(idx, metric, flags int) netlink.Route {
		return netlink.Route{Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), LinkIndex: idx, Priority: metric, Flags: flags, Type: unix.RTN_UNICAST}
	}
	other := netlink.Route{Dst: ipNet(netip.MustParsePrefix("10.0.0.0/8")), LinkIndex: 9, Type: unix.RTN_UNICAST}
	blackhole := dflt(0, 0, 0)
	blackhole.Type = unix.RTN_BLACKHOLE
	multipath := dflt(0, 5, 0)
	multipath.MultiPath = []*netlink.NexthopInfo{{LinkIndex: 7}, {LinkIndex: 8}}
	for _, c := range []struct {
		name   string
		routes []netlink.Route
		want   int
	}{
		{"none", nil, 0},
		{"no default", []netlink.Route{other}, 0},
		{"one", []netlink.Route{other, dflt(3, 100, 0)}, 3},
		{"lowest metric", []netlink.Route{dflt(3, 600, 0), dflt(4, 100, 0), dflt(5, 300, 0)}, 4},
		{"first of equals", []netlink.Route{dflt(3, 100, 0), dflt(4, 100, 0)}, 3},
		{"up before down", []netlink.Route{dflt(3, 100, unix.RTNH_F_LINKDOWN), dflt(4, 600, 0)}, 4},
		{"down is better than nothing", []netlink.Route{dflt(3, 100, unix.RTNH_F_LINKDOWN)}, 3},
		{"blackhole ignored", []netlink.Route{blackhole, dflt(2, 50, 0)}, 2},
		{"multipath: first hop", []netlink.Route{dflt(2, 50, 0), multipath}, 7},
	} {
		if got := defaultLinkIndex(c.routes); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
}

// TestHostFacts builds a small host in the sandbox: an uplink with both
// families and a default route, a second way out with a worse metric, and a
// route in another table.
func TestHostFacts(t *testing.T) {
	rootTest(t)
	h := hostHandle(t)
	if v4, v6, err := DefaultRouteLink(); err != nil || v4 != "" || v6 != "" {
		t.Errorf("DefaultRouteLink in an empty sandbox = %q, %q, %v", v4, v6, err)
	}
	link := func(name string, addrs ...string) netlink.Link {
		t.Helper()
		v := netlink.NewVeth(netlink.LinkAttrs{Name: name, TxQLen: -1})
		v.PeerName = name + "p"
		if err := h.LinkAdd(v); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.LinkDel(v) })
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix(a)), Flags: unix.IFA_F_NODAD}); err != nil {
				t.Fatal(err)
			}
		}
		for _, up := range []string{name, name + "p"} {
			if err := h.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: up}}); err != nil {
				t.Fatal(err)
			}
		}
		return l
	}
	up := link("tf-up", "198.51.100.2/24", "2001:db8:1::2/64")
	alt := link("tf-alt", "203.0.113.2/24")
	route := func(r *netlink.Route) {
		t.Helper()
		if err := h.RouteAdd(r); err != nil {
			t.Fatalf("adding %v: %v", r, err)
		}
	}
	route(&netlink.Route{LinkIndex: up.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: net.ParseIP("198.51.100.1"), Priority: 100})
	route(&netlink.Route{LinkIndex: alt.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: net.ParseIP("203.0.113.1"), Priority: 600})
	route(&netlink.Route{LinkIndex: up.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("::/0")), Gw: net.ParseIP("2001:db8:1::1")})
	route(&netlink.Route{LinkIndex: alt.Attrs().Index, Dst: ipNet(netip.MustParsePrefix("192.0.2.0/25")), Table: 100})

	if v4, v6, err := DefaultRouteLink(); err != nil || v4 != "tf-up" || v6 != "tf-up" {
		t.Errorf("DefaultRouteLink = %q, %q, %v; want tf-up twice", v4, v6, err)
	}
	if ok, err := LinkExists("tf-alt"); err != nil || !ok {
		t.Errorf("LinkExists(tf-alt) = %v, %v", ok, err)
	}
	if ok, err := LinkExists("tf-none"); err != nil || ok {
		t.Errorf("LinkExists(tf-none) = %v, %v", ok, err)
	}
	own, err := LinkAddrs("tf-up")
	for i := range own {
		own[i] = own[i].Masked()
	}
	if want := []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/64")}; err != nil || !slices.Equal(own, want) {
		t.Errorf("LinkAddrs(tf-up) = %v, %v; want %v (no link-local)", own, err, want)
	}
	if _, err := LinkAddrs("tf-none"); err == nil {
		t.Error("LinkAddrs of a missing link: no error")
	}

	prefixes, err := HostPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"198.51.100.0/24", "203.0.113.0/24", "2001:db8:1::/64", "192.0.2.0/25", "127.0.0.0/8", "fe80::/64"} {
		if !slices.Contains(prefixes, netip.MustParsePrefix(want)) {
			t.Errorf("HostPrefixes lacks %s: %v", want, prefixes)
		}
	}
	if slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Bits() == 0 }) {
		t.Errorf("HostPrefixes has a default route: %v", prefixes)
	}
	if !slices.IsSortedFunc(prefixes, comparePrefixes) || len(slices.Compact(slices.Clone(prefixes))) != len(prefixes) {
		t.Errorf("HostPrefixes not sorted and unique: %v", prefixes)
	}

	addrs, err := HostAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"198.51.100.2", "203.0.113.2", "2001:db8:1::2", "127.0.0.1", "::1"} {
		if !slices.Contains(addrs, netip.MustParseAddr(want)) {
			t.Errorf("HostAddrs lacks %s: %v", want, addrs)
		}
	}
	if !slices.ContainsFunc(addrs, netip.Addr.IsLinkLocalUnicast) {
		t.Errorf("HostAddrs has no link-local address: %v", addrs)
	}
}

func TestListening(t *testing.T) {
	rootTest(t)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	for _, c := range []struct {
		proto string
		addr  string
		want  bool
	}{
		{"tcp", "", true}, {"tcp", "127.0.0.1", true}, {"tcp", "192.0.2.1", false}, {"udp", "", false},
	} {
		var a netip.Addr
		if c.addr != "" {
			a = netip.MustParseAddr(c.addr)
		}
		if got, err := Listening(c.proto, a, port); err != nil || got != c.want {
			t.Errorf("Listening(%s, %q, %d) = %v, %v; want %v", c.proto, c.addr, port, got, err, c.want)
		}
	}
	u, err := net.ListenPacket("udp6", "[::]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	uport := uint16(u.LocalAddr().(*net.UDPAddr).Port)
	if got, _ := Listening("udp", netip.MustParseAddr("127.0.0.1"), uport); !got {
		t.Errorf("a udp socket on [::]:%d is not seen", uport)
	}
}
