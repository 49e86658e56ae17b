package nft

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/nszone/nszone/firewall"
	"golang.org/x/sys/unix"
)

// Table is the name of every nftables table of nszone's: the inet table
// that holds a zone's inner wall, and the host wall's ip and ip6 tables.
const Table = "nszone"

const inet = nftables.TableFamilyINet

// translation versions the translation below. It is part of every rule's
// tag, so a change in how rules are translated (bump it with any such
// change) rewrites each zone's table once, on its next up.
const translation = "3"

// baseChain is one chain of a table: a base chain holds the rules of one
// iptables chain of nszone's (NSZ-OUT, NSZ-FORWARD) on that chain's hook; a
// regular chain (hook nil) holds the rules of the chain of its own name,
// which base chains jump to (the host wall's NSZ-Z-out and the like).
type baseChain struct {
	name string              // "output", "forward"; a regular chain's iptables name
	from string              // the iptables chain whose rules it holds
	hook *nftables.ChainHook // where it hooks; nil for a regular chain
}

// spec is one table of nszone's: its family and its base chains. Every
// table is named Table, whatever namespace it is in.
type spec struct {
	what    string // how gaps name it: "inner wall", "host wall"
	family  nftables.TableFamily
	famName string // "inet", "ip", "ip6"
	bases   []baseChain
	regular bool // rules of chains other than the bases' go to regular chains
	// named, when set, are the only regular chains the wall may have.
	named []string
	sets  bool // destination addresses of runs of like rules go to sets (addrRun)
	// counters puts a counter in every rule, which status reads as the
	// zone's allowed and refused traffic.
	counters bool
	// only, when set, is the one zone a check looks at: other zones'
	// chains are neither compiled nor looked at (exec's cost stays flat in
	// the number of zones).
	only string
}

// hooks maps the built-in iptables chains to nftables hooks.
var hooks = map[string]*nftables.ChainHook{
	"OUTPUT": nftables.ChainHookOutput, "INPUT": nftables.ChainHookInput, "FORWARD": nftables.ChainHookForward,
}

// basesOf turns a map of nszone's chains to built-in chains into base
// chains, in the order given by builtins.
func basesOf(chains map[string]string, builtins ...string) []baseChain {
	var out []baseChain
	for _, b := range builtins {
		for from, to := range chains {
			if to == b {
				out = append(out, baseChain{strings.ToLower(b), from, hooks[b]})
			}
		}
	}
	return out
}

// innerSpec is the inner wall: one inet table, both families in it, and
// its one regular chain, NSZ-REFUSE.
var innerSpec = spec{what: "inner wall", family: inet, famName: "inet", sets: true, regular: true, counters: true,
	named: []string{firewall.InnerRefuse}, bases: basesOf(firewall.InnerChains, "OUTPUT", "INPUT")}

// hostSpec is the host wall's table of family f.
func hostSpec(f firewall.Family) spec {
	fam, name := nftables.TableFamilyIPv4, "ip"
	if f == firewall.IPv6 {
		fam, name = nftables.TableFamilyIPv6, "ip6"
	}
	return spec{what: "host wall (nftables " + name + ")", family: fam, famName: name, regular: true,
		bases: basesOf(firewall.HostChains, "FORWARD", "INPUT", "OUTPUT")}
}

// wantChain is a chain as it must be in the kernel, with the sets its
// rules look addresses up in.
type wantChain struct {
	baseChain
	rules []wantRule
	sets  []wantSet
}

// wantSet is a named set of addresses as it must be in the kernel: the
// destinations of a run of rules (addrRun), which one rule per pattern
// looks up instead. A change of the host's addresses then changes a set's
// elements, and no rule: a write of a few bytes per zone.
type wantSet struct {
	name  string // "output_1": the chain's name and the set's number in it
	key   nftables.SetDatatype
	elems [][]byte // the addresses, in the rules' order
}

// wantRule is one rule as it must be in the kernel. Its comment (the rule's
// UserData, shown by `nft list ruleset`) ends in the tag that proves it.
type wantRule struct {
	exprs   []expr.Any
	comment string
	// counts says which of the zone's counters the rule's counter adds
	// to (family, and allowed or refused); nil for none.
	counts func(*firewall.Counters) *firewall.Count
}

