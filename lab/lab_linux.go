package lab

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/sandbox"
	"github.com/nszone/nszone/veth"
)

// Names of the lab's namespaces, pinned under /run/netns. The underscore
// keeps them apart from zone names, which cannot contain one.
const (
	RouterNS = "lab_router"
	LANNS    = "lab_lan"
	InetNS   = "lab_inet"
)

// Lab is a running simulated network. Its fields say where things are.
type Lab struct {
	Uplink               string       // the host's interface toward the LAN
	HostAddr4, HostAddr6 netip.Prefix // the host's addresses on Uplink
	Gateway4, Gateway6   netip.Addr   // lab_router on the LAN: the host's default routes

	LANServer4, LANServer6   netip.Addr // lab_lan: HTTP on 80 answering LANBody, DNS on 53
	InetServer4, InetServer6 netip.Addr // lab_inet: HTTP on 80 answering InetBody, DNS on 53
	LANBody, InetBody        string

	Nameserver netip.Addr // what the host's /etc/resolv.conf names
	DNSName    string     // resolves to InetServer4 and InetServer6
	LANDNSName string     // resolves to LANServer4 and LANServer6

	log  *slog.Logger
	undo []func() error // Close runs these, last first
}

// machine is one lab namespace and a netlink handle bound to it.
type machine struct {
	name string
	ns   *netns.Handle
	h    *netlink.Handle
}

// Start builds the lab; on error it removes whatever it had built.
func Start(log *slog.Logger) (_ *Lab, err error) {
	if !sandbox.Active() {
		return nil, errors.New("the lab would change this machine's network: it runs only inside the sandbox (sandbox.Reexec)")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Lab{
		Uplink:      "eth0",
		HostAddr4:   netip.MustParsePrefix("192.168.50.2/24"),
		HostAddr6:   netip.MustParsePrefix("fd00:50::2/64"),
		Gateway4:    netip.MustParseAddr("192.168.50.1"),
		Gateway6:    netip.MustParseAddr("fd00:50::1"),
		LANServer4:  netip.MustParseAddr("192.168.50.10"),
		LANServer6:  netip.MustParseAddr("fd00:50::10"),
		InetServer4: netip.MustParseAddr("203.0.113.10"),
		InetServer6: netip.MustParseAddr("2001:db8:113::10"),
		LANBody:     "lab-lan\n",
		InetBody:    "lab-internet\n",
		Nameserver:  netip.MustParseAddr("192.168.50.10"),
		DNSName:     "www.example",
		LANDNSName:  "nas.lan.example",
		log:         log,
	}
	defer func() {
		if err != nil {
			if cerr := l.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("rolling back the lab: %w", cerr))
			}
		}
	}()
	if err = l.build(); err != nil {
		return nil, err
	}
	log.Info("lab started", "uplink", l.Uplink, "lan_server", l.LANServer4, "internet_server", l.InetServer4, "nameserver", l.Nameserver)
	return l, nil
}

// Close stops the servers and removes the lab's links, namespaces, pins and
// mounts. It can be called more than once.
func (l *Lab) Close() error {
	var errs []error
	for i := len(l.undo) - 1; i >= 0; i-- {
		if err := l.undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	l.undo = nil
	l.log.Debug("lab closed", "errors", len(errs))
	return errors.Join(errs...)
}

// Describe tells a person what the lab offers.
func (l *Lab) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "host uplink %s: %s, %s; default routes via %s, %s\n", l.Uplink, l.HostAddr4, l.HostAddr6, l.Gateway4, l.Gateway6)
	fmt.Fprintf(&b, "LAN server (netns %s): http://%s/ http://[%s]/, DNS on both; name %s\n", LANNS, l.LANServer4, l.LANServer6, l.LANDNSName)
	fmt.Fprintf(&b, "internet server (netns %s): http://%s/ http://[%s]/, DNS on both; name %s\n", InetNS, l.InetServer4, l.InetServer6, l.DNSName)
	fmt.Fprintf(&b, "router (netns %s); /etc/resolv.conf: nameserver %s\n", RouterNS, l.Nameserver)
	return b.String()
}

func (l *Lab) onClose(f func() error) { l.undo = append(l.undo, f) }

