package firewall

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// NotFirst marks a gap that is a jump in place but not first: others' rules
// come before nszone's there.
const NotFirst = "not first: "

// Missing lists what of zone's part of want is absent from, or differs in,
// cur: the hooks every zone relies on, the zone's own chains, and its
// dispatch rules in the shared chains. Empty means the policy is in place.
func Missing(cur, want Ruleset, zone string) []string {
	return NewChecker(cur, want).Missing(zone)
}

// Checker tells Missing for any number of zones of the same cur and want,
// having sorted every chain's rules by the zone their comment names once:
// status and plan check each zone without reading every rule again.
type Checker struct {
	cur, want           Ruleset
	curMarks, wantMarks map[Key]map[string]map[string][]string // table -> chain -> comment -> rules
	marked              map[Key]map[string][]string            // table -> comment -> chains holding such rules
}

// NewChecker prepares the checks of cur against want.
func NewChecker(cur, want Ruleset) *Checker {
	c := &Checker{cur: cur, want: want, curMarks: byComment(cur), wantMarks: byComment(want), marked: map[Key]map[string][]string{}}
	for _, marks := range []map[Key]map[string]map[string][]string{c.curMarks, c.wantMarks} {
		for k, chains := range marks {
			if c.marked[k] == nil {
				c.marked[k] = map[string][]string{}
			}
			for name, byMark := range chains {
				for m := range byMark {
					if !slices.Contains(c.marked[k][m], name) {
						c.marked[k][m] = append(c.marked[k][m], name)
					}
				}
			}
		}
	}
	return c
}

// byComment sorts each chain's rules by their comment, in order.
func byComment(rs Ruleset) map[Key]map[string]map[string][]string {
	out := map[Key]map[string]map[string][]string{}
	for k, t := range rs {
		chains := map[string]map[string][]string{}
		for name, rules := range t.Chains {
			marks := map[string][]string{}
			for _, r := range rules {
				if _, rest, ok := strings.Cut(r, "--comment "); ok {
					c, _, _ := strings.Cut(rest, " ")
					marks[c] = append(marks[c], r)
				}
			}
			chains[name] = marks
		}
		out[k] = chains
	}
	return out
}

// Missing is Missing(cur, want, zone).
func (c *Checker) Missing(zone string) []string {
	var out []string
	mark := Comment + "-" + zone
	own := Prefix + zone + "-"
	for _, k := range c.want.Keys() {
		w, cur := c.want[k], c.cur[k]
		if cur == nil {
			cur = newTable()
		}
		out = append(out, hookGaps(k, cur, w)...)
		// The zone's own chains, and the others where either side has
		// rules of the zone's: elsewhere both have none.
		var names []string
		for name := range w.Chains {
			if strings.HasPrefix(name, own) || slices.Contains(c.marked[k][mark], name) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			if strings.HasPrefix(name, own) {
				if have, ok := cur.Chains[name]; !ok || !slices.Equal(have, w.Chains[name]) {
					out = append(out, fmt.Sprintf("%s: chain %s", k, name))
				}
				continue
			}
			if !slices.Equal(c.curMarks[k][name][mark], c.wantMarks[k][name][mark]) {
				out = append(out, fmt.Sprintf("%s: rules in %s", k, name))
			}
		}
	}
	return out
}

// hookGaps lists the jumps from the built-in chains of table k that cur
// lacks, or holds below others' rules.
func hookGaps(k Key, cur, want *Table) []string {
	var out []string
	for _, b := range slices.Sorted(maps.Keys(want.Hooks)) {
		switch above, ok := cur.Above[b]; {
		case cur.Hooks[b] == want.Hooks[b]:
		case ok:
			out = append(out, fmt.Sprintf("%s: jump from %s to %s %s%s is above it", k, b, want.Hooks[b], NotFirst, above))
		default:
			out = append(out, fmt.Sprintf("%s: jump from %s to %s", k, b, want.Hooks[b]))
		}
	}
	return out
}

// MissingByCount is Missing for a quick check that has only each chain's
// rule comments (chain -> comments in order, per table): a hook must be
// the first rule of its built-in chain, and every chain of the zone's, and
// every rule of the zone's in the shared chains, must be there in number.
// It sees flushed or deleted rules and chains, not rules changed in place.
func MissingByCount(comments map[Key]map[string][]string, want Ruleset, zone string) []string {
	var out []string
	zoneComment := Comment + "-" + zone
	own := Prefix + zone + "-"
	for _, k := range want.Keys() {
		w, c := want[k], comments[k]
		for _, b := range slices.Sorted(maps.Keys(w.Hooks)) {
			switch {
			case len(c[b]) > 0 && c[b][0] == Comment:
			case slices.Contains(c[b], Comment):
				out = append(out, fmt.Sprintf("%s: jump from %s to %s %sanother program's rule is above it", k, b, w.Hooks[b], NotFirst))
			default:
				out = append(out, fmt.Sprintf("%s: jump from %s to %s", k, b, w.Hooks[b]))
			}
		}
		for _, name := range slices.Sorted(maps.Keys(w.Chains)) {
			rules := w.Chains[name]
			if strings.HasPrefix(name, own) {
				if len(c[name]) != len(rules) {
					out = append(out, fmt.Sprintf("%s: chain %s", k, name))
				}
				continue
			}
			// The zone's rules there, and the shared ones all zones rely on.
			mark, shared := "--comment "+zoneComment+" ", "--comment "+Comment+" "
			if len(withMark(rules, mark)) != countOf(c[name], zoneComment) ||
				len(withMark(rules, shared)) != countOf(c[name], Comment) {
				out = append(out, fmt.Sprintf("%s: rules in %s", k, name))
			}
		}
	}
	return out
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

// ChainsOf lists the chains of t that zone's part of it lives in: the
// built-in chains with hooks, the shared chains, and the zone's own.
func ChainsOf(t *Table, zone string) []string {
	out := slices.Sorted(maps.Keys(t.Hooks))
	for _, name := range slices.Sorted(maps.Keys(t.Chains)) {
		if !strings.HasPrefix(name, Prefix) || strings.HasPrefix(name, Prefix+zone+"-") || !isZoneChain(name) {
			out = append(out, name)
		}
	}
	return out
}

// isZoneChain reports whether name is some zone's own chain (NSZ-Z-out and
// the like), as opposed to a shared one (NSZ-FORWARD).
func isZoneChain(name string) bool {
	for _, suffix := range []string{"-out", "-in", "-host", "-hout"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// withMark is the rules of the list that carry mark ("--comment C ").
func withMark(rules []string, mark string) []string {
	var out []string
	for _, r := range rules {
		if strings.Contains(r, mark) {
			out = append(out, r)
		}
	}
	return out
}
