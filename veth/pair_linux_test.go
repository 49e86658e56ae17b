package veth

import (
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/netns"
)

func TestEnsurePair(t *testing.T) {
	rootTest(t)
	newZone(t, "t-pair", true)
	p := testPair("t-pair", 1, true)
	t.Cleanup(func() { _ = DeletePair(p.Zone, p.HostName, p.Alias, nil) })
	mustEnsure(t, p, true)
	if m := mustInspect(t, p); len(m) > 0 {
		t.Fatalf("InspectPair after EnsurePair: %q", m)
	}
	ns, err := netns.OpenNamed(p.Zone)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	zh := zoneHandle(t, p.Zone)

	// Both ends carry the mark.
	if has, err := NamespaceHasAlias(p.Zone, p.Alias); err != nil || !has {
		t.Errorf("NamespaceHasAlias = %v, %v", has, err)
	}
	if has, _ := NamespaceHasAlias(p.Zone, "nszone:other"); has {
		t.Error("NamespaceHasAlias found an alias nobody set")
	}
	if links, err := LinksWithAliasPrefix("nszone:"); err != nil || links[p.HostName] != p.Alias {
		t.Errorf("LinksWithAliasPrefix = %v, %v", links, err)
	}

	// It works: echo both ways, both families.
	for _, c := range []struct {
		from *netns.Handle
		to   netip.Addr
	}{{ns, p.Host4.Addr()}, {ns, p.Host6.Addr()}, {nil, p.Zone4.Addr()}, {nil, p.Zone6.Addr()}} {
		if err := ping(c.from, c.to); err != nil {
			t.Errorf("ping %s: %v", c.to, err)
		}
	}
	if _, err := exec.LookPath("ping"); err == nil {
		for _, to := range []netip.Addr{p.Host4.Addr(), p.Host6.Addr()} {
			if out, err := exec.Command("ip", "netns", "exec", p.Zone, "ping", "-c1", "-W1", to.String()).CombinedOutput(); err != nil {
				t.Errorf("ip netns exec %s ping %s: %v\n%s", p.Zone, to, err, out)
			}
		}
	} else {
		t.Log("no ping binary: the in-process ICMP echo stands for it")
	}

	// Again: nothing to do, nothing written in either namespace.
	hostMon, zoneMon := newMonitor(t, nil, "host"), newMonitor(t, ns, "zone")
	settle(t, hostMon, zoneMon)
	hh := hostHandle(t)
	beforeHost, beforeZone := snapshot(t, hh), snapshot(t, zh)
	mustEnsure(t, p, false)
	if ev := append(hostMon.events(300*time.Millisecond), zoneMon.events(300*time.Millisecond)...); len(ev) > 0 {
		t.Errorf("the second EnsurePair wrote to the kernel: %v", ev)
	}
	if after := snapshot(t, hh); after != beforeHost {
		t.Errorf("host changed:\n%s\n---\n%s", beforeHost, after)
	}
	if after := snapshot(t, zh); after != beforeZone {
		t.Errorf("zone changed:\n%s\n---\n%s", beforeZone, after)
	}

	// The monitor does see writes: break the route, and the repair is noticed.
	if err := zh.RouteDel(&netlink.Route{Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), Table: unix.RT_TABLE_MAIN}); err != nil {
		t.Fatal(err)
	}
	settle(t, hostMon, zoneMon)
	mustEnsure(t, p, true)
	if ev := zoneMon.events(300 * time.Millisecond); !slices.ContainsFunc(ev, func(e string) bool { return strings.HasPrefix(e, "zone: type 24 ") }) { // RTM_NEWROUTE
		t.Errorf("the repair made no RTM_NEWROUTE: %v", ev)
	}
}

