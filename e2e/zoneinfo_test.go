package e2e

// What the tests learn of zones and interfaces: addresses and states.

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/nszone/nszone/netns"
)

// zoneAddrs returns the zone's own addresses (from status) and its
// gateway addresses (the host end of its link), global ones first.
func zoneAddrs(t testing.TB, zone string) (own []netip.Addr, gw []netip.Addr) {
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
	return own, ifAddrs(t, atHost, "nsz-"+zone, false)
}

// ifAddrs lists the addresses of ifname in ns: global ones, or
// (linkLocal) the IPv6 link-local ones.
func ifAddrs(t testing.TB, ns, ifname string, linkLocal bool) []netip.Addr {
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
	if ns == atHost {
		err = get()
	} else {
		err = netns.RunIn(ns, get)
	}
	if err != nil {
		t.Fatalf("addresses of %s in %q: %v", ifname, ns, err)
	}
	return out
}

// targetAddr renders addr:port for the sender; a link-local v6 gets the
// scope.
func targetAddr(a netip.Addr, port int, scope string) string {
	if a.Is6() && a.IsLinkLocalUnicast() && scope != "" {
		return fmt.Sprintf("[%s%%%s]:%d", a.WithZone(""), scope, port)
	}
	return netip.AddrPortFrom(a, uint16(port)).String()
}

// zoneStates returns each zone's state from status -o json, whatever its
// exit status, with what is missing.
func zoneStates(t testing.TB) map[string]string {
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
