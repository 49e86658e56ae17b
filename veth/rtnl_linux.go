package veth

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"github.com/nszone/nszone/netns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Indices of IPv6 per-device settings in IFLA_INET6_CONF: the kernel's
// enum DEVCONF_* (include/uapi/linux/ipv6.h), which only ever grows at the end.
const (
	devconfAcceptRA    = 3
	devconfDisableIPv6 = 26
	devconfAcceptDAD   = 27
)

// devconf maps the per-interface IPv6 settings nszone keeps to their index.
var devconf = map[string]int{"accept_ra": devconfAcceptRA, "disable_ipv6": devconfDisableIPv6, "accept_dad": devconfAcceptDAD}

// linkInfo is a link as one RTM_NEWLINK message gives it: what package
// netlink parses, and the IPv6 settings it leaves out (IFLA_AF_SPEC ->
// AF_INET6 -> IFLA_INET6_CONF, indexed by DEVCONF_*). inet6 is nil when the
// message carries none: the link has no IPv6 device (a kernel without IPv6,
// an MTU below 1280).
type linkInfo struct {
	netlink.Link
	inet6 []int32
}

// setting returns the IPv6 setting (e.g. "accept_ra") as /proc/sys shows
// it; ok is false when the message did not carry it.
func (l *linkInfo) setting(name string) (v string, ok bool) {
	i, known := devconf[name]
	if !known || i >= len(l.inet6) {
		return "", false
	}
	return strconv.Itoa(int(l.inet6[i])), true
}

// rtSocket sends the rtnetlink requests whose answers package netlink does
// not parse whole. Its socket belongs to the namespace it was opened in,
// so reading a zone through it takes no thread into the zone.
type rtSocket struct {
	socks map[int]*nl.SocketHandle // nil: a fresh socket per request, in the caller's namespace
}

// openRT opens a socket in the calling thread's namespace: inside a zone,
// call it under netns.Handle.Do.
func openRT() (*rtSocket, error) {
	s, err := nl.Subscribe(unix.NETLINK_ROUTE) // no groups: for requests only
	if err != nil {
		return nil, fmt.Errorf("opening rtnetlink socket: %w", err)
	}
	return &rtSocket{socks: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}}, nil
}

func (r *rtSocket) close() {
	if r == nil {
		return
	}
	for _, sh := range r.socks {
		sh.Socket.Close()
	}
}

// link reads the link called name; nil without error when there is none.
func (r *rtSocket) link(name string) (*linkInfo, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
	req.Sockets = r.socks
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	switch {
	case notFound(err):
		return nil, nil
	case err != nil:
		return nil, err
	case len(msgs) != 1:
		return nil, fmt.Errorf("reading link %s: %d answers", name, len(msgs))
	}
	return parseLink(msgs[0])
}

// links dumps every link of the namespace.
func (r *rtSocket) links() ([]*linkInfo, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.Sockets = r.socks
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return nil, err // ErrDumpInterrupted included: retryDump asks again
	}
	out := make([]*linkInfo, 0, len(msgs))
	for _, m := range msgs {
		l, err := parseLink(m)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// parseLink reads one RTM_NEWLINK message.
func parseLink(m []byte) (*linkInfo, error) {
	l, err := netlink.LinkDeserialize(nil, m)
	if err != nil {
		return nil, fmt.Errorf("parsing link: %w", err)
	}
	out := &linkInfo{Link: l}
	attrs, err := nl.ParseRouteAttr(m[unix.SizeofIfInfomsg:])
	if err != nil {
		return nil, fmt.Errorf("parsing link %s: %w", l.Attrs().Name, err)
	}
	spec := findAttr(attrs, unix.IFLA_AF_SPEC)
	if spec == nil {
		return out, nil
	}
	if out.inet6, err = inet6Conf(spec.Value); err != nil {
		return nil, fmt.Errorf("parsing the IPv6 settings of link %s: %w", l.Attrs().Name, err)
	}
	return out, nil
}

// inet6Conf finds IFLA_INET6_CONF in an IFLA_AF_SPEC: nil when absent.
func inet6Conf(spec []byte) ([]int32, error) {
	fams, err := nl.ParseRouteAttr(spec)
	if err != nil {
		return nil, err
	}
	v6 := findAttr(fams, unix.AF_INET6)
	if v6 == nil {
		return nil, nil
	}
	attrs, err := nl.ParseRouteAttr(v6.Value)
	if err != nil {
		return nil, err
	}
	conf := findAttr(attrs, unix.IFLA_INET6_CONF)
	if conf == nil {
		return nil, nil
	}
	if len(conf.Value)%4 != 0 {
		return nil, errors.New("IFLA_INET6_CONF is no array of 32-bit values")
	}
	out := make([]int32, len(conf.Value)/4)
	for i := range out {
		out[i] = int32(nl.NativeEndian().Uint32(conf.Value[4*i:]))
	}
	return out, nil
}

func findAttr(attrs []syscall.NetlinkRouteAttr, typ uint16) *syscall.NetlinkRouteAttr {
	for i := range attrs {
		if attrs[i].Attr.Type&nl.NLA_TYPE_MASK == typ {
			return &attrs[i]
		}
	}
	return nil
}

// handlesIn opens, on one thread that enters ns and comes back, a netlink
// handle and an rtSocket whose sockets live in ns.
func handlesIn(ns *netns.Handle) (h *netlink.Handle, rt *rtSocket, err error) {
	err = ns.Do(func() error {
		if h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			return err
		}
		if rt, err = openRT(); err != nil {
			h.Close()
			h = nil
		}
		return err
	})
	return h, rt, err
}

// HostLinks is the host's side of every zone's veth pair: its links and
// their addresses, read in one link dump and one address dump, so that a
// convergence of many zones hands each its part instead of asking the
// kernel once per zone (an address dump per zone returns every zone's
// addresses: a cost that grows with the square of their number).
//
// It is read-only and may be shared by goroutines. EnsurePair and
// InspectPair take a zone's part from it until they change that zone's pair,
// and read the kernel again from then on.
type HostLinks struct {
	links map[string]*linkInfo
	addrs map[int][]netlink.Addr // by link index
}

// ReadHostLinks reads the current namespace's links and addresses.
func ReadHostLinks() (*HostLinks, error) {
	links, err := retryDump((&rtSocket{}).links)
	if err != nil {
		return nil, fmt.Errorf("listing the host's links: %w", err)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("listing the host's addresses: %w", err)
	}
	h := &HostLinks{links: make(map[string]*linkInfo, len(links)), addrs: map[int][]netlink.Addr{}}
	for _, l := range links {
		h.links[l.Attrs().Name] = l
	}
	for _, a := range addrs {
		h.addrs[a.LinkIndex] = append(h.addrs[a.LinkIndex], a)
	}
	return h, nil
}
