package zones

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
)

// Down removes zones: the named ones, else those of f, else (all) every
// zone nszone owns, found through its records and, where a crash lost
// those, through the marks on its interfaces and namespaces. When no zone
// is left, the host gets back every sysctl, iptables-nft table and
// directory as it was, but for a sysctl or table that something else has
// come to depend on: the report says which and why (restoreHost).
func (m *Manager) Down(f *config.File, names []string, all bool) (*Report, error) {
	recs, recNames, err := m.records()
	if err != nil {
		return nil, err
	}
	leftovers, err := m.leftovers(recs)
	if err != nil {
		return nil, err
	}
	var targets []string
	switch {
	case all:
		targets = append(slices.Clone(recNames), leftovers...)
	case len(names) > 0:
		targets = names
	default:
		for _, z := range f.Zones {
			targets = append(targets, z.Name)
		}
	}
	slices.Sort(targets)
	targets = slices.Compact(targets)

	rep := &Report{}
	var gone []string
	for _, name := range targets {
		rec := recs[name]
		if rec == nil && !slices.Contains(leftovers, name) {
			if _, exists, err := m.owned(name, nil); exists && err != nil {
				return rep, err
			}
			if len(names) > 0 {
				rep.note("zone %s is not up", name)
			}
			continue
		}
		gone = append(gone, name)
	}
	// Links and namespaces go first (side by side: deleting a link waits on
	// the kernel): with no link, a zone's rules guard nothing.
	lines := make([]string, len(gone))
	errs := make([]error, len(gone))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, name := range gone {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			var ps []Process
			if r := recs[name]; r != nil {
				ps = m.Kernel.ProcessesIn(r.Netns)
			}
			if errs[i] = m.removeZone(name, recs[name]); errs[i] != nil {
				return
			}
			lines[i] = fmt.Sprintf("zone %s down", name)
			if len(ps) > 0 {
				lines[i] += fmt.Sprintf("; %d program(s) still run in it without network: %s", len(ps), describe(ps))
			}
		}()
	}
	wg.Wait()
	for _, l := range lines {
		if l != "" {
			rep.add("%s", l)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rep, err
	}

	policy := firewall.Policy{IfWildcard: ifWildcard}
	for _, name := range recNames {
		if !slices.Contains(gone, name) {
			policy.Zones = append(policy.Zones, recs[name].Policy)
		}
	}
	for _, name := range recNames {
		if !slices.Contains(gone, name) {
			// Every record holds the lan list of the last up: the remaining
			// zones keep their rules exactly as that up wrote them.
			policy.LAN = recs[name].LAN
			break
		}
	}
	changed, err := firewall.Apply(m.Firewall, firewall.Build(policy), firewall.Tables, m.Log)
	if err != nil {
		return rep, err
	}
	hostChanged, err := m.applyHostWall(policy)
	if err != nil {
		return rep, err
	}
	if changed || hostChanged {
		rep.add("firewall: rules updated")
	}
	if err := fault("down-firewall"); err != nil {
		return rep, err
	}
	if len(policy.Zones) == 0 {
		if _, err := os.Stat(m.hostRecordPath()); err == nil {
			if err := fault("down-host"); err != nil {
				return rep, err
			}
			notes, err := m.restoreHost()
			if err != nil {
				return rep, err
			}
			if len(notes) == 0 {
				rep.add("host restored: forwarding, iptables tables and nszone's directories as before the first up")
			} else {
				rep.add("host restored as before the first up, but for what follows")
				for _, n := range notes {
					rep.add("%s", n)
				}
			}
		}
	}
	if !rep.Changed {
		rep.note("nothing to do: no zone of nszone's was up")
	}
	return rep, nil
}

// leftovers finds zones that have no record but whose marked interface or
// namespace is still there (a crash between creating and recording).
func (m *Manager) leftovers(recs map[string]*Record) ([]string, error) {
	var out []string
	links, err := m.Kernel.LinksWithAlias(aliasPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing nszone's interfaces: %w", err)
	}
	for name, a := range links {
		zone := strings.TrimPrefix(a, aliasPrefix)
		if name == HostIf(zone) && recs[zone] == nil {
			out = append(out, zone)
		}
	}
	pinned, err := m.Kernel.Namespaces()
	if err != nil {
		return nil, err
	}
	for _, zone := range pinned {
		if recs[zone] != nil || !config.ZoneNameRE().MatchString(zone) || slices.Contains(out, zone) {
			continue
		}
		if has, err := m.Kernel.NamespaceHasAlias(zone, alias(zone)); err == nil && has {
			out = append(out, zone)
		}
	}
	return out, nil
}
