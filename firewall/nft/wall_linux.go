// Package nft applies and verifies a zone's inner wall with nftables, over
// netlink, inside the zone's own network namespace: the same rules that
// firewall.InnerRules gives (and firewall.BuildInner renders for iptables),
// without starting a process. Nobody else writes rules in a zone's
// namespace, so the wall is one table of nszone's alone, both families in it:
//
//	table inet nszone
//	  set output_1  type ipv4_addr: the host's addresses (and others, see addrRun)
//	  chain output  type filter hook output priority filter; policy accept
//	                NSZ-OUT's IPv4 rules in order (each "meta nfproto ipv4 ..."),
//	                then its IPv6 rules in order ("meta nfproto ipv6 ...")
//	  chain input   type filter hook input priority filter; policy accept
//	                NSZ-IN's rules, the same way
//
// InnerRules ends each family's rules in a reject or drop of everything, so
// the accept policy never decides a packet of a walled family. A run of
// rules that differ only in a destination address, the host's addresses
// one or two rules each, is one rule per pattern that looks the
// destination up in a set of those addresses ("ip daddr @output_1
// accept"). Every rule's comment is the iptables rule's comment plus a
// tag, "nszone-wan #5 3fa2b1c0d4e5": its position in the chain and a hash
// of its family, its iptables text (with "-d @output_1" for a set's
// addresses) and the translation's version. Apply and Missing read the
// tags and the sets' elements back; when every chain holds the wanted tags
// in order and every set the wanted addresses, the wall is in place, and
// Apply writes nothing. Otherwise Apply writes what differs in one batch,
// which the kernel commits atomically: the elements of the sets that
// differ and the rules of the chains that do, each chain flushed and
// filled again, or, should anything else differ, the whole table deleted
// and created anew. The zone is never without its wall, not even for a
// packet, and a new address of the host's is a change of one element.
//
// What the tags and elements prove is what outside damage does: a table
// deleted or flushed, made dormant, a chain or set deleted, rules deleted,
// added or moved, elements deleted or added. A
// rule whose expressions were replaced while its comment was kept (`nft
// replace rule ... comment "<the same tag>"`, by root in the zone) is not
// noticed: comparing expressions would make the check depend on how each
// kernel version reports them, and one that reports them differently would
// make every up rewrite every zone and every status call it degraded.
//
// Dependency: github.com/google/nftables v0.3.0, Google's pure-Go nf_tables
// client (Apache-2.0, maintained in the open by Google and used by
// Tailscale among others). It speaks netlink only: no nft or iptables
// process, no cgo. It brings its netlink layer (mdlayher/netlink and
// mdlayher/socket) and golang.org/x/sync along. It writes the batch; reading
// goes straight through mdlayher/netlink, decoding only the tags rather than
// every rule's expressions. Both open their socket in the zone's namespace
// themselves (mdlayher/socket makes it on a locked thread that enters the
// namespace and returns, and lets that thread die should returning fail),
// so no goroutine of ours switches namespace and nothing else of the
// process is affected.
package nft

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Apply makes the inner wall in the zone's namespace ns hold exactly rules,
// as firewall.InnerRules gives them, and reports whether it had to write. A
// rule of a form it cannot translate is an error before anything is read or
// written. On an error nothing was changed: the write is one atomic batch.
// The caller opens ns (netns.OpenNamed) and names the zone in errors.
func Apply(ns *netns.Handle, rules map[firewall.Family][]firewall.Rule, log *slog.Logger) (changed bool, err error) {
	changed, _, err = ApplyInner(ns, rules, log)
	return changed, err
}

// ApplyInner is Apply, and reports besides whether the namespace holds
// iptables-nft's filter table of either family: without one, there is no
// iptables inner wall of an earlier nszone's to clear.
func ApplyInner(ns *netns.Handle, rules map[firewall.Family][]firewall.Rule, log *slog.Logger) (changed, iptables bool, err error) {
	changed, cur, err := apply(ns.Fd(), innerSpec, rules, log)
	return changed, cur != nil && cur.iptables, err
}

