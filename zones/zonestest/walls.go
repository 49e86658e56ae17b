package zonestest

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/zones"
)

// Inner is the Machine's zones.InnerWall: each zone namespace's rules, in
// `iptables -S` text.
type Inner struct{ m *Machine }

var _ zones.InnerWall = Inner{}

func (w Inner) Apply(zone string, policy firewall.Zone, lan []netip.Prefix, _ bool, _ *slog.Logger) (bool, error) {
	want := firewall.BuildInner(policy, lan).String()
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	if ns := w.m.namespaces[zone]; ns == nil || ns.stale {
		return false, fmt.Errorf("inner wall of %s: %w", zone, w.m.notExist(zone))
	}
	if cur, ok := w.m.inner[zone]; ok && cur == want {
		return false, nil
	}
	w.m.inner[zone] = want
	delete(w.m.counters, zone)
	w.m.namespaces[zone].gen++
	return true, nil
}

func (w Inner) Generational() bool { return true }

// Counters are those Machine.Count gave the zone.
func (w Inner) Counters(zone string, _ firewall.Zone, _ []netip.Prefix) (firewall.Counters, error) {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	if _, ok := w.m.inner[zone]; !ok {
		return firewall.Counters{}, fmt.Errorf("inner wall of %s: %w", zone, w.m.notExist(zone))
	}
	return w.m.counters[zone], nil
}

func (w Inner) Missing(zone string, policy firewall.Zone, lan []netip.Prefix) []string {
	want := firewall.BuildInner(policy, lan).String()
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	w.m.wallReads++
	if cur, ok := w.m.inner[zone]; !ok || cur != want {
		return []string{"inner wall: rules inside the zone"}
	}
	return nil
}

// Wall is the Machine's zones.HostWall: the nftables tables' rules.
type Wall struct{ m *Machine }

var _ zones.HostWall = Wall{}

func (w Wall) Apply(p firewall.Policy, _ *slog.Logger) (bool, error) {
	want := firewall.HostRules(p)
	w.m.mu.Lock()
	if equalRules(w.m.hostWall, want, func(firewall.Rule) bool { return true }) {
		w.m.mu.Unlock()
		return false, nil
	}
	w.m.hostWall = want
	w.m.hostGen++
	hook := w.m.onHostWall
	w.m.mu.Unlock()
	if hook != nil {
		hook()
	}
	return true, nil
}

// Gaps reads the wall once, and compares the dispatch rules and a zone's
// own, as the real check does.
func (w Wall) Gaps(p firewall.Policy) func(zone string) []string {
	want := firewall.HostRules(p)
	w.m.mu.Lock()
	w.m.wallReads++
	w.m.hostReads++
	have := maps.Clone(w.m.hostWall) // as read now, whatever comes after
	w.m.mu.Unlock()
	return func(zone string) []string {
		mine := func(r firewall.Rule) bool {
			return r.Comment == firewall.Comment || r.Comment == firewall.Comment+"-"+zone
		}
		if !equalRules(have, want, mine) {
			return []string{"host wall: zone " + zone + "'s nftables rules"}
		}
		return nil
	}
}

func equalRules(a, b map[firewall.Family][]firewall.Rule, keep func(firewall.Rule) bool) bool {
	for _, f := range firewall.Families {
		if !slices.Equal(texts(a[f], keep), texts(b[f], keep)) {
			return false
		}
	}
	return true
}

func texts(rules []firewall.Rule, keep func(firewall.Rule) bool) []string {
	var out []string
	for _, r := range rules {
		if keep(r) {
			out = append(out, r.Text())
		}
	}
	return out
}
