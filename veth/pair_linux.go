package veth

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nszone/nszone/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// v6DefaultMetric is the metric the kernel gives an IPv6 route added without
// one; asking for it keeps the route equal to what we read back.
const v6DefaultMetric = 1024

// pairCtx holds what one EnsurePair or InspectPair works with.
type pairCtx struct {
	p              Pair
	ns             *netns.Handle
	host, zone     *netlink.Handle // handles in the current and in the zone's namespace
	hostRT, zoneRT *rtSocket       // the same, for links with their IPv6 settings
	snap           *HostLinks      // the host side as read for many zones at once; nil: read it here
	inZone         string          // "in zone NAME", for messages
}

// fix is one difference between a Pair and the kernel: problem says what is
// wrong (for InspectPair), do repairs it, act and args describe the repair.
type fix struct {
	problem string
	act     string
	args    []any
	do      func() error
}

func openPair(p Pair, host *HostLinks) (*pairCtx, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	// The host's rtSocket opens a socket per request: with host given, it
	// is seldom asked.
	c := &pairCtx{p: p, inZone: "in zone " + p.Zone, hostRT: &rtSocket{}, snap: host}
	var err error
	if c.ns, err = netns.OpenNamed(p.Zone); err != nil {
		return nil, fmt.Errorf("opening namespace of zone %s: %w", p.Zone, err)
	}
	if c.zone, c.zoneRT, err = handlesIn(c.ns); err == nil {
		c.host, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	}
	if err != nil {
		c.close()
		return nil, fmt.Errorf("opening netlink for zone %s: %w", p.Zone, err)
	}
	return c, nil
}

func (c *pairCtx) close() {
	if c.zone != nil {
		c.zone.Close()
	}
	if c.host != nil {
		c.host.Close()
	}
	c.zoneRT.close()
	c.ns.Close()
}

// EnsurePair makes the kernel match p and reports whether it changed anything.
// The zone's namespace must exist. A host link named p.HostName that is not a
// veth carrying p.Alias is never touched: that is an error wrapping
// ErrNotOwned. Everything is read first, and only what differs is written, so
// a second call with the same p writes nothing and returns false. The host
// side is taken from host, when given, until the pair is changed.
func EnsurePair(p Pair, host *HostLinks, log *slog.Logger) (changed bool, err error) {
	c, err := openPair(p, host)
	if err != nil {
		return false, err
	}
	defer c.close()
	log = orDiscard(log).With("zone", p.Zone)

	hl, zl, err := c.readLinks()
	if err != nil {
		return false, err
	}
	changed, err = c.ensureLinks(hl, zl, log)
	if err != nil {
		return changed, err
	}
	// A repair can undo another (deleting a primary IPv4 address takes its
	// secondaries along), so read again until nothing differs.
	for pass := 0; ; pass++ {
		if changed {
			c.snap = nil // it does not hold our own changes
			if hl, zl, err = c.readLinks(); err != nil {
				return changed, err
			}
		}
		if hl == nil || zl == nil {
			return changed, fmt.Errorf("veth %s or its peer %s %s vanished", p.HostName, p.PeerName, c.inZone)
		}
		fixes, err := c.fixes(hl, zl)
		if err != nil {
			return changed, err
		}
		if len(fixes) == 0 {
			return changed, nil
		}
		if pass == 3 {
			return changed, fmt.Errorf("veth %s of zone %s keeps changing back: %s", p.HostName, p.Zone, problems(fixes))
		}
		for _, f := range fixes {
			if err := f.do(); err != nil {
				return changed, fmt.Errorf("%s: %w", f.act, err)
			}
			changed = true
			log.Debug(f.act, f.args...)
		}
	}
}

