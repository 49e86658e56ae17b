package veth

import (
	"errors"
	"io/fs"
	"net"
	"testing"

	"github.com/nszone/nszone/netns"
	"github.com/vishvananda/netlink"
)

func TestSetUpNamespace(t *testing.T) {
	rootTest(t)
	id := newZone(t, "t-create", true)
	for key, want := range map[string]string{
		"net.ipv6.conf.all.accept_ra":        "0",
		"net.ipv6.conf.default.accept_ra":    "0",
		"net.ipv6.conf.all.disable_ipv6":     "0",
		"net.ipv6.conf.default.disable_ipv6": "0",
	} {
		if got, err := GetSysctlIn("t-create", key); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", key, got, err, want)
		}
	}
	h := zoneHandle(t, "t-create")
	lo, err := h.LinkByName("lo")
	if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("lo not up in the new namespace: %v", err)
	}
	if addrs, _ := h.AddrList(lo, netlink.FAMILY_V6); len(addrs) != 1 || !addrs[0].IP.Equal(net.IPv6loopback) {
		t.Errorf("lo has IPv6 addresses %v, want ::1", addrs)
	}

	// A refused second creation sets nothing up in the existing namespace.
	if _, err := netns.CreateNamed("t-create", SetUpNamespace("", false), testLog(t)); !errors.Is(err, netns.ErrExists) {
		t.Errorf("CreateNamed on an existing pin: %v, want ErrExists", err)
	}
	if got, err := netns.PinID("t-create"); err != nil || got != id {
		t.Errorf("after the refused CreateNamed, PinID = %v, %v; want %v", got, err, id)
	}
	if v, _ := GetSysctlIn("t-create", "net.ipv6.conf.all.disable_ipv6"); v != "0" {
		t.Errorf("the refused CreateNamed(ipv6=false) turned IPv6 off in the existing namespace")
	}

	// Set and get inside; the sandbox's own value stays.
	if err := SetSysctlIn("t-create", "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := GetSysctlIn("t-create", "net.ipv4.ip_forward"); err != nil || v != "1" {
		t.Errorf("ip_forward in the zone = %q, %v; want 1", v, err)
	}
	if v, err := GetSysctl("net.ipv4.ip_forward"); err != nil || v != "0" {
		t.Errorf("ip_forward in the sandbox = %q, %v; want 0", v, err)
	}
	if err := SetSysctlIn("t-create", "net.ipv4.no_such_key", "1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("setting a missing sysctl: %v, want ErrNotExist", err)
	}
	if err := netns.DeleteNamed("t-create", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := GetSysctlIn("t-create", "net.ipv4.ip_forward"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("GetSysctlIn after DeleteNamed: %v, want ErrNotExist", err)
	}
}

func TestSetUpNamespaceWithoutIPv6(t *testing.T) {
	rootTest(t)
	newZone(t, "t-no6", false)
	for _, key := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6", "net.ipv6.conf.lo.disable_ipv6"} {
		if v, err := GetSysctlIn("t-no6", key); err != nil || v != "1" {
			t.Errorf("%s = %q, %v; want 1", key, v, err)
		}
	}
	p := testPair("t-no6", 2, false)
	mustEnsure(t, p, true)
	mustEnsure(t, p, false)
	if m := mustInspect(t, p); len(m) > 0 {
		t.Errorf("InspectPair: %q", m)
	}
	zh := zoneHandle(t, "t-no6")
	if addrs, err := zh.AddrList(nil, netlink.FAMILY_V6); err != nil || len(addrs) > 0 {
		t.Errorf("IPv6 addresses in an IPv4-only zone: %v %v", addrs, err)
	}
	hl, err := netlink.LinkByName(p.HostName)
	if err != nil {
		t.Fatal(err)
	}
	if addrs, err := netlink.AddrList(hl, netlink.FAMILY_V6); err != nil || len(addrs) > 0 {
		t.Errorf("IPv6 addresses on the host end of an IPv4-only zone: %v %v", addrs, err)
	}
	if v, err := GetSysctl("net/ipv6/conf/" + p.HostName + "/disable_ipv6"); err != nil || v != "1" {
		t.Errorf("disable_ipv6 on %s = %q, %v; want 1", p.HostName, v, err)
	}
	ns, err := netns.OpenNamed("t-no6")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ping(ns, p.Host4.Addr()); err != nil {
		t.Errorf("ping from the zone: %v", err)
	}
}

func TestNamespaceHasAlias(t *testing.T) {
	rootTest(t)
	if _, err := netns.CreateNamed("t-alias", SetUpNamespace("nszone:t-alias", false), testLog(t)); err != nil {
		t.Fatal(err)
	}
	defer netns.DeleteNamed("t-alias", nil)
	if has, err := NamespaceHasAlias("t-alias", "nszone:t-alias"); err != nil || !has {
		t.Errorf("NamespaceHasAlias = %v, %v; want true", has, err)
	}
	if has, err := NamespaceHasAlias("t-alias", "nszone:other"); err != nil || has {
		t.Errorf("NamespaceHasAlias(other) = %v, %v; want false", has, err)
	}
	if _, err := NamespaceHasAlias("t-none", "nszone:t-none"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("NamespaceHasAlias without a pin: %v, want ErrNotExist", err)
	}
}
