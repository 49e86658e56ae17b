package check

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/probe"
	"github.com/nszone/nszone/veth"
	"github.com/nszone/nszone/zones"
)

// publishedResults proves each TCP port published into zone from the
// outside: a listener on the zone's port (the service's own, when one runs
// there already), and a connection from the host to the host's address the
// port is published on, the uplink's for every address. That is the path a
// LAN client's connection takes from the host on; the LAN itself is out of
// reach of a check on the host. UDP ports are listed as skipped: nothing
// answers a datagram but the service.
func publishedResults(name string, rec *zones.Record) []Result {
	var out []Result
	for _, p := range rec.Policy.Publish {
		for _, dst := range publishedAt(rec.Policy, p) {
			r := Result{Class: "published", Target: fmt.Sprintf("%s -> %d", dst, p.ZonePort), Proto: p.Proto, Expected: verdictAllow}
			if p.Proto != "tcp" {
				r.Observed, r.OK, r.Note = observedSkip, true, "udp: only the zone's service can answer"
				out = append(out, r)
				continue
			}
			stop, err := listenIn(name, p.ZonePort)
			if err != nil {
				r.Observed, r.Note = observedErr, err.Error()
				out = append(out, r)
				continue
			}
			err = probe.Attempt("tcp", dst, "")
			stop()
			r.Observed, r.OK = verdict(err == nil), err == nil
			if err != nil {
				r.Note = errText(err)
			}
			out = append(out, r)
		}
	}
	return out
}

// publishedAt is where the host reaches p: its address, or the uplink's
// addresses of the families the zone has.
func publishedAt(z firewall.Zone, p firewall.Published) []netip.AddrPort {
	if p.Addr.IsValid() {
		return []netip.AddrPort{netip.AddrPortFrom(p.Addr, p.HostPort)}
	}
	addrs, _ := veth.LinkAddrs(z.Uplink)
	var out []netip.AddrPort
	seen := map[bool]bool{}
	for _, a := range addrs {
		ip := a.Addr()
		if ip.IsLinkLocalUnicast() || seen[ip.Is4()] || (ip.Is6() && !z.Addr6.IsValid()) {
			continue
		}
		seen[ip.Is4()] = true
		out = append(out, netip.AddrPortFrom(ip, p.HostPort))
	}
	return out
}

// listenIn listens on the zone's TCP port, accepting and closing, unless
// something listens there already (the service itself: it answers).
func listenIn(zone string, port uint16) (stop func(), err error) {
	var l net.Listener
	err = netns.RunIn(zone, func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if errors.Is(err, syscall.EADDRINUSE) {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listening on port %d in zone %s: %w", port, zone, err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return func() { l.Close() }, nil
}

// viaResult says whether the zone's internet goes through its via
// interface, and from which address the internet sees it.
func viaResult(rec *zones.Record) Result {
	z := rec.Policy
	r := Result{Class: "via", Target: z.Via, Proto: "any", Expected: verdictAllow}
	addrs, err := veth.LinkAddrs(z.Via)
	if err != nil || len(addrs) == 0 {
		r.Observed, r.Note = verdictBlock, fmt.Sprintf("%s is missing or has no address: the zone reaches no internet (and nothing leaves another way)", z.Via)
		return r
	}
	r.Observed, r.OK = verdictAllow, true
	r.Note = fmt.Sprintf("the internet sees the zone as %s (%s's address, masqueraded)", addrs[0].Addr(), z.Via)
	return r
}
