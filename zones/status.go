package zones

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/veth"
)

// Zone states, as the contract names them.
const (
	StateUp       = "up"
	StateDown     = "down"
	StateDegraded = "degraded"
)

// ZoneStatus is one zone as `status` shows it.
type ZoneStatus struct {
	Name        string    `json:"name"`
	State       string    `json:"state"`
	Netns       string    `json:"netns"`
	Allow       []string  `json:"allow"`
	DNS         []string  `json:"dns"`
	DNSOpenings []string  `json:"dns_openings"`
	Addresses   []string  `json:"addresses"`
	HostIf      string    `json:"host_interface"`
	Uplink      string    `json:"uplink"`
	Processes   []Process `json:"processes"`
	Missing     []string  `json:"missing,omitempty"` // what makes a zone degraded
	Notes       []string  `json:"notes,omitempty"`   // differences that open nothing (another wall covers them)
	InFile      bool      `json:"in_file"`
	// Published lists the ports published into the zone: "8080->80/tcp",
	// "127.0.0.1:5432->5432/tcp".
	Published []string `json:"published"`
	// Via is the interface the zone's internet leaves by ("" for the uplink).
	Via string `json:"via,omitempty"`
	// Users and Groups may enter without sudo (through nszone-enter).
	Users      []string `json:"users"`
	Groups     []string `json:"groups"`
	NoNewPrivs bool     `json:"no_new_privs"`
	// Confine is what its programs reach besides the network: desktop,
	// strict or none ("" while the zone is not up).
	Confine string `json:"confine"`
	// Counters are what the zone sent, let through and refused, per
	// family, since its inner wall was last written; absent while it is
	// not up, or where the inner wall is iptables'.
	Counters *firewall.Counters `json:"counters,omitempty"`
}

// Status is the whole of `status`.
type Status struct {
	Zones    []ZoneStatus `json:"zones"`
	Firewall string       `json:"firewall"` // the iptables variant in use
	// Notes are warnings about the host: a native nftables chain of another
	// program's that drops the zones' traffic, with the rules that fix it.
	Notes []string `json:"notes,omitempty"`
}

// Status reports the named zones (else those of f and every zone that is up).
func (m *Manager) Status(f *config.File, names []string) (*Status, error) {
	m = m.withHostLinks()
	recs, recNames, err := m.records()
	if err != nil {
		return nil, err
	}
	policy := recordedPolicy(recs)
	want := firewall.Build(policy)
	hostWall := m.hostWallGaps(policy)
	now := m.hostNow(recs)
	cur, err := firewall.Current(m.Firewall, firewall.Tables)
	if err != nil {
		return nil, err
	}
	ipt := firewall.NewChecker(cur, want)
	list := names
	if len(list) == 0 {
		for _, z := range f.Zones {
			list = append(list, z.Name)
		}
		for _, n := range recNames {
			if !slices.Contains(list, n) {
				list = append(list, n)
			}
		}
	}
	ours, err := m.Kernel.LinksWithAlias(aliasPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing nszone's interfaces: %w", err)
	}
	st := &Status{Zones: []ZoneStatus{}}
	if len(recs) > 0 {
		st.Notes = m.Coexistence()
	}
	if v := m.Firewall.Variant(); v != "" {
		st.Firewall = "iptables-" + v
	}
	for _, name := range list {
		zs := ZoneStatus{Name: name, Netns: netns.PinDir + "/" + name, HostIf: HostIf(name),
			InFile: f.Zone(name) != nil, Processes: []Process{}, DNS: []string{}, DNSOpenings: []string{}, Addresses: []string{}, Allow: []string{},
			Users: []string{}, Groups: []string{}, Published: []string{}}
		if z := f.Zone(name); z != nil {
			for _, t := range z.Allow {
				zs.Allow = append(zs.Allow, t.String())
			}
		}
		rec := recs[name]
		if rec == nil {
			zs.State = StateDown
			_, exists, err := m.owned(name, nil)
			switch {
			case exists && err == nil:
				zs.State, zs.Missing = StateDegraded, []string{"record (leftover of a crash: run nszone up or down)"}
			case errors.Is(err, ErrNotOwned):
				zs.Notes = append(zs.Notes, err.Error())
			}
			if err := m.checkLink(name, ours); errors.Is(err, ErrNotOwned) {
				zs.Notes = append(zs.Notes, err.Error())
			} else if _, has := ours[HostIf(name)]; has && zs.State == StateDown {
				zs.State, zs.Missing = StateDegraded, []string{"record and namespace (leftover link)"}
			}
			st.Zones = append(st.Zones, zs)
			continue
		}
		zs.Allow = nonNil(rec.Allow)
		zs.DNS = nonNil(rec.DNS)
		zs.DNSOpenings = nonNil(rec.Openings)
		zs.Uplink = rec.Policy.Uplink
		zs.Users, zs.Groups, zs.NoNewPrivs = nonNil(rec.Access.Users), nonNil(rec.Access.Groups), rec.Access.NoNewPrivs
		zs.Confine = rec.Access.ConfineOr()
		zs.Published, zs.Via = PublishedText(rec.Policy.Publish), rec.Policy.Via
		for _, p := range []veth.Pair{rec.Pair} {
			if p.Zone4.IsValid() {
				zs.Addresses = append(zs.Addresses, p.Zone4.String())
			}
			if p.Zone6.IsValid() {
				zs.Addresses = append(zs.Addresses, p.Zone6.String())
			}
		}
		zs.Processes = nonNil(m.Kernel.ProcessesIn(rec.Netns))
		g := m.missing(name, rec, ipt.Missing(name), hostWall, now)
		zs.Missing, zs.Notes = g.missing(), g.notes
		if c, err := m.Inner.Counters(name, rec.Policy, rec.LAN); err == nil {
			zs.Counters = &c
		}
		zs.State = StateUp
		if len(zs.Missing) > 0 {
			zs.State = StateDegraded
		}
		st.Zones = append(st.Zones, zs)
	}
	return st, nil
}

