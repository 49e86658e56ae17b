package zones

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
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
	InFile      bool      `json:"in_file"`
	// Users and Groups may enter without sudo (through nszone-enter).
	Users      []string `json:"users"`
	Groups     []string `json:"groups"`
	NoNewPrivs bool     `json:"no_new_privs"`
}

// Status is the whole of `status`.
type Status struct {
	Zones    []ZoneStatus `json:"zones"`
	Firewall string       `json:"firewall"` // the iptables variant in use
}

// Status reports the named zones (else those of f and every zone that is up).
func (m *Manager) Status(f *config.File, names []string) (*Status, error) {
	recs, recNames, err := m.records()
	if err != nil {
		return nil, err
	}
	want := m.recordedRuleset(recs)
	now := hostNow(recs)
	cur, err := firewall.Current(m.Firewall, firewall.Tables)
	if err != nil {
		return nil, err
	}
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
	st := &Status{Zones: []ZoneStatus{}}
	if ipt, ok := m.Firewall.(*firewall.IPTables); ok {
		st.Firewall = "iptables-" + ipt.Mode
	}
	for _, name := range list {
		zs := ZoneStatus{Name: name, Netns: veth.PinDir + "/" + name, HostIf: HostIf(name),
			InFile: f.Zone(name) != nil, Processes: []Process{}, DNS: []string{}, DNSOpenings: []string{}, Addresses: []string{}, Allow: []string{},
			Users: []string{}, Groups: []string{}}
		if z := f.Zone(name); z != nil {
			for _, t := range z.Allow {
				zs.Allow = append(zs.Allow, t.String())
			}
		}
		rec := recs[name]
		if rec == nil {
			zs.State = StateDown
			if _, exists, err := owned(name, nil); exists && err == nil {
				zs.State, zs.Missing = StateDegraded, []string{"record (leftover of a crash: run nszone up or down)"}
			} else if has, _ := veth.LinkExists(HostIf(name)); has {
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
		for _, p := range []veth.Pair{rec.Pair} {
			if p.Zone4.IsValid() {
				zs.Addresses = append(zs.Addresses, p.Zone4.String())
			}
			if p.Zone6.IsValid() {
				zs.Addresses = append(zs.Addresses, p.Zone6.String())
			}
		}
		zs.Processes = nonNil(processesIn(rec.Netns))
		zs.Missing = m.missing(name, rec, cur, want, now)
		zs.State = StateUp
		if len(zs.Missing) > 0 {
			zs.State = StateDegraded
		}
		st.Zones = append(st.Zones, zs)
	}
	return st, nil
}

// recordedRuleset is the ruleset the records say should be in place.
func (m *Manager) recordedRuleset(recs map[string]*Record) firewall.Ruleset {
	p := firewall.Policy{IfWildcard: ifWildcard}
	for _, name := range sortedKeys(recs) {
		p.Zones = append(p.Zones, recs[name].Policy)
		p.LAN = recs[name].LAN
	}
	return firewall.Build(p)
}

// missing lists what of a recorded zone is not in place.
func (m *Manager) missing(name string, rec *Record, cur, want firewall.Ruleset, hostNow []netip.Addr) []string {
	var out []string
	for _, gap := range firewall.Missing(cur, want, name) {
		out = append(out, "firewall "+gap)
	}
	return append(out, m.zoneGaps(name, rec, hostNow)...)
}

// hostNow is the host's own addresses now, as the inner walls list them
// (without any zone's gateway). An address that came after up (a VPN,
// docker0) is one the inner walls do not know: a zone without host could
// reach it once the host's rules are flushed, and a zone with host could
// not reach it at all.
func hostNow(recs map[string]*Record) []netip.Addr {
	addrs, err := veth.HostAddrs()
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
// wall: its namespace, link, inner wall, uplink and files.
func (m *Manager) zoneGaps(name string, rec *Record, hostNow []netip.Addr) []string {
	var out []string
	if hostNow != nil && !slices.Equal(withGateway(hostNow, rec.Pair), rec.Policy.HostAddrs) {
		out = append(out, "the host's addresses changed since up: the inner wall does not know them (run nszone up)")
	}
	id, err := veth.PinID(name)
	switch {
	case err != nil:
		out = append(out, fmt.Sprintf("namespace pin %s/%s", veth.PinDir, name))
	case id != rec.Netns:
		out = append(out, fmt.Sprintf("namespace pin %s/%s (points at another namespace)", veth.PinDir, name))
	default:
		gaps, err := veth.InspectPair(rec.Pair)
		if err != nil {
			gaps = append(gaps, err.Error())
		}
		out = append(out, gaps...)
		out = append(out, m.innerMissing(name, rec)...)
	}
	if up := rec.Policy.Uplink; up != "" {
		if ok, err := veth.LinkExists(up); err == nil && !ok {
			out = append(out, fmt.Sprintf("uplink %s (gone: run nszone up to follow the new one)", up))
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
