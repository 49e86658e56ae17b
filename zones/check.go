package zones

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/veth"
)

// What `nszone check` probes when the zones file has no check: section.
// They are for a real machine: public anycast services that always listen,
// and the uplink's own gateway for lan. Tests always name their own targets.
var (
	// DefaultCheckInternet: Cloudflare's resolver answers HTTPS on both families.
	DefaultCheckInternet = []string{"1.1.1.1:443", "[2606:4700:4700::1111]:443"}
	// DefaultCheckDNS is the name each zone's DNS servers are asked for.
	DefaultCheckDNS = []string{"example.com"}
	// defaultLANPorts are tried on the host's default gateways (DNS and a
	// web interface are what home and office routers offer).
	defaultLANPorts = []uint16{53, 80}
)

const (
	// probeParallel bounds the probes in flight: enough that a check of a few
	// zones takes about a second, few enough not to look like a flood.
	probeParallel = 16
	// resolveTimeout bounds resolving a check target given by name.
	resolveTimeout = 3 * time.Second
)

// Check verdicts, as the contract names them; "skipped" and "error" are
// observations that could not be made (see CheckResult.Note).
const (
	verdictAllow = "allow"
	verdictBlock = "block"
	observedSkip = "skipped"
	observedErr  = "error"
)

// CheckResult is one observation of `check`.
type CheckResult struct {
	Class    string `json:"class"`  // internet, lan, host, zone:NAME, dns, pinhole
	Target   string `json:"target"` // ADDR:PORT, or "ADDR:53 NAME" for dns
	Proto    string `json:"proto"`  // tcp or udp
	Expected string `json:"expected"`
	Observed string `json:"observed"`
	OK       bool   `json:"ok"`
	Note     string `json:"note,omitempty"` // why an attempt failed, or why it was skipped
}

// ZoneCheck is what `check` observed from inside one zone.
type ZoneCheck struct {
	Name    string        `json:"name"`
	Results []CheckResult `json:"results"`
}

// CheckReport is the whole of `check`: OK when every observation matches.
type CheckReport struct {
	OK    bool        `json:"ok"`
	Zones []ZoneCheck `json:"zones"`
	// Notes name what on the host explains mismatches: another program's
	// nftables chain that drops the zones' traffic, with the fix.
	Notes []string `json:"notes,omitempty"`
}

// Mismatches counts the results that are not OK.
func (r *CheckReport) Mismatches() (bad, total int) {
	for _, z := range r.Zones {
		for _, res := range z.Results {
			total++
			if !res.OK {
				bad++
			}
		}
	}
	return bad, total
}

// Prober makes check's observations. Package probe is the one nszone
// uses; it is not imported here, so that what links this package only for
// Ready (the setuid nszone-enter) links no prober.
type Prober interface {
	// Attempt opens proto (tcp or udp) to dst from the calling thread's
	// network namespace: TCP counts when the handshake completes, UDP when a
	// reply to a DNS query for dnsName comes back.
	Attempt(proto string, dst netip.AddrPort, dnsName string) error
	// Listen opens a listener on ephemeral ports in the calling thread's
	// namespace, IPv6 too when v6, that accepts TCP and echoes UDP from
	// zones (and link-local senders) only; stop closes it.
	Listen(v6 bool, zones []netip.Prefix) (tcp, udp uint16, stop func(), err error)
}

