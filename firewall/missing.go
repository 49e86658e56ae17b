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
	var out []string
	mark := "--comment " + Comment + "-" + zone + " "
	own := Prefix + zone + "-"
	for _, k := range want.Keys() {
		w, c := want[k], cur[k]
		if c == nil {
			c = newTable()
		}
		for _, b := range slices.Sorted(maps.Keys(w.Hooks)) {
			switch above, ok := c.Above[b]; {
			case c.Hooks[b] == w.Hooks[b]:
			case ok:
				out = append(out, fmt.Sprintf("%s: jump from %s to %s %s%s is above it", k, b, w.Hooks[b], NotFirst, above))
			default:
				out = append(out, fmt.Sprintf("%s: jump from %s to %s", k, b, w.Hooks[b]))
			}
		}
		for _, name := range slices.Sorted(maps.Keys(w.Chains)) {
			rules := w.Chains[name]
			have, ok := c.Chains[name]
			if strings.HasPrefix(name, own) {
				if !ok || !slices.Equal(have, rules) {
					out = append(out, fmt.Sprintf("%s: chain %s", k, name))
				}
				continue
			}
			if !slices.Equal(withMark(have, mark), withMark(rules, mark)) {
				out = append(out, fmt.Sprintf("%s: rules in %s", k, name))
			}
		}
	}
	return out
}

func withMark(rules []string, mark string) []string {
	var out []string
	for _, r := range rules {
		if strings.Contains(r, mark) {
			out = append(out, r)
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
