// Package nft applies and verifies a zone's inner wall with nftables, over
// netlink, inside the zone's own network namespace: the same rules that
// firewall.InnerRules gives (and firewall.BuildInner renders for iptables),
// without starting a process. Nobody else writes rules in a zone's
// namespace, so the wall is one table of nszone's alone, both families in it:
//
//	table inet nszone
//	  chain output  type filter hook output priority filter; policy accept
//	                NSZ-OUT's IPv4 rules in order (each "meta nfproto ipv4 ..."),
//	                then its IPv6 rules in order ("meta nfproto ipv6 ...")
//	  chain input   type filter hook input priority filter; policy accept
//	                NSZ-IN's rules, the same way
//
// InnerRules ends each family's rules in a reject or drop of everything, so
// the accept policy never decides a packet of a walled family. Every rule's
// comment is the iptables rule's comment plus a tag, "nszone-wan #5
// 3fa2b1c0d4e5": its position in the chain and a hash of its family, its
// iptables text and the translation's version. Apply and Missing read the tags back; when every
// chain holds the wanted tags in order the wall is in place, and Apply
// writes nothing. Otherwise Apply replaces the whole table in one batch
// (delete, then create with all chains and rules), which the kernel commits
// atomically: the zone is never without its wall, not even for a packet.
//
// What the tags prove is what outside damage does: a table deleted or
// flushed, made dormant, a chain deleted, rules deleted, added or moved. A
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
	"sort"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
	"golang.org/x/sys/unix"
)

// Apply makes the inner wall in the zone's namespace ns hold exactly rules,
// as firewall.InnerRules gives them, and reports whether it had to write. A
// rule of a form it cannot translate is an error before anything is read or
// written. On an error nothing was changed: the write is one atomic batch.
// The caller opens ns (netns.OpenNamed) and names the zone in errors.
func Apply(ns *netns.Handle, rules map[firewall.Family][]firewall.Rule, log *slog.Logger) (changed bool, err error) {
	return apply(ns.Fd(), innerSpec, rules, log)
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
// is written in one atomic batch.
func ApplyHost(rules map[firewall.Family][]firewall.Rule, log *slog.Logger) (changed bool, err error) {
	for _, f := range firewall.Families {
		sp := hostSpec(f)
		var c bool
		if len(rules[f]) == 0 {
			c, err = remove(0, sp, log)
		} else {
			c, err = apply(0, sp, map[firewall.Family][]firewall.Rule{f: rules[f]}, log)
		}
		if err != nil {
			return changed, err
		}
		changed = changed || c
	}
	return changed, nil
}

// MissingHost lists what of the host wall's tables in the current
// namespace is absent or differs; only the dispatch chains and zone's own
// chains count when zone is not "".
func MissingHost(rules map[firewall.Family][]firewall.Rule, zone string) ([]string, error) {
	return missingHost(0, rules, zone)
}

func missingHost(ns int, rules map[firewall.Family][]firewall.Rule, zone string) ([]string, error) {
	var out []string
	for _, f := range firewall.Families {
		if len(rules[f]) == 0 {
			continue
		}
		sp := hostSpec(f)
		sp.only = zone
		gaps, err := missing(ns, sp, map[firewall.Family][]firewall.Rule{f: rules[f]})
		if err != nil {
			return nil, err
		}
		out = append(out, gaps...)
	}
	return out, nil
}

// apply makes the table of sp in namespace ns (0: the current one) hold
// exactly rules.
func apply(ns int, sp spec, rules map[firewall.Family][]firewall.Rule, log *slog.Logger) (bool, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	want, err := compile(sp, rules)
	if err != nil {
		return false, err
	}
	if err := checkJumps(sp, want); err != nil {
		return false, err
	}
	cur, err := readIn(ns, sp.family)
	if err != nil {
		return false, fmt.Errorf("reading the %s: %w", sp.what, err)
	}
	gaps := cur.gaps(sp, want)
	if len(gaps) == 0 {
		return false, nil
	}
	log.Debug("applying nftables wall", "wall", sp.what, "table", Table, "was", gaps, "rules", count(want))
	if err := write(ns, sp.family, cur.table, want); err != nil {
		return false, fmt.Errorf("writing the %s: %w", sp.what, err)
	}
	return true, nil
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
}

// readIn reads nszone's table of family fam, its chains and its rules'
// comments inside the namespace ns (0: the current one), over one netlink
// socket: three dumps, and only what the check needs is decoded (the
// rules' expressions are not).
func readIn(ns int, fam nftables.TableFamily) (*state, error) {
	c, err := dialIn(ns)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	s := &state{comments: map[string][]string{}}
	err = dump(c, byte(fam), unix.NFT_MSG_GETTABLE, nil, func(_ byte, ad *netlink.AttributeDecoder) {
		if name, flags := decodeTable(ad); name == Table {
			s.table, s.flags = true, flags
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
	// The kernel dumps only this table's rules; the check below holds on
	// kernels that ignore the filter.
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
	return s, nil
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
	return out
}

// write replaces the table in namespace ns in one batch: the kernel applies
// all of it or nothing, and packets see the old wall until the new one is
// whole. The table is created exclusively: should another writer have made
// one since it was read, the batch fails rather than mixing two walls.
func write(ns int, fam nftables.TableFamily, exists bool, want []wantChain) error {
	c, err := nftables.New(nftables.WithNetNSFd(ns), nftables.WithSockOptions(batchBuffers(count(want))))
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: Table, Family: fam}
	if exists {
		c.DelTable(t)
	}
	c.CreateTable(t)
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
		for _, r := range w.rules {
			c.AddRule(&nftables.Rule{Table: t, Chain: made[i], Exprs: r.exprs,
				UserData: userdata.AppendString(nil, userdata.TypeComment, r.comment)})
		}
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
