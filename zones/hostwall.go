package zones

import (
	"fmt"
	"log/slog"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/firewall/nft"
)

// HostWall is the host wall's second home: nftables tables of nszone's own
// in the host's namespace, which decide by interface and which no reload of
// the host's iptables rules touches (see firewall/host.go).
type HostWall interface {
	// Apply makes the tables hold p's host wall; no zones removes them.
	Apply(p firewall.Policy, log *slog.Logger) (bool, error)
	// Missing says what of zone's part of p's host wall is not in place.
	Missing(p firewall.Policy, zone string) []string
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

func (nftHostWall) Missing(p firewall.Policy, zone string) []string {
	gaps, err := nft.MissingHost(firewall.HostRules(p), zone)
	if err != nil {
		return []string{fmt.Sprintf("host wall (reading it: %v)", err)}
	}
	return gaps
}

// applyHostWall writes the nftables host wall, where the kernel has nftables.
func (m *Manager) applyHostWall(p firewall.Policy) (bool, error) {
	if m.HostWall == nil {
		return false, nil
	}
	return m.HostWall.Apply(p, m.Log)
}

// hostWallMissing is what of zone's part of the nftables host wall is not
// in place; nil where there is none to have.
func (m *Manager) hostWallMissing(p firewall.Policy, zone string) []string {
	if m.HostWall == nil {
		return nil
	}
	return m.HostWall.Missing(p, zone)
}
