package firewall

import (
	"maps"
	"slices"
)

// The host wall lives twice in the host's namespace: in the iptables chains
// above (NSZ-FORWARD and the rest, behind jumps from the built-in chains),
// and in nftables tables of nszone's own, one per family, holding the same
// rules:
//
//	table ip nszone / table ip6 nszone
//	  chain forward  hook forward  ──► NSZ-FORWARD's rules ──► NSZ-Z-out, NSZ-Z-in
//	  chain input    hook input    ──► NSZ-INPUT's rules   ──► NSZ-Z-host
//	  chain output   hook output   ──► NSZ-OUTPUT's rules  ──► NSZ-Z-hout
//
// The tables decide by interface, never by the host's addresses: whatever
// a zone sends to any address of the host's, old or new, arrives on the
// input hook from its own link. A reload of the host's iptables rules
// (iptables -F, iptables-restore, firewalld, ufw, Docker restarting) does
// not touch them, and a drop in any base chain is final for nftables, so
// rules of others placed above nszone's jumps open nothing either.

// HostChains maps the host wall's dispatch chains to the built-in chains
// whose hooks their nftables base chains take.
var HostChains = map[string]string{chainForward: "FORWARD", chainInput: "INPUT", chainOutput: "OUTPUT"}

// HostRules returns p's host wall per family as structured rules: the
// dispatch chains first (forward, input, output), then every zone's chains
// in name order. No zones, no rules.
func HostRules(p Policy) map[Family][]Rule {
	out := map[Family][]Rule{}
	if len(p.Zones) == 0 {
		return out
	}
	for _, f := range Families {
		chains := filterChains(p, f)
		names := []string{chainForward, chainInput, chainOutput}
		for _, name := range slices.Sorted(maps.Keys(chains)) {
			if _, dispatch := HostChains[name]; !dispatch {
				names = append(names, name)
			}
		}
		for _, name := range names {
			for _, r := range chains[name] {
				out[f] = append(out[f], r.structured(name))
			}
		}
	}
	return out
}

// structured is r as a Rule of chain.
func (r rule) structured(chain string) Rule {
	return Rule{Chain: chain, Src: r.src, Dst: r.dst, In: r.in, Out: r.out,
		Proto: r.proto, Matches: r.matches, Target: r.target, Comment: r.comment}
}