// compile translates the structured rules of the given families into the
// table's chains. Each family's rules keep their order (the policy is
// first-match); IPv4 rules come before IPv6 ones, which never meet the same
// packet. A rule of a form it does not know is an error, never skipped.
func compile(sp spec, rules map[firewall.Family][]firewall.Rule) ([]wantChain, error) {
	for f := range rules {
		if f != firewall.IPv4 && f != firewall.IPv6 {
			return nil, fmt.Errorf("%s: unknown family %d", sp.what, f)
		}
	}
	chains := make([]wantChain, len(sp.bases))
	index := map[string]int{}
	for i, b := range sp.bases {
		chains[i].baseChain = b
		index[b.from] = i
	}
	for _, f := range firewall.Families {
		rs := rules[f]
		for n := 0; n < len(rs); n++ {
			r := rs[n]
			i, ok := index[r.Chain]
			if !ok && !sp.ownedBy(r.Chain) {
				continue
			}
			if !ok && sp.hasRegular(r.Chain) {
				i, ok = len(chains), true
				index[r.Chain] = i
				chains = append(chains, wantChain{baseChain: baseChain{name: r.Chain, from: r.Chain}})
			}
			if !ok {
				return nil, fmt.Errorf("%s: %s rule %d: chain %q is not one of the wall's", sp.what, f, n+1, r.Chain)
			}
			c := &chains[i]
			group, addrs := 1, 0
			if sp.sets {
				group, addrs = addrRun(rs[n:])
			}
			set := ""
			if addrs > 0 {
				ws, err := newSet(f, fmt.Sprintf("%s_%d", c.name, len(c.sets)+1), rs[n:n+group*addrs], group)
				if err != nil {
					return nil, fmt.Errorf("%s: %s rule %q: %w", sp.what, f, r.Text(), err)
				}
				c.sets, set = append(c.sets, ws), ws.name
			}
			for _, r := range rs[n : n+group] {
				if err := c.add(sp, f, r, set); err != nil {
					return nil, err
				}
			}
			n += group*max(addrs, 1) - 1
		}
	}
	return chains, nil
}

// hasRegular reports whether the wall may have a regular chain of name.
func (sp spec) hasRegular(name string) bool {
	return sp.regular && (sp.named == nil || slices.Contains(sp.named, name))
}

// add translates r into a rule at the end of c; with set, r's destination
// is that set's addresses.
func (c *wantChain) add(sp spec, f firewall.Family, r firewall.Rule, set string) error {
	if set != "" {
		r.Dst = "@" + set // what the rule's tag fingerprints
	}
	if len(r.Target) == 2 && strings.HasPrefix(r.Target[1], firewall.Prefix) && !sp.hasRegular(r.Target[1]) {
		return fmt.Errorf("%s: %s rule %q: a jump, and the wall has no chain to jump to", sp.what, f, r.Text())
	}
	exprs, err := translate(sp.family, f, r, set)
	if err == nil && sp.counters {
		// Before the verdict or the log, which ends the rule.
		exprs = slices.Insert(exprs, len(exprs)-1, expr.Any(&expr.Counter{}))
	}
	if err != nil {
		return fmt.Errorf("%s: %s rule %q: %w", sp.what, f, r.Text(), err)
	}
	comment := fmt.Sprintf("%s #%d %s", r.Comment, len(c.rules)+1, ruleHash(f, r))
	if r.Comment == "" {
		comment = comment[1:]
	}
	if len(comment) > maxComment {
		return fmt.Errorf("%s: %s rule %q: comment too long", sp.what, f, r.Text())
	}
	c.rules = append(c.rules, wantRule{exprs: exprs, comment: comment, counts: countsOf(sp, c.baseChain, f, r)})
	return nil
}