func (l *Lab) build() error {
	hostNS, err := netns.Current()
	if err != nil {
		return fmt.Errorf("opening the host namespace: %w", err)
	}
	l.onClose(hostNS.Close)
	hostH, err := veth.HandleIn(hostNS)
	if err != nil {
		return fmt.Errorf("opening netlink in the host namespace: %w", err)
	}
	l.onClose(func() error { hostH.Close(); return nil })
	host := machine{name: "host", ns: hostNS, h: hostH}

	router, err := l.newMachine(RouterNS)
	if err != nil {
		return err
	}
	lan, err := l.newMachine(LANNS)
	if err != nil {
		return err
	}
	inet, err := l.newMachine(InetNS)
	if err != nil {
		return err
	}
	// Forwarding only in the router: the host's is nszone's business.
	if err := router.ns.Do(func() error {
		return errors.Join(writeSysctl("net/ipv4/ip_forward", "1"), writeSysctl("net/ipv6/conf/all/forwarding", "1"))
	}); err != nil {
		return fmt.Errorf("enabling forwarding in %s: %w", RouterNS, err)
	}

	if err := l.addVeth(host, l.Uplink, router, "host0"); err != nil {
		return err
	}
	if err := l.addVeth(router, "lan0", lan, "eth0"); err != nil {
		return err
	}
	if err := l.addVeth(router, "wan0", inet, "eth0"); err != nil {
		return err
	}
	if err := router.h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-lan"}}); err != nil {
		return fmt.Errorf("creating bridge br-lan in %s: %w", RouterNS, err)
	}
	l.onClose(func() error { return deleteLink(router, "br-lan") })
	l.log.Debug("created bridge", "netns", RouterNS, "name", "br-lan")
	for _, port := range []string{"host0", "lan0"} {
		if err := setMaster(router, port, "br-lan"); err != nil {
			return err
		}
	}

	lanPrefix := func(a netip.Addr) netip.Prefix {
		if a.Is4() {
			return netip.PrefixFrom(a, l.HostAddr4.Bits())
		}
		return netip.PrefixFrom(a, l.HostAddr6.Bits())
	}
	inet4, inet6 := netip.MustParsePrefix("203.0.113.1/24"), netip.MustParsePrefix("2001:db8:113::1/64")
	steps := []struct {
		m     machine
		link  string
		addrs []netip.Prefix
		gws   []netip.Addr
	}{
		{router, "host0", nil, nil},
		{router, "lan0", nil, nil},
		{router, "br-lan", []netip.Prefix{lanPrefix(l.Gateway4), lanPrefix(l.Gateway6)}, nil},
		{router, "wan0", []netip.Prefix{inet4, inet6}, nil},
		{host, l.Uplink, []netip.Prefix{l.HostAddr4, l.HostAddr6}, []netip.Addr{l.Gateway4, l.Gateway6}},
		{lan, "eth0", []netip.Prefix{lanPrefix(l.LANServer4), lanPrefix(l.LANServer6)}, []netip.Addr{l.Gateway4, l.Gateway6}},
		{inet, "eth0", []netip.Prefix{netip.PrefixFrom(l.InetServer4, 24), netip.PrefixFrom(l.InetServer6, 64)}, []netip.Addr{inet4.Addr(), inet6.Addr()}},
	}
	for _, s := range steps {
		if err := l.configure(s.m, s.link, s.addrs, s.gws); err != nil {
			return err
		}
	}

	zone := records{
		l.DNSName + ".":    {l.InetServer4, l.InetServer6},
		l.LANDNSName + ".": {l.LANServer4, l.LANServer6},
	}
	if err := l.startServers(lan, l.LANBody, zone); err != nil {
		return err
	}
	if err := l.startServers(inet, l.InetBody, zone); err != nil {
		return err
	}
	return l.setupResolver()
}

// newMachine creates a pinned namespace with loopback up and DAD off, so
// that IPv6 addresses work at once.
func (l *Lab) newMachine(name string) (machine, error) {
	if _, err := netns.CreateNamed(name, nil, nil); err != nil {
		return machine{}, err
	}
	l.onClose(func() error { return netns.DeleteNamed(name, nil) })
	ns, err := netns.OpenNamed(name)
	if err != nil {
		return machine{}, fmt.Errorf("opening namespace %s: %w", name, err)
	}
	l.onClose(ns.Close)
	l.log.Debug("created namespace", "netns", name)
	h, err := veth.HandleIn(ns)
	if err != nil {
		return machine{}, fmt.Errorf("opening netlink in %s: %w", name, err)
	}
	l.onClose(func() error { h.Close(); return nil })
	m := machine{name: name, ns: ns, h: h}
	if err := ns.Do(func() error {
		return errors.Join(writeSysctl("net/ipv6/conf/default/accept_dad", "0"), writeSysctl("net/ipv6/conf/all/accept_dad", "0"))
	}); err != nil {
		return machine{}, fmt.Errorf("turning off DAD in %s: %w", name, err)
	}
	return m, l.configure(m, "lo", nil, nil)
}

