// Package firewall turns zone policies into iptables rules and applies them.
//
// The policy is data: Build maps a Policy to a Ruleset (chains of rules in the
// canonical `iptables -S` form), so golden files, plans and the kernel all
// speak the same text. Apply diffs that Ruleset against what the kernel holds
// and rewrites only the chains that differ, one iptables-restore transaction
// per table, so a policy change is atomic and an unchanged policy costs no
// write at all. The package knows nothing of namespaces or zones files.
//
// Every chain nszone owns is named NSZ-* and every rule in it carries an
// "nszone..." comment, so leftovers are findable without any record. Each
// built-in chain gets exactly one jump, placed first, so rules of other tools
// (Docker's FORWARD DROP, ufw, firewalld) are never consulted before ours:
//
//	filter FORWARD ──► NSZ-FORWARD ─┬─ -i nsz-Z ──► NSZ-Z-out   traffic the zone starts
//	                                ├─ -o nsz-Z ──► NSZ-Z-in    traffic into the zone
//	                                └─ any other nsz-* interface: rejected/dropped
//	filter INPUT   ──► NSZ-INPUT  ──── -i nsz-Z ──► NSZ-Z-host  the zone to the host itself
//	filter OUTPUT  ──► NSZ-OUTPUT ──── -o nsz-Z ──► NSZ-Z-hout  the host into the zone
//	nat POSTROUTING ─► NSZ-POSTROUTING  -s ZONE-NET -o UPLINK -j MASQUERADE
//
// Each NSZ-Z-* chain accepts replies (conntrack ESTABLISHED,RELATED), then the
// zone's allow terms, and ends in a reject, so a forbidden attempt fails fast.
package firewall

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Family is an IP family: iptables or ip6tables.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// Families lists both families in a stable order.
var Families = []Family{IPv4, IPv6}

func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// Prefix is the name prefix of every chain nszone owns.
const Prefix = "NSZ-"

// Comment marks nszone's shared rules; per-zone rules carry Comment+"-"+zone.
const Comment = "nszone"

// Table is the part of one iptables table that nszone owns.
type Table struct {
	// Chains maps an owned chain to its rules, each in `iptables -S` form
	// ("-A CHAIN ...").
	Chains map[string][]string
	// Hooks maps a built-in chain to the owned chain it must jump to first.
	Hooks map[string]string
	// Above maps a built-in chain whose jump into an owned chain is there
	// but not first to the target of its first rule ("DOCKER-USER"): read
	// from the kernel only, so a status can say what came above nszone.
	Above map[string]string
}

func newTable() *Table {
	return &Table{Chains: map[string][]string{}, Hooks: map[string]string{}}
}

// Key names one table of one family.
type Key struct {
	Family Family
	Table  string // "filter" or "nat"
}

func (k Key) String() string { return fmt.Sprintf("%s %s", k.Family, k.Table) }

// Ruleset is everything nszone owns in the kernel's firewall.
type Ruleset map[Key]*Table

// Keys returns the ruleset's tables in a stable order.
func (rs Ruleset) Keys() []Key {
	keys := make([]Key, 0, len(rs))
	for k := range rs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].Family != keys[j].Family {
			return keys[i].Family < keys[j].Family
		}
		return keys[i].Table < keys[j].Table
	})
	return keys
}

func (rs Ruleset) table(f Family, name string) *Table {
	k := Key{f, name}
	t := rs[k]
	if t == nil {
		t = newTable()
		rs[k] = t
	}
	return t
}

// Lines renders a table as `iptables -S` lines: hooks first, then chain
// declarations and rules in name order. Used for golden files and plans.
func (t *Table) Lines() []string {
	var out []string
	for _, b := range slices.Sorted(maps.Keys(t.Hooks)) {
		out = append(out, hookRule(b, t.Hooks[b]))
	}
	names := slices.Sorted(maps.Keys(t.Chains))
	for _, c := range names {
		out = append(out, "-N "+c)
	}
	for _, c := range names {
		out = append(out, t.Chains[c]...)
	}
	return out
}

// String renders the whole ruleset, table by table.
func (rs Ruleset) String() string {
	var b strings.Builder
	for _, k := range rs.Keys() {
		fmt.Fprintf(&b, "# %s\n", k)
		for _, l := range rs[k].Lines() {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// hookRule is the jump from built-in chain b into owned chain c.
func hookRule(b, c string) string {
	return fmt.Sprintf("-A %s -m comment --comment %s -j %s", b, Comment, c)
}