// Check proves the policy of the named zones (every zone that is up when
// names is empty) by probing from inside each zone with real connections
// (made by p): to f's check targets (internet, lan, DNS names), to
// listeners it opens briefly on the host and in the other zones, and to
// each pinhole. What each probe should do is derived from the zone's
// recorded policy.
func (m *Manager) Check(f *config.File, names []string, p Prober) (*CheckReport, error) {
	recs, upNames, err := m.records()
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if recs[n] == nil {
			return nil, fmt.Errorf("zone %q is not up: nothing to check (run nszone up first)", n)
		}
	}
	list := slices.Clone(names)
	if len(list) == 0 {
		list = upNames
	}
	slices.Sort(list)
	list = slices.Compact(list)
	rep := &CheckReport{OK: true, Zones: []ZoneCheck{}}
	if len(list) == 0 {
		return rep, nil
	}
	rep.Notes = m.coexistence()

	env := &checkEnv{recs: recs, hostLL: map[string]netip.Addr{}, zonePorts: map[string]echoPorts{}, badNetns: map[string]string{}}
	if env.hostAddrs, err = veth.HostAddrs(); err != nil {
		return nil, fmt.Errorf("reading the host's addresses: %w", err)
	}
	for name, r := range recs {
		if ll, ok := linkLocalOf(HostIf(name)); ok {
			env.hostLL[name] = ll
		}
		// A pin that is gone or points at another namespace is no zone of
		// ours to probe from (or into): every probe there is an error.
		if id, err := netns.PinID(name); err != nil {
			env.badNetns[name] = fmt.Sprintf("namespace %s/%s: %v", netns.PinDir, name, err)
		} else if id != r.Netns {
			env.badNetns[name] = fmt.Sprintf("namespace %s/%s is not the one nszone made", netns.PinDir, name)
		}
	}
	env.internet = resolveTargets(orDefault(f.Check.Internet, DefaultCheckInternet))
	lan := f.Check.LAN
	if lan == nil {
		lan = defaultLANTargets()
	}
	env.lan = resolveTargets(lan)
	env.dnsNames = orDefault(f.Check.DNS, DefaultCheckDNS)
	if rc, err := upstreamDNS(m.Root); err == nil {
		env.upstream = rc.servers
	}

	// Listeners: on the host, and in each zone that another checked zone probes.
	zoneNets := recordedNets(recs)
	v6 := false
	for _, r := range recs {
		v6 = v6 || r.IPv6 // a host without IPv6 has no zone with it
	}
	hostTCP, hostUDP, stop, err := p.Listen(v6, zoneNets)
	if err != nil {
		return nil, fmt.Errorf("opening the host's check listeners: %w", err)
	}
	defer stop()
	env.hostPorts = echoPorts{tcp: hostTCP, udp: hostUDP}
	for _, name := range sortedKeys(recs) {
		if len(list) == 1 && list[0] == name || env.badNetns[name] != "" {
			continue
		}
		var ports echoPorts
		var stop func()
		err := netns.RunIn(name, func() (err error) {
			ports.tcp, ports.udp, stop, err = p.Listen(recs[name].IPv6, zoneNets)
			return err
		})
		if err != nil {
			env.zonePorts[name] = echoPorts{err: err}
			continue
		}
		defer stop()
		env.zonePorts[name] = ports
	}

	probes := planChecks(env, list)
	runProbes(probes, p)
	for _, name := range list {
		zc := ZoneCheck{Name: name, Results: []CheckResult{}}
		for _, p := range probes {
			if p.zone == name {
				res := p.result()
				zc.Results = append(zc.Results, res)
				rep.OK = rep.OK && res.OK
			}
		}
		rep.Zones = append(rep.Zones, zc)
	}
	return rep, nil
}

func orDefault(s, def []string) []string {
	if s == nil {
		return def
	}
	return s
}

// checkEnv is everything the expectations are derived from besides the records.
type checkEnv struct {
	recs      map[string]*Record
	hostAddrs []netip.Addr          // every address of the host (HostAddrs)
	hostLL    map[string]netip.Addr // zone -> link-local address of its host end
	internet  []checkTarget
	lan       []checkTarget
	dnsNames  []string
	upstream  []netip.Addr // the host's upstream DNS servers
	hostPorts echoPorts
	zonePorts map[string]echoPorts // listeners in zones; absent: not a target
	badNetns  map[string]string    // zones whose namespace cannot be used, and why
}

// checkTarget is one HOST:PORT of the check: section, resolved on the host.
type checkTarget struct {
	shown string // as the file gives it, with the address when HOST was a name
	addr  netip.AddrPort
	err   string // set when HOST could not be resolved
}

