package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/firewall"
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

// builtinChains are the chains iptables-nft may create in each table by
// itself, as base chains: the ones `iptables -t TABLE -L` shows on any host.
var builtinChains = map[string][]string{
	"filter":   {"INPUT", "FORWARD", "OUTPUT"},
	"nat":      {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
	"mangle":   {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	"raw":      {"PREROUTING", "OUTPUT"},
	"security": {"INPUT", "FORWARD", "OUTPUT"},
}

// TableChain is what the kernel says of one chain of an iptables-nft table.
type TableChain struct {
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
func WhyNotEmpty(table string, chains []TableChain) string {
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

// MissingTables returns those of keys for which iptables-nft has no table
// in the current network namespace.
func MissingTables(keys []firewall.Key) ([]firewall.Key, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink: %w", err)
	}
	defer c.Close()
	var out []firewall.Key
	for _, k := range keys {
		ok, err := tableExists(c, k)
		if err != nil {
			return nil, err
		}
		if !ok {
			out = append(out, k)
		}
	}
	return out, nil
}

// DeleteTableIfEmpty deletes iptables-nft's table k, in the current
// network namespace, when WhyNotEmpty finds it empty, and otherwise
// returns why it stays. A table that is already gone is no error.
//
// The check and the deletion are one: the deletion is a batch that carries
// the ruleset generation the check read, so the kernel refuses it
// (ERESTART) if anyone changed any rule, chain or table in between, and
// then the check runs again. Each chain and the table are deleted with
// NLM_F_NONREC besides, so that even a kernel that ignored the generation
// would refuse to delete a rule, set or object rather than take it along.
func DeleteTableIfEmpty(k firewall.Key) (why string, err error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return "", fmt.Errorf("opening nftables netlink: %w", err)
	}
	defer c.Close()
	for try := 0; try < 5; try++ {
		g, err := generationOn(c)
		if err != nil {
			return "", err
		}
		gen := g.ID
		if ok, err := tableExists(c, k); err != nil || !ok {
			return "", err
		}
		chains, err := tableChains(c, k)
		if err != nil {
			return "", err
		}
		if why := WhyNotEmpty(k.Table, chains); why != "" {
			return why, nil
		}
		err = deleteTable(c, k, gen, chains)
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

func tableExists(c *netlink.Conn, k firewall.Key) (bool, error) {
	msg, err := request(nfproto(k.Family), unix.NFT_MSG_GETTABLE, 0,
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

// tableChains lists the chains of k's table, each with its number of rules.
func tableChains(c *netlink.Conn, k firewall.Key) ([]TableChain, error) {
	fam := nfproto(k.Family)
	var out []TableChain
	err := dump(c, fam, unix.NFT_MSG_GETCHAIN, []netlink.Attribute{{Type: unix.NFTA_CHAIN_TABLE, Data: cstring(k.Table)}},
		func(family byte, ad *netlink.AttributeDecoder) {
			ch := decodeChain(ad)
			if family != fam || ch.table != k.Table {
				return
			}
			tc := TableChain{Name: ch.name, Base: ch.hook != nil}
			if ch.policy != nil {
				tc.Policy = "DROP"
				if *ch.policy == nfAccept {
					tc.Policy = "ACCEPT"
				}
			}
			out = append(out, tc)
		})
	if err != nil {
		return nil, fmt.Errorf("listing the chains of %s: %w", k.NftName(), err)
	}
	for i := range out {
		if out[i].Rules, err = ruleCount(c, k, out[i].Name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func ruleCount(c *netlink.Conn, k firewall.Key, chain string) (int, error) {
	n := 0
	err := dump(c, nfproto(k.Family), unix.NFT_MSG_GETRULE, []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstring(k.Table)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstring(chain)},
	}, func(_ byte, ad *netlink.AttributeDecoder) {
		if t, ch, _ := decodeRule(ad); t == k.Table && ch == chain {
			n++
		}
	})
	if errors.Is(err, unix.ENOENT) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing the rules of %s %s: %w", k.NftName(), chain, err)
	}
	return n, nil
}

// deleteTable deletes k's table and its chains in one batch, valid only
// while the ruleset is at generation gen, each deletion non-recursive.
func deleteTable(c *netlink.Conn, k firewall.Key, gen uint32, chains []TableChain) error {
	genAttr, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFNL_BATCH_GENID, Data: binary.BigEndian.AppendUint32(nil, gen)}})
	if err != nil {
		return err
	}
	subsys := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}
	msgs := []netlink.Message{{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request},
		Data:   append(slices.Clone(subsys), genAttr...),
	}}
	flags := netlink.Acknowledge | netlink.HeaderFlags(unix.NLM_F_NONREC)
	fam := nfproto(k.Family)
	for _, ch := range chains {
		m, err := request(fam, unix.NFT_MSG_DELCHAIN, flags, []netlink.Attribute{
			{Type: unix.NFTA_CHAIN_TABLE, Data: cstring(k.Table)},
			{Type: unix.NFTA_CHAIN_NAME, Data: cstring(ch.Name)},
		})
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	m, err := request(fam, unix.NFT_MSG_DELTABLE, flags, []netlink.Attribute{{Type: unix.NFTA_TABLE_NAME, Data: cstring(k.Table)}})
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