// Missing lists what of the wanted inner wall in the zone's namespace ns is
// absent or differs, in words ("inner wall: chain output has 3 rules, want
// 27"); empty means it is in place, exactly. It writes nothing.
func Missing(ns *netns.Handle, rules map[firewall.Family][]firewall.Rule) ([]string, error) {
	return missing(ns.Fd(), innerSpec, rules)
}

// ApplyHost makes the host wall's tables in the current namespace (table
// ip nszone, table ip6 nszone) hold exactly rules, as firewall.HostRules
// gives them; a family without rules loses its table. Each family's table
// is written in one atomic batch, the two side by side.
func ApplyHost(rules map[firewall.Family][]firewall.Rule, log *slog.Logger) (changed bool, err error) {
	var g errgroup.Group
	chg := make([]bool, len(firewall.Families))
	for i, f := range firewall.Families {
		g.Go(func() (err error) {
			sp := hostSpec(f)
			if len(rules[f]) == 0 {
				chg[i], err = remove(0, sp, log)
			} else {
				chg[i], _, err = apply(0, sp, map[firewall.Family][]firewall.Rule{f: rules[f]}, log)
			}
			return err
		})
	}
	err = g.Wait()
	return slices.Contains(chg, true), err
}

// HostState is the host wall's tables as one read found them, against
// which any number of zones are checked: status and plan check every zone
// with one read, and (from the second zone on) one compilation of the
// rules, instead of one each.
type HostState struct {
	states map[firewall.Family]*state
	rules  map[firewall.Family][]firewall.Rule
	asked  int
	all    map[firewall.Family][]wantChain // every chain, once two zones were asked about
}

// ReadHost reads the host wall's tables in the current namespace, to be
// checked against rules.
func ReadHost(rules map[firewall.Family][]firewall.Rule) (*HostState, error) {
	return readHost(0, rules)
}

func readHost(ns int, rules map[firewall.Family][]firewall.Rule) (*HostState, error) {
	h := &HostState{states: map[firewall.Family]*state{}, rules: rules}
	for _, f := range firewall.Families {
		if len(rules[f]) == 0 {
			continue
		}
		sp := hostSpec(f)
		cur, err := readIn(ns, sp.family)
		if err != nil {
			return nil, fmt.Errorf("reading the %s: %w", sp.what, err)
		}
		h.states[f] = cur
	}
	return h, nil
}

// Missing lists what of the host wall's tables, as read, is absent or
// differs from the rules; only the dispatch chains and zone's own chains
// count when zone is not "". It is not safe for concurrent use.
func (h *HostState) Missing(zone string) ([]string, error) {
	if h.asked++; h.asked == 2 {
		all := map[firewall.Family][]wantChain{}
		for f := range h.states {
			want, err := compile(hostSpec(f), map[firewall.Family][]firewall.Rule{f: h.rules[f]})
			if err != nil {
				return nil, err // and each zone compiles its own part again
			}
			all[f] = want
		}
		h.all = all
	}
	var out []string
	for _, f := range firewall.Families {
		cur, ok := h.states[f]
		if !ok {
			continue
		}
		sp := hostSpec(f)
		sp.only = zone
		var want []wantChain
		if all, ok := h.all[f]; ok {
			// What compile gives for sp: the spec's own chains, and the
			// others that sp looks at.
			want = slices.DeleteFunc(slices.Clone(all), func(c wantChain) bool {
				return !slices.ContainsFunc(sp.bases, func(b baseChain) bool { return b.from == c.from }) && !sp.ownedBy(c.from)
			})
		} else {
			var err error
			if want, err = compile(sp, map[firewall.Family][]firewall.Rule{f: h.rules[f]}); err != nil {
				return nil, err
			}
		}
		out = append(out, cur.gaps(sp, want)...)
	}
	return out, nil
}

// missingHost lists what of the host wall's tables in namespace ns is
// absent or differs, for zone as Missing does.
func missingHost(ns int, rules map[firewall.Family][]firewall.Rule, zone string) ([]string, error) {
	h, err := readHost(ns, rules)
	if err != nil {
		return nil, err
	}
	return h.Missing(zone)
}

