package nft

import (
	"fmt"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
)

// Counters reads the counters of the inner wall in the zone's namespace ns
// (rules as firewall.InnerRules gives them): what the zone sent and was let
// through, and what it was refused, per family, since the wall was last
// written. A rule the kernel holds that rules do not have counts nowhere.
func Counters(ns *netns.Handle, rules map[firewall.Family][]firewall.Rule) (firewall.Counters, error) {
	var out firewall.Counters
	want, err := compile(innerSpec, rules)
	if err != nil {
		return out, fmt.Errorf("reading the inner wall's counters: %w", err)
	}
	counts := map[string]func(*firewall.Counters) *firewall.Count{}
	found := 0
	for _, c := range want {
		for _, r := range c.rules {
			if r.counts != nil {
				counts[r.comment] = r.counts
			}
		}
	}
	c, err := dialIn(ns.Fd())
	if err != nil {
		return out, fmt.Errorf("reading the inner wall's counters: %w", err)
	}
	defer closeSoon(c)
	filter := []netlink.Attribute{{Type: unix.NFTA_RULE_TABLE, Data: cstring(Table)}}
	err = dump(c, byte(innerSpec.family), unix.NFT_MSG_GETRULE, filter, func(_ byte, ad *netlink.AttributeDecoder) {
		table, comment, n := decodeCounted(ad)
		if add := counts[comment]; table == Table && add != nil {
			found++
			cnt := add(&out)
			cnt.Packets += n.Packets
			cnt.Bytes += n.Bytes
		}
	})
	if err != nil {
		return out, fmt.Errorf("reading the inner wall's counters: %w", err)
	}
	if found == 0 && len(counts) > 0 {
		// A wall of an older nszone, or of another policy: zeros would lie.
		return out, fmt.Errorf("the inner wall holds none of the counted rules")
	}
	return out, nil
}

// decodeCounted reads a rule of a GETRULE dump: its table, its comment and
// what its counter expression counted.
func decodeCounted(ad *netlink.AttributeDecoder) (table, comment string, n firewall.Count) {
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_TABLE:
			table = ad.String()
		case unix.NFTA_RULE_USERDATA:
			comment, _ = userdata.GetString(ad.Bytes(), userdata.TypeComment)
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for _, e := range decodeExprs(list) {
					n.Packets += e.counted.Packets
					n.Bytes += e.counted.Bytes
				}
				return nil
			})
		}
	}
	return table, comment, n
}