func TestInspectPair(t *testing.T) {
	rootTest(t)
	newZone(t, "t-insp", true)
	p := testPair("t-insp", 3, true)
	t.Cleanup(func() { _ = DeletePair(p.Zone, p.HostName, p.Alias, nil) })
	if m := mustInspect(t, p); !slices.Equal(m, []string{"host link nsz-t-insp missing"}) {
		t.Errorf("before EnsurePair: %q", m)
	}
	mustEnsure(t, p, true)
	zh, hh := zoneHandle(t, p.Zone), hostHandle(t)
	link := func(h *netlink.Handle, name string) netlink.Link {
		t.Helper()
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	stray := &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix("192.0.2.7/24"))}
	otherGw := &netlink.Route{Dst: ipNet(netip.MustParsePrefix("0.0.0.0/0")), Gw: net.ParseIP("10.250.3.1"), Priority: 50}
	for _, c := range []struct {
		name  string
		brk   func() error
		wants string
	}{
		{"zone address", func() error {
			return zh.AddrDel(link(zh, "eth0"), &netlink.Addr{IPNet: ipNet(p.Zone4)})
		}, "address 10.250.3.2/30 missing on eth0 in zone t-insp"},
		{"host v6 address", func() error {
			return hh.AddrDel(link(hh, p.HostName), &netlink.Addr{IPNet: ipNet(p.Host6)})
		}, "address fd6e:737a:0:3::1/64 missing on nsz-t-insp on the host"},
		{"stray address", func() error { return zh.AddrAdd(link(zh, "eth0"), stray) },
			"stray address 192.0.2.7/24 on eth0 in zone t-insp"},
		{"host link down", func() error { return hh.LinkSetDown(link(hh, p.HostName)) },
			"link nsz-t-insp down on the host"},
		{"lo down", func() error { return zh.LinkSetDown(link(zh, "lo")) }, "link lo down in zone t-insp"},
		{"v6 route", func() error {
			return zh.RouteDel(&netlink.Route{Dst: ipNet(netip.MustParsePrefix("::/0")), Table: unix.RT_TABLE_MAIN})
		}, "default route via fd6e:737a:0:3::1 missing in zone t-insp"},
		{"stray default route", func() error {
			otherGw.LinkIndex = link(zh, "eth0").Attrs().Index
			return zh.RouteAdd(otherGw)
		}, "stray default route via 10.250.3.1 ifindex"},
		{"accept_ra", func() error { return SetSysctl("net/ipv6/conf/"+p.HostName+"/accept_ra", "1") },
			"sysctl net.ipv6.conf.nsz-t-insp.accept_ra is 1, not 0, on the host"},
		{"zone end", func() error { return zh.LinkDel(link(zh, "eth0")) }, "host link nsz-t-insp missing"},
	} {
		if err := c.brk(); err != nil {
			t.Fatalf("%s: breaking: %v", c.name, err)
		}
		m := mustInspect(t, p)
		if !slices.ContainsFunc(m, func(s string) bool { return strings.HasPrefix(s, c.wants) }) {
			t.Errorf("%s: InspectPair = %q, want %q", c.name, m, c.wants)
		}
		mustEnsure(t, p, true)
		if m := mustInspect(t, p); len(m) > 0 {
			t.Errorf("%s: not repaired: %q", c.name, m)
		}
	}
	if err := netns.DeleteNamed(p.Zone, nil); err != nil {
		t.Fatal(err)
	}
	if m := mustInspect(t, p); !slices.Equal(m, []string{"namespace t-insp missing"}) {
		t.Errorf("without the namespace: %q", m)
	}
	if _, err := EnsurePair(p, nil, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("EnsurePair without the namespace: %v, want ErrNotExist", err)
	}
}

