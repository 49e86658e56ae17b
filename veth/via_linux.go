package veth

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ViaProtocol is the protocol (rtm_protocol: "proto 110" in ip-rule and
// ip-route) of the rules and routes nszone makes for a zone's via: its mark
// on them, as the alias is on its links. Nothing without it is ever changed
// or deleted. 110 (0x6e, "n") is no RTPROT_* value of the kernel's nor one
// of iproute2's rt_protos, and the kernel interprets none above
// RTPROT_STATIC.
const ViaProtocol = 110

// ViaPriority is the priority nszone's zones use for Via.Priority: all of
// them alike, since the rules of each name the zone's host end (iif) and so
// never meet. It is well before the main table's rule (32766) and the rules
// that VPN clients add (wg-quick's 32764 and 32765, Tailscale's 5210 to
// 5270), so that no other rule sends a zone's traffic elsewhere first.
const ViaPriority = 1100

const (
	// viaMetric is that of the default route through Iface.
	viaMetric = 1024
	// unreachableMetric puts the unreachable default behind any other
	// default route of the table: it is the answer only without the route
	// through Iface. The highest metric that an int holds on 32-bit
	// platforms too: netlink.Route's Priority is one.
	unreachableMetric = math.MaxInt32
)

// Via routes a zone's traffic, as it arrives on the zone's host end, out
// through one interface, with two rules per family:
//
//	Priority-1: iif HostIf lookup main suppress_prefixlength 0
//	Priority:   iif HostIf lookup Table
//
// The first lets the zone reach what the main table has specific routes for
// (the LAN, other zones, the host's connected subnets); only what would take
// a default route goes on to Table, which holds
//
//	unreachable default metric 2147483647
//	default [via GW] dev Iface metric 1024  (while Iface is up)
//
// so that without Iface the lookup ends unreachable instead of falling
// through to the main table's default route. GW is the gateway of the main
// table's route on Iface (its default route first), for an Iface that is a
// second uplink over Ethernet; a point-to-point tunnel (wg0, tun0) has none.
// All of it carries ViaProtocol.
type Via struct {
	Zone     string // for messages
	HostIf   string // the zone's host end ("nsz-vpn"): its traffic is what the rules match (iif)
	Iface    string // the interface the zone's internet traffic must leave by ("wg0")
	Table    int    // the routing table nszone owns for this zone: no one else's routes in it
	Priority int    // of the rule that looks up Table; the one before it looks up main
	IPv6     bool   // also for IPv6
}

func (v Via) validate() error {
	for _, n := range []string{v.HostIf, v.Iface} {
		if err := checkIfName(n); err != nil {
			return fmt.Errorf("via of zone %s: %w", v.Zone, err)
		}
	}
	switch {
	case v.HostIf == v.Iface:
		return fmt.Errorf("via of zone %s: %s is the zone's own host end", v.Zone, v.Iface)
	case v.Table <= 0 || uint64(v.Table) > math.MaxUint32 || (v.Table >= unix.RT_TABLE_COMPAT && v.Table <= unix.RT_TABLE_LOCAL):
		// 252 to 255 are compat, default, main and local.
		return fmt.Errorf("via of zone %s: table %d is reserved or out of range", v.Zone, v.Table)
	case v.Priority < 2 || v.Priority >= 32766:
		// Both rules after the local table's (0), before the main table's.
		return fmt.Errorf("via of zone %s: priority %d is not within 2 to 32765", v.Zone, v.Priority)
	}
	return nil
}

// viaFamily is one address family's share of a Via.
type viaFamily struct {
	family int
	name   string // "" or "IPv6 ", to start messages
	any    netip.Addr
}

var viaFamilies = []viaFamily{
	{netlink.FAMILY_V4, "", netip.IPv4Unspecified()},
	{netlink.FAMILY_V6, "IPv6 ", netip.IPv6Unspecified()},
}

// viaCtx holds what one EnsureVia, InspectVia or DeleteVia works with: all
// in the current namespace, the host's.
type viaCtx struct {
	v     Via
	h     *netlink.Handle
	table string // "table N", for messages
}

func openVia(v Via) (*viaCtx, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening netlink for the via of zone %s: %w", v.Zone, err)
	}
	return &viaCtx{v: v, h: h, table: "table " + strconv.Itoa(v.Table)}, nil
}

