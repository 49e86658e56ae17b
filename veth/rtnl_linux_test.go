package veth

import (
	"slices"
	"testing"

	"github.com/nszone/nszone/netns"
)

// TestLinkIPv6Settings: the IPv6 settings read from a link's message
// (IFLA_INET6_CONF) are those /proc/sys shows, for every setting nszone
// keeps, both values, on the host's end and (through a socket opened in
// the zone) the zone's.
func TestLinkIPv6Settings(t *testing.T) {
	rootTest(t)
	newZone(t, "t-conf", true)
	p := testPair("t-conf", 8, true)
	t.Cleanup(func() { _ = DeletePair(p.Zone, p.HostName, p.Alias, nil) })
	mustEnsure(t, p, true)
	zoneRT := zoneSocket(t, p.Zone)

	ends := []struct {
		where, link string
		rt          *rtSocket
		get         func(key string) (string, error)
		set         func(key, value string) error
	}{
		{"on the host", p.HostName, &rtSocket{}, GetSysctl, SetSysctl},
		{"in the zone", p.PeerName, zoneRT,
			func(key string) (string, error) { return GetSysctlIn(p.Zone, key) },
			func(key, value string) error { return SetSysctlIn(p.Zone, key, value) }},
	}
	for _, end := range ends {
		for _, setting := range []string{"disable_ipv6", "accept_ra", "accept_dad"} {
			key := ifSysctl(end.link, setting)
			for _, value := range []string{"1", "0"} {
				if err := end.set(key, value); err != nil {
					t.Fatalf("setting %s %s: %v", key, end.where, err)
				}
				proc, err := end.get(key)
				if err != nil {
					t.Fatal(err)
				}
				l, err := end.rt.link(end.link)
				if err != nil || l == nil {
					t.Fatalf("reading link %s %s: %v, %v", end.link, end.where, l, err)
				}
				got, ok := l.setting(setting)
				switch {
				case !ok:
					t.Errorf("%s %s: no IFLA_INET6_CONF in the link's message (/proc/sys: %s)", key, end.where, proc)
				case got != proc || got != value:
					t.Errorf("%s %s: %s from the link's message, %s from /proc/sys; set to %s", key, end.where, got, proc, value)
				}
			}
		}
	}
	// Back as it was: the settings of the pair, all read from the links.
	mustEnsure(t, p, true)
	if m := mustInspect(t, p); len(m) > 0 {
		t.Errorf("after the repair: %q", m)
	}
}

// TestLinkIPv6SettingsWithoutIPv6: a zone without IPv6 has IPv6 turned off
// on its end from birth, and the link's message still says so: checking
// it takes no thread into the zone.
func TestLinkIPv6SettingsWithoutIPv6(t *testing.T) {
	rootTest(t)
	newZone(t, "t-conf4", false)
	p := testPair("t-conf4", 11, false)
	t.Cleanup(func() { _ = DeletePair(p.Zone, p.HostName, p.Alias, nil) })
	mustEnsure(t, p, true)
	zoneRT := zoneSocket(t, p.Zone)
	for _, end := range []struct {
		link string
		rt   *rtSocket
	}{{p.HostName, &rtSocket{}}, {p.PeerName, zoneRT}} {
		l, err := end.rt.link(end.link)
		if err != nil || l == nil {
			t.Fatalf("reading link %s: %v, %v", end.link, l, err)
		}
		if v, ok := l.setting("disable_ipv6"); !ok || v != "1" {
			t.Errorf("disable_ipv6 of %s from its message = %q, %v; want 1", end.link, v, ok)
		}
	}
}

// TestLinkIPv6SettingsAbsent: a link without an IPv6 device (an MTU below
// IPv6's minimum) carries no IPv6 settings; an IPv4-only pair on it is
// whole all the same, /proc/sys having none either.
func TestLinkIPv6SettingsAbsent(t *testing.T) {
	rootTest(t)
	newZone(t, "t-noconf", false)
	p := testPair("t-noconf", 9, false)
	p.MTU = 1000
	t.Cleanup(func() { _ = DeletePair(p.Zone, p.HostName, p.Alias, nil) })
	mustEnsure(t, p, true)
	mustEnsure(t, p, false)
	l, err := (&rtSocket{}).link(p.HostName)
	if err != nil || l == nil {
		t.Fatalf("reading link %s: %v, %v", p.HostName, l, err)
	}
	if _, ok := l.setting("disable_ipv6"); ok {
		t.Errorf("link %s with mtu %d has IPv6 settings %v", p.HostName, p.MTU, l.inet6)
	}
	if m := mustInspect(t, p); len(m) > 0 {
		t.Errorf("InspectPair = %q", m)
	}
}

// TestHostLinks: the batch holds every link with its addresses, as the
// kernel lists them one by one.
func TestHostLinks(t *testing.T) {
	rootTest(t)
	newZone(t, "t-batch", true)
	p := testPair("t-batch", 10, true)
	t.Cleanup(func() { _ = DeletePair(p.Zone, p.HostName, p.Alias, nil) })
	mustEnsure(t, p, true)
	b := mustHostLinks(t)
	l := b.links[p.HostName]
	if l == nil || l.Attrs().Alias != p.Alias {
		t.Fatalf("batch lacks link %s: %v", p.HostName, l)
	}
	var got []string
	for _, a := range b.addrs[l.Attrs().Index] {
		if pf, ok := prefixOf(a.IPNet); ok && !pf.Addr().IsLinkLocalUnicast() {
			got = append(got, pf.String())
		}
	}
	slices.Sort(got)
	if want := []string{p.Host4.String(), p.Host6.String()}; !slices.Equal(got, want) {
		t.Errorf("batch's addresses of %s = %q, want %q", p.HostName, got, want)
	}
	if v, ok := l.setting("accept_dad"); !ok || v != "0" {
		t.Errorf("batch's accept_dad of %s = %q, %v; want 0", p.HostName, v, ok)
	}
}

// zoneSocket opens a request socket in zone's namespace, closed when the
// test ends.
func zoneSocket(t *testing.T, zone string) *rtSocket {
	t.Helper()
	ns, err := netns.OpenNamed(zone)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, rt, err := handlesIn(ns)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	t.Cleanup(rt.close)
	return rt
}