// TestEnsurePairCutShort: a crash while creating leaves the pair inside the
// zone, marked or not; the next EnsurePair clears it away and starts over.
func TestEnsurePairCutShort(t *testing.T) {
	rootTest(t)
	newZone(t, "t-cut", true)
	p := testPair("t-cut", 8, true)
	t.Cleanup(func() { _ = DeletePair(p.Zone, p.HostName, p.Alias, nil) })
	zh := zoneHandle(t, p.Zone)
	for _, alias := range []string{"", p.Alias} {
		v := netlink.NewVeth(netlink.LinkAttrs{Name: p.HostName, TxQLen: -1})
		v.PeerName = p.PeerName
		if err := zh.LinkAdd(v); err != nil {
			t.Fatal(err)
		}
		if alias != "" {
			for _, name := range []string{p.HostName, p.PeerName} {
				l, err := zh.LinkByName(name)
				if err == nil {
					err = zh.LinkSetAlias(l, alias)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		mustEnsure(t, p, true)
		if m := mustInspect(t, p); len(m) > 0 {
			t.Errorf("alias %q: InspectPair: %q", alias, m)
		}
		if _, err := zh.LinkByName(p.HostName); err == nil {
			t.Errorf("alias %q: %s still inside the zone", alias, p.HostName)
		}
		if err := DeletePair(p.Zone, p.HostName, p.Alias, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Cut short as createPair makes pairs now: the host end on the host,
	// unmarked, its peer in the zone, unmarked or marked.
	ns, err := netns.OpenNamed(p.Zone)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	for _, peerAlias := range []string{"", p.Alias} {
		for _, ensure := range []bool{true, false} {
			v := netlink.NewVeth(netlink.LinkAttrs{Name: p.HostName, TxQLen: -1})
			v.PeerName, v.PeerNamespace = p.PeerName, netlink.NsFd(ns.Fd())
			if err := netlink.LinkAdd(v); err != nil {
				t.Fatal(err)
			}
			if peerAlias != "" {
				l, err := zh.LinkByName(p.PeerName)
				if err == nil {
					err = zh.LinkSetAlias(l, peerAlias)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !CutShort(p.Zone, p.HostName) || CutShort("t-other", p.HostName) {
				t.Errorf("peer alias %q: CutShort does not tell the pair", peerAlias)
			}
			if ensure {
				mustEnsure(t, p, true)
				if m := mustInspect(t, p); len(m) > 0 {
					t.Errorf("peer alias %q: InspectPair: %q", peerAlias, m)
				}
			}
			// down finds the cut-short pair too: unmarked on the host.
			if err := DeletePair(p.Zone, p.HostName, p.Alias, nil); err != nil {
				t.Fatalf("peer alias %q, ensured %v: %v", peerAlias, ensure, err)
			}
			if l, _ := netlink.LinkByName(p.HostName); l != nil {
				t.Fatalf("peer alias %q, ensured %v: %s left", peerAlias, ensure, p.HostName)
			}
		}
	}
}

// TestForeignLinks: nszone never takes over or deletes what it did not make.
func TestForeignLinks(t *testing.T) {
	rootTest(t)
	newZone(t, "t-own", true)
	p := testPair("t-own", 4, true)
	hh, zh := hostHandle(t), zoneHandle(t, p.Zone)
	// Someone else's veth, named like ours.
	foreign := netlink.NewVeth(netlink.NewLinkAttrs())
	foreign.Name, foreign.PeerName = p.HostName, "t-own-peer"
	if err := hh.LinkAdd(foreign); err != nil {
		t.Fatal(err)
	}
	if err := DeletePair(p.Zone, p.HostName, p.Alias, testLog(t)); !errors.Is(err, ErrNotOwned) {
		t.Errorf("DeletePair of a foreign link: %v, want ErrNotOwned", err)
	}
	if _, err := EnsurePair(p, nil, testLog(t)); !errors.Is(err, ErrNotOwned) {
		t.Errorf("EnsurePair over a foreign link: %v, want ErrNotOwned", err)
	}
	if _, err := InspectPair(p, nil); !errors.Is(err, ErrNotOwned) {
		t.Errorf("InspectPair of a foreign link: %v, want ErrNotOwned", err)
	}
	if l, err := hh.LinkByName(p.HostName); err != nil || l.Attrs().Alias != "" || l.Attrs().Flags&net.FlagUp != 0 {
		t.Fatalf("the foreign link was touched: %v %+v", err, l)
	}
	if has, _ := NamespaceHasAlias(p.Zone, p.Alias); has {
		t.Error("a refused EnsurePair left a link in the zone")
	}
	if err := hh.LinkDel(foreign); err != nil {
		t.Fatal(err)
	}

	// Even with our alias, a link that is no veth is not ours.
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: p.HostName, Alias: p.Alias}}
	switch err := hh.LinkAdd(br); {
	case errors.Is(err, unix.EOPNOTSUPP):
		t.Log("no bridges in this kernel: skipping the marked non-veth case")
	case err != nil:
		t.Fatal(err)
	default:
		if _, err := EnsurePair(p, nil, testLog(t)); !errors.Is(err, ErrNotOwned) {
			t.Errorf("EnsurePair over a bridge with our alias: %v, want ErrNotOwned", err)
		}
		if l, err := hh.LinkByName(p.HostName); err != nil || l.Type() != "bridge" {
			t.Errorf("the bridge was touched: %v", err)
		}
		if err := hh.LinkDel(br); err != nil {
			t.Fatal(err)
		}
	}

	// A foreign eth0 inside the zone is refused as well, and the host end
	// made meanwhile is not left behind.
	inside := netlink.NewVeth(netlink.NewLinkAttrs())
	inside.Name, inside.PeerName = p.PeerName, "other"
	if err := zh.LinkAdd(inside); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsurePair(p, nil, testLog(t)); !errors.Is(err, ErrNotOwned) {
		t.Errorf("EnsurePair over a foreign eth0 in the zone: %v, want ErrNotOwned", err)
	}
	if ok, _ := LinkExists(p.HostName); ok {
		t.Error("a refused EnsurePair left the host end behind")
	}
	if l, err := zh.LinkByName(p.PeerName); err != nil || l.Attrs().Alias != "" {
		t.Errorf("the foreign eth0 was touched: %v", err)
	}
}

func TestDeletePair(t *testing.T) {
	rootTest(t)
	newZone(t, "t-del", true)
	p := testPair("t-del", 5, true)
	mustEnsure(t, p, true)
	if err := DeletePair(p.Zone, p.HostName, "nszone:other", testLog(t)); !errors.Is(err, ErrNotOwned) {
		t.Errorf("DeletePair with another alias: %v, want ErrNotOwned", err)
	}
	for i := range 2 {
		if err := DeletePair(p.Zone, p.HostName, p.Alias, testLog(t)); err != nil {
			t.Fatalf("DeletePair #%d: %v", i+1, err)
		}
	}
	if ok, _ := LinkExists(p.HostName); ok {
		t.Error("host end still there")
	}
	if _, err := zoneHandle(t, p.Zone).LinkByName(p.PeerName); err == nil {
		t.Error("zone end still there")
	}
}

// TestEnsurePairNewNamespace: the namespace was made anew while the old one
// lives on (a process holds it), so the host end's peer is elsewhere.
func TestEnsurePairNewNamespace(t *testing.T) {
	rootTest(t)
	newZone(t, "t-re", true)
	p := testPair("t-re", 6, true)
	t.Cleanup(func() { _ = DeletePair(p.Zone, p.HostName, p.Alias, nil) })
	mustEnsure(t, p, true)
	old, err := netns.OpenNamed(p.Zone)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := netns.DeleteNamed(p.Zone, testLog(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := netns.CreateNamed(p.Zone, SetUpNamespace("", true), testLog(t)); err != nil {
		t.Fatal(err)
	}
	if m := mustInspect(t, p); !slices.Equal(m, []string{"link eth0 missing in zone t-re"}) {
		t.Errorf("InspectPair: %q", m)
	}
	mustEnsure(t, p, true)
	mustEnsure(t, p, false)
	ns, err := netns.OpenNamed(p.Zone)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ping(ns, p.Host4.Addr()); err != nil {
		t.Errorf("ping from the new namespace: %v", err)
	}
	oh, err := HandleIn(old)
	if err != nil {
		t.Fatal(err)
	}
	defer oh.Close()
	if _, err := oh.LinkByName("eth0"); err == nil {
		t.Error("the old namespace still has the old zone end")
	}
}

func TestEnsurePairMTU(t *testing.T) {
	rootTest(t)
	newZone(t, "t-mtu", true)
	p := testPair("t-mtu", 7, true)
	t.Cleanup(func() { _ = DeletePair(p.Zone, p.HostName, p.Alias, nil) })
	zh := zoneHandle(t, p.Zone)
	for _, mtu := range []int{1400, 1450} {
		p.MTU = mtu
		mustEnsure(t, p, true)
		mustEnsure(t, p, false)
		for _, l := range []struct {
			h    *netlink.Handle
			name string
		}{{hostHandle(t), p.HostName}, {zh, p.PeerName}} {
			if link, err := l.h.LinkByName(l.name); err != nil || link.Attrs().MTU != mtu {
				t.Errorf("mtu of %s: %v, want %d", l.name, err, mtu)
			}
		}
	}
}

func hostHandle(t *testing.T) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}
