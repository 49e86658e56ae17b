package firewall

import (
	bin "encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// iptables-nft keeps each iptables table as an nf_tables table of the same
// name, in family ip (iptables) or ip6 (ip6tables), and creates it, with
// only the built-in chains it needs, when a command first writes to it. An
// iptables-nft table is found and deleted here over netlink, in the
// current network namespace, without starting a process.
//
// iptables-legacy has nothing of the kind: its tables are those of the
// kernel's iptable_* modules, registered when the module loads and never
// deleted, so whether one "existed before" is no question a command can
// answer or undo.

// NftName is the nf_tables name of k's table: "ip filter", "ip6 nat".
func (k Key) NftName() string {
	if k.Family == IPv6 {
		return "ip6 " + k.Table
	}
	return "ip " + k.Table
}

// ParseNftName reads what NftName writes.
func ParseNftName(s string) (Key, bool) {
	fam, table, ok := strings.Cut(s, " ")
	if !ok || table == "" || strings.Contains(table, " ") {
		return Key{}, false
	}
	switch fam {
	case "ip":
		return Key{IPv4, table}, true
	case "ip6":
		return Key{IPv6, table}, true
	}
	return Key{}, false
}

// builtinChains are the chains iptables-nft may create in each table by
// itself, as base chains: the ones `iptables -t TABLE -L` shows on any host.
var builtinChains = map[string][]string{
	"filter":   {"INPUT", "FORWARD", "OUTPUT"},
	"nat":      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle":   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":      {"PREROUTING", "OUTPUT"},
	"security": {"INPUT", "FORWARD", "OUTPUT"},
}

// NftChain is what the kernel says of one chain of an iptables-nft table.
type NftChain struct {
	Name   string
	Base   bool   // hooked into the packet path (a built-in chain of iptables')
	Policy string // a base chain's policy: "ACCEPT" or "DROP"
	Rules  int
}

// WhyNotEmpty says what keeps an iptables-nft table from being empty, or
// "" when it holds nothing but built-in chains with no rules and policy
// ACCEPT, which filter nothing: deleting such a table changes no packet's
// fate. A chain that is not a built-in one (a user chain, or a base chain
// of a name iptables does not give) is someone else's.
func WhyNotEmpty(table string, chains []NftChain) string {
	var foreign, why []string
	for _, c := range chains {
		switch {
		case !c.Base || !slices.Contains(builtinChains[table], c.Name):
			foreign = append(foreign, c.Name)
		case c.Rules > 0:
			why = append(why, fmt.Sprintf("its %s chain holds %d rule(s) of someone else's", c.Name, c.Rules))
		case c.Policy != "ACCEPT":
			why = append(why, fmt.Sprintf("its %s chain's policy is %s", c.Name, c.Policy))
		}
	}
	if len(foreign) > 0 {
		slices.Sort(foreign)
		why = append([]string{fmt.Sprintf("it holds chains of someone else's (%s)", strings.Join(foreign, ", "))}, why...)
	}
	return strings.Join(why, "; ")
}

// MissingNftTables returns those of keys for which iptables-nft has no
// table in the current network namespace.
func MissingNftTables(keys []Key) ([]Key, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink: %w", err)
	}
	defer c.Close()
	var out []Key
	for _, k := range keys {
		ok, err := nftTableExists(c, k)
		if err != nil {
			return nil, err
		}
		if !ok {
			out = append(out, k)
		}
	}
	return out, nil
}

// DeleteNftTableIfEmpty deletes iptables-nft's table k, in the current
// network namespace, when WhyNotEmpty finds it empty, and otherwise
// returns why it stays. A table that is already gone is no error.
//
// The check and the deletion are one: the deletion is a batch that carries
// the ruleset generation the check read, so the kernel refuses it
// (ERESTART) if anyone changed any rule, chain or table in between, and
// then the check runs again. Each chain and the table are deleted with
// NLM_F_NONREC besides, so that even a kernel that ignored the generation
// would refuse to delete a rule, set or object rather than take it along.
func DeleteNftTableIfEmpty(k Key) (why string, err error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return "", fmt.Errorf("opening nftables netlink: %w", err)
	}
	defer c.Close()
	for try := 0; try < 5; try++ {
		gen, err := nftGeneration(c)
		if err != nil {
			return "", err
		}
		if ok, err := nftTableExists(c, k); err != nil || !ok {
			return "", err
		}
		chains, err := nftChains(c, k)
		if err != nil {
			return "", err
		}
		if why := WhyNotEmpty(k.Table, chains); why != "" {
			return why, nil
		}
		err = nftDeleteTable(c, k, gen, chains)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
			return "", nil
		case errors.Is(err, unix.ERESTART):
			continue // the ruleset changed since the check: look again
		case errors.Is(err, unix.EBUSY):
			return "it holds a set, an object or a flowtable of someone else's", nil
		default:
			return "", fmt.Errorf("deleting table %s: %w", k.NftName(), err)
		}
	}
	return "the ruleset kept changing while nszone looked at it", nil
}

// nfAccept is the NF_ACCEPT verdict (linux/netfilter.h), a base chain's policy.
const nfAccept = 1

func nftFamily(f Family) byte {
	if f == IPv6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

// nftMsg is one nf_tables request of family fam with the given attributes.
func nftMsg(typ uint16, flags netlink.HeaderFlags, fam byte, attrs []netlink.Attribute) (netlink.Message, error) {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return netlink.Message{}, err
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: flags},
		Data:   append([]byte{fam, unix.NFNETLINK_V0, 0, 0}, data...),
	}, nil
}