// apply makes the table of sp in namespace ns (0: the current one) hold
// exactly rules, and returns what it found there before.
func apply(ns int, sp spec, rules map[firewall.Family][]firewall.Rule, log *slog.Logger) (bool, *state, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	want, err := compile(sp, rules)
	if err != nil {
		return false, nil, err
	}
	if err := checkJumps(sp, want); err != nil {
		return false, nil, err
	}
	c, err := dialIn(ns)
	if err != nil {
		return false, nil, fmt.Errorf("reading the %s: %w", sp.what, err)
	}
	defer closeSoon(c)
	gen, cur, err := current(c, sp.family)
	if err != nil {
		return false, nil, fmt.Errorf("reading the %s: %w", sp.what, err)
	}
	gaps := cur.gaps(sp, want)
	if len(gaps) == 0 {
		remember(gen, sp.family, cur)
		return false, cur, nil
	}
	if chains, sets, ok := cur.stale(want); ok {
		log.Debug("updating nftables wall", "wall", sp.what, "table", Table, "was", gaps, "chains", len(chains), "sets", len(sets))
		err = update(ns, sp.family, chains, sets)
	} else {
		log.Debug("applying nftables wall", "wall", sp.what, "table", Table, "was", gaps, "rules", count(want))
		err = write(ns, sp.family, cur.table, want)
	}
	if err != nil {
		remember(gen, sp.family, nil)
		return false, cur, fmt.Errorf("writing the %s: %w", sp.what, err)
	}
	// The write was the one commit since gen: the table is now want.
	if after, err := generationOn(c); err == nil && gen != (Gen{}) && after == gen.next() {
		remember(after, sp.family, wanted(want, cur.iptables))
	} else {
		remember(gen, sp.family, nil)
	}
	return true, cur, nil
}

// missing lists how the table of sp in namespace ns differs from rules.
func missing(ns int, sp spec, rules map[firewall.Family][]firewall.Rule) ([]string, error) {
	want, err := compile(sp, rules)
	if err != nil {
		return nil, err
	}
	cur, err := readIn(ns, sp.family)
	if err != nil {
		return nil, fmt.Errorf("reading the %s: %w", sp.what, err)
	}
	return cur.gaps(sp, want), nil
}

// remove deletes the table of sp in namespace ns, if it is there.
func remove(ns int, sp spec, log *slog.Logger) (bool, error) {
	cur, err := readIn(ns, sp.family)
	if err != nil {
		return false, fmt.Errorf("reading the %s: %w", sp.what, err)
	}
	if !cur.table {
		return false, nil
	}
	if log != nil {
		log.Debug("removing nftables wall", "wall", sp.what, "table", Table)
	}
	c, err := nftables.New(nftables.WithNetNSFd(ns))
	if err != nil {
		return false, err
	}
	c.DelTable(&nftables.Table{Name: Table, Family: sp.family})
	if err := c.Flush(); err != nil {
		return false, fmt.Errorf("removing the %s: %w", sp.what, err)
	}
	return true, nil
}

// Available reports whether nf_tables can be used here: whether this
// process can list the nftables tables of its own network namespace (it
// needs CAP_NET_ADMIN and a kernel with nf_tables). It reads, never writes,
// and asks the kernel once per process. When it is false, the caller keeps
// the iptables inner wall.
func Available() bool { return available() }

var available = sync.OnceValue(func() bool {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return false
	}
	defer c.Close()
	req, err := request(byte(inet), unix.NFT_MSG_GETTABLE, netlink.Dump, nil)
	if err != nil {
		return false
	}
	_, err = c.Execute(req)
	return err == nil
})

// dialIn opens a netfilter netlink socket in the network namespace ns (0:
// the calling thread's). mdlayher/socket v0.5.0 loses the error of a socket
// it fails to make in another namespace (EMFILE: too many open files) and
// hands netlink a nil connection, on which it panics: that panic is an
// error here.
func dialIn(ns int) (c *netlink.Conn, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("opening nftables netlink: no socket was made (too many open files?): %v", r)
		}
	}()
	c, err = netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns})
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink: %w", err)
	}
	return c, nil
}

