package nft

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/firewall"
)

// HostComments reads, over netlink and without a process, the comment of
// every rule of the given chains of one table that iptables-nft keeps in the
// current namespace: chain -> comments in rule order (iptables-nft stores `-m comment` as the
// rule's user data). It lets exec check quickly that the host's wall is
// there: hooks first, each chain with its number of rules. It cannot see a
// rule changed in place; status compares the whole text for that.
func HostComments(f firewall.Family, table string, chains []string) (map[string][]string, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink: %w", err)
	}
	defer c.Close()
	family := byte(unix.NFPROTO_IPV4)
	if f == firewall.IPv6 {
		family = unix.NFPROTO_IPV6
	}
	out := map[string][]string{}
	// One dump per chain: the kernel filters by table and chain, so the
	// cost does not grow with the other zones' chains.
	for _, chain := range chains {
		attrs, _ := netlink.MarshalAttributes([]netlink.Attribute{
			{Type: unix.NFTA_RULE_TABLE, Data: []byte(table + "\x00")},
			{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain + "\x00")},
		})
		msg := netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE), Flags: netlink.Request | netlink.Dump},
			Data:   append([]byte{family, unix.NFNETLINK_V0, 0, 0}, attrs...),
		}
		msgs, err := c.Execute(msg)
		if errors.Is(err, unix.ENOENT) {
			continue // no such chain (or table): nothing of it is there
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s %s rules of %s: %w", f, table, chain, err)
		}
		for _, m := range msgs {
			tbl, ch, comment, err := ruleComment(m)
			if err != nil {
				return nil, err
			}
			if tbl == table && ch == chain {
				out[ch] = append(out[ch], comment)
			}
		}
	}
	return out, nil
}

// ruleComment decodes a rule message's table, chain and comment.
func ruleComment(m netlink.Message) (table, chain, comment string, err error) {
	if len(m.Data) < 4 {
		return "", "", "", nil
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return "", "", "", err
	}
	table, chain, comment = decodeRule(ad)
	return table, chain, comment, ad.Err()
}

// decodeRule reads a rule's table, chain and comment: the comment from its
// user data (nftables, and iptables-nft from 1.8.10), else from an xtables
// comment match (iptables-nft before).
func decodeRule(ad *netlink.AttributeDecoder) (table, chain, comment string) {
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_TABLE:
			table = ad.String()
		case unix.NFTA_RULE_CHAIN:
			chain = ad.String()
		case unix.NFTA_RULE_USERDATA:
			if c, ok := userdata.GetString(ad.Bytes(), userdata.TypeComment); ok {
				comment = c
			}
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				if c := xtComment(nad); c != "" && comment == "" {
					comment = c
				}
				return nil
			})
		}
	}
	return table, chain, comment
}

// Attributes of an xtables match expression (linux/netfilter/nf_tables_compat.h).
const (
	nftaMatchName = 1
	nftaMatchInfo = 3
)

// xtComment finds an xtables "comment" match among a rule's expressions, as
// iptables-nft 1.8 writes `-m comment`, and returns its text.
func xtComment(exprs *netlink.AttributeDecoder) string {
	comment := ""
	for exprs.Next() {
		if exprs.Type() != unix.NFTA_LIST_ELEM {
			continue
		}
		exprs.Nested(func(e *netlink.AttributeDecoder) error {
			var name string
			for e.Next() {
				switch e.Type() {
				case unix.NFTA_EXPR_NAME:
					name = e.String()
				case unix.NFTA_EXPR_DATA:
					if name != "match" {
						continue
					}
					e.Nested(func(m *netlink.AttributeDecoder) error {
						var match string
						var info []byte
						for m.Next() {
							switch m.Type() {
							case nftaMatchName:
								match = m.String()
							case nftaMatchInfo:
								info = m.Bytes()
							}
						}
						if match == "comment" {
							if i := bytes.IndexByte(info, 0); i >= 0 {
								info = info[:i]
							}
							comment = string(info)
						}
						return nil
					})
				}
			}
			return nil
		})
	}
	return comment
}
