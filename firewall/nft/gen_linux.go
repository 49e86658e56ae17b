package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/nszone/nszone/netns"
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

// sizeofNfgenmsg is the size of struct nfgenmsg, which x/sys does not name.
const sizeofNfgenmsg = 4

// soNetnsCookie is SO_NETNS_COOKIE (Linux 5.14), which x/sys does not name.
const soNetnsCookie = 71

// Generation reads the ruleset generation of the network namespace ns (nil:
// the calling thread's) in one round trip, over a plain socket: no poller
// and no connection state, and for another namespace one trip of a thread
// into it to make the socket. exec asks twice; a no-change up once a zone.
func Generation(ns *netns.Handle) (Gen, error) {
	var fd int
	open := func() (err error) {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		return err
	}
	var err error
	if ns == nil {
		err = open()
	} else {
		err = ns.Do(open)
	}
	if err != nil {
		return Gen{}, fmt.Errorf("reading the nftables generation: opening netlink: %w", err)
	}
	// Closed without waiting, as closeSoon does.
	defer func() { go unix.Close(fd) }()
	return readGen(fd)
}

// genRequest is NFT_MSG_GETGEN: a netlink header and an nfgenmsg (family
// unspecified, version 0, resource 0).
var genRequest = func() []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+sizeofNfgenmsg)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_GETGEN)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(b[8:], 1) // sequence
	return b
}()

// readGen asks the kernel over the netfilter socket fd for its namespace's
// generation, and the namespace's cookie.
func readGen(fd int) (Gen, error) {
	var g Gen
	// The kernel answers at once; the timeout only bounds a kernel that
	// would not.
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return g, fmt.Errorf("reading the nftables generation: %w", err)
	}
	// A signal (SIGCHLD of an iptables-restore) ends a wait early: with a
	// timeout set, the kernel does not restart it.
	err := retryEINTR(func() error { return unix.Sendto(fd, genRequest, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}) })
	if err != nil {
		return g, fmt.Errorf("reading the nftables generation: %w", err)
	}
	buf := make([]byte, 512)
	var n int
	if err := retryEINTR(func() (err error) { n, _, err = unix.Recvfrom(fd, buf, 0); return err }); err != nil {
		return g, fmt.Errorf("reading the nftables generation: %w", err)
	}
	if g.ID, err = parseGen(buf[:n]); err != nil {
		return g, fmt.Errorf("reading the nftables generation: %w", err)
	}
	if g.Cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, soNetnsCookie); err != nil {
		return g, fmt.Errorf("reading the namespace cookie: %w", err)
	}
	return g, nil
}

// retryEINTR calls fn again while a signal interrupts it.
func retryEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// parseGen reads the generation out of the kernel's answer to GETGEN.
func parseGen(b []byte) (uint32, error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		switch {
		case m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4:
			if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
				return 0, unix.Errno(-errno)
			}
		case m.Header.Type == unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWGEN && len(m.Data) >= sizeofNfgenmsg:
			ad, err := netlink.NewAttributeDecoder(m.Data[sizeofNfgenmsg:])
			if err != nil {
				return 0, err
			}
			ad.ByteOrder = binary.BigEndian
			for ad.Next() {
				if ad.Type() == unix.NFTA_GEN_ID {
					return ad.Uint32(), nil
				}
			}
		}
	}
	return 0, errors.New("no generation in the answer")
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