// addVeth creates the veth pair name (in m) and peer (in peerM).
func (l *Lab) addVeth(m machine, name string, peerM machine, peer string) error {
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer, PeerNamespace: netlink.NsFd(peerM.ns.Fd())}
	if err := m.h.LinkAdd(veth); err != nil {
		return fmt.Errorf("creating veth %s in %s (peer %s in %s): %w", name, m.name, peer, peerM.name, err)
	}
	l.onClose(func() error { return deleteLink(m, name) })
	l.log.Debug("created veth", "netns", m.name, "name", name, "peer_netns", peerM.name, "peer", peer)
	return nil
}

func deleteLink(m machine, name string) error {
	link, err := m.h.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil // a veth goes with its peer
	}
	if err == nil {
		err = m.h.LinkDel(link)
	}
	if err != nil {
		return fmt.Errorf("deleting %s in %s: %w", name, m.name, err)
	}
	return nil
}

func setMaster(m machine, port, bridge string) error {
	p, err := m.h.LinkByName(port)
	if err != nil {
		return fmt.Errorf("finding %s in %s: %w", port, m.name, err)
	}
	br, err := m.h.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("finding %s in %s: %w", bridge, m.name, err)
	}
	if err := m.h.LinkSetMaster(p, br); err != nil {
		return fmt.Errorf("adding %s to %s in %s: %w", port, bridge, m.name, err)
	}
	return nil
}

// configure brings a link up, adds addresses and default routes via gws.
func (l *Lab) configure(m machine, name string, addrs []netip.Prefix, gws []netip.Addr) error {
	link, err := m.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s in %s: %w", name, m.name, err)
	}
	if err := m.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing up %s in %s: %w", name, m.name, err)
	}
	for _, p := range addrs {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := m.h.AddrAdd(link, a); err != nil {
			return fmt.Errorf("adding %s to %s in %s: %w", p, name, m.name, err)
		}
		l.log.Debug("added address", "netns", m.name, "link", name, "addr", p)
	}
	for _, gw := range gws {
		dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		if gw.Is6() {
			dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: gw.AsSlice()}
		if err := m.h.RouteAdd(r); err != nil {
			return fmt.Errorf("adding default route via %s on %s in %s: %w", gw, name, m.name, err)
		}
		l.log.Debug("added default route", "netns", m.name, "link", name, "via", gw)
	}
	return nil
}

// startServers opens the listening sockets inside m's namespace and serves
// them.
func (l *Lab) startServers(m machine, body string, zone records) error {
	var httpL, tcp net.Listener
	var udp net.PacketConn
	err := m.ns.Do(func() error {
		var err error
		// ":port" listens on both families, like "[::]:port" with V6ONLY off.
		if httpL, err = net.Listen("tcp", ":80"); err != nil {
			return err
		}
		if tcp, err = net.Listen("tcp", ":53"); err != nil {
			return err
		}
		udp, err = net.ListenPacket("udp", ":53")
		return err
	})
	if err != nil {
		if httpL != nil {
			httpL.Close()
		}
		if tcp != nil {
			tcp.Close()
		}
		if udp != nil {
			udp.Close()
		}
		return fmt.Errorf("listening in %s: %w", m.name, err)
	}
	s := serve(l.log.With("netns", m.name), body, zone, httpL, udp, tcp)
	l.onClose(s.Close)
	l.log.Debug("started servers", "netns", m.name, "http", httpL.Addr(), "dns", udp.LocalAddr())
	return nil
}

// writeSysctl sets a sysctl, named by its path under /proc/sys (e.g.
// "net/ipv4/ip_forward"), in the calling thread's network namespace.
func writeSysctl(key, value string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("setting %s=%s: %w", key, value, err)
	}
	return nil
}