func cstring(s string) []byte { return append([]byte(s), 0) }

func be32(v uint32) []byte { return bin.BigEndian.AppendUint32(nil, v) }

// nftGeneration reads the ruleset's generation, which every commit changes.
func nftGeneration(c *netlink.Conn) (uint32, error) {
	msg, err := nftMsg(unix.NFT_MSG_GETGEN, netlink.Request, unix.AF_UNSPEC, nil)
	if err != nil {
		return 0, err
	}
	msgs, err := c.Execute(msg)
	if err != nil {
		return 0, fmt.Errorf("reading the nftables generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		ad.ByteOrder = bin.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, fmt.Errorf("reading the nftables generation: no generation in the answer")
}

func nftTableExists(c *netlink.Conn, k Key) (bool, error) {
	msg, err := nftMsg(unix.NFT_MSG_GETTABLE, netlink.Request, nftFamily(k.Family),
		[]netlink.Attribute{{Type: unix.NFTA_TABLE_NAME, Data: cstring(k.Table)}})
	if err != nil {
		return false, err
	}
	if _, err := c.Execute(msg); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("looking up table %s: %w", k.NftName(), err)
	}
	return true, nil
}

// nftChains lists the chains of k's table, each with its number of rules.
func nftChains(c *netlink.Conn, k Key) ([]NftChain, error) {
	fam := nftFamily(k.Family)
	msg, err := nftMsg(unix.NFT_MSG_GETCHAIN, netlink.Request|netlink.Dump, fam,
		[]netlink.Attribute{{Type: unix.NFTA_CHAIN_TABLE, Data: cstring(k.Table)}})
	if err != nil {
		return nil, err
	}
	msgs, err := c.Execute(msg)
	if err != nil {
		return nil, fmt.Errorf("listing the chains of %s: %w", k.NftName(), err)
	}
	var out []NftChain
	for _, m := range msgs {
		if len(m.Data) < 4 || m.Data[0] != fam {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, err
		}
		ad.ByteOrder = bin.BigEndian
		var ch NftChain
		table := ""
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_CHAIN_TABLE:
				table = ad.String()
			case unix.NFTA_CHAIN_NAME:
				ch.Name = ad.String()
			case unix.NFTA_CHAIN_HOOK:
				ch.Base = true
			case unix.NFTA_CHAIN_POLICY:
				ch.Policy = "DROP"
				if ad.Uint32() == nfAccept {
					ch.Policy = "ACCEPT"
				}
			}
		}
		if err := ad.Err(); err != nil {
			return nil, err
		}
		if table == k.Table {
			out = append(out, ch)
		}
	}
	for i := range out {
		if out[i].Rules, err = nftRuleCount(c, k, out[i].Name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func nftRuleCount(c *netlink.Conn, k Key, chain string) (int, error) {
	msg, err := nftMsg(unix.NFT_MSG_GETRULE, netlink.Request|netlink.Dump, nftFamily(k.Family), []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstring(k.Table)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstring(chain)},
	})
	if err != nil {
		return 0, err
	}
	msgs, err := c.Execute(msg)
	if errors.Is(err, unix.ENOENT) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing the rules of %s %s: %w", k.NftName(), chain, err)
	}
	n := 0
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		var t, ch string
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_TABLE:
				t = ad.String()
			case unix.NFTA_RULE_CHAIN:
				ch = ad.String()
			}
		}
		if t == k.Table && ch == chain {
			n++
		}
	}
	return n, nil
}

// nftDeleteTable deletes k's table and its chains in one batch, valid only
// while the ruleset is at generation gen, each deletion non-recursive.
func nftDeleteTable(c *netlink.Conn, k Key, gen uint32, chains []NftChain) error {
	genAttr, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFNL_BATCH_GENID, Data: be32(gen)}})
	if err != nil {
		return err
	}
	subsys := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}
	msgs := []netlink.Message{{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request},
		Data:   append(slices.Clone(subsys), genAttr...),
	}}
	flags := netlink.Request | netlink.Acknowledge | netlink.HeaderFlags(unix.NLM_F_NONREC)
	fam := nftFamily(k.Family)
	for _, ch := range chains {
		m, err := nftMsg(unix.NFT_MSG_DELCHAIN, flags, fam, []netlink.Attribute{
			{Type: unix.NFTA_CHAIN_TABLE, Data: cstring(k.Table)},
			{Type: unix.NFTA_CHAIN_NAME, Data: cstring(ch.Name)},
		})
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	m, err := nftMsg(unix.NFT_MSG_DELTABLE, flags, fam, []netlink.Attribute{{Type: unix.NFTA_TABLE_NAME, Data: cstring(k.Table)}})
	if err != nil {
		return err
	}
	msgs = append(msgs, m, netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: netlink.Request},
		Data:   subsys,
	})
	if _, err := c.SendMessages(msgs); err != nil {
		return err
	}
	// The kernel answers each acknowledged message once the whole batch is
	// done, or with a single error when it refused the batch as a whole.
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	defer c.SetReadDeadline(time.Time{})
	for want := len(chains) + 1; want > 0; {
		got, err := c.Receive()
		if err != nil {
			return err
		}
		for _, r := range got {
			if r.Header.Type == netlink.Error {
				want--
			}
		}
	}
	return nil
}