// InspectPair reports what of p the kernel lacks (or has too much), e.g.
// "host link nsz-wan missing" or "default route via 10.250.0.1 missing in zone
// wan"; nothing means the pair is whole. A host link that is not nszone's is an
// error wrapping ErrNotOwned. The host side is taken from host, when given.
func InspectPair(p Pair, host *HostLinks) ([]string, error) {
	c, err := openPair(p, host)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, netns.ErrStalePin) {
		return []string{"namespace " + p.Zone + " missing"}, nil
	}
	if err != nil {
		return nil, err
	}
	defer c.close()
	hl, zl, err := c.readLinks()
	if err != nil {
		return nil, err
	}
	switch {
	case hl == nil:
		return []string{"host link " + p.HostName + " missing"}, nil
	case !owned(hl, p.Alias):
		return nil, notOwned(hl, "on the host")
	case zl == nil:
		return []string{"link " + p.PeerName + " missing " + c.inZone}, nil
	}
	if ok, err := c.paired(hl, zl); err != nil {
		return nil, err
	} else if !ok {
		return []string{"host link " + p.HostName + " not joined to " + p.PeerName + " " + c.inZone}, nil
	}
	fixes, err := c.fixes(hl, zl)
	if err != nil {
		return nil, err
	}
	return problems(fixes), nil
}

func problems(fixes []fix) []string {
	var out []string
	for _, f := range fixes {
		out = append(out, f.problem)
	}
	return out
}

// linkByName returns nil without error when there is no such link.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if notFound(err) {
		return nil, nil
	}
	return l, err
}

func notFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ESRCH) ||
		errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT)
}

func owned(l netlink.Link, alias string) bool {
	return l.Type() == "veth" && l.Attrs().Alias == alias
}

func notOwned(l netlink.Link, where string) error {
	a := l.Attrs()
	return fmt.Errorf("%s link %s %s (alias %q): %w", l.Type(), a.Name, where, a.Alias, ErrNotOwned)
}

// readLinks returns both ends by name, nil where absent.
func (c *pairCtx) readLinks() (hl, zl *linkInfo, err error) {
	if c.snap != nil {
		hl = c.snap.links[c.p.HostName]
	} else if hl, err = c.hostRT.link(c.p.HostName); err != nil {
		return nil, nil, fmt.Errorf("reading link %s on the host: %w", c.p.HostName, err)
	}
	if zl, err = c.zoneRT.link(c.p.PeerName); err != nil {
		return nil, nil, fmt.Errorf("reading link %s %s: %w", c.p.PeerName, c.inZone, err)
	}
	return hl, zl, nil
}

// paired reports whether zl, in the zone, is hl's other end: each names the
// other as its peer (IFLA_LINK), and hl's peer namespace is the zone's.
func (c *pairCtx) paired(hl, zl *linkInfo) (bool, error) {
	if zl == nil || !owned(zl, c.p.Alias) {
		return false, nil
	}
	return c.peers(hl, zl)
}

// peers reports whether hl on the host and zl in the zone are the two ends
// of one veth.
func (c *pairCtx) peers(hl, zl *linkInfo) (bool, error) {
	h, z := hl.Attrs(), zl.Attrs()
	if h.ParentIndex != z.Index || z.ParentIndex != h.Index {
		return false, nil
	}
	nsid, err := c.host.GetNetNsIdByFd(c.ns.Fd())
	if err != nil {
		return false, fmt.Errorf("reading the netns id of zone %s: %w", c.p.Zone, err)
	}
	return nsid >= 0 && h.NetNsID == nsid, nil
}

// ensureLinks makes the pair exist with both ends in place, recreating it when
// its zone end is not in the zone (the namespace was made anew). hl and zl
// are the ends as read.
func (c *pairCtx) ensureLinks(hl, zl *linkInfo, log *slog.Logger) (changed bool, err error) {
	p := c.p
	if hl != nil {
		cut, err := c.cutShort(hl, zl)
		if err != nil {
			return false, err
		}
		if !owned(hl, p.Alias) && !cut {
			return false, notOwned(hl, "on the host")
		}
		if ok, err := c.paired(hl, zl); err != nil || (ok && !cut) {
			return false, err
		}
		if err := c.host.LinkDel(hl.Link); err != nil && !notFound(err) {
			return false, fmt.Errorf("deleting link %s, whose peer is not %s or which is unmarked: %w", p.HostName, c.inZone, err)
		}
		changed = true
		log.Debug("deleted host link whose peer is not in the zone, or which a creation cut short", "link", p.HostName)
	}
	// Links in the zone under either name are in the way: ours from an
	// earlier pair, a creation cut short (see createPair: a host end still
	// in the zone, perhaps unmarked, whose deletion takes its peer along), or
	// someone else's.
	for _, name := range []string{p.HostName, p.PeerName} {
		l, err := linkByName(c.zone, name)
		if err != nil {
			return changed, fmt.Errorf("reading link %s %s: %w", name, c.inZone, err)
		}
		if l == nil {
			continue
		}
		alias := l.Attrs().Alias
		cutShort := name == p.HostName && alias == ""
		if l.Type() != "veth" || (alias != p.Alias && !cutShort) {
			return changed, notOwned(l, c.inZone)
		}
		if err := c.zone.LinkDel(l); err != nil && !notFound(err) {
			return changed, fmt.Errorf("deleting stale link %s %s: %w", name, c.inZone, err)
		}
		changed = true
		log.Debug("deleted stale link in the zone", "link", name)
	}
	return true, c.createPair(log)
}

