package follow

import (
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkName names a link index for the details: from the link events seen, or
// asked of the kernel. A link already gone shows as "if7".
func (f *follower) linkName(index int) string {
	f.mu.Lock()
	name, ok := f.names[index]
	f.mu.Unlock()
	if ok {
		return name
	}
	if l, err := netlink.LinkByIndex(index); err == nil {
		name = l.Attrs().Name
		f.mu.Lock()
		f.names[index] = name
		f.mu.Unlock()
		return name
	}
	return fmt.Sprintf("if%d", index)
}

func (f *follower) describeLink(u netlink.LinkUpdate) Event {
	a := u.Link.Attrs()
	f.mu.Lock()
	if u.Header.Type == unix.RTM_DELLINK {
		delete(f.names, a.Index)
	} else {
		f.names[a.Index] = a.Name
	}
	f.mu.Unlock()
	state := "down"
	switch {
	case u.Header.Type == unix.RTM_DELLINK:
		state = "del"
	case u.Flags&unix.IFF_UP != 0 && u.Flags&unix.IFF_LOWER_UP == 0:
		state = "up, no carrier"
	case u.Flags&unix.IFF_UP != 0:
		state = "up"
	}
	return Event{Kind: KindLink, Detail: fmt.Sprintf("link %s %s", a.Name, state)}
}

func (f *follower) describeAddr(u netlink.AddrUpdate) Event {
	verb := "del"
	if u.NewAddr {
		verb = "add"
	}
	return Event{Kind: KindAddr, Detail: fmt.Sprintf("addr %s %s on %s", verb, u.LinkAddress.String(), f.linkName(u.LinkIndex))}
}

// routeTypes names the route types other than unicast, as ip-route does.
var routeTypes = map[int]string{
	unix.RTN_LOCAL:       "local",
	unix.RTN_BROADCAST:   "broadcast",
	unix.RTN_ANYCAST:     "anycast",
	unix.RTN_MULTICAST:   "multicast",
	unix.RTN_BLACKHOLE:   "blackhole",
	unix.RTN_UNREACHABLE: "unreachable",
	unix.RTN_PROHIBIT:    "prohibit",
	unix.RTN_THROW:       "throw",
}

func (f *follower) describeRoute(u netlink.RouteUpdate) Event {
	r := u.Route
	var b strings.Builder
	b.WriteString("route ")
	if u.Type == unix.RTM_DELROUTE {
		b.WriteString("del ")
	} else {
		b.WriteString("add ")
	}
	if t, ok := routeTypes[r.Type]; ok {
		b.WriteString(t + " ")
	}
	if ones, _ := r.Dst.Mask.Size(); r.Dst == nil || ones == 0 && r.Dst.IP.IsUnspecified() {
		b.WriteString("default")
	} else {
		b.WriteString(r.Dst.String())
	}
	if r.Gw != nil {
		fmt.Fprintf(&b, " via %s", r.Gw)
	}
	if len(r.MultiPath) > 0 {
		fmt.Fprintf(&b, " multipath (%d hops)", len(r.MultiPath))
	}
	if r.LinkIndex > 0 {
		fmt.Fprintf(&b, " dev %s", f.linkName(r.LinkIndex))
	}
	switch r.Table {
	case 0, unix.RT_TABLE_MAIN:
	case unix.RT_TABLE_LOCAL:
		b.WriteString(" table local")
	default:
		fmt.Fprintf(&b, " table %d", r.Table)
	}
	return Event{Kind: KindRoute, Detail: b.String()}
}