// EnsureVia makes the kernel hold v's rules and routes and reports whether
// it changed anything. Everything is read first and only what differs is
// written: a second call writes nothing and returns false. Table gets its
// unreachable default before any rule leads to it, so the zone's traffic
// never finds a way around Iface.
//
// While Iface is missing or down, the rules and the unreachable default are
// made and the route through Iface is not: the zone reaches nothing beyond
// the host and the main table's specific routes. The kernel deletes the
// routes through a link that goes down or away; once Iface is back up,
// another EnsureVia adds the route again. Rules and routes of v's that
// ViaProtocol marks and that v does not want (another table, a gateway gone,
// IPv6 off) are removed; none without that mark is touched.
func EnsureVia(v Via, log *slog.Logger) (changed bool, err error) {
	c, err := openVia(v)
	if err != nil {
		return false, err
	}
	defer c.h.Close()
	log = orDiscard(log).With("zone", v.Zone)
	for pass := 0; ; pass++ {
		_, fixes, err := c.fixes()
		if err != nil {
			return changed, err
		}
		if len(fixes) == 0 {
			return changed, nil
		}
		if pass == 3 {
			return changed, fmt.Errorf("via %s of zone %s keeps changing back: %s", v.Iface, v.Zone, problems(fixes))
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

// InspectVia reports what of v the kernel lacks or has too much, e.g.
// "rule 1100 iif nsz-vpn lookup 1001 missing" or "IPv6 unreachable default
// missing in table 1001"; nothing means v is whole and working.
//
// While Iface is missing, down, or up without carrier, the first gap is
// exactly "interface IFACE missing", "interface IFACE down" or "interface
// IFACE has no carrier": the zone's internet traffic is held, which no
// EnsureVia can mend. The other gaps are EnsureVia's to repair.
func InspectVia(v Via) (gaps []string, err error) {
	c, err := openVia(v)
	if err != nil {
		return nil, err
	}
	defer c.h.Close()
	state, fixes, err := c.fixes()
	if err != nil {
		return nil, err
	}
	if state != "" {
		gaps = append(gaps, "interface "+v.Iface+" "+state)
	}
	return append(gaps, problems(fixes)...), nil
}

// DeleteVia removes v's rules, then the routes of Table, of both families,
// as far as ViaProtocol marks them: the rules go first, so that the zone's
// traffic never reaches Table without its unreachable default. Nothing to
// remove is success.
func DeleteVia(v Via, log *slog.Logger) error {
	c, err := openVia(v)
	if err != nil {
		return err
	}
	defer c.h.Close()
	log = orDiscard(log).With("zone", v.Zone)
	var rules, routes []fix
	for _, fam := range viaFamilies {
		ours, err := c.ourRules(fam)
		if err != nil {
			return err
		}
		for _, r := range ours {
			rules = append(rules, c.ruleDel(fam, r, false))
		}
		table, err := c.ourRoutes(fam)
		if err != nil {
			return err
		}
		for _, r := range table {
			routes = append(routes, c.routeDel(fam, r, false))
		}
	}
	for _, f := range append(rules, routes...) {
		if err := f.do(); err != nil {
			return fmt.Errorf("%s: %w", f.act, err)
		}
		log.Debug(f.act, f.args...)
	}
	return nil
}

// ifaceState reads Iface: its index while it is up, else 0 and what is
// wrong ("missing", "down"); "has no carrier" comes with an index, since
// the route through an Iface without carrier holds the traffic as well and
// takes it on as soon as the carrier is back.
func (c *viaCtx) ifaceState() (idx int, state string, err error) {
	l, err := linkByName(c.h, c.v.Iface)
	switch {
	case err != nil:
		return 0, "", fmt.Errorf("reading link %s: %w", c.v.Iface, err)
	case l == nil:
		return 0, "missing", nil
	case l.Attrs().RawFlags&unix.IFF_UP == 0:
		return 0, "down", nil
	case l.Attrs().RawFlags&unix.IFF_LOWER_UP == 0:
		return l.Attrs().Index, "has no carrier", nil
	}
	return l.Attrs().Index, "", nil
}

// fixes reads v's state and lists what differs, in the order to repair it:
// the unreachable defaults, this family's stray routes, the routes through
// Iface, the rules, stray rules, and last the routes of a family v no
// longer wants (after its rules). state is what ifaceState says.
func (c *viaCtx) fixes() (state string, fixes []fix, err error) {
	idx, state, err := c.ifaceState()
	if err != nil {
		return "", nil, err
	}
	var unreachables, strayRoutes, vias, rules, strayRules, unwanted []fix
	for _, fam := range viaFamilies {
		routes, err := c.ourRoutes(fam)
		if err != nil {
			return "", nil, err
		}
		have, err := c.ourRules(fam)
		if err != nil {
			return "", nil, err
		}
		if fam.family == netlink.FAMILY_V6 && !c.v.IPv6 {
			for _, r := range have {
				strayRules = append(strayRules, c.ruleDel(fam, r, true))
			}
			for _, r := range routes {
				unwanted = append(unwanted, c.routeDel(fam, r, true))
			}
			continue
		}
		var via *netlink.Route
		if idx > 0 {
			if via, err = c.viaRoute(fam, idx); err != nil {
				return "", nil, err
			}
		}
		unreach := c.unreachable(fam)
		for _, want := range []*netlink.Route{unreach, via} {
			if want == nil {
				continue
			}
			if i := slices.IndexFunc(routes, func(r netlink.Route) bool { return sameViaRoute(r, *want) }); i >= 0 {
				routes = slices.Delete(routes, i, i+1)
				continue
			}
			f := c.routeAdd(fam, want)
			if want == unreach {
				unreachables = append(unreachables, f)
			} else {
				vias = append(vias, f)
			}
		}
		for _, r := range routes {
			strayRoutes = append(strayRoutes, c.routeDel(fam, r, true))
		}
		for _, want := range c.rules(fam) {
			if i := slices.IndexFunc(have, func(r netlink.Rule) bool { return sameViaRule(r, want) }); i >= 0 {
				have = slices.Delete(have, i, i+1)
				continue
			}
			rules = append(rules, c.ruleAdd(fam, want))
		}
		for _, r := range have {
			strayRules = append(strayRules, c.ruleDel(fam, r, true))
		}
	}
	for _, part := range [][]fix{unreachables, strayRoutes, vias, rules, strayRules, unwanted} {
		fixes = append(fixes, part...)
	}
	return state, fixes, nil
}

// ourRoutes lists the routes of Table in one family that carry ViaProtocol.
func (c *viaCtx) ourRoutes(fam viaFamily) ([]netlink.Route, error) {
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return c.h.RouteListFiltered(fam.family, &netlink.Route{Table: c.v.Table}, netlink.RT_FILTER_TABLE)
	})
	if err != nil && !noFamily(fam, err) {
		return nil, fmt.Errorf("listing %sroutes of %s: %w", fam.name, c.table, err)
	}
	var out []netlink.Route
	for _, r := range routes {
		if r.Protocol == ViaProtocol && r.Table == c.v.Table {
			out = append(out, r)
		}
	}
	return out, nil
}

// ourRules lists the rules of one family for HostIf that carry ViaProtocol,
// at any priority and for any table: they are this Via's and no other's.
func (c *viaCtx) ourRules(fam viaFamily) ([]netlink.Rule, error) {
	rules, err := retryDump(func() ([]netlink.Rule, error) { return c.h.RuleList(fam.family) })
	if err != nil && !noFamily(fam, err) {
		return nil, fmt.Errorf("listing %srules: %w", fam.name, err)
	}
	var out []netlink.Rule
	for _, r := range rules {
		if r.Protocol == ViaProtocol && r.IifName == c.v.HostIf {
			out = append(out, r)
		}
	}
	return out, nil
}

// noFamily: a kernel without IPv6 has no IPv6 rules or routes to list.
func noFamily(fam viaFamily, err error) bool {
	return fam.family == netlink.FAMILY_V6 && errors.Is(err, unix.EAFNOSUPPORT)
}

// rules are the two rules v wants in one family.
func (c *viaCtx) rules(fam viaFamily) []netlink.Rule {
	rule := func(prio, table, suppress int) netlink.Rule {
		r := netlink.NewRule() // -1, not 0, for what is not to be sent
		r.Family, r.Priority, r.Table, r.SuppressPrefixlen = fam.family, prio, table, suppress
		r.IifName, r.Protocol = c.v.HostIf, ViaProtocol
		return *r
	}
	return []netlink.Rule{
		rule(c.v.Priority-1, unix.RT_TABLE_MAIN, 0),
		rule(c.v.Priority, c.v.Table, -1),
	}
}

// sameViaRule reports whether have, read from the kernel, is want and
// nothing more: a rule of ours with a selector or action added is stray.
func sameViaRule(have, want netlink.Rule) bool {
	return have.Priority == want.Priority && have.Table == want.Table && have.IifName == want.IifName &&
		have.SuppressPrefixlen == want.SuppressPrefixlen && have.Protocol == want.Protocol &&
		have.Src == nil && have.Dst == nil && have.OifName == "" && have.Mark == 0 && have.Mask == nil &&
		!have.Invert && have.Goto == -1 && have.Tos == 0 && have.IPProto == 0 && have.TunID == 0 &&
		have.SuppressIfgroup == -1 && have.Dport == nil && have.Sport == nil && have.UIDRange == nil
}

func ruleText(r netlink.Rule) string {
	s := fmt.Sprintf("rule %d iif %s lookup %s", r.Priority, r.IifName, tableName(r.Table))
	if r.SuppressPrefixlen >= 0 {
		s += " suppress_prefixlength " + strconv.Itoa(r.SuppressPrefixlen)
	}
	return s
}

func tableName(t int) string {
	if t == unix.RT_TABLE_MAIN {
		return "main"
	}
	return strconv.Itoa(t)
}

func (c *viaCtx) ruleAdd(fam viaFamily, r netlink.Rule) fix {
	text := fam.name + ruleText(r)
	return fix{
		problem: text + " missing",
		act:     "adding " + text,
		args:    []any{"rule", text},
		do:      func() error { return c.h.RuleAdd(&r) },
	}
}

// ruleDel deletes r, one of ours as read: the kernel deletes the first rule
// that matches all that is given, and the protocol is given. A stray is one
// v does not want.
func (c *viaCtx) ruleDel(fam viaFamily, r netlink.Rule, stray bool) fix {
	text := fam.name + ruleText(r)
	return fix{
		problem: fam.name + strayText(stray) + ruleText(r),
		act:     "removing " + text,
		args:    []any{"rule", text},
		do: func() error {
			if err := c.h.RuleDel(&r); err != nil && !notFound(err) {
				return err
			}
			return nil
		},
	}
}

// unreachable is the kill switch of one family.
func (c *viaCtx) unreachable(fam viaFamily) *netlink.Route {
	return &netlink.Route{
		Dst:      ipNet(netip.PrefixFrom(fam.any, 0)),
		Table:    c.v.Table,
		Priority: unreachableMetric,
		Protocol: ViaProtocol,
		Type:     unix.RTN_UNREACHABLE,
	}
}

// viaRoute is the default route through Iface (index idx) for one family,
// by the gateway of the main table's routes on it, if any.
func (c *viaCtx) viaRoute(fam viaFamily, idx int) (*netlink.Route, error) {
	main, err := retryDump(func() ([]netlink.Route, error) {
		return c.h.RouteListFiltered(fam.family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil && !noFamily(fam, err) {
		return nil, fmt.Errorf("listing %sroutes of the main table: %w", fam.name, err)
	}
	r := &netlink.Route{
		LinkIndex: idx,
		Dst:       ipNet(netip.PrefixFrom(fam.any, 0)),
		Table:     c.v.Table,
		Priority:  viaMetric,
		Protocol:  ViaProtocol,
		Type:      unix.RTN_UNICAST,
		Scope:     unix.RT_SCOPE_LINK,
	}
	if gw, onlink := viaGateway(main, idx); gw.IsValid() {
		r.Gw, r.Scope = net.IP(gw.AsSlice()), unix.RT_SCOPE_UNIVERSE
		if onlink {
			r.Flags = unix.RTNH_F_ONLINK
		}
	}
	return r, nil
}

// viaGateway picks the gateway for the route through the link idx from the
// main table's unicast routes through it: of a default route first, then of
// the lowest metric, then the first listed. onlink: that route has it on
// the link without a subnet around it. None for a point-to-point link.
func viaGateway(main []netlink.Route, idx int) (gw netip.Addr, onlink bool) {
	type hop struct {
		gw      netip.Addr
		dflt    bool
		metric  int
		onlink  bool
		present bool
	}
	var best hop
	for _, r := range main {
		if r.Type != unix.RTN_UNICAST {
			continue
		}
		hops := []*netlink.NexthopInfo{{LinkIndex: r.LinkIndex, Gw: r.Gw, Flags: r.Flags}}
		if len(r.MultiPath) > 0 {
			hops = r.MultiPath
		}
		for _, nh := range hops {
			a := addrOf(nh.Gw)
			if nh.LinkIndex != idx || !a.IsValid() || a.IsUnspecified() {
				continue
			}
			h := hop{a, isDefault(r), r.Priority, nh.Flags&unix.RTNH_F_ONLINK != 0, true}
			if !best.present || h.dflt && !best.dflt || h.dflt == best.dflt && h.metric < best.metric {
				best = h
			}
		}
	}
	return best.gw, best.onlink
}

// sameViaRoute reports whether have, read from the kernel, is want.
func sameViaRoute(have, want netlink.Route) bool {
	if have.Type != want.Type || have.Priority != want.Priority || !isDefault(have) || len(have.MultiPath) > 0 ||
		have.Tos != 0 || have.Src != nil {
		return false
	}
	if want.Type == unix.RTN_UNREACHABLE {
		return true // the kernel puts it on lo in IPv6
	}
	return have.LinkIndex == want.LinkIndex && addrOf(have.Gw) == addrOf(want.Gw)
}

// viaRouteText renders a route of Table like ip-route does, its link as dev
// or, without dev, by index.
func viaRouteText(fam viaFamily, r netlink.Route, dev string) string {
	var b strings.Builder
	b.WriteString(fam.name)
	if r.Type == unix.RTN_UNREACHABLE {
		b.WriteString("unreachable default")
	} else {
		if !isDefault(r) {
			b.WriteString("route " + r.Dst.String())
		} else {
			b.WriteString("default route")
		}
		if r.Gw != nil {
			b.WriteString(" via " + r.Gw.String())
		}
		switch {
		case dev != "":
			b.WriteString(" dev " + dev)
		case r.LinkIndex > 0:
			b.WriteString(" ifindex " + strconv.Itoa(r.LinkIndex))
		}
		if r.Type != unix.RTN_UNICAST {
			b.WriteString(" type " + strconv.Itoa(r.Type))
		}
	}
	return b.String() + " metric " + strconv.Itoa(r.Priority)
}

func (c *viaCtx) routeAdd(fam viaFamily, r *netlink.Route) fix {
	dev := ""
	if r.Type != unix.RTN_UNREACHABLE {
		dev = c.v.Iface
	}
	text := viaRouteText(fam, *r, dev)
	return fix{
		problem: text + " missing in " + c.table,
		act:     "adding " + text + " to " + c.table,
		args:    []any{"route", text, "table", c.v.Table},
		do: func() error {
			// Not a replace: that would take the place of a route of the
			// same metric that is not ours.
			err := c.h.RouteAdd(r)
			if dev != "" && (errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENETDOWN)) {
				return nil // Iface went down or away meanwhile: the next pass sees it
			}
			return err
		},
	}
}

func (c *viaCtx) routeDel(fam viaFamily, r netlink.Route, stray bool) fix {
	text := viaRouteText(fam, r, "")
	return fix{
		problem: fam.name + strayText(stray) + strings.TrimPrefix(text, fam.name) + " in " + c.table,
		act:     "removing " + text + " from " + c.table,
		args:    []any{"route", text, "table", c.v.Table},
		do: func() error {
			if err := c.h.RouteDel(&r); err != nil && !notFound(err) {
				return err
			}
			return nil
		},
	}
}

func strayText(stray bool) string {
	if stray {
		return "stray "
	}
	return ""
}
