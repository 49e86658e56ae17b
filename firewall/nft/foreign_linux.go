package nft

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/mdlayher/netlink"
	"github.com/nszone/nszone/firewall"
	"golang.org/x/sys/unix"
)

// Foreign is a base chain of another program's nftables table that drops (or
// may drop) zone traffic. In nftables a drop in any base chain of a hook is
// final, whatever nszone's own chains accept, so such a chain makes every
// zone's connections time out. nszone never edits another program's table:
// it names the chain and the rules an admin adds.
type Foreign struct {
	Family string // "inet", "ip", "ip6"
	Table  string
	Chain  string
	Hook   string // "forward", "input", "output"
	Why    string // "policy drop", "rule 3 (handle 7) drops everything it reaches"
	// Fixes are the rules an admin adds, as full nft commands, one per
	// direction of zone traffic the chain does not accept first. nszone's
	// own walls still decide that traffic: accepting it in a foreign chain
	// opens nothing nszone forbids.
	Fixes []string
}

// String names the chain, its hook and why it drops zone traffic, on one line.
func (f Foreign) String() string {
	return fmt.Sprintf("nftables table %s %s, chain %s (hook %s) drops zone traffic: %s", f.Family, f.Table, f.Chain, f.Hook, f.Why)
}

// ForeignDrops lists the base chains of other programs' nftables tables in
// the current network namespace that would drop zone traffic: filter chains
// on the forward, input and output hooks of the inet, ip and ip6 families
// whose policy is drop or that hold a rule dropping or rejecting every
// packet it reaches, unless `iifname "nsz-*" accept` (and, where the
// direction needs it, `oifname "nsz-*" accept`) comes first. It reads over
// netlink and writes nothing. Sorted by family, table and chain.
//
// Skipped: nszone's own tables (Table, in any family), dormant tables, and
// the tables of iptables-nft (ip and ip6 filter, nat, mangle, raw,
// security), whose rules nszone's iptables host wall handles. A drop behind
// a jump to another chain is not seen; neither is a conditional drop (`ct
// state invalid drop`), which is the admin's deliberate choice.
func ForeignDrops() ([]Foreign, error) { return foreignDropsIn(0) }

// zoneIfPrefix begins the name of every zone's host-side interface
// (zones.hostIfPrefix; repeated here, as zones builds on this package).
const zoneIfPrefix = "nsz-"

// NF_DROP and NF_ACCEPT (linux/netfilter.h), as verdict codes and policies.
const (
	nfDrop   = 0
	nfAccept = 1
)

var familyNames = map[byte]string{
	unix.NFPROTO_INET: "inet",
	unix.NFPROTO_IPV4: "ip",
	unix.NFPROTO_IPV6: "ip6",
}

var hookNames = map[uint32]string{
	unix.NF_INET_LOCAL_IN:  "input",
	unix.NF_INET_FORWARD:   "forward",
	unix.NF_INET_LOCAL_OUT: "output",
}

// iptablesTables are the tables iptables-nft makes in the ip and ip6 families.
var iptablesTables = map[string]bool{"filter": true, "nat": true, "mangle": true, "raw": true, "security": true}

// direction is which interface of a zone's traffic a rule names.
type direction int

const (
	fromZone direction = iota // iifname "nsz-*": the zone sends
	toZone                    // oifname "nsz-*": the zone receives
)

var dirMatch = [...]string{fromZone: "iifname", toZone: "oifname"}

// hookNeeds are the directions of zone traffic each hook sees. Forward sees
// both (a zone's connection out and the replies back); input only what
// comes from a zone, output only what goes to one.
var hookNeeds = map[uint32][]direction{
	unix.NF_INET_LOCAL_IN:  {fromZone},
	unix.NF_INET_FORWARD:   {fromZone, toZone},
	unix.NF_INET_LOCAL_OUT: {toZone},
}

// baseCandidate is a base chain that may drop zone traffic.
type baseCandidate struct {
	family      byte
	table, name string
	hook        uint32
	policy      uint32
}

// ruleKind is what a rule does to zone traffic, as far as the check cares.
type ruleKind int

const (
	ruleOther      ruleKind = iota // anything else: conditional, jumps, unknown expressions
	ruleDrop                       // drops every packet it reaches
	ruleReject                     // rejects every packet it reaches
	ruleAcceptFrom                 // iifname "nsz-*" accept
	ruleAcceptTo                   // oifname "nsz-*" accept
)

// foreignRule is one rule of a candidate chain.
type foreignRule struct {
	handle uint64
	kind   ruleKind
}