// createPair makes the veth pair in one request, its host end on the host
// and its peer already in the zone (moving a link between namespaces later
// costs a wait on the kernel's global network lock), then marks both ends,
// the peer first. The kernel ignores an alias in a request that creates a
// link: cut short before the host end is marked, the pair is found again by
// cutShort (an unmarked host end whose peer is in the zone's marked
// namespace) and made anew, or goes with the namespace.
func (c *pairCtx) createPair(log *slog.Logger) error {
	p := c.p
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = p.HostName, p.MTU
	v := netlink.NewVeth(attrs)
	v.PeerName, v.PeerNamespace = p.PeerName, netlink.NsFd(c.ns.Fd())
	if err := c.host.LinkAdd(v); err != nil {
		return fmt.Errorf("creating veth %s with peer %s %s: %w", p.HostName, p.PeerName, c.inZone, err)
	}
	log.Debug("created veth pair", "host", p.HostName, "peer", p.PeerName, "mtu", p.MTU)
	err := func() error {
		for _, end := range []struct {
			h    *netlink.Handle
			name string
		}{{c.zone, p.PeerName}, {c.host, p.HostName}} {
			l, err := end.h.LinkByName(end.name)
			if err == nil {
				err = end.h.LinkSetAlias(l, p.Alias)
			}
			if err != nil {
				return fmt.Errorf("marking veth %s as nszone's: %w", end.name, err)
			}
		}
		return nil
	}()
	if err != nil {
		// Leave nothing behind; deleting the host end takes the peer along.
		if l, lerr := c.host.LinkByName(p.HostName); lerr == nil {
			_ = c.host.LinkDel(l)
		}
		return err
	}
	return nil
}

// cutShort reports whether hl, an unmarked host link of the pair's name, is
// what a createPair cut short left: a veth whose peer is zl, the zone's end,
// unmarked or marked as this pair's.
func (c *pairCtx) cutShort(hl, zl *linkInfo) (bool, error) {
	if hl.Type() != "veth" || hl.Attrs().Alias != "" || zl == nil || zl.Type() != "veth" ||
		(zl.Attrs().Alias != "" && zl.Attrs().Alias != c.p.Alias) {
		return false, nil
	}
	return c.peers(hl, zl)
}

// fixes reads the rest of the pair's state and lists what differs from p,
// both ends hl and zl as read included, in the order to repair it: sysctls
// (before links go up, so no link-local address or router advertisement
// slips in), MTU, addresses, links up, routes.
func (c *pairCtx) fixes(hl, zl *linkInfo) ([]fix, error) {
	p := c.p
	lo, err := c.zone.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("reading lo %s: %w", c.inZone, err)
	}
	var fixes []fix
	add := func(more []fix, err error) error {
		fixes = append(fixes, more...)
		return err
	}
	hostAddrs, zoneAddrs := []netip.Prefix{p.Host4}, []netip.Prefix{p.Zone4}
	if p.v6() {
		hostAddrs, zoneAddrs = append(hostAddrs, p.Host6), append(zoneAddrs, p.Zone6)
	}
	if err := errors.Join(
		add(c.sysctlFixes(hl, false)),
		add(c.sysctlFixes(zl, true)),
		add(c.mtuFixes(c.host, hl, "on the host"), nil),
		add(c.mtuFixes(c.zone, zl, c.inZone), nil),
		add(c.addrFixes(c.host, hl, hostAddrs, "on the host")),
		add(c.addrFixes(c.zone, zl, zoneAddrs, c.inZone)),
		add(upFix(c.host, hl.Link, "on the host"), nil),
		add(upFix(c.zone, zl.Link, c.inZone), nil),
		add(upFix(c.zone, lo, c.inZone), nil),
		add(c.routeFixes(zl.Link, netlink.FAMILY_V4, p.Host4.Addr(), 0)),
		add(c.routeFixes(zl.Link, netlink.FAMILY_V6, p.Host6.Addr(), v6DefaultMetric)),
	); err != nil {
		return nil, err
	}
	return fixes, nil
}

