package nft

import (
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Gen identifies a namespace's nf_tables ruleset as it is now: the kernel
// adds one to the generation with every transaction that changes any table
// (iptables-nft's included), and the cookie names the namespace itself (a
// 64-bit number never reused while the system runs, unlike the nsfs inode).
// Two equal Gens of a namespace mean no rule in it changed in between.
type Gen struct {
	Cookie uint64 `json:"cookie"`
	ID     uint32 `json:"id"`
}

// soNetnsCookie is SO_NETNS_COOKIE (Linux 5.14), which x/sys does not name.
const soNetnsCookie = 71

// Generation reads the ruleset generation of the network namespace ns (0:
// the calling thread's) in one round trip.
func Generation(ns int) (Gen, error) {
	c, err := dialIn(ns)
	if err != nil {
		return Gen{}, err
	}
	defer closeSoon(c)
	return generationOn(c)
}

// generationOn reads the generation of the namespace of c.
func generationOn(c *netlink.Conn) (Gen, error) {
	var g Gen
	found := false
	err := query(c, unix.NFPROTO_UNSPEC, unix.NFT_MSG_GETGEN, 0, nil, func(_ byte, ad *netlink.AttributeDecoder) {
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				g.ID, found = ad.Uint32(), true
			}
		}
	})
	if err != nil {
		return Gen{}, fmt.Errorf("reading the nftables generation: %w", err)
	}
	if !found {
		return Gen{}, fmt.Errorf("reading the nftables generation: no generation in the answer")
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return Gen{}, fmt.Errorf("reading the namespace cookie: %w", err)
	}
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		g.Cookie, cerr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, soNetnsCookie)
	}); err != nil {
		return Gen{}, fmt.Errorf("reading the namespace cookie: %w", err)
	}
	if cerr != nil {
		return Gen{}, fmt.Errorf("reading the namespace cookie: %w", cerr)
	}
	return g, nil
}

// next is the generation one commit after g: the kernel counts on past
// zero without stopping there.
func (g Gen) next() Gen {
	g.ID++
	if g.ID == 0 {
		g.ID++
	}
	return g
}
