package firewall

import "strings"

// iptables-nft keeps each iptables table as an nf_tables table of the same
// name, in family ip (iptables) or ip6 (ip6tables); package nft finds and
// deletes those tables over netlink.

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
