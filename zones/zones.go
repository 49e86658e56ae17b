// Package zones is nszone's domain: it turns a zones file into desired
// zones, reconciles them with the kernel (up, down), and reports what is
// there (status, plan). It is the only package that knows the whole; veth,
// firewall and config each do one part and never import each other.
package zones

import (
	"log/slog"
	"path/filepath"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/firewall/nft"
	"github.com/nszone/nszone/veth"
)

// Where nszone keeps things (the contract names exactly these).
const (
	RunDir   = "/run/nszone"     // records of what is up; gone at reboot like the zones themselves
	StateDir = "/var/lib/nszone" // address allocations, kept across reboots
	EtcNetns = "/etc/netns"      // per-zone resolv.conf and nsswitch.conf
)

// Interface naming: the host end is "nsz-" + zone (at most 15 characters,
// as zone names have at most 11), the zone end is eth0 inside the zone.
const (
	hostIfPrefix = "nsz-"
	ifWildcard   = hostIfPrefix + "+"
	peerName     = "eth0"
	aliasPrefix  = "nszone:"
)

// HostIf is the host end of zone's veth pair.
func HostIf(zone string) string { return hostIfPrefix + zone }

// alias marks both ends of a zone's veth pair as nszone's.
func alias(zone string) string { return aliasPrefix + zone }

// Manager carries what every operation needs.
type Manager struct {
	Log      *slog.Logger
	Firewall firewall.Backend // the host's wall
	Inner    InnerWall        // the wall inside each zone
	HostWall HostWall         // the host's wall in nftables tables of nszone's; nil without nf_tables
	Kernel   Kernel           // namespaces, links, addresses, routes, sysctls
	// Root prefixes RunDir, StateDir and EtcNetns; "" in production. Unit
	// tests point it at a temporary directory.
	Root string

	// hostLinks is the host's side of every zone's link as read once for
	// a whole status (withHostLinks); nil: each zone reads its own.
	hostLinks *veth.HostLinks
}

// withHostLinks returns a copy of m whose checks of zones' links take the
// host's side from one batched read: status then reads it once, not once
// per zone. Should that read fail, each zone reads its own (and says what
// fails).
func (m *Manager) withHostLinks() *Manager {
	host, err := m.Kernel.HostLinks()
	if err != nil {
		return m
	}
	c := *m
	c.hostLinks = host
	return &c
}

// NewManager returns a Manager for the real system: the host's wall on the
// iptables variant of fw, the inner walls on nftables where the kernel has it.
func NewManager(log *slog.Logger, fw *firewall.IPTables) *Manager {
	m := &Manager{Log: log, Firewall: fw, Inner: newInnerWall(fw.Mode), Kernel: linuxKernel{log}}
	if nft.Available() {
		m.HostWall = nftHostWall{}
	}
	return m
}

// Records returns the record of every zone that is up, and their names
// in order: what check probes.
func (m *Manager) Records() (map[string]*Record, []string, error) { return m.records() }

func (m *Manager) path(parts ...string) string {
	return filepath.Join(append([]string{m.Root}, parts...)...)
}

// FirewallMode is the iptables variant of the host's wall: "nft" or
// "legacy" ("" for a backend that is not iptables, in unit tests).
func (m *Manager) FirewallMode() string { return m.Firewall.Variant() }