// resolveTargets turns HOST:PORT strings into addresses. A name is resolved
// on the host, once per family, so each family is probed.
func resolveTargets(list []string) []checkTarget {
	var out []checkTarget
	for _, s := range list {
		host, portText, err := net.SplitHostPort(s)
		port, perr := strconv.ParseUint(portText, 10, 16)
		if err != nil || perr != nil || port == 0 {
			out = append(out, checkTarget{shown: s, err: "want HOST:PORT"})
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil {
			out = append(out, checkTarget{shown: s, addr: netip.AddrPortFrom(a.Unmap(), uint16(port))})
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		if err == nil && len(addrs) == 0 {
			err = errors.New("no address")
		}
		if err != nil {
			out = append(out, checkTarget{shown: s, err: fmt.Sprintf("cannot resolve %s on the host: %v", host, err)})
			continue
		}
		seen4, seen6 := false, false
		for _, a := range addrs {
			a = a.Unmap()
			if a.Is4() && !seen4 || a.Is6() && !seen6 {
				seen4, seen6 = seen4 || a.Is4(), seen6 || a.Is6()
				ap := netip.AddrPortFrom(a, uint16(port))
				out = append(out, checkTarget{shown: s + " (" + ap.String() + ")", addr: ap})
			}
		}
	}
	return out
}

// defaultLANTargets are the host's default gateways (IPv6 only when global:
// a link-local gateway is on the uplink's link, which no zone is on).
func defaultLANTargets() []string {
	var out []string
	for _, gw := range defaultGateways() {
		for _, port := range defaultLANPorts {
			out = append(out, netip.AddrPortFrom(gw, port).String())
		}
	}
	return out
}

// defaultGateways reads the main table's default gateways from /proc, the
// same view `ip route` has, without another netlink dump.
func defaultGateways() []netip.Addr {
	v4, _ := os.ReadFile("/proc/net/route")
	v6, _ := os.ReadFile("/proc/net/ipv6_route")
	return parseGateways(v4, v6)
}

// parseGateways takes the gateways of default routes from the contents of
// /proc/net/route and /proc/net/ipv6_route.
func parseGateways(route4, route6 []byte) []netip.Addr {
	var out []netip.Addr
	// Iface Destination Gateway Flags RefCnt Use Metric Mask ...; hex, host byte order.
	for line := range strings.Lines(string(route4)) {
		f := strings.Fields(line)
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		v, err := strconv.ParseUint(f[2], 16, 32)
		if err != nil || v == 0 {
			continue
		}
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], uint32(v))
		out = append(out, netip.AddrFrom4(b))
	}
	// dst dstlen src srclen nexthop metric refcnt use flags iface; hex, network order.
	for line := range strings.Lines(string(route6)) {
		f := strings.Fields(line)
		if len(f) < 10 || f[0] != strings.Repeat("0", 32) || f[1] != "00" {
			continue
		}
		b, err := hex.DecodeString(f[4])
		if err != nil || len(b) != 16 {
			continue
		}
		if a := netip.AddrFrom16([16]byte(b)); !a.IsUnspecified() && !a.IsLinkLocalUnicast() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// linkLocalOf returns the IPv6 link-local address of a host interface: the
// one host address a zone reaches on its own link without routing.
func linkLocalOf(ifname string) (netip.Addr, bool) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}, false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}

// recordedNets lists every zone's link subnets.
func recordedNets(recs map[string]*Record) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range recs {
		for _, p := range []netip.Prefix{r.Policy.Net4, r.Policy.Net6} {
			if p.IsValid() {
				out = append(out, p)
			}
		}
	}
	return out
}

// probe is one observation to make from inside a zone.
type probe struct {
	zone, class string
	target      string // as shown
	proto       string // "tcp" or "udp"
	dst         netip.AddrPort
	dnsName     string // dns probes: the name asked; udp probes send a query for it
	want        bool
	control     bool   // a target outside nszone: it must answer the host itself first
	skip        string // not probed, and why
	fail        string // cannot be probed: check's own failure

	got  bool
	note string
}

func (p *probe) result() CheckResult {
	r := CheckResult{Class: p.class, Target: p.target, Proto: p.proto, Expected: verdict(p.want), Note: p.note}
	switch {
	case p.fail != "":
		r.Observed, r.Note = observedErr, p.fail
	case p.skip != "":
		r.Observed, r.OK, r.Note = observedSkip, true, p.skip
	default:
		r.Observed, r.OK = verdict(p.got), p.got == p.want
		if p.got {
			r.Note = ""
		}
	}
	return r
}

func verdict(allowed bool) string {
	if allowed {
		return verdictAllow
	}
	return verdictBlock
}