// state is what a zone's namespace holds of the table.
type state struct {
	table    bool   // the table exists
	flags    uint32 // the table's flags
	chains   []chain
	comments map[string][]string // the comments of each chain's rules, in order
	sets     map[string]set
	// iptables: iptables-nft's filter table of either family is there,
	// where an iptables inner wall of an earlier nszone would be.
	iptables bool
}

// set is what the kernel says of one set of the table.
type set struct {
	key, keyLen, flags uint32
	elems              map[string]bool // each element's key, as bytes
}

// readIn reads nszone's table of family fam inside the namespace ns (0:
// the current one), as readOn.
func readIn(ns int, fam nftables.TableFamily) (*state, error) {
	c, err := dialIn(ns)
	if err != nil {
		return nil, err
	}
	defer closeSoon(c)
	return readOn(c, fam)
}

// readOn reads nszone's table of family fam, its chains, its rules'
// comments and its sets over c: a dump of each, and one of each set's
// elements. Only what the check needs is decoded (the rules' expressions
// are not).
func readOn(c *netlink.Conn, fam nftables.TableFamily) (*state, error) {
	s := &state{comments: map[string][]string{}, sets: map[string]set{}}
	// Every family's tables, in the one round trip: iptables-nft's are
	// among them.
	err := dump(c, unix.NFPROTO_UNSPEC, unix.NFT_MSG_GETTABLE, nil, func(family byte, ad *netlink.AttributeDecoder) {
		name, flags := decodeTable(ad)
		switch {
		case family == byte(fam) && name == Table:
			s.table, s.flags = true, flags
		case (family == unix.NFPROTO_IPV4 || family == unix.NFPROTO_IPV6) && name == "filter":
			s.iptables = true
		}
	})
	if err != nil || !s.table {
		return s, err
	}
	err = dump(c, byte(fam), unix.NFT_MSG_GETCHAIN, nil, func(_ byte, ad *netlink.AttributeDecoder) {
		if ch := decodeChain(ad); ch.table == Table {
			s.chains = append(s.chains, ch)
		}
	})
	if err != nil {
		return nil, err
	}
	// The kernel dumps only this table's rules and sets; the checks below
	// hold on kernels that ignore the filter.
	filter := []netlink.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: cstring(Table)}}
	err = dump(c, byte(fam), unix.NFT_MSG_GETRULE, filter, func(_ byte, ad *netlink.AttributeDecoder) {
		table, chain, comment := decodeRule(ad)
		if table == Table {
			s.comments[chain] = append(s.comments[chain], comment)
		}
	})
	if err != nil {
		return nil, err
	}
	filter = []netlink.Attribute{{Type: unix.NFTA_SET_TABLE, Data: cstring(Table)}}
	err = dump(c, byte(fam), unix.NFT_MSG_GETSET, filter, func(_ byte, ad *netlink.AttributeDecoder) {
		if table, name, st := decodeSet(ad); table == Table {
			s.sets[name] = st
		}
	})
	if err != nil {
		return nil, err
	}
	for name, st := range s.sets {
		filter := []netlink.Attribute{
			{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: cstring(Table)},
			{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: cstring(name)},
		}
		err = dump(c, byte(fam), unix.NFT_MSG_GETSETELEM, filter, func(_ byte, ad *netlink.AttributeDecoder) {
			decodeElems(ad, st.elems)
		})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// decodeSet reads one set of a GETSET dump.
func decodeSet(ad *netlink.AttributeDecoder) (table, name string, s set) {
	s.elems = map[string]bool{}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_TABLE:
			table = ad.String()
		case unix.NFTA_SET_NAME:
			name = ad.String()
		case unix.NFTA_SET_FLAGS:
			s.flags = ad.Uint32()
		case unix.NFTA_SET_KEY_TYPE:
			s.key = ad.Uint32()
		case unix.NFTA_SET_KEY_LEN:
			s.keyLen = ad.Uint32()
		}
	}
	return table, name, s
}