// Degraded counts the degraded zones.
func (s *Status) Degraded() int {
	n := 0
	for _, z := range s.Zones {
		if z.State == StateDegraded {
			n++
		}
	}
	return n
}

// recordedPolicy is the policy the records say should be in place.
func recordedPolicy(recs map[string]*Record) firewall.Policy {
	p := firewall.Policy{IfWildcard: ifWildcard}
	for _, name := range slices.Sorted(maps.Keys(recs)) {
		p.Zones = append(p.Zones, recs[name].Policy)
		p.LAN = recs[name].LAN
	}
	return p
}

// gaps is what of a recorded zone is not in place.
type gaps struct {
	open   []string // gaps through which the zone may reach what its policy forbids
	closed []string // gaps that break what the zone may do and open nothing
	notes  []string // differences that neither open nor break anything
}

// missing is what makes the zone degraded, open gaps first.
func (g gaps) missing() []string { return append(slices.Clone(g.open), g.closed...) }

// missing finds what of a recorded zone is not in place. iptGaps are the
// gaps of its iptables host wall, hostWall tells those of its nftables one
// (hostWallGaps).
//
// Every policy is held by two walls on the host's side (the iptables chains
// and the nftables tables, both by interface) and one inside the zone (by
// address). While the nftables host wall is whole, gaps in the iptables
// wall open nothing (they may break what the zone may do: NAT, or others'
// DROP policies), and a jump of nszone's that others' rules were put above,
// or a host address the inner wall does not list yet, are notes.
func (m *Manager) missing(name string, rec *Record, iptGaps []string, hostWall func(zone string) []string, hostNow []netip.Addr) gaps {
	var g gaps
	hostGaps := hostWall(name)
	nftWhole := m.HostWall != nil && len(hostGaps) == 0
	for _, ig := range iptGaps {
		switch {
		case nftWhole && strings.Contains(ig, firewall.NotFirst):
			g.notes = append(g.notes, "firewall "+ig+" (the nftables host wall holds the zone's policy)")
		case nftWhole:
			g.closed = append(g.closed, "firewall "+ig)
		default:
			g.open = append(g.open, "firewall "+ig)
		}
	}
	g.open = append(g.open, hostGaps...)
	g.closed = append(g.closed, m.publishGaps(rec.Policy)...)
	zg, zn := m.zoneGaps(name, rec, hostNow, nftWhole)
	g.open, g.notes = append(g.open, zg...), append(g.notes, zn...)
	return g
}

