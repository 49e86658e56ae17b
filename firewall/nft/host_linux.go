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
	out := map[string][]string{}
	// One dump per chain: the kernel filters by table and chain, so the
	// cost does not grow with the other zones' chains.
	for _, chain := range chains {
		filter := []netlink.Attribute{
			{Type: unix.NFTA_RULE_TABLE, Data: cstring(table)},
			{Type: unix.NFTA_RULE_CHAIN, Data: cstring(chain)},
		}
		err := dump(c, nfproto(f), unix.NFT_MSG_GETRULE, filter, func(_ byte, ad *netlink.AttributeDecoder) {
			if tbl, ch, comment := decodeRule(ad); tbl == table && ch == chain {
				out[ch] = append(out[ch], comment)
			}
		})
		if errors.Is(err, unix.ENOENT) {
			continue // no such chain (or table): nothing of it is there
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s %s rules of %s: %w", f, table, chain, err)
		}
	}
	return out, nil
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