// decodeElems adds the keys of one message of a GETSETELEM dump to elems.
func decodeElems(ad *netlink.AttributeDecoder, elems map[string]bool) {
	for ad.Next() {
		if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		ad.Nested(func(list *netlink.AttributeDecoder) error {
			for list.Next() {
				list.Nested(func(elem *netlink.AttributeDecoder) error {
					for elem.Next() {
						if elem.Type() == unix.NFTA_SET_ELEM_KEY {
							elem.Nested(func(key *netlink.AttributeDecoder) error {
								for key.Next() {
									if key.Type() == unix.NFTA_DATA_VALUE {
										elems[string(key.Bytes())] = true
									}
								}
								return nil
							})
						}
					}
					return nil
				})
			}
			return nil
		})
	}
}

// wanted is the state of a table that holds exactly want.
func wanted(want []wantChain, iptables bool) *state {
	s := &state{table: true, comments: map[string][]string{}, sets: map[string]set{}, iptables: iptables}
	for _, w := range want {
		ch := chain{table: Table, name: w.name}
		if w.hook != nil {
			hook, policy := uint32(*w.hook), uint32(nftables.ChainPolicyAccept)
			ch.typ, ch.hook, ch.priority, ch.policy = string(nftables.ChainTypeFilter), &hook, int32(*nftables.ChainPriorityFilter), &policy
		}
		s.chains = append(s.chains, ch)
		for _, r := range w.rules {
			s.comments[w.name] = append(s.comments[w.name], r.comment)
		}
		for _, ws := range w.sets {
			st := set{key: ws.key.GetNFTMagic(), keyLen: ws.key.Bytes, elems: map[string]bool{}}
			for _, e := range ws.elems {
				st.elems[string(e)] = true
			}
			s.sets[ws.name] = st
		}
	}
	return s
}

// maxDiffering is how many differing rules of a chain gaps names one by one.
const maxDiffering = 3