// foreignDropsIn is ForeignDrops in the network namespace ns (a file
// descriptor; 0 is the current one).
func foreignDropsIn(ns int) ([]Foreign, error) {
	c, err := dialIn(ns)
	if err != nil {
		return nil, err
	}
	defer c.Close()

	type tableKey struct {
		family byte
		name   string
	}
	dormant := map[tableKey]bool{}
	err = dump(c, unix.NFPROTO_UNSPEC, unix.NFT_MSG_GETTABLE, nil, func(family byte, ad *netlink.AttributeDecoder) {
		name, flags := decodeTable(ad)
		dormant[tableKey{family, name}] = flags&unix.NFT_TABLE_F_DORMANT != 0
	})
	if err != nil {
		return nil, fmt.Errorf("reading nftables tables: %w", err)
	}

	var cands []baseCandidate
	err = dump(c, unix.NFPROTO_UNSPEC, unix.NFT_MSG_GETCHAIN, nil, func(family byte, ad *netlink.AttributeDecoder) {
		d := decodeChain(ad)
		ch := baseCandidate{family: family, table: d.table, name: d.name, policy: nfAccept}
		if d.policy != nil {
			ch.policy = *d.policy
		}
		if d.hook != nil {
			ch.hook = *d.hook
		}
		if d.hook == nil || d.typ != "filter" || familyNames[family] == "" || hookNames[ch.hook] == "" ||
			ch.table == Table || dormant[tableKey{family, ch.table}] ||
			(family != unix.NFPROTO_INET && iptablesTables[ch.table]) {
			return
		}
		cands = append(cands, ch)
	})
	if err != nil {
		return nil, fmt.Errorf("reading nftables chains: %w", err)
	}

	var out []Foreign
	for _, ch := range cands {
		rules, err := chainRules(c, ch)
		if errors.Is(err, unix.ENOENT) {
			continue // deleted since the chains were read
		}
		if err != nil {
			return nil, fmt.Errorf("reading the rules of %s %s chain %s: %w", familyNames[ch.family], ch.table, ch.name, err)
		}
		if f, ok := judge(ch, rules); ok {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Family != b.Family {
			return a.Family < b.Family
		}
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		return a.Chain < b.Chain
	})
	return out, nil
}

// chainRules reads the rules of one chain, in order, each classified.
func chainRules(c *netlink.Conn, ch baseCandidate) ([]foreignRule, error) {
	// The kernel dumps only this chain's rules; the check below holds on
	// kernels that ignore the filter.
	filter := []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstring(ch.table)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstring(ch.name)},
	}
	var rules []foreignRule
	err := dump(c, ch.family, unix.NFT_MSG_GETRULE, filter, func(family byte, ad *netlink.AttributeDecoder) {
		var table, chain string
		var r foreignRule
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_TABLE:
				table = ad.String()
			case unix.NFTA_RULE_CHAIN:
				chain = ad.String()
			case unix.NFTA_RULE_HANDLE:
				r.handle = ad.Uint64()
			case unix.NFTA_RULE_EXPRESSIONS:
				ad.Nested(func(nad *netlink.AttributeDecoder) error {
					r.kind = classify(decodeExprs(nad))
					return nil
				})
			}
		}
		if family == ch.family && table == ch.table && chain == ch.name {
			rules = append(rules, r)
		}
	})
	return rules, err
}

// judge decides whether chain ch, with its rules, drops zone traffic, and
// what fixes it. Rules are first-match: an accept of zone traffic counts
// only before the first rule that drops everything, and rules after that
// one are never reached.
func judge(ch baseCandidate, rules []foreignRule) (Foreign, bool) {
	var accepted [len(dirMatch)]bool
	why := ""
	for n, r := range rules {
		switch r.kind {
		case ruleAcceptFrom:
			accepted[fromZone] = true
		case ruleAcceptTo:
			accepted[toZone] = true
		case ruleDrop, ruleReject:
			verb := map[ruleKind]string{ruleDrop: "drops", ruleReject: "rejects"}[r.kind]
			why = fmt.Sprintf("rule %d (handle %d) %s everything it reaches", n+1, r.handle, verb)
		}
		if why != "" {
			break
		}
	}
	if why == "" && ch.policy == nfDrop {
		why = "policy drop"
	}
	if why == "" {
		return Foreign{}, false
	}
	f := Foreign{Family: familyNames[ch.family], Table: ch.table, Chain: ch.name, Hook: hookNames[ch.hook], Why: why}
	for _, d := range hookNeeds[ch.hook] {
		if !accepted[d] {
			// The shell strips the quotes; nft takes the bare wildcard too.
			f.Fixes = append(f.Fixes, fmt.Sprintf(`nft insert rule %s %s %s %s "%s*" accept`, f.Family, f.Table, f.Chain, dirMatch[d], zoneIfPrefix))
		}
	}
	if len(f.Fixes) == 0 {
		return Foreign{}, false
	}
	return f, true
}

// ruleExpr is what classify needs of one expression of a rule.
type ruleExpr struct {
	name    string
	reg     uint32         // meta: destination register; cmp: source register
	key     uint32         // meta: what it loads
	op      uint32         // cmp: the comparison
	data    []byte         // cmp: the value compared with
	verdict *int32         // immediate into the verdict register: its code
	counted firewall.Count // counter: what it counted
}