// countsOf says which counter a rule of the inner wall adds to: in its
// output chain, what the zone sends and is let through, loopback aside,
// and what it is refused (the jumps to NSZ-REFUSE, the invalid packets
// dropped); in NSZ-REFUSE, what of that the kernel's log got.
func countsOf(sp spec, c baseChain, f firewall.Family, r firewall.Rule) func(*firewall.Counters) *firewall.Count {
	if !sp.counters || len(r.Target) < 2 {
		return nil
	}
	switch {
	case c.name == firewall.InnerRefuse && r.Target[1] == "NFLOG":
		return func(cs *firewall.Counters) *firewall.Count { return &cs.Of(f).Logged }
	case c.hook != nftables.ChainHookOutput || r.Out == "lo" || len(r.Target) != 2:
		return nil
	case r.Target[1] == "ACCEPT":
		return func(cs *firewall.Counters) *firewall.Count { return &cs.Of(f).Allowed }
	case r.Target[1] == "DROP" || r.Target[1] == firewall.InnerRefuse:
		return func(cs *firewall.Counters) *firewall.Count { return &cs.Of(f).Refused }
	}
	return nil
}

// addrRun finds a run of rules at the start of rs that repeat one pattern
// of group rules (1, or 2 as a rejection is a TCP reset and a reject) for
// one host address after another, and differ in nothing else: the host's
// addresses in an inner wall, one rule or two each. It returns the
// pattern's length and the number of addresses, 0 when rs starts with no
// rule of a host address.
//
// One rule per pattern that looks the destination up in a set of the
// run's addresses lets exactly the packets through that the run does: a
// packet has one destination, so at most one address of the run is its
// own, and its pattern's first rule that matches decides either way.
func addrRun(rs []firewall.Rule) (group, addrs int) {
	for _, g := range []int{2, 1} {
		if g == 2 && (len(rs) < 2 || likeRules(rs[0], rs[1])) {
			continue // a pattern of one rule, or no pattern of two
		}
		n := 0
		seen := map[string]bool{}
	run:
		for ; (n+1)*g <= len(rs); n++ {
			d := rs[n*g].Dst
			if seen[d] || !hostPrefix(d) {
				break
			}
			for j, r := range rs[n*g : (n+1)*g] {
				if r.Dst != d || !likeRules(r, rs[j]) {
					break run
				}
			}
			seen[d] = true
		}
		if n*g > group*addrs {
			group, addrs = g, n
		}
	}
	return max(group, 1), addrs
}

// likeRules reports whether a and b differ in their destination at most.
func likeRules(a, b firewall.Rule) bool {
	a.Dst, b.Dst = "", ""
	return a.Chain == b.Chain && a.Src == b.Src && a.In == b.In && a.Out == b.Out && a.Proto == b.Proto &&
		slices.Equal(a.Matches, b.Matches) && slices.Equal(a.Target, b.Target) && a.Comment == b.Comment
}

func hostPrefix(s string) bool {
	p, err := netip.ParsePrefix(s)
	return err == nil && p.IsSingleIP()
}

// newSet makes the set named name of the destinations of run, a run of
// rules of family f in patterns of group rules.
func newSet(f firewall.Family, name string, run []firewall.Rule, group int) (wantSet, error) {
	ws := wantSet{name: name, key: nftables.TypeIPAddr}
	if f == firewall.IPv6 {
		ws.key = nftables.TypeIP6Addr
	}
	for n := 0; n < len(run); n += group {
		p, err := parsePrefix(f, run[n].Dst)
		if err != nil {
			return wantSet{}, err
		}
		ws.elems = append(ws.elems, p.Addr().AsSlice())
	}
	return ws, nil
}

// maxComment: a rule's user data holds at most 255 bytes of comment,
// terminating NUL included.
const maxComment = 254

// ruleHash fingerprints what a rule is meant to do: its family, its
// iptables text and the translation's version.
func ruleHash(f firewall.Family, r firewall.Rule) string {
	sum := sha256.Sum256([]byte(translation + "\x00" + f.String() + "\x00" + r.Text()))
	return hex.EncodeToString(sum[:6])
}

// Expressions load into register 1 (16 bytes, enough for an IPv6 address)
// and compare there, as nft itself does.
const reg = 1

func cmpEq(data []byte) *expr.Cmp {
	return &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: data}
}