// gaps lists how s differs from want, the chains of table sp.
func (s *state) gaps(sp spec, want []wantChain) []string {
	if !s.table {
		return []string{fmt.Sprintf("%s: table %s %s missing", sp.what, sp.famName, Table)}
	}
	var out []string
	if s.flags&unix.NFT_TABLE_F_DORMANT != 0 {
		out = append(out, fmt.Sprintf("%s: table %s %s is dormant", sp.what, sp.famName, Table))
	}
	have := map[string]chain{}
	for _, ch := range s.chains {
		have[ch.name] = ch
	}
	for _, w := range want {
		ch, ok := have[w.name]
		delete(have, w.name)
		if !ok {
			out = append(out, fmt.Sprintf("%s: chain %s missing", sp.what, w.name))
			continue
		}
		switch {
		case w.hook == nil && ch.hook != nil:
			out = append(out, fmt.Sprintf("%s: chain %s is a base chain", sp.what, w.name))
		case w.hook != nil && !isBase(ch, w.baseChain):
			out = append(out, fmt.Sprintf("%s: chain %s is not type filter hook %s priority filter policy accept", sp.what, w.name, w.name))
		}
		got := s.comments[w.name]
		if len(got) != len(w.rules) {
			out = append(out, fmt.Sprintf("%s: chain %s has %d rules, want %d", sp.what, w.name, len(got), len(w.rules)))
			continue
		}
		differing := 0
		for i, r := range w.rules {
			if got[i] == r.comment {
				continue
			}
			if differing++; differing <= maxDiffering {
				out = append(out, fmt.Sprintf("%s: rule %d of chain %s differs", sp.what, i+1, w.name))
			}
		}
		if more := differing - maxDiffering; more > 0 {
			out = append(out, fmt.Sprintf("%s: %d more rules of chain %s differ", sp.what, more, w.name))
		}
	}
	var extra []string
	for name := range have {
		if sp.ownedBy(name) {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		out = append(out, fmt.Sprintf("%s: chain %s is not nszone's", sp.what, name))
	}
	return append(out, s.setGaps(sp, want)...)
}

// setGaps lists how the sets of s differ from those of want.
func (s *state) setGaps(sp spec, want []wantChain) []string {
	var out []string
	wanted := map[string]bool{}
	for _, w := range want {
		for _, ws := range w.sets {
			wanted[ws.name] = true
			st, ok := s.sets[ws.name]
			switch {
			case !ok:
				out = append(out, fmt.Sprintf("%s: set %s missing", sp.what, ws.name))
				continue
			case !st.is(ws):
				out = append(out, fmt.Sprintf("%s: set %s is not a plain set of type %s", sp.what, ws.name, ws.key.Name))
				continue
			}
			add, del := st.diff(ws)
			for _, e := range add {
				out = append(out, fmt.Sprintf("%s: set %s lacks %s", sp.what, ws.name, elemText(e)))
			}
			for _, e := range del {
				out = append(out, fmt.Sprintf("%s: set %s holds %s, not nszone's", sp.what, ws.name, elemText(e)))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.sets)) {
		if !wanted[name] {
			out = append(out, fmt.Sprintf("%s: set %s is not nszone's", sp.what, name))
		}
	}
	return out
}

// is reports whether st is of ws's kind: its key type, no flags.
func (st set) is(ws wantSet) bool {
	return st.key == ws.key.GetNFTMagic() && st.keyLen == ws.key.Bytes && st.flags == 0
}

// diff lists the elements ws has that st lacks, and those st has that ws
// lacks, each in a stable order.
func (st set) diff(ws wantSet) (add, del [][]byte) {
	want := map[string]bool{}
	for _, e := range ws.elems {
		want[string(e)] = true
		if !st.elems[string(e)] {
			add = append(add, e)
		}
	}
	for _, e := range slices.Sorted(maps.Keys(st.elems)) {
		if !want[e] {
			del = append(del, []byte(e))
		}
	}
	return add, del
}

func elemText(e []byte) string {
	if a, ok := netip.AddrFromSlice(e); ok {
		return a.String()
	}
	return fmt.Sprintf("%x", e)
}

// setChange is what an update adds to and deletes from one set.
type setChange struct {
	set      wantSet
	add, del [][]byte
}

// stale lists the chains of want whose rules differ from s, and the sets
// whose elements do, when the table is otherwise as wanted: there, awake,
// with exactly want's chains and sets, each of its kind. ok is false when
// anything else differs.
func (s *state) stale(want []wantChain) (chains []wantChain, sets []setChange, ok bool) {
	if !s.table || s.flags&unix.NFT_TABLE_F_DORMANT != 0 || len(s.chains) != len(want) {
		return nil, nil, false
	}
	have := map[string]chain{}
	for _, ch := range s.chains {
		have[ch.name] = ch
	}
	nsets := 0
	for _, w := range want {
		ch, ok := have[w.name]
		if !ok || (w.hook == nil) != (ch.hook == nil) || (w.hook != nil && !isBase(ch, w.baseChain)) {
			return nil, nil, false
		}
		if !slices.Equal(s.comments[w.name], commentsOf(w)) {
			chains = append(chains, w)
		}
		for _, ws := range w.sets {
			st, ok := s.sets[ws.name]
			if !ok || !st.is(ws) {
				return nil, nil, false
			}
			if add, del := st.diff(ws); len(add)+len(del) > 0 {
				sets = append(sets, setChange{ws, add, del})
			}
		}
		nsets += len(w.sets)
	}
	return chains, sets, len(s.sets) == nsets
}

func commentsOf(w wantChain) []string {
	out := make([]string, len(w.rules))
	for i, r := range w.rules {
		out[i] = r.comment
	}
	return out
}

// update changes the table in namespace ns in one batch: the elements of
// the given sets, and the rules of the given chains, each flushed and
// filled again. The kernel commits all of it or nothing, so packets meet
// either the old wall or the new.
func update(ns int, fam nftables.TableFamily, chains []wantChain, sets []setChange) error {
	return commit(ns, count(chains), func(c *nftables.Conn) error {
		t := &nftables.Table{Name: Table, Family: fam}
		for _, sc := range sets {
			st := &nftables.Set{Table: t, Name: sc.set.name, KeyType: sc.set.key}
			if len(sc.del) > 0 {
				if err := c.SetDeleteElements(st, elements(sc.del)); err != nil {
					return err
				}
			}
			if len(sc.add) > 0 {
				if err := c.SetAddElements(st, elements(sc.add)); err != nil {
					return err
				}
			}
		}
		for _, w := range chains {
			ch := &nftables.Chain{Name: w.name, Table: t}
			c.FlushChain(ch)
			addRules(c, t, ch, w.rules)
		}
		return nil
	})
}

func elements(keys [][]byte) []nftables.SetElement {
	out := make([]nftables.SetElement, len(keys))
	for i, k := range keys {
		out[i].Key = k
	}
	return out
}

// write replaces the table in namespace ns in one batch: the kernel applies
// all of it or nothing, and packets see the old wall until the new one is
// whole. The table is created exclusively: should another writer have made
// one since it was read, the batch fails rather than mixing two walls.
func write(ns int, fam nftables.TableFamily, exists bool, want []wantChain) error {
	return commit(ns, count(want), func(c *nftables.Conn) error {
		t := &nftables.Table{Name: Table, Family: fam}
		if exists {
			c.DelTable(t)
		}
		c.CreateTable(t)
		// Every set exists before any rule looks it up. The IDs, unique in
		// the batch, are given here: the library would count them in a
		// global of its own, unguarded against zones written side by side.
		id := uint32(0)
		for _, w := range want {
			for _, ws := range w.sets {
				id++
				if err := c.AddSet(&nftables.Set{Table: t, Name: ws.name, KeyType: ws.key, ID: id}, elements(ws.elems)); err != nil {
					return err
				}
			}
		}
		accept := nftables.ChainPolicyAccept
		made := make([]*nftables.Chain, len(want))
		// Every chain exists before any rule jumps to it.
		for i, w := range want {
			ch := &nftables.Chain{Name: w.name, Table: t}
			if w.hook != nil {
				ch.Type, ch.Hooknum, ch.Priority, ch.Policy = nftables.ChainTypeFilter, w.hook, nftables.ChainPriorityFilter, &accept
			}
			made[i] = c.AddChain(ch)
		}
		for i, w := range want {
			addRules(c, t, made[i], w.rules)
		}
		return nil
	})
}

func addRules(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain, rules []wantRule) {
	for _, r := range rules {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r.exprs,
			UserData: userdata.AppendString(nil, userdata.TypeComment, r.comment)})
	}
}