// decodeExprs reads a rule's NFTA_RULE_EXPRESSIONS, decoding only the
// attributes of immediate, meta, cmp and counter; any other expression keeps just
// its name, which is enough to make the rule count as something else.
func decodeExprs(ad *netlink.AttributeDecoder) []ruleExpr {
	var out []ruleExpr
	for ad.Next() {
		if ad.Type() != unix.NFTA_LIST_ELEM {
			continue
		}
		var e ruleExpr
		ad.Nested(func(ead *netlink.AttributeDecoder) error {
			for ead.Next() {
				switch ead.Type() {
				case unix.NFTA_EXPR_NAME:
					e.name = ead.String()
				case unix.NFTA_EXPR_DATA:
					ead.Nested(func(dad *netlink.AttributeDecoder) error {
						decodeExprData(&e, dad)
						return nil
					})
				}
			}
			return nil
		})
		out = append(out, e)
	}
	return out
}

// decodeExprData fills e from its NFTA_EXPR_DATA; e.name precedes it in
// every message the kernel sends.
func decodeExprData(e *ruleExpr, ad *netlink.AttributeDecoder) {
	for ad.Next() {
		switch {
		case e.name == "meta" && ad.Type() == unix.NFTA_META_DREG,
			e.name == "cmp" && ad.Type() == unix.NFTA_CMP_SREG:
			e.reg = ad.Uint32()
		case e.name == "meta" && ad.Type() == unix.NFTA_META_KEY:
			e.key = ad.Uint32()
		case e.name == "cmp" && ad.Type() == unix.NFTA_CMP_OP:
			e.op = ad.Uint32()
		case e.name == "cmp" && ad.Type() == unix.NFTA_CMP_DATA:
			ad.Nested(func(vad *netlink.AttributeDecoder) error {
				for vad.Next() {
					if vad.Type() == unix.NFTA_DATA_VALUE {
						e.data = vad.Bytes()
					}
				}
				return nil
			})
		case e.name == "counter" && ad.Type() == unix.NFTA_COUNTER_PACKETS:
			e.counted.Packets = ad.Uint64()
		case e.name == "counter" && ad.Type() == unix.NFTA_COUNTER_BYTES:
			e.counted.Bytes = ad.Uint64()
		case e.name == "immediate" && ad.Type() == unix.NFTA_IMMEDIATE_DREG:
			e.reg = ad.Uint32()
		case e.name == "immediate" && ad.Type() == unix.NFTA_IMMEDIATE_DATA:
			ad.Nested(func(iad *netlink.AttributeDecoder) error {
				for iad.Next() {
					if iad.Type() != unix.NFTA_DATA_VERDICT {
						continue
					}
					iad.Nested(func(vad *netlink.AttributeDecoder) error {
						for vad.Next() {
							if vad.Type() == unix.NFTA_VERDICT_CODE {
								code := int32(vad.Uint32())
								e.verdict = &code
							}
						}
						return nil
					})
				}
				return nil
			})
		}
	}
	if e.name == "immediate" && e.reg != unix.NFT_REG_VERDICT {
		e.verdict = nil // a value for a register, not a verdict
	}
}

// classify tells what a rule does to zone traffic from its expressions.
func classify(exprs []ruleExpr) ruleKind {
	// Counters and logs see every packet and stop none.
	var es []ruleExpr
	for _, e := range exprs {
		if e.name != "counter" && e.name != "log" {
			es = append(es, e)
		}
	}
	isVerdict := func(e ruleExpr, code int32) bool {
		return e.name == "immediate" && e.verdict != nil && *e.verdict == code
	}
	switch {
	case len(es) == 1 && isVerdict(es[0], nfDrop):
		return ruleDrop
	case len(es) == 1 && es[0].name == "reject":
		return ruleReject
	case len(es) == 3 && es[0].name == "meta" && es[1].name == "cmp" && isVerdict(es[2], nfAccept) &&
		es[1].reg == es[0].reg && es[1].op == unix.NFT_CMP_EQ && zoneWildcard(es[1].data):
		switch es[0].key {
		case unix.NFT_META_IIFNAME:
			return ruleAcceptFrom
		case unix.NFT_META_OIFNAME:
			return ruleAcceptTo
		}
	}
	return ruleOther
}

// zoneWildcard reports whether an interface name compare matches every
// zone's interface: nft compiles the wildcard "nsz-*" to a compare of the
// first bytes only, "nsz-", with no NUL; a shorter prefix ("nsz*") matches
// them all too. An exact name is NUL-padded and never matches.
func zoneWildcard(data []byte) bool {
	return len(data) > 0 && bytes.HasPrefix([]byte(zoneIfPrefix), data)
}
