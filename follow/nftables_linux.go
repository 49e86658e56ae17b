package follow

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/netns"
)

// nftChanges are the nf_tables notifications that change the ruleset. The
// kernel reports DESTROY* requests as DEL*, and GET* are never multicast.
var nftChanges = map[uint16]bool{
	unix.NFT_MSG_NEWTABLE: true, unix.NFT_MSG_DELTABLE: true,
	unix.NFT_MSG_NEWCHAIN: true, unix.NFT_MSG_DELCHAIN: true,
	unix.NFT_MSG_NEWRULE: true, unix.NFT_MSG_DELRULE: true,
	unix.NFT_MSG_NEWSET: true, unix.NFT_MSG_DELSET: true,
	unix.NFT_MSG_NEWSETELEM: true, unix.NFT_MSG_DELSETELEM: true,
	unix.NFT_MSG_NEWOBJ: true, unix.NFT_MSG_DELOBJ: true,
	unix.NFT_MSG_NEWFLOWTABLE: true, unix.NFT_MSG_DELFLOWTABLE: true,
}

// dialNft opens a socket that receives every nf_tables notification of the
// namespace ns (0: the current one, and mdlayher/netlink switches none).
func dialNft(ns int) (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns})
	if err != nil {
		return nil, fmt.Errorf("opening a netfilter netlink socket: %w", err)
	}
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		c.Close()
		return nil, fmt.Errorf("joining the nftables notification group: %w", err)
	}
	// Best effort: an overflow still shows as ENOBUFS, hence a resync.
	_ = c.SetReadBuffer(rcvBuf)
	return c, nil
}

// startNft opens the nftables subscription and returns the loop that follows
// it, and renews it when it fails before ctx ends.
func (f *follower) startNft() (func(), error) {
	c, err := dialNft(0)
	if err != nil {
		return nil, err
	}
	return func() {
		var backoff time.Duration
		for {
			opened := time.Now()
			conn := c
			unhook := context.AfterFunc(f.ctx, func() { conn.Close() }) // unblocks Receive
			err := f.readNft(c)
			unhook()
			c.Close()
			if f.ctx.Err() != nil {
				return
			}
			f.log.Warn("nftables change subscription failed", "err", err)
			for {
				backoff = nextBackoff(backoff, time.Since(opened))
				if !f.sleep(backoff) {
					return
				}
				if c, err = dialNft(0); err == nil {
					break
				}
				f.log.Warn("renewing the nftables change subscription", "err", err)
			}
			f.renewed("nftables")
		}
	}, nil
}

// readNft reports one ruleset Event per committed batch: the kernel sends a
// message per table, chain, rule, set or element changed, then NEWGEN with
// the new generation. It returns the error that broke the socket.
func (f *follower) readNft(c *netlink.Conn) error {
	changes := 0
	for {
		msgs, err := c.Receive()
		if errors.Is(err, unix.ENOBUFS) {
			// The socket stays usable: only the lost messages are gone.
			changes = 0
			f.lost("nftables", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("receiving nftables changes: %w", err)
		}
		for _, m := range msgs {
			if uint16(m.Header.Type)>>8 != unix.NFNL_SUBSYS_NFTABLES {
				continue
			}
			switch t := uint16(m.Header.Type) & 0xff; {
			case t == unix.NFT_MSG_NEWGEN:
				f.emit(Event{Kind: KindRuleset, Detail: genDetail(m.Data, changes)})
				changes = 0
			case nftChanges[t]:
				changes++
			}
		}
	}
}

// genDetail describes a NEWGEN message: a struct nfgenmsg, then attributes
// in network byte order.
func genDetail(data []byte, changes int) string {
	var gen uint32
	var proc string
	if len(data) > 4 {
		if ad, err := netlink.NewAttributeDecoder(data[4:]); err == nil {
			ad.ByteOrder = binary.BigEndian
			for ad.Next() {
				switch ad.Type() {
				case unix.NFTA_GEN_ID:
					gen = ad.Uint32()
				case unix.NFTA_GEN_PROC_NAME:
					proc = ad.String()
				}
			}
		}
	}
	s := fmt.Sprintf("nftables ruleset (gen %d, %d changes", gen, changes)
	if proc != "" {
		s += " by " + proc
	}
	return s + ")"
}

// Ruleset follows the nftables ruleset of the network namespace ns, named
// name (a zone's, where nszone's inner wall is), until ctx is done or the
// subscription breaks; each committed batch is one Event whose Detail names
// the namespace. The caller may close ns once Ruleset returns: the socket
// holds the namespace while it is open, and the caller stops following a
// namespace that is taken away.
func Ruleset(ctx context.Context, name string, ns *netns.Handle, log *slog.Logger) (<-chan Event, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := dialNft(ns.Fd())
	if err != nil {
		return nil, fmt.Errorf("following the ruleset of %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan Event, 16)
	f := &follower{ctx: ctx, log: log, out: out}
	go func() {
		defer close(out)
		defer cancel()
		unhook := context.AfterFunc(ctx, func() { c.Close() })
		defer unhook()
		err := f.readNft(c)
		c.Close()
		if ctx.Err() == nil {
			// Changes may be missed from here on: the caller converges.
			f.emit(Event{Kind: KindResync, Detail: fmt.Sprintf("%s: ruleset subscription ended: %v", name, err)})
		}
	}()
	named := make(chan Event, 16)
	go func() {
		defer close(named)
		for e := range out {
			e.Detail = name + ": " + e.Detail
			select {
			case named <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return named, nil
}