// closeSoon closes c without waiting for it. Closing a netfilter socket
// waits until the kernel has freed what the last commit in the socket's
// namespace replaced: right after one, an RCU grace period, 10 ms and more
// on a busy host. Every zone's write would wait for it once, and every
// read of a zone just written.
func closeSoon(c *netlink.Conn) { go c.Close() }

// commit sends the batch fill makes over a socket of its own in namespace
// ns, sized for a batch of the given number of rules, and closes it as
// closeSoon does: the batch is in force before.
func commit(ns, rules int, fill func(c *nftables.Conn) error) error {
	c, err := nftables.New(nftables.WithNetNSFd(ns), nftables.AsLasting(), nftables.WithSockOptions(batchBuffers(rules)))
	if err != nil {
		return err
	}
	defer func() { go func() { _ = c.CloseLasting() }() }()
	if err := fill(c); err != nil {
		return err
	}
	return c.Flush()
}

// batchBuffers sizes the socket for a batch of rules: the kernel takes a
// batch in one sendmsg, which fails (EMSGSIZE) beyond the send buffer, and
// echoes every rule back before the first read, which overflows (ENOBUFS) a
// default receive buffer; the host wall of ten zones or more did both. As nft
// does, the buffers are forced (root) to what the batch needs, counted
// generously per rule; the memory is only charged as it is used.
func batchBuffers(rules int) nftables.SockOption {
	n := 1<<20 + rules*4096
	return func(c *netlink.Conn) error {
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, n)
				}
			}
		}); err != nil {
			return err
		}
		return serr
	}
}

func count(want []wantChain) int {
	n := 0
	for _, w := range want {
		n += len(w.rules)
	}
	return n
}

func isBase(ch chain, b baseChain) bool {
	return ch.typ == string(nftables.ChainTypeFilter) &&
		ch.hook != nil && *ch.hook == uint32(*b.hook) &&
		ch.priority == int32(*nftables.ChainPriorityFilter) &&
		ch.policy != nil && *ch.policy == uint32(nftables.ChainPolicyAccept)
}