// translate turns one rule of family f into nftables expressions, in the
// order nft would write them: family, interfaces, protocol, addresses,
// conntrack state, transport header, verdict.
// With set, the destination is looked up in that set; r.Dst names it.
func translate(table nftables.TableFamily, f firewall.Family, r firewall.Rule, set string) ([]expr.Any, error) {
	var exprs []expr.Any
	if table == inet { // a table of one family needs no family match
		proto := byte(unix.NFPROTO_IPV4)
		if f == firewall.IPv6 {
			proto = unix.NFPROTO_IPV6
		}
		exprs = []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg}, cmpEq([]byte{proto})}
	}
	for _, i := range []struct {
		name string
		key  expr.MetaKey
	}{{r.In, expr.MetaKeyIIFNAME}, {r.Out, expr.MetaKeyOIFNAME}} {
		if i.name == "" {
			continue
		}
		name, err := ifName(i.name)
		if err != nil {
			return nil, err
		}
		exprs = append(exprs, &expr.Meta{Key: i.key, Register: reg}, cmpEq(name))
	}
	if r.Proto != "" {
		p, ok := l4protos[r.Proto]
		if !ok || (r.Proto == "ipv6-icmp" && f != firewall.IPv6) {
			return nil, fmt.Errorf("protocol %q not supported in %s", r.Proto, f)
		}
		exprs = append(exprs, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg}, cmpEq([]byte{p}))
	}
	for _, a := range []struct {
		prefix string
		dst    bool
	}{{r.Src, false}, {r.Dst, true}} {
		if a.dst && set != "" {
			exprs = append(exprs, addrLoad(f, true), &expr.Lookup{SourceRegister: reg, SetName: set})
			continue
		}
		if a.prefix == "" {
			continue
		}
		e, err := addrMatch(f, a.prefix, a.dst)
		if err != nil {
			return nil, err
		}
		exprs = append(exprs, e...)
	}
	e, err := matches(f, r.Proto, r.Matches)
	if err != nil {
		return nil, err
	}
	exprs = append(exprs, e...)
	v, err := target(f, r.Proto, r.Target)
	if err != nil {
		return nil, err
	}
	return append(exprs, v), nil
}

var l4protos = map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "ipv6-icmp": unix.IPPROTO_ICMPV6}

// ifName renders an interface name as meta iifname/oifname compare it: the
// whole 16-byte buffer, NUL-padded; "eth+" (iptables' wildcard) compares
// only the part before the plus.
func ifName(name string) ([]byte, error) {
	base, wildcard := strings.CutSuffix(name, "+")
	if base == "" || len(base) >= unix.IFNAMSIZ || strings.ContainsAny(base, "/:!+\"' \t\n\x00") {
		return nil, fmt.Errorf("interface %q not supported", name)
	}
	if wildcard {
		return []byte(base), nil
	}
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b, nil
}

// addrMatch matches the source or destination address against a prefix in
// iptables-save form ("10.0.0.0/8", "192.0.2.1/32"): a host prefix compares
// the address, a shorter one masks it first; /0 matches everything.
func addrMatch(f firewall.Family, s string, dst bool) ([]expr.Any, error) {
	p, err := parsePrefix(f, s)
	if err != nil {
		return nil, err
	}
	if p.Bits() == 0 {
		return nil, nil
	}
	out := []expr.Any{addrLoad(f, dst)}
	addr := p.Addr().AsSlice()
	if p.Bits() < p.Addr().BitLen() {
		n := uint32(len(addr))
		mask := make([]byte, n)
		for i := range p.Bits() {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	return append(out, cmpEq(addr)), nil
}

// parsePrefix reads a prefix of family f in iptables-save form.
func parsePrefix(f firewall.Family, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("address %q: want a prefix like 192.0.2.0/24", s)
	}
	if p.Addr().Is4() != (f == firewall.IPv4) || p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return p, fmt.Errorf("address %q is not a plain %s prefix", s, f)
	}
	if p != p.Masked() {
		return p, fmt.Errorf("address %q has host bits set", s)
	}
	return p, nil
}