// hostNow is the host's own addresses now, as the inner walls list them
// (without any zone's gateway). An address that came after up (a VPN,
// docker0) is one the inner walls do not know: a zone without host could
// reach it once the host's rules are flushed, and a zone with host could
// not reach it at all.
func (m *Manager) hostNow(recs map[string]*Record) []netip.Addr {
	addrs, err := m.Kernel.HostAddrs()
	if err != nil {
		return nil
	}
	var nets []netip.Prefix
	for _, r := range recs {
		nets = append(nets, r.Policy.Net4, r.Policy.Net6)
	}
	return innerHostAddrs(addrs, zoneRanges(nets))
}

// zoneGaps lists what of a recorded zone is missing apart from the host's
// wall: its namespace, link, inner wall, uplink and files; nftWhole says
// the nftables host wall is whole.
func (m *Manager) zoneGaps(name string, rec *Record, hostNow []netip.Addr, nftWhole bool) (out, notes []string) {
	if hostNow != nil {
		if open := newHostAddrs(rec, withGateway(hostNow, rec.Pair)); len(open) > 0 {
			switch {
			case rec.Policy.Host:
				// Closed, not open: the zone cannot reach them yet.
				notes = append(notes, fmt.Sprintf("the inner wall does not list the host's new address(es) %v yet and keeps the zone from them until nszone watch or up adds them", open))
			case nftWhole:
				notes = append(notes, fmt.Sprintf("the inner wall does not list the host's new address(es) %v yet; the host wall keeps the zone from them (nszone watch or up adds them)", open))
			default:
				out = append(out, fmt.Sprintf("the inner wall does not know the host's new address(es) %v and the nftables host wall is not whole (run nszone up)", open))
			}
		}
	}
	out = append(out, m.linkAndFileGaps(name, rec, true)...)
	if up := rec.Policy.Uplink; up != "" {
		if ok, err := m.Kernel.LinkExists(up); err == nil && !ok {
			// Closed, not open: nothing leaves through a link that is gone.
			notes = append(notes, fmt.Sprintf("uplink %s is gone: the zone reaches nothing beyond the host until nszone watch or up follows the new one", up))
		}
	}
	return out, notes
}

// linkAndFileGaps is what of the zone's namespace pin, link, addresses,
// routes and files is missing (what no nf_tables generation covers), and
// with inner what of its inner wall.
func (m *Manager) linkAndFileGaps(name string, rec *Record, inner bool) []string {
	var out []string
	id, err := m.Kernel.NamespaceID(name)
	switch {
	case err != nil:
		out = append(out, fmt.Sprintf("namespace pin %s/%s", netns.PinDir, name))
	case id != rec.Netns:
		out = append(out, fmt.Sprintf("namespace pin %s/%s (points at another namespace)", netns.PinDir, name))
	default:
		gaps, err := m.Kernel.InspectPair(rec.Pair, m.hostLinks)
		if err != nil {
			gaps = append(gaps, err.Error())
		}
		out = append(out, gaps...)
		if inner {
			out = append(out, m.innerMissing(name, rec)...)
		}
	}
	for _, f := range []string{"resolv.conf", "nsswitch.conf"} {
		p := m.path(EtcNetns, name, f)
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			out = append(out, p)
		}
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// innerMissing reports what of the zone's inner wall is not in place.
func (m *Manager) innerMissing(name string, rec *Record) []string {
	return m.Inner.Missing(name, rec.Policy, rec.LAN)
}

// newHostAddrs lists the host addresses (with the zone's gateway) that the
// zone's inner wall does not list and that it would treat otherwise than as
// the host's: for an address it already blocks as lan, internet or another
// zone's, or allows anyway, being the host's changes nothing.
func newHostAddrs(rec *Record, now []netip.Addr) []netip.Addr {
	z := rec.Policy
	var out []netip.Addr
	for _, a := range now {
		if slices.Contains(z.HostAddrs, a) {
			continue
		}
		if firewall.InnerVerdict(z, rec.LAN, a) != z.Host {
			out = append(out, a)
		}
	}
	return out
}
