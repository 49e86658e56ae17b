package nft

import (
	"bytes"
	"fmt"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/firewall"
)

// HostComments reads, over netlink and without a process, the comment of
// every rule of one table that iptables-nft keeps in the current namespace:
// chain -> comments in rule order (iptables-nft stores `-m comment` as the
// rule's user data). It lets exec check quickly that the host's wall is
// there: hooks first, each chain with its number of rules. It cannot see a
// rule changed in place; status compares the whole text for that.
func HostComments(f firewall.Family, table string) (map[string][]string, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("opening nftables netlink: %w", err)
	}
	defer c.Close()
	family := byte(unix.NFPROTO_IPV4)
	if f == firewall.IPv6 {
		family = unix.NFPROTO_IPV6
	}
	attrs, _ := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: []byte(table + "\x00")}})
	msg := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE), Flags: netlink.Request | netlink.Dump},
		Data:   append([]byte{family, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	msgs, err := c.Execute(msg)
	if err != nil {
		return nil, fmt.Errorf("reading %s %s rules: %w", f, table, err)
	}
	out := map[string][]string{}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, err
		}
		var tbl, chain, comment string
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_TABLE:
				tbl = ad.String()
			case unix.NFTA_RULE_CHAIN:
				chain = ad.String()
			case unix.NFTA_RULE_USERDATA:
				if c, ok := userdata.GetString(ad.Bytes(), userdata.TypeComment); ok {
					comment = c
				}
			case unix.NFTA_RULE_EXPRESSIONS:
				ad.Nested(func(nad *netlink.AttributeDecoder) error {
					if c := xtComment(nad); c != "" {
						comment = c
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return nil, err
		}
		if tbl == table {
			out[chain] = append(out[chain], comment)
		}
	}
	return out, nil
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