// addrLoad loads the source or destination address of the packet.
func addrLoad(f firewall.Family, dst bool) *expr.Payload {
	// Offsets and lengths in the IPv4 and IPv6 headers.
	off, n := map[bool]uint32{false: 12, true: 16}[dst], uint32(4)
	if f == firewall.IPv6 {
		off, n = map[bool]uint32{false: 8, true: 24}[dst], 16
	}
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}
}

var ctStates = map[string]uint32{
	"INVALID": expr.CtStateBitINVALID, "ESTABLISHED": expr.CtStateBitESTABLISHED,
	"RELATED": expr.CtStateBitRELATED, "NEW": expr.CtStateBitNEW, "UNTRACKED": expr.CtStateBitUNTRACKED,
}

// matches translates iptables match arguments: "-m MODULE" followed by its
// options, any number of times.
func matches(f firewall.Family, proto string, args []string) ([]expr.Any, error) {
	var out []expr.Any
	for len(args) > 0 {
		if len(args) < 4 || args[0] != "-m" {
			return nil, fmt.Errorf("match %q not supported", strings.Join(args, " "))
		}
		module, opt, val := args[1], args[2], args[3]
		args = args[4:]
		switch {
		case module == "conntrack" && opt == "--ctstate":
			var bits uint32
			for _, s := range strings.Split(val, ",") {
				b, ok := ctStates[s]
				if !ok {
					return nil, fmt.Errorf("conntrack state %q not supported", s)
				}
				bits |= b
			}
			mask := binary.NativeEndian.AppendUint32(nil, bits) // ct state is in host order
			out = append(out,
				&expr.Ct{Key: expr.CtKeySTATE, Register: reg},
				&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: mask, Xor: make([]byte, 4)},
				&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: make([]byte, 4)})
		case module == "icmp6" && opt == "--icmpv6-type":
			if f != firewall.IPv6 || proto != "ipv6-icmp" {
				return nil, fmt.Errorf("-m icmp6 needs -p ipv6-icmp in ipv6")
			}
			t, err := strconv.ParseUint(val, 10, 8)
			if err != nil {
				return nil, fmt.Errorf("icmpv6 type %q not supported (want a number)", val)
			}
			out = append(out,
				&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
				cmpEq([]byte{byte(t)}))
		case module == "limit" && opt == "--limit" && len(args) >= 2 && args[0] == "--limit-burst":
			l, err := limit(val, args[1])
			if err != nil {
				return nil, err
			}
			args = args[2:]
			out = append(out, l)
		case (module == "tcp" || module == "udp") && opt == "--dport":
			if proto != module {
				return nil, fmt.Errorf("-m %s needs -p %s", module, module)
			}
			lo, hi, err := portRange(val)
			if err != nil {
				return nil, err
			}
			out = append(out, &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
			if lo == hi {
				out = append(out, cmpEq(binary.BigEndian.AppendUint16(nil, lo)))
			} else {
				// As nft writes a range: big-endian bytes compare as numbers.
				out = append(out,
					&expr.Cmp{Op: expr.CmpOpGte, Register: reg, Data: binary.BigEndian.AppendUint16(nil, lo)},
					&expr.Cmp{Op: expr.CmpOpLte, Register: reg, Data: binary.BigEndian.AppendUint16(nil, hi)})
			}
		default:
			return nil, fmt.Errorf("match \"-m %s %s %s\" not supported", module, opt, val)
		}
	}
	return out, nil
}

// limit translates "-m limit --limit N/sec --limit-burst B": a packet
// matches while the rate holds.
func limit(rate, burst string) (*expr.Limit, error) {
	n, unit, _ := strings.Cut(rate, "/")
	r, err1 := strconv.ParseUint(n, 10, 32)
	b, err2 := strconv.ParseUint(burst, 10, 32)
	if err1 != nil || err2 != nil || unit != "sec" || r == 0 {
		return nil, fmt.Errorf("limit %q burst %q not supported (want N/sec and a number)", rate, burst)
	}
	return &expr.Limit{Type: expr.LimitTypePkts, Rate: r, Unit: expr.LimitTimeSecond, Burst: uint32(b)}, nil
}

