// Package veth puts a zone's links into the kernel: the veth pair that joins
// the zone's namespace to the host, the pair's addresses and routes, the
// zone's loopback, and the sysctls that keep IPv6 as configured; and it
// reads the host's links, addresses and routes. The namespaces themselves
// are package netns's.
//
// Work in a zone goes through netlink handles bound to its namespace, made
// and used with netns, which alone switches threads. Every operation reads
// first and writes only what differs, and links are only changed or deleted
// when they carry nszone's alias.
package veth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/nszone/nszone/netns"
)

// ErrNotOwned: a link, or a namespace, of the wanted name exists without
// nszone's alias. It is nszone's one such error: zones.ErrNotOwned is this.
var ErrNotOwned = errors.New("not nszone's")

// Pair describes one zone's veth pair.
type Pair struct {
	Zone         string       // zone name (pin name)
	HostName     string       // host end, e.g. "nsz-wan"
	PeerName     string       // zone end, inside the zone, e.g. "eth0"
	Alias        string       // IFLA_IFALIAS on both ends, e.g. "nszone:wan": the ownership marker
	Host4, Zone4 netip.Prefix // e.g. 10.250.0.1/30 and 10.250.0.2/30
	Host6, Zone6 netip.Prefix // e.g. fd6e:737a:0:1::1/64 and ::2/64; zero = no IPv6 in this zone
	MTU          int          // 0 = kernel default
}

// v6 reports whether the zone has IPv6.
func (p Pair) v6() bool { return p.Host6.IsValid() }

func (p Pair) validate() error {
	if err := netns.CheckName(p.Zone); err != nil {
		return err
	}
	for _, n := range []string{p.HostName, p.PeerName} {
		if err := checkIfName(n); err != nil {
			return fmt.Errorf("veth pair of zone %s: %w", p.Zone, err)
		}
	}
	if p.HostName == p.PeerName {
		// Both ends are born in the zone, side by side.
		return fmt.Errorf("veth pair of zone %s: host and zone end are both named %s", p.Zone, p.HostName)
	}
	if p.Alias == "" || len(p.Alias) > 255 {
		return fmt.Errorf("veth pair of zone %s: alias %q must have 1 to 255 bytes", p.Zone, p.Alias)
	}
	if err := checkSubnet(p.Host4, p.Zone4, true); err != nil {
		return fmt.Errorf("veth pair of zone %s: %w", p.Zone, err)
	}
	if p.Host6.IsValid() || p.Zone6.IsValid() {
		if err := checkSubnet(p.Host6, p.Zone6, false); err != nil {
			return fmt.Errorf("veth pair of zone %s: %w", p.Zone, err)
		}
	}
	switch {
	case p.MTU < 0 || p.MTU > 65535 || (p.MTU != 0 && p.MTU < 68):
		return fmt.Errorf("veth pair of zone %s: mtu %d out of range", p.Zone, p.MTU)
	case p.v6() && p.MTU != 0 && p.MTU < 1280:
		// The kernel silently turns IPv6 off on a link below 1280.
		return fmt.Errorf("veth pair of zone %s: mtu %d is below IPv6's minimum 1280", p.Zone, p.MTU)
	}
	return nil
}

// checkSubnet wants two different addresses of one family in one subnet.
func checkSubnet(host, zone netip.Prefix, is4 bool) error {
	family := "IPv6"
	if is4 {
		family = "IPv4"
	}
	for _, pf := range []netip.Prefix{host, zone} {
		if !pf.IsValid() || pf.Addr().Is4() != is4 || pf.Addr().Is4In6() || pf.Addr().Zone() != "" {
			return fmt.Errorf("%q is not an %s address with a prefix length", pf, family)
		}
	}
	if host.Masked() != zone.Masked() || host.Addr() == zone.Addr() {
		return fmt.Errorf("%s and %s must be two addresses of one subnet", host, zone)
	}
	return nil
}

// checkIfName applies the kernel's rules for interface names (dev_valid_name).
func checkIfName(name string) error {
	if name == "" || len(name) > 15 || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\v\f\r\x00") {
		return fmt.Errorf("invalid interface name %q", name)
	}
	return nil
}

// sysctlPath maps a key to its file under /proc/sys. Like sysctl(8), a key
// with a slash is taken as a path, so that interface names with dots work.
func sysctlPath(key string) (string, error) {
	rel := key
	if !strings.Contains(key, "/") {
		rel = strings.ReplaceAll(key, ".", "/")
	}
	p := filepath.Join("/proc/sys", rel)
	if key == "" || !strings.HasPrefix(p, "/proc/sys/") {
		return "", fmt.Errorf("invalid sysctl key %q", key)
	}
	return p, nil
}

// ifSysctl is the per-interface key for an IPv6 setting, in path form.
func ifSysctl(ifname, setting string) string {
	return "net/ipv6/conf/" + ifname + "/" + setting
}

// orDiscard lets callers pass a nil logger.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// comparePrefixes orders prefixes by address, then length.
func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