// sysctlFixes covers the per-interface IPv6 settings of one end, l:
// IPv6 off without Host6, else on with router advertisements ignored.
//
// They are read from l's own message (IFLA_INET6_CONF), so that checking a
// zone takes no thread into it. Without them there (a kernel without IPv6,
// a link without an IPv6 device), /proc/sys says.
func (c *pairCtx) sysctlFixes(l *linkInfo, inZone bool) ([]fix, error) {
	p := c.p
	name, where := p.HostName, "on the host"
	if inZone {
		name, where = p.PeerName, c.inZone
	}
	want := [][2]string{{"disable_ipv6", "1"}}
	if p.v6() {
		// No duplicate address detection: a veth has exactly two ends, and
		// DAD would hold each link-local address back for a second or more.
		want = [][2]string{{"disable_ipv6", "0"}, {"accept_ra", "0"}, {"accept_dad", "0"}}
	}
	have := make([]string, len(want))
	fromLink := true
	for i, kv := range want {
		var ok bool
		if have[i], ok = l.setting(kv[0]); !ok {
			fromLink = false
		}
	}
	read := func() error {
		for i, kv := range want {
			v, err := readSysctl(ifSysctl(name, kv[0]))
			if errors.Is(err, fs.ErrNotExist) && !p.v6() {
				v = kv[1] // no IPv6 in the kernel: off, as wanted
			} else if err != nil {
				return err
			}
			have[i] = v
		}
		return nil
	}
	run := func(fn func() error) error { return fn() }
	if inZone {
		run = func(fn func() error) error { return c.ns.Do(fn) }
	}
	if !fromLink {
		if err := run(read); err != nil {
			return nil, fmt.Errorf("reading IPv6 settings of %s %s: %w", name, where, err)
		}
	}
	var fixes []fix
	for i, kv := range want {
		if have[i] == kv[1] {
			continue
		}
		key, value := ifSysctl(name, kv[0]), kv[1]
		dotted := strings.ReplaceAll(key, "/", ".")
		fixes = append(fixes, fix{
			problem: fmt.Sprintf("sysctl %s is %s, not %s, %s", dotted, have[i], value, where),
			act:     fmt.Sprintf("setting sysctl %s=%s %s", dotted, value, where),
			args:    []any{"key", dotted, "value", value, "where", where},
			do:      func() error { return run(func() error { return writeSysctl(key, value) }) },
		})
	}
	return fixes, nil
}

func (c *pairCtx) mtuFixes(h *netlink.Handle, li *linkInfo, where string) []fix {
	l := li.Link
	a := l.Attrs()
	if c.p.MTU == 0 || a.MTU == c.p.MTU {
		return nil
	}
	mtu := c.p.MTU
	return []fix{{
		problem: fmt.Sprintf("mtu of %s %s is %d, not %d", a.Name, where, a.MTU, mtu),
		act:     fmt.Sprintf("setting mtu of %s %s to %d", a.Name, where, mtu),
		args:    []any{"link", a.Name, "where", where, "mtu", mtu},
		do:      func() error { return h.LinkSetMTU(l, mtu) },
	}}
}

