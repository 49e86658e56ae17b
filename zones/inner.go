package zones

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/firewall/nft"
	"github.com/nszone/nszone/netns"
	"golang.org/x/sys/unix"
)

// InnerWall enforces a zone's policy a second time, inside the zone's own
// namespace, where only nszone writes rules.
type InnerWall interface {
	// Apply makes the zone's inner wall match policy; fresh says the
	// namespace was just made and holds no rules yet.
	Apply(zone string, policy firewall.Zone, lan []netip.Prefix, fresh bool, log *slog.Logger) (bool, error)
	// Missing says what of the wall is not in place; empty means whole.
	Missing(zone string, policy firewall.Zone, lan []netip.Prefix) []string
	// Generational reports whether the wall's rules move the namespace's
	// nf_tables generation (see vouch.go).
	Generational() bool
	// Counters reads what the zone sent, let through and refused, since its
	// wall was last written.
	Counters(zone string, policy firewall.Zone, lan []netip.Prefix) (firewall.Counters, error)
}

// newInnerWall prefers nftables over netlink (no process per zone and
// family, one atomic batch for both families); iptables in the host's
// variant serves kernels without nf_tables.
func newInnerWall(mode string) InnerWall {
	ipt := &iptablesWall{mode: mode}
	if nft.Available() {
		return &nftWall{old: ipt}
	}
	return ipt
}

type nftWall struct {
	old *iptablesWall // an earlier nszone's iptables inner wall, cleared on the switch
}

func (w *nftWall) Apply(zone string, policy firewall.Zone, lan []netip.Prefix, fresh bool, log *slog.Logger) (bool, error) {
	var iptables bool
	changed, err := inZone(zone, func(ns *netns.Handle) (changed bool, err error) {
		changed, iptables, err = nft.ApplyInner(ns, firewall.InnerRules(policy, lan), log)
		return changed, err
	})
	if err != nil && !policy.NoLog && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP)) {
		// The log rule needs nfnetlink_log, which a trimmed kernel may lack.
		err = fmt.Errorf("%w (if this kernel lacks nfnetlink_log, log: false on the zone leaves its log rule out)", err)
	}
	if err != nil || !changed || fresh {
		return changed, err
	}
	if w.old.mode == "nft" && !iptables {
		return changed, nil // no iptables-nft table in the zone: nothing to clear
	}
	// Both walls must pass a packet: stale iptables chains from before the
	// switch would keep blocking what a widened policy allows.
	_, err = firewall.Apply(w.old.backend(zone), firewall.Ruleset{}, firewall.InnerTables, log)
	return changed, err
}

func (w *nftWall) Generational() bool { return true }

func (w *nftWall) Missing(zone string, policy firewall.Zone, lan []netip.Prefix) []string {
	gaps, err := inZone(zone, func(ns *netns.Handle) ([]string, error) {
		return nft.Missing(ns, firewall.InnerRules(policy, lan))
	})
	if err != nil {
		return []string{fmt.Sprintf("inner wall (reading it: %v)", err)}
	}
	return gaps
}

func (w *nftWall) Counters(zone string, policy firewall.Zone, lan []netip.Prefix) (firewall.Counters, error) {
	return inZone(zone, func(ns *netns.Handle) (firewall.Counters, error) {
		return nft.Counters(ns, firewall.InnerRules(policy, lan))
	})
}

// inZone calls fn with the zone's namespace open; errors name the zone.
func inZone[T any](zone string, fn func(*netns.Handle) (T, error)) (T, error) {
	ns, err := netns.OpenNamed(zone)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("zone %s: %w", zone, err)
	}
	defer ns.Close()
	v, err := fn(ns)
	if err != nil {
		return v, fmt.Errorf("zone %s: %w", zone, err)
	}
	return v, nil
}

// iptablesWall runs iptables-save and iptables-restore inside the zone.
type iptablesWall struct{ mode string }

func (w *iptablesWall) backend(zone string) firewall.Backend {
	return &firewall.IPTables{Mode: w.mode, Start: func(c *exec.Cmd) error { return netns.StartIn(zone, c) }}
}

func (w *iptablesWall) Generational() bool { return false }

// errNoCounters: the iptables inner wall serves kernels without nf_tables,
// and reading its counters would take an iptables-save -c per zone.
var errNoCounters = errors.New("counters need the nftables inner wall")

func (w *iptablesWall) Counters(string, firewall.Zone, []netip.Prefix) (firewall.Counters, error) {
	return firewall.Counters{}, errNoCounters
}

func (w *iptablesWall) Apply(zone string, policy firewall.Zone, lan []netip.Prefix, _ bool, log *slog.Logger) (bool, error) {
	return firewall.Apply(w.backend(zone), firewall.BuildInner(policy, lan), firewall.InnerTables, log)
}

func (w *iptablesWall) Missing(zone string, policy firewall.Zone, lan []netip.Prefix) []string {
	cur, err := firewall.Current(w.backend(zone), firewall.InnerTables)
	if err != nil {
		return []string{fmt.Sprintf("inner wall (reading it: %v)", err)}
	}
	want := firewall.BuildInner(policy, lan)
	var out []string
	for _, k := range want.Keys() {
		if c := cur[k]; c == nil || (firewall.Ruleset{k: c}).String() != (firewall.Ruleset{k: want[k]}).String() {
			out = append(out, fmt.Sprintf("inner wall: %s rules inside the zone", k))
		}
	}
	return out
}
