package zones

import (
	"maps"
	"slices"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
)

// Explain says what zone's walls, as f and the host would make them now,
// do with a connection the zone opens to d, and why: firewall.Decide over
// the policy up would write, the same matching the rules are built from.
// It changes nothing and needs no zone up.
func (m *Manager) Explain(f *config.File, zone string, d firewall.Dest) (firewall.Verdict, error) {
	if err := checkNames(f, []string{zone}); err != nil {
		return firewall.Verdict{}, err
	}
	recs, _, err := m.records()
	if err != nil {
		return firewall.Verdict{}, err
	}
	fc, err := m.facts(f)
	if err != nil {
		return firewall.Verdict{}, err
	}
	want, err := m.desired(f, nil, fc, recs)
	if err != nil {
		return firewall.Verdict{}, err
	}
	completeInner(&upPlan{want: want, keep: map[string]*Record{}, fc: fc})
	p := firewall.Policy{LAN: fc.lan, IfWildcard: ifWildcard}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		p.Zones = append(p.Zones, want[name].policy)
	}
	return p.Decide(zone, fc.addrs, d)
}

// Classifier says what a destination is to a zone that is up (lan, host,
// internet, zone:NAME), as explain does: firewall.Decide's class over the
// recorded policies and the host's addresses now. The log of refused
// attempts names its entries by it.
func (m *Manager) Classifier() (func(zone string, d firewall.Dest) string, error) {
	recs, _, err := m.records()
	if err != nil {
		return nil, err
	}
	local, err := m.Kernel.HostAddrs()
	if err != nil {
		return nil, err
	}
	p := recordedPolicy(recs)
	return func(zone string, d firewall.Dest) string {
		v, err := p.Decide(zone, local, d)
		if err != nil {
			return ""
		}
		return v.Class
	}, nil
}

// LogDir is where the ring of refused attempts is kept.
func (m *Manager) LogDir() string { return m.path(RunDir, "log") }