// planChecks derives, for each zone of list, the probes and what each
// should observe under the zone's recorded policy.
func planChecks(env *checkEnv, list []string) []*probe {
	var out []*probe
	for _, name := range list {
		rec := env.recs[name]
		add := func(p *probe) {
			p.zone = name
			if p.dnsName == "" {
				p.dnsName = firstOr(env.dnsNames, DefaultCheckDNS[0])
			}
			if p.target == "" {
				p.target = p.dst.String()
			}
			if why := env.badNetns[name]; why != "" && p.skip == "" {
				p.fail = why
			}
			out = append(out, p)
		}
		// family reports whether the zone has a's family (IPv6 only with ipv6: true).
		family := func(a netip.Addr) bool { return a.Is4() || rec.IPv6 }
		expect := func(dst netip.AddrPort, proto string) bool {
			return allows(rec, env.recs, env.hostAddrs, dst.Addr(), proto, dst.Port())
		}

		for _, c := range []struct {
			class   string
			targets []checkTarget
		}{{"internet", env.internet}, {"lan", env.lan}} {
			for _, t := range c.targets {
				switch {
				case t.err != "":
					add(&probe{class: c.class, target: t.shown, proto: "tcp", skip: t.err})
				case family(t.addr.Addr()):
					add(&probe{class: c.class, target: t.shown, proto: "tcp", dst: t.addr,
						want: expect(t.addr, "tcp"), control: true})
				}
			}
		}

		// The host: the zone's gateway first, its link-local twin, then every
		// other host address. Loopback is the zone's own; other link-locals
		// are on links the zone is not on.
		var hostDsts []netip.Addr
		for _, a := range []netip.Addr{rec.Pair.Host4.Addr(), rec.Pair.Host6.Addr(), env.hostLL[name]} {
			if a.IsValid() && family(a) {
				hostDsts = append(hostDsts, a)
			}
		}
		for _, a := range env.hostAddrs {
			// Other zones' gateways are host addresses in zone subnets: a
			// zone reaches the host through its own gateway only.
			if inOtherZone(a, name, env.recs) {
				continue
			}
			if family(a) && !a.IsLoopback() && !(a.Is6() && a.IsLinkLocalUnicast()) && !slices.Contains(hostDsts, a) {
				hostDsts = append(hostDsts, a)
			}
		}
		for _, a := range hostDsts {
			shown := a
			if a.Is6() && a.IsLinkLocalUnicast() {
				a = a.WithZone(rec.Pair.PeerName) // reached over the zone's own link
			}
			for _, proto := range []string{"tcp", "udp"} {
				port := env.hostPorts.of(proto)
				p := &probe{class: "host", proto: proto, dst: netip.AddrPortFrom(a, port),
					target: netip.AddrPortFrom(shown, port).String(), want: expect(netip.AddrPortFrom(shown, port), proto)}
				if env.hostPorts.err != nil {
					p.fail = "host listener: " + env.hostPorts.err.Error()
				}
				add(p)
			}
		}

		// Every other zone that is up, at its own address.
		for _, other := range sortedKeys(env.recs) {
			ports, ok := env.zonePorts[other]
			if other == name || !ok && env.badNetns[other] == "" {
				continue
			}
			o := env.recs[other]
			for _, a := range []netip.Addr{o.Pair.Zone4.Addr(), o.Pair.Zone6.Addr()} {
				if !a.IsValid() || !family(a) {
					continue
				}
				for _, proto := range []string{"tcp", "udp"} {
					dst := netip.AddrPortFrom(a, ports.of(proto))
					p := &probe{class: "zone:" + other, proto: proto, dst: dst, want: expect(dst, proto)}
					switch {
					case env.badNetns[other] != "":
						p.fail = env.badNetns[other]
					case ports.err != nil:
						p.fail = fmt.Sprintf("listener in zone %s: %v", other, ports.err)
					}
					add(p)
				}
			}
		}

		// DNS: the zone's own servers must answer; the host's upstream
		// servers answer only where the policy allows it (offline: nowhere).
		var servers []netip.Addr
		for _, s := range rec.DNS {
			if a, err := netip.ParseAddr(s); err == nil {
				servers = append(servers, a)
			}
		}
		own := len(servers)
		for _, a := range env.upstream {
			if !slices.Contains(servers, a) {
				servers = append(servers, a)
			}
		}
		for i, s := range servers {
			if !family(s) {
				continue
			}
			dst := netip.AddrPortFrom(s, 53)
			for _, n := range env.dnsNames {
				add(&probe{class: "dns", proto: "udp", dst: dst, dnsName: n, target: dst.String() + " " + n,
					want: i < own || expect(dst, "udp"), control: true})
			}
		}

		// Pinholes to one address and port; DNS openings are the dns class's.
		for _, ph := range rec.Policy.Pinholes {
			if !ph.Dst.IsSingleIP() || ph.PortLo == 0 || !family(ph.Dst.Addr()) ||
				slices.Contains(rec.Openings, netip.AddrPortFrom(ph.Dst.Addr(), ph.PortLo).String()) {
				continue
			}
			proto := ph.Proto
			if proto == "" {
				proto = "tcp"
			}
			dst := netip.AddrPortFrom(ph.Dst.Addr(), ph.PortLo)
			add(&probe{class: "pinhole", proto: proto, dst: dst, want: expect(dst, proto), control: true})
		}
	}
	return out
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// allows says whether zone rec's policy lets it open proto to dst:port,
// reasoning as the rules firewall.Build makes do: the host's own addresses
// (and link-locals) are the host's (host, or a pinhole), other zones'
// addresses are reached through zone:NAME only, then pinholes, then lan
// and internet through the uplink.
func allows(rec *Record, recs map[string]*Record, hostAddrs []netip.Addr, dst netip.Addr, proto string, port uint16) bool {
	p := rec.Policy
	dst = dst.WithZone("")
	if dst.Is6() && !p.IPv6 {
		return false
	}
	pinhole := pinholeAllows(p.Pinholes, dst, proto, port)
	// An IPv6 link-local address seen from a zone is on the zone's own
	// link, where the host's end is all there is.
	if slices.Contains(hostAddrs, dst) || rec.Pair.Host4.Addr() == dst || rec.Pair.Host6.Addr() == dst ||
		dst.Is6() && dst.IsLinkLocalUnicast() {
		return p.Host || pinhole
	}
	for name, o := range recs {
		if name != rec.Name && (o.Policy.Net4.Contains(dst) || o.Policy.Net6.Contains(dst)) {
			return slices.Contains(p.ToHostIfs, HostIf(name))
		}
	}
	if pinhole {
		return true
	}
	if p.Uplink == "" {
		return false
	}
	if inAny(dst, rec.LAN) {
		return p.LAN
	}
	return p.Internet
}

func pinholeAllows(phs []firewall.Pinhole, dst netip.Addr, proto string, port uint16) bool {
	for _, ph := range phs {
		if !ph.Dst.Contains(dst) || ph.Proto != "" && ph.Proto != proto {
			continue
		}
		if ph.PortLo == 0 || ph.PortLo <= port && port <= max(ph.PortHi, ph.PortLo) {
			return true
		}
	}
	return false
}

// runProbes makes the observations, probeParallel at a time. Targets
// outside nszone are first tried from the host: one that does not answer
// the host proves nothing about a zone, and is skipped (a machine without
// IPv6 internet, a gateway without a web interface).
func runProbes(probes []*probe, prober Prober) {
	type key struct {
		proto string
		dst   netip.AddrPort
		name  string
	}
	var keys []key
	for _, p := range probes {
		if k := (key{p.proto, p.dst, p.dnsName}); p.control && p.skip == "" && p.fail == "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	errs := make([]error, len(keys))
	sem := make(chan struct{}, probeParallel)
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = prober.Attempt(k.proto, k.dst, k.name)
		})
	}
	wg.Wait()
	controls := map[key]error{}
	for i, k := range keys {
		controls[k] = errs[i]
	}
	for _, p := range probes {
		if p.skip != "" || p.fail != "" {
			continue
		}
		if p.control {
			if err := controls[key{p.proto, p.dst, p.dnsName}]; err != nil {
				p.skip = "does not answer the host itself (" + errText(err) + "): proves nothing"
				continue
			}
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			var perr error
			// The socket is made on a thread inside the zone, and keeps the
			// zone's namespace for the whole attempt.
			if err := netns.RunIn(p.zone, func() error {
				perr = prober.Attempt(p.proto, p.dst, p.dnsName)
				return nil
			}); err != nil {
				p.fail = err.Error()
				return
			}
			p.got = perr == nil
			if perr != nil {
				p.note = errText(perr)
			}
		})
	}
	wg.Wait()
}

// errText shortens a dial error to what happened: "connection refused",
// "no route to host", "timeout".
func errText(err error) string {
	var ne net.Error
	var errno syscall.Errno
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, &errno):
		return errno.Error()
	}
	return err.Error()
}

// echoPorts are the ports of a check listener, or why it could not be opened.
type echoPorts struct {
	tcp, udp uint16
	err      error
}

func (e echoPorts) of(proto string) uint16 {
	if proto == "udp" {
		return e.udp
	}
	return e.tcp
}

// inOtherZone reports whether a is in the link subnet of a zone other than zone.
func inOtherZone(a netip.Addr, zone string, recs map[string]*Record) bool {
	for name, r := range recs {
		if name != zone && (r.Policy.Net4.Contains(a) || r.Policy.Net6.Contains(a)) {
			return true
		}
	}
	return false
}
