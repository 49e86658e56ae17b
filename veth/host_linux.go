package veth

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Facts about the current network namespace (the host), read only.

// HostPrefixes lists the destinations of all routes in all tables, both
// families, and the subnets of all addresses: what a new link subnet must not
// overlap. Default routes are left out, since everything overlaps them.
func HostPrefixes() ([]netip.Prefix, error) {
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("listing the host's routes: %w", err)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("listing the host's addresses: %w", err)
	}
	var out []netip.Prefix
	for _, r := range routes {
		if pf, ok := prefixOf(r.Dst); ok && pf.Bits() > 0 {
			out = append(out, pf.Masked())
		}
	}
	for _, a := range addrs {
		if pf, ok := prefixOf(a.IPNet); ok {
			out = append(out, pf.Masked())
		}
	}
	slices.SortFunc(out, comparePrefixes)
	return slices.Compact(out), nil
}

// HostAddrs lists every address on every host interface: IPv4, IPv6 global
// and link-local, loopback.
func HostAddrs() ([]netip.Addr, error) {
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("listing the host's addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if pf, ok := prefixOf(a.IPNet); ok {
			out = append(out, pf.Addr())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// DefaultRouteLink names the interface of the main table's default route per
// family, "" when there is none; of several, one whose link is up, then the
// lowest metric.
func DefaultRouteLink() (v4, v6 string, err error) {
	names := [2]string{}
	for i, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := retryDump(func() ([]netlink.Route, error) {
			return netlink.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return "", "", fmt.Errorf("listing the host's routes: %w", err)
		}
		idx := defaultLinkIndex(routes)
		if idx == 0 {
			continue
		}
		l, err := netlink.LinkByIndex(idx)
		if err != nil {
			return "", "", fmt.Errorf("reading link %d of the default route: %w", idx, err)
		}
		names[i] = l.Attrs().Name
	}
	return names[0], names[1], nil
}

// defaultLinkIndex picks the interface of the best unicast default route:
// up before down, then lowest metric, then first listed. 0 when none.
func defaultLinkIndex(routes []netlink.Route) int {
	best, bestIdx := netlink.Route{}, 0
	better := func(a, b netlink.Route) bool {
		if da, db := a.Flags&unix.RTNH_F_LINKDOWN, b.Flags&unix.RTNH_F_LINKDOWN; da != db {
			return da == 0
		}
		return a.Priority < b.Priority
	}
	for _, r := range routes {
		if !isDefault(r) || r.Type != unix.RTN_UNICAST {
			continue
		}
		idx := r.LinkIndex
		if idx == 0 && len(r.MultiPath) > 0 {
			idx = r.MultiPath[0].LinkIndex
		}
		if idx == 0 {
			continue
		}
		if bestIdx == 0 || better(r, best) {
			best, bestIdx = r, idx
		}
	}
	return bestIdx
}

// LinkExists reports whether the current namespace has a link of that name.
func LinkExists(name string) (bool, error) {
	_, err := netlink.LinkByName(name)
	if notFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up link %s: %w", name, err)
	}
	return true, nil
}

// LinkAddrs lists a link's global addresses with their prefix lengths
// (192.168.1.10/24: Masked is the uplink's own LAN), both families.
func LinkAddrs(name string) ([]netip.Prefix, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("reading link %s: %w", name, err)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("listing addresses of %s: %w", name, err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if pf, ok := prefixOf(a.IPNet); ok && a.Scope == unix.RT_SCOPE_UNIVERSE {
			out = append(out, pf)
		}
	}
	slices.SortFunc(out, comparePrefixes)
	return slices.Compact(out), nil
}

// Listening reports whether a socket of the host's current namespace
// listens on port (proto "tcp" or "udp": bound, for udp) at addr, at every
// address, or, when addr is invalid, at any address: what a published port
// would take from it. It reads /proc/net/{tcp,udp}{,6}.
func Listening(proto string, addr netip.Addr, port uint16) (bool, error) {
	for _, file := range []string{proto, proto + "6"} {
		data, err := os.ReadFile("/proc/net/" + file)
		if errors.Is(err, fs.ErrNotExist) {
			continue // no IPv6
		} else if err != nil {
			return false, err
		}
		lines := strings.Split(string(data), "\n")
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) < 4 || (proto == "tcp" && f[3] != "0A") { // TCP_LISTEN
				continue
			}
			a, p, ok := procAddr(f[1])
			if !ok || p != port {
				continue
			}
			if !addr.IsValid() || a.IsUnspecified() || a == addr || (a.Is4In6() && a.Unmap() == addr) {
				return true, nil
			}
		}
	}
	return false, nil
}

// procAddr reads /proc/net's "0100007F:1F90": the address in the kernel's
// byte order, 32 bits at a time, and the port in hex.
func procAddr(s string) (netip.Addr, uint16, bool) {
	h, ps, ok := strings.Cut(s, ":")
	port, err := strconv.ParseUint(ps, 16, 16)
	raw, herr := hex.DecodeString(h)
	if !ok || err != nil || herr != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, 0, false
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(raw)
	return a, uint16(port), true
}
