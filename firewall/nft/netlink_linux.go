package nft

import (
	"encoding/binary"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/firewall"
)

// The nf_tables netlink plumbing every reader of this package shares: one
// request builder, one dump, one chain decoder.

// request is the nf_tables request msg for family fam (NFPROTO_UNSPEC: all
// families, or none), with attrs after its struct nfgenmsg.
func request(fam byte, msg int, flags netlink.HeaderFlags, attrs []netlink.Attribute) (netlink.Message, error) {
	data := []byte{fam, unix.NFNETLINK_V0, 0, 0} // struct nfgenmsg
	if len(attrs) > 0 {
		b, err := netlink.MarshalAttributes(attrs)
		if err != nil {
			return netlink.Message{}, err
		}
		data = append(data, b...)
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msg), Flags: netlink.Request | flags},
		Data:   data,
	}, nil
}

// dump runs one dump request for family fam (NFPROTO_UNSPEC: all) and hands
// each object's family and attributes to each. The kernel's error comes
// back unwrapped, so that callers can test it (ENOENT: no such table or
// chain).
func dump(c *netlink.Conn, fam byte, msg int, attrs []netlink.Attribute, each func(family byte, ad *netlink.AttributeDecoder)) error {
	return query(c, fam, msg, netlink.Dump, attrs, each)
}

// query sends one request and hands each answer's family and attributes
// (in network byte order, after its struct nfgenmsg) to each.
func query(c *netlink.Conn, fam byte, msg int, flags netlink.HeaderFlags, attrs []netlink.Attribute, each func(byte, *netlink.AttributeDecoder)) error {
	req, err := request(fam, msg, flags, attrs)
	if err != nil {
		return err
	}
	msgs, err := c.Execute(req)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return err
		}
		ad.ByteOrder = binary.BigEndian
		each(m.Data[0], ad)
		if err := ad.Err(); err != nil {
			return err
		}
	}
	return nil
}

// cstring is s as the kernel takes a name: NUL-terminated.
func cstring(s string) []byte { return append([]byte(s), 0) }

// nfproto is the nf_tables family of iptables' family f: ip or ip6.
func nfproto(f firewall.Family) byte {
	if f == firewall.IPv6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

// decodeTable reads one table of a GETTABLE dump: its name and flags.
func decodeTable(ad *netlink.AttributeDecoder) (name string, flags uint32) {
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_TABLE_NAME:
			name = ad.String()
		case unix.NFTA_TABLE_FLAGS:
			flags = ad.Uint32()
		}
	}
	return name, flags
}

// chain is what the kernel says of one chain.
type chain struct {
	table, name, typ string
	hook             *uint32 // nil: not a base chain
	priority         int32
	policy           *uint32 // a base chain's: nfAccept or nfDrop
}

// decodeChain reads one chain of a GETCHAIN dump.
func decodeChain(ad *netlink.AttributeDecoder) chain {
	var ch chain
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_CHAIN_TABLE:
			ch.table = ad.String()
		case unix.NFTA_CHAIN_NAME:
			ch.name = ad.String()
		case unix.NFTA_CHAIN_TYPE:
			ch.typ = ad.String()
		case unix.NFTA_CHAIN_POLICY:
			p := ad.Uint32()
			ch.policy = &p
		case unix.NFTA_CHAIN_HOOK:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					switch nad.Type() {
					case unix.NFTA_HOOK_HOOKNUM:
						h := nad.Uint32()
						ch.hook = &h
					case unix.NFTA_HOOK_PRIORITY:
						ch.priority = int32(nad.Uint32())
					}
				}
				return nil
			})
		}
	}
	return ch
}