// nflog translates "-j NFLOG --nflog-prefix P --nflog-group G --nflog-size
// S": a copy of the packet's first S bytes to the namespace's NFLOG group G.
func nflog(t []string) (expr.Any, error) {
	if len(t) != 8 || t[2] != "--nflog-prefix" || t[4] != "--nflog-group" || t[6] != "--nflog-size" {
		return nil, fmt.Errorf("target %q not supported (want -j NFLOG --nflog-prefix P --nflog-group G --nflog-size S)", strings.Join(t, " "))
	}
	g, err1 := strconv.ParseUint(t[5], 10, 16)
	n, err2 := strconv.ParseUint(t[7], 10, 32)
	if err1 != nil || err2 != nil || len(t[3]) > 63 {
		return nil, fmt.Errorf("target %q not supported", strings.Join(t, " "))
	}
	return &expr.Log{Group: uint16(g), Snaplen: uint32(n), Data: []byte(t[3]),
		Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_SNAPLEN}, nil
}

// portRange parses "N" or "N:M".
func portRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, ":")
	l, err1 := strconv.ParseUint(a, 10, 16)
	h, err2 := l, error(nil)
	if isRange {
		h, err2 = strconv.ParseUint(b, 10, 16)
	}
	if err1 != nil || err2 != nil || l > h {
		return 0, 0, fmt.Errorf("port %q not supported (want N or N:M with N <= M)", s)
	}
	return uint16(l), uint16(h), nil
}

// target translates "-j ACCEPT", "-j DROP", a jump to another chain of
// nszone's, NFLOG (which decides nothing), and the REJECT forms the policy uses, each exactly as iptables'
// REJECT answers: ICMP destination unreachable code 13, ICMPv6 destination
// unreachable code 1, TCP reset.
func target(f firewall.Family, proto string, t []string) (expr.Any, error) {
	if len(t) == 2 && t[0] == "-j" && strings.HasPrefix(t[1], firewall.Prefix) {
		return &expr.Verdict{Kind: expr.VerdictJump, Chain: t[1]}, nil
	}
	if len(t) > 2 && t[0] == "-j" && t[1] == "NFLOG" {
		return nflog(t)
	}
	switch strings.Join(t, " ") {
	case "-j ACCEPT":
		return &expr.Verdict{Kind: expr.VerdictAccept}, nil
	case "-j DROP":
		return &expr.Verdict{Kind: expr.VerdictDrop}, nil
	case "-j REJECT --reject-with icmp-admin-prohibited":
		if f == firewall.IPv4 {
			return &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 13}, nil // ICMP_PKT_FILTERED
		}
	case "-j REJECT --reject-with icmp6-adm-prohibited":
		if f == firewall.IPv6 {
			return &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 1}, nil // ICMPV6_ADM_PROHIBITED
		}
	case "-j REJECT --reject-with tcp-reset":
		if proto == "tcp" {
			return &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}, nil
		}
		return nil, fmt.Errorf("tcp-reset needs -p tcp")
	}
	return nil, fmt.Errorf("target %q not supported in %s", strings.Join(t, " "), f)
}

// checkJumps fails when a rule of want jumps to a chain want does not
// have: written, such a rule would fail the whole batch.
func checkJumps(sp spec, want []wantChain) error {
	have := map[string]bool{}
	for _, c := range want {
		have[c.name] = true
	}
	for _, c := range want {
		for _, r := range c.rules {
			for _, e := range r.exprs {
				if v, ok := e.(*expr.Verdict); ok && v.Kind == expr.VerdictJump && !have[v.Chain] {
					return fmt.Errorf("%s: chain %s jumps to %s, which has no rules", sp.what, c.name, v.Chain)
				}
			}
		}
	}
	return nil
}

// ownedBy reports whether chain is in the part of the table a check of
// sp.only looks at: a base chain's rules, or the zone's own chains.
func (sp spec) ownedBy(chain string) bool {
	return sp.only == "" || !strings.HasPrefix(chain, firewall.Prefix) || strings.HasPrefix(chain, firewall.Prefix+sp.only+"-")
}
