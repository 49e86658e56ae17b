package zones

import (
	"fmt"
	"strings"
)

// Coexistence names the host's native nftables chains (not iptables', not
// nszone's) that drop the zones' traffic, with the rules an admin adds to
// let it through. In nftables a drop in any base chain is final, whatever
// nszone's own chains accept, so such a chain makes every zone's
// connections time out; nszone never edits another program's table.
func (m *Manager) Coexistence() []string {
	found, err := m.Kernel.ForeignDrops()
	if err != nil {
		return []string{fmt.Sprintf("warning: reading the host's nftables ruleset for chains that drop zone traffic: %v", err)}
	}
	var out []string
	for _, f := range found {
		out = append(out, fmt.Sprintf("warning: %s; to let the zones' traffic through (nszone's walls still decide it): %s",
			f, strings.Join(f.Fixes, "; ")))
	}
	return out
}
