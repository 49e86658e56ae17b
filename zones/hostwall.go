package zones

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/firewall/nft"
)

// HostWall is the host wall's second home: nftables tables of nszone's own
// in the host's namespace, which decide by interface and which no reload of
// the host's iptables rules touches (see firewall/host.go).
type HostWall interface {
	// Apply makes the tables hold p's host wall; no zones removes them.
	Apply(p firewall.Policy, log *slog.Logger) (bool, error)
	// Gaps reads the tables once and returns what says, for any zone, what
	// of its part of p's host wall is not in place.
	Gaps(p firewall.Policy) func(zone string) []string
}

type nftHostWall struct{}

var _ HostWall = nftHostWall{}

func (nftHostWall) Apply(p firewall.Policy, log *slog.Logger) (bool, error) {
	changed, err := nft.ApplyHost(firewall.HostRules(p), log)
	if err != nil {
		return changed, fmt.Errorf("host wall: %w", err)
	}
	return changed, nil
}

func (nftHostWall) Gaps(p firewall.Policy) func(zone string) []string {
	h, err := nft.ReadHost(firewall.HostRules(p))
	return func(zone string) []string {
		if err != nil {
			return []string{fmt.Sprintf("host wall (reading it: %v)", err)}
		}
		gaps, err := h.Missing(zone)
		if err != nil {
			return []string{fmt.Sprintf("host wall (checking it: %v)", err)}
		}
		return gaps
	}
}

// applyHostWall writes the nftables host wall, where the kernel has nftables.
func (m *Manager) applyHostWall(p firewall.Policy) (bool, error) {
	if m.HostWall == nil {
		return false, nil
	}
	return m.HostWall.Apply(p, m.Log)
}

// hostWallGaps returns what says what of a zone's part of p's nftables
// host wall is not in place; nothing where there is no nftables host wall.
// The wall is read once, at the first zone asked about. For one goroutine.
func (m *Manager) hostWallGaps(p firewall.Policy) func(zone string) []string {
	if m.HostWall == nil {
		return func(string) []string { return nil }
	}
	read := sync.OnceValue(func() func(string) []string { return m.HostWall.Gaps(p) })
	return func(zone string) []string { return read()(zone) }
}