// addrFixes makes want the only global addresses of l; link-local and host
// scope addresses are the kernel's and stay. Should removing a stray address
// take a wanted one along (an IPv4 primary takes its secondaries), the next
// pass of EnsurePair adds it back.
func (c *pairCtx) addrFixes(h *netlink.Handle, li *linkInfo, want []netip.Prefix, where string) ([]fix, error) {
	l := li.Link
	name := l.Attrs().Name
	have, err := retryDump(func() ([]netlink.Addr, error) {
		if h == c.host && c.snap != nil {
			return c.snap.addrs[l.Attrs().Index], nil
		}
		return h.AddrList(l, netlink.FAMILY_ALL)
	})
	if err != nil {
		return nil, fmt.Errorf("listing addresses of %s %s: %w", name, where, err)
	}
	var fixes []fix
	var present []netip.Prefix
	for _, a := range have {
		pf, ok := prefixOf(a.IPNet)
		if !ok || a.Scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		if slices.Contains(want, pf) {
			present = append(present, pf)
			continue
		}
		fixes = append(fixes, fix{
			problem: fmt.Sprintf("stray address %s on %s %s", pf, name, where),
			act:     fmt.Sprintf("removing address %s from %s %s", pf, name, where),
			args:    []any{"link", name, "where", where, "address", pf},
			do: func() error {
				if err := h.AddrDel(l, &a); err != nil && !notFound(err) {
					return err
				}
				return nil
			},
		})
	}
	for _, pf := range want {
		if slices.Contains(present, pf) {
			continue
		}
		a := &netlink.Addr{IPNet: ipNet(pf)}
		if pf.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD // usable at once: the only other end of this link is ours
		}
		fixes = append(fixes, fix{
			problem: fmt.Sprintf("address %s missing on %s %s", pf, name, where),
			act:     fmt.Sprintf("adding address %s to %s %s", pf, name, where),
			args:    []any{"link", name, "where", where, "address", pf},
			do:      func() error { return h.AddrReplace(l, a) },
		})
	}
	return fixes, nil
}

func upFix(h *netlink.Handle, l netlink.Link, where string) []fix {
	a := l.Attrs()
	if a.Flags&net.FlagUp != 0 {
		return nil
	}
	return []fix{{
		problem: fmt.Sprintf("link %s down %s", a.Name, where),
		act:     fmt.Sprintf("setting link %s up %s", a.Name, where),
		args:    []any{"link", a.Name, "where", where},
		do:      func() error { return h.LinkSetUp(l) },
	}}
}

// routeFixes makes the zone's main table hold one default route of the family:
// via gw on the zone end, or none when gw is invalid (no IPv6). Other default
// routes would lead around the host, so they go.
func (c *pairCtx) routeFixes(zl netlink.Link, family int, gw netip.Addr, metric int) ([]fix, error) {
	idx := zl.Attrs().Index
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return c.zone.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("listing routes %s: %w", c.inZone, err)
	}
	var fixes []fix
	found := false
	for _, r := range routes {
		if !isDefault(r) {
			continue
		}
		if !found && gw.IsValid() && len(r.MultiPath) == 0 && r.LinkIndex == idx && r.Priority == metric &&
			r.Type == unix.RTN_UNICAST && addrOf(r.Gw) == gw {
			found = true
			continue
		}
		via := "default route" + routeText(r)
		fixes = append(fixes, fix{
			problem: fmt.Sprintf("stray %s %s", via, c.inZone),
			act:     fmt.Sprintf("removing %s %s", via, c.inZone),
			args:    []any{"route", via},
			do: func() error {
				if err := c.zone.RouteDel(&r); err != nil && !notFound(err) {
					return err
				}
				return nil
			},
		})
	}
	if gw.IsValid() && !found {
		anywhere := netip.IPv4Unspecified()
		if gw.Is6() {
			anywhere = netip.IPv6Unspecified()
		}
		r := &netlink.Route{
			LinkIndex: idx,
			Dst:       ipNet(netip.PrefixFrom(anywhere, 0)),
			Gw:        net.IP(gw.AsSlice()),
			Table:     unix.RT_TABLE_MAIN,
			Priority:  metric,
			Protocol:  unix.RTPROT_STATIC,
			Type:      unix.RTN_UNICAST,
		}
		// Added before the strays go, so the zone is never without a way out.
		fixes = append([]fix{{
			problem: fmt.Sprintf("default route via %s missing %s", gw, c.inZone),
			act:     fmt.Sprintf("adding default route via %s dev %s %s", gw, c.p.PeerName, c.inZone),
			args:    []any{"via", gw, "dev", c.p.PeerName},
			do:      func() error { return c.zone.RouteReplace(r) },
		}}, fixes...)
	}
	return fixes, nil
}

