package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The protocol (include/uapi/linux/netfilter/nfnetlink_log.h): a few
// attributes after the netfilter header, which names the group. It is
// small enough that a dependency for it would bring more than it saves.
const (
	msgPacket = unix.NFNL_SUBSYS_ULOG << 8   // | NFULNL_MSG_PACKET, which is 0
	msgConfig = unix.NFNL_SUBSYS_ULOG<<8 | 1 // NFULNL_MSG_CONFIG

	cfgCmd     = 1 // NFULA_CFG_CMD
	cfgMode    = 2 // NFULA_CFG_MODE
	cfgTimeout = 4 // NFULA_CFG_TIMEOUT, in hundredths of a second
	cfgQthresh = 5 // NFULA_CFG_QTHRESH

	cmdBind    = 1 // NFULNL_CFG_CMD_BIND
	copyPacket = 2 // NFULNL_COPY_PACKET

	attrTimestamp = 3  // NFULA_TIMESTAMP
	attrPayload   = 9  // NFULA_PAYLOAD
	attrPrefix    = 10 // NFULA_PREFIX
	attrUID       = 11 // NFULA_UID
)

// ErrBusy is Listen's error when another socket already reads the group in
// that namespace: the kernel gives each group one reader. It says EPERM
// then, as it does to a caller without CAP_NET_ADMIN, which nszone's
// callers (root) have.
var ErrBusy = errors.New("another program reads this log group")

// Conn reads one NFLOG group of one network namespace.
type Conn struct {
	c     *netlink.Conn
	group uint16
}

// Listen binds NFLOG group in the network namespace whose handle is ns (a
// file descriptor; 0 for the caller's own). The socket stays in that
// namespace, whichever thread reads it.
func Listen(ns int, group uint16) (*Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns})
	if err != nil {
		return nil, fmt.Errorf("opening a netfilter netlink socket: %w", err)
	}
	// Best effort: a burst beyond it shows as ENOBUFS, which Receive skips.
	_ = c.SetReadBuffer(1 << 20)
	l := &Conn{c: c, group: group}
	cmd := func(typ uint16, data []byte) netlink.Attribute { return netlink.Attribute{Type: typ, Data: data} }
	mode := binary.BigEndian.AppendUint32(nil, 0xffff) // copy range: the rule's snaplen cuts it
	mode = append(mode, copyPacket, 0)
	for _, attrs := range [][]netlink.Attribute{
		{cmd(cfgCmd, []byte{cmdBind})},
		{cmd(cfgMode, mode),
			// Each packet at once: a reader waits for none to batch up.
			cmd(cfgQthresh, binary.BigEndian.AppendUint32(nil, 1)),
			cmd(cfgTimeout, binary.BigEndian.AppendUint32(nil, 0))},
	} {
		if err := l.config(attrs); err != nil {
			c.Close()
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY) {
				return nil, fmt.Errorf("binding NFLOG group %d: %w", group, ErrBusy)
			}
			return nil, fmt.Errorf("binding NFLOG group %d: %w", group, err)
		}
	}
	return l, nil
}

// config sends one configuration request for the group and waits for its
// acknowledgement.
func (l *Conn) config(attrs []netlink.Attribute) error {
	b, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return err
	}
	_, err = l.c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(msgConfig), Flags: netlink.Request | netlink.Acknowledge},
		Data:   append(l.header(), b...),
	})
	return err
}

// header is the netfilter header of the group's messages: family
// unspecified, version 0, the group in network order.
func (l *Conn) header() []byte {
	return binary.BigEndian.AppendUint16([]byte{unix.AF_UNSPEC, unix.NFNETLINK_V0}, l.group)
}

// Receive waits for logged packets. Packets the kernel could not hand over
// (the socket's buffer full) are lost silently: the log is best effort, the
// rule that refused them is not.
func (l *Conn) Receive() ([]Packet, error) {
	for {
		msgs, err := l.c.Receive()
		if errors.Is(err, unix.ENOBUFS) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var out []Packet
		for _, m := range msgs {
			if m.Header.Type != netlink.HeaderType(msgPacket) || len(m.Data) < 4 ||
				binary.BigEndian.Uint16(m.Data[2:4]) != l.group {
				continue
			}
			if p, err := decode(m.Data[4:]); err == nil {
				out = append(out, p)
			}
		}
		if len(out) > 0 {
			return out, nil
		}
	}
}

// decode reads one NFULNL_MSG_PACKET's attributes.
func decode(b []byte) (Packet, error) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return Packet{}, err
	}
	ad.ByteOrder = binary.BigEndian
	p := Packet{UID: -1}
	for ad.Next() {
		switch ad.Type() {
		case attrPrefix:
			p.Prefix = ad.String()
		case attrPayload:
			p.Payload = ad.Bytes()
		case attrUID:
			p.UID = int(ad.Uint32())
		case attrTimestamp:
			if ts := ad.Bytes(); len(ts) == 16 {
				p.Time = time.Unix(int64(binary.BigEndian.Uint64(ts[0:8])), int64(binary.BigEndian.Uint64(ts[8:16]))*1000)
			}
		}
	}
	if err := ad.Err(); err != nil {
		return Packet{}, err
	}
	if p.Time.IsZero() {
		p.Time = time.Now() // a packet a local program sent has no timestamp yet
	}
	return p, nil
}

// Close stops reading; the kernel unbinds the group.
func (l *Conn) Close() error { return l.c.Close() }
