package check

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// defaultLANPorts are tried on the host's default gateways (DNS and a web
// interface are what home and office routers offer).
var defaultLANPorts = []uint16{53, 80}

// resolveTimeout bounds resolving a check target given by name.
const resolveTimeout = 3 * time.Second

// checkTarget is one HOST:PORT of the check: section, resolved on the host.
type checkTarget struct {
	shown string // as the file gives it, with the address when HOST was a name
	addr  netip.AddrPort
	err   string // set when HOST could not be resolved
}

// resolveTargets turns HOST:PORT strings into addresses. A name is resolved
// on the host, once per family, so each family is probed.
func resolveTargets(list []string) []checkTarget {
	var out []checkTarget
	for _, s := range list {
		host, portText, err := net.SplitHostPort(s)
		port, perr := strconv.ParseUint(portText, 10, 16)
		if err != nil || perr != nil || port == 0 {
			out = append(out, checkTarget{shown: s, err: "want HOST:PORT"})
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil {
			out = append(out, checkTarget{shown: s, addr: netip.AddrPortFrom(a.Unmap(), uint16(port))})
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		if err == nil && len(addrs) == 0 {
			err = errors.New("no address")
		}
		if err != nil {
			out = append(out, checkTarget{shown: s, err: fmt.Sprintf("cannot resolve %s on the host: %v", host, err)})
			continue
		}
		seen4, seen6 := false, false
		for _, a := range addrs {
			a = a.Unmap()
			if a.Is4() && !seen4 || a.Is6() && !seen6 {
				seen4, seen6 = seen4 || a.Is4(), seen6 || a.Is6()
				ap := netip.AddrPortFrom(a, uint16(port))
				out = append(out, checkTarget{shown: s + " (" + ap.String() + ")", addr: ap})
			}
		}
	}
	return out
}

// defaultLANTargets are the host's default gateways (IPv6 only when global:
// a link-local gateway is on the uplink's link, which no zone is on).
func defaultLANTargets() []string {
	var out []string
	for _, gw := range defaultGateways() {
		for _, port := range defaultLANPorts {
			out = append(out, netip.AddrPortFrom(gw, port).String())
		}
	}
	return out
}

// defaultGateways reads the main table's default gateways from /proc, the
// same view `ip route` has, without another netlink dump.
func defaultGateways() []netip.Addr {
	v4, _ := os.ReadFile("/proc/net/route")
	v6, _ := os.ReadFile("/proc/net/ipv6_route")
	return parseGateways(v4, v6)
}

// parseGateways takes the gateways of default routes from the contents of
// /proc/net/route and /proc/net/ipv6_route.
func parseGateways(route4, route6 []byte) []netip.Addr {
	var out []netip.Addr
	// Iface Destination Gateway Flags RefCnt Use Metric Mask ...; hex, host byte order.
	for line := range strings.Lines(string(route4)) {
		f := strings.Fields(line)
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		v, err := strconv.ParseUint(f[2], 16, 32)
		if err != nil || v == 0 {
			continue
		}
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], uint32(v))
		out = append(out, netip.AddrFrom4(b))
	}
	// dst dstlen src srclen nexthop metric refcnt use flags iface; hex, network order.
	for line := range strings.Lines(string(route6)) {
		f := strings.Fields(line)
		if len(f) < 10 || f[0] != strings.Repeat("0", 32) || f[1] != "00" {
			continue
		}
		b, err := hex.DecodeString(f[4])
		if err != nil || len(b) != 16 {
			continue
		}
		if a := netip.AddrFrom16([16]byte(b)); !a.IsUnspecified() && !a.IsLinkLocalUnicast() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// linkLocalOf returns the IPv6 link-local address of a host interface: the
// one host address a zone reaches on its own link without routing.
func linkLocalOf(ifname string) (netip.Addr, bool) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}, false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}