func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// routeText renders a route's next hops like ip-route does.
func routeText(r netlink.Route) string {
	var b strings.Builder
	hop := func(gw net.IP, idx int) {
		if gw != nil {
			b.WriteString(" via " + gw.String())
		}
		if idx > 0 {
			b.WriteString(" ifindex " + strconv.Itoa(idx))
		}
	}
	hop(r.Gw, r.LinkIndex)
	for _, nh := range r.MultiPath {
		hop(nh.Gw, nh.LinkIndex)
	}
	return b.String() + " metric " + strconv.Itoa(r.Priority)
}

// DeletePair deletes the host link hostName, which takes its peer along, if
// and only if it carries alias. No such link is success; one with another
// alias is an error wrapping ErrNotOwned.
//
// An unmarked veth whose peer is in zone's namespace is one a createPair
// cut short: it is deleted too.
func DeletePair(zone, hostName, alias string, log *slog.Logger) error {
	log = orDiscard(log)
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("deleting link %s: %w", hostName, err)
	}
	defer h.Close()
	l, err := linkByName(h, hostName)
	if err != nil {
		return fmt.Errorf("deleting link %s: %w", hostName, err)
	}
	if l == nil {
		return nil
	}
	if (l.Attrs().Alias != alias || alias == "") && !peerIn(h, l, zone) {
		return fmt.Errorf("deleting link %s: %w", hostName, notOwned(l, "on the host"))
	}
	if err := h.LinkDel(l); err != nil && !notFound(err) {
		return fmt.Errorf("deleting link %s: %w", hostName, err)
	}
	log.Debug("deleted veth pair", "link", hostName, "alias", alias)
	return nil
}

// CutShort reports whether the host's link hostName is an unmarked veth
// whose peer is in the namespace pinned as zone: what a creation of the
// pair (createPair) killed before it marked the host end leaves.
func CutShort(zone, hostName string) bool {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return false
	}
	defer h.Close()
	l, err := linkByName(h, hostName)
	return err == nil && l != nil && peerIn(h, l, zone)
}

// peerIn reports whether l is an unmarked veth whose peer is in the
// namespace pinned as zone.
func peerIn(h *netlink.Handle, l netlink.Link, zone string) bool {
	if l.Type() != "veth" || l.Attrs().Alias != "" || zone == "" {
		return false
	}
	ns, err := netns.OpenNamed(zone)
	if err != nil {
		return false
	}
	defer ns.Close()
	nsid, err := h.GetNetNsIdByFd(ns.Fd())
	return err == nil && nsid >= 0 && l.Attrs().NetNsID == nsid
}

// LinksWithAliasPrefix lists the current namespace's links whose alias starts
// with prefix, as name -> alias: what nszone left behind, records or not.
func LinksWithAliasPrefix(prefix string) (map[string]string, error) {
	if prefix == "" {
		return nil, errors.New("listing links by alias: empty prefix")
	}
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	out := map[string]string{}
	for _, l := range links {
		if a := l.Attrs(); strings.HasPrefix(a.Alias, prefix) {
			out[a.Name] = a.Alias
		}
	}
	return out, nil
}

// NamespaceHasAlias reports whether the namespace pinned at netns.PinDir/name holds
// a link whose alias is alias: nszone's mark on a namespace it made.
func NamespaceHasAlias(name, alias string) (bool, error) {
	ns, err := netns.OpenNamed(name)
	if err != nil {
		return false, err
	}
	defer ns.Close()
	h, err := HandleIn(ns)
	if err != nil {
		return false, fmt.Errorf("opening netlink in namespace %s: %w", name, err)
	}
	defer h.Close()
	links, err := retryDump(h.LinkList)
	if err != nil {
		return false, fmt.Errorf("listing links in namespace %s: %w", name, err)
	}
	return slices.ContainsFunc(links, func(l netlink.Link) bool { return l.Attrs().Alias == alias }), nil
}

// retryDump repeats a netlink dump that a concurrent change interrupted.
func retryDump[T any](dump func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == 4 {
			return v, err
		}
	}
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	ones, bits := n.Mask.Size()
	if !ok || bits == 0 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a.Unmap(), ones), true
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

func ipNet(pf netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: pf.Addr().AsSlice(), Mask: net.CIDRMask(pf.Bits(), pf.Addr().BitLen())}
}
