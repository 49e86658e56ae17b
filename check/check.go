// Package check proves each zone's policy from inside it (`nszone check`):
// it plans what to probe (the zones file's targets, listeners it opens on
// the host and in the zones, DNS servers, pinholes), asks firewall's
// Policy.Decide what each probe should see under the zone's recorded
// policy, and makes the probes with package probe. It is apart from zones
// so that nothing that links zones for its records (the setuid
// nszone-enter) links a prober.
package check

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/probe"
	"github.com/nszone/nszone/veth"
	"github.com/nszone/nszone/zones"
)

// What `nszone check` probes when the zones file has no check: section.
// They are for a real machine: public anycast services that always listen,
// and the uplink's own gateway for lan. Tests always name their own targets.
var (
	// DefaultInternet: Cloudflare's resolver answers HTTPS on both families.
	DefaultInternet = []string{"1.1.1.1:443", "[2606:4700:4700::1111]:443"}
	// DefaultDNS is the name each zone's DNS servers are asked for.
	DefaultDNS = []string{"example.com"}
)

// probeParallel bounds the probes in flight: enough that a check of a few
// zones takes about a second, few enough not to look like a flood.
const probeParallel = 16

// Check verdicts, as the contract names them; "skipped" and "error" are
// observations that could not be made (see Result.Note).
const (
	verdictAllow = "allow"
	verdictBlock = "block"
	observedSkip = "skipped"
	observedErr  = "error"
)

// Result is one observation.
type Result struct {
	Class    string `json:"class"`  // internet, lan, host, zone:NAME, dns, pinhole, published, via
	Target   string `json:"target"` // ADDR:PORT, or "ADDR:53 NAME" for dns
	Proto    string `json:"proto"`  // tcp or udp
	Expected string `json:"expected"`
	Observed string `json:"observed"`
	OK       bool   `json:"ok"`
	Note     string `json:"note,omitempty"` // why an attempt failed, or why it was skipped
}

// Zone is what was observed from inside one zone.
type Zone struct {
	Name    string   `json:"name"`
	Results []Result `json:"results"`
}

// Report is the whole of `check`: OK when every observation matches.
type Report struct {
	OK    bool   `json:"ok"`
	Zones []Zone `json:"zones"`
	// Notes name what on the host explains mismatches: another program's
	// nftables chain that drops the zones' traffic, with the fix.
	Notes []string `json:"notes,omitempty"`
}

// Mismatches counts the results that are not OK.
func (r *Report) Mismatches() (bad, total int) {
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

// Run proves the policy of the named zones (every zone that is up when
// names is empty) by probing from inside each zone with real connections:
// to f's check targets (internet, lan, DNS names), to listeners it opens
// briefly on the host and in the other zones, and to each pinhole. What
// each probe should do is derived from the zone's recorded policy.
func Run(m *zones.Manager, f *config.File, names []string) (*Report, error) {
	recs, upNames, err := m.Records()
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
	rep := &Report{OK: true, Zones: []Zone{}}
	if len(list) == 0 {
		return rep, nil
	}
	rep.Notes = m.Coexistence()

	env := &checkEnv{recs: recs, hostLL: map[string]netip.Addr{}, zonePorts: map[string]echoPorts{}, badNetns: map[string]string{}}
	if env.hostAddrs, err = veth.HostAddrs(); err != nil {
		return nil, fmt.Errorf("reading the host's addresses: %w", err)
	}
	for name, r := range recs {
		if ll, ok := linkLocalOf(zones.HostIf(name)); ok {
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
	env.internet = resolveTargets(orDefault(f.Check.Internet, DefaultInternet))
	lan := f.Check.LAN
	if lan == nil {
		lan = defaultLANTargets()
	}
	env.lan = resolveTargets(lan)
	env.dnsNames = orDefault(f.Check.DNS, DefaultDNS)
	if servers, _, err := zones.UpstreamDNS(m.Root); err == nil {
		env.upstream = servers
	}

	// Listeners: on the host, and in each zone that another checked zone probes.
	zoneNets := recordedNets(recs)
	v6 := false
	for _, r := range recs {
		v6 = v6 || r.IPv6 // a host without IPv6 has no zone with it
	}
	hostTCP, hostUDP, stop, err := probe.Listen(v6, zoneNets)
	if err != nil {
		return nil, fmt.Errorf("opening the host's check listeners: %w", err)
	}
	defer stop()
	env.hostPorts = echoPorts{tcp: hostTCP, udp: hostUDP}
	for _, name := range slices.Sorted(maps.Keys(recs)) {
		if len(list) == 1 && list[0] == name || env.badNetns[name] != "" {
			continue
		}
		var ports echoPorts
		var stop func()
		err := netns.RunIn(name, func() (err error) {
			ports.tcp, ports.udp, stop, err = probe.Listen(recs[name].IPv6, zoneNets)
			return err
		})
		if err != nil {
			env.zonePorts[name] = echoPorts{err: err}
			continue
		}
		defer stop()
		env.zonePorts[name] = ports
	}

	probes := plan(env, list)
	run(probes)
	for _, name := range list {
		zc := Zone{Name: name, Results: []Result{}}
		for _, p := range probes {
			if p.zone == name {
				res := p.result()
				zc.Results = append(zc.Results, res)
				rep.OK = rep.OK && res.OK
			}
		}
		extra := publishedResults(name, recs[name])
		if recs[name].Policy.Via != "" {
			extra = append(extra, viaResult(recs[name]))
		}
		for _, res := range extra {
			zc.Results = append(zc.Results, res)
			rep.OK = rep.OK && res.OK
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
	recs      map[string]*zones.Record
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

// recordedNets lists every zone's link subnets.
func recordedNets(recs map[string]*zones.Record) []netip.Prefix {
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

// observation is one probe to make from inside a zone.
type observation struct {
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

func (p *observation) result() Result {
	r := Result{Class: p.class, Target: p.target, Proto: p.proto, Expected: verdict(p.want), Note: p.note}
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

// plan derives, for each zone of list, the probes and what each should
// observe under the zone's recorded policy.
func plan(env *checkEnv, list []string) []*observation {
	var out []*observation
	for _, name := range list {
		rec := env.recs[name]
		add := func(p *observation) {
			p.zone = name
			if p.dnsName == "" {
				p.dnsName = firstOr(env.dnsNames, DefaultDNS[0])
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
		expect := func(dst netip.AddrPort, proto string) bool { return env.allows(name, dst, proto) }

		for _, c := range []struct {
			class   string
			targets []checkTarget
		}{{"internet", env.internet}, {"lan", env.lan}} {
			for _, t := range c.targets {
				switch {
				case t.err != "":
					add(&observation{class: c.class, target: t.shown, proto: "tcp", skip: t.err})
				case family(t.addr.Addr()):
					add(&observation{class: c.class, target: t.shown, proto: "tcp", dst: t.addr,
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
				p := &observation{class: "host", proto: proto, dst: netip.AddrPortFrom(a, port),
					target: netip.AddrPortFrom(shown, port).String(), want: expect(netip.AddrPortFrom(shown, port), proto)}
				if env.hostPorts.err != nil {
					p.fail = "host listener: " + env.hostPorts.err.Error()
				}
				add(p)
			}
		}

		// Every other zone that is up, at its own address.
		for _, other := range slices.Sorted(maps.Keys(env.recs)) {
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
					p := &observation{class: "zone:" + other, proto: proto, dst: dst, want: expect(dst, proto)}
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
				add(&observation{class: "dns", proto: "udp", dst: dst, dnsName: n, target: dst.String() + " " + n,
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
			add(&observation{class: "pinhole", proto: proto, dst: dst, want: expect(dst, proto), control: true})
		}
	}
	return out
}

// allows says whether zone's recorded policy lets it open proto to dst,
// as the walls built from the records decide it (firewall's Decide).
func (env *checkEnv) allows(zone string, dst netip.AddrPort, proto string) bool {
	p := firewall.Policy{LAN: env.recs[zone].LAN}
	for _, n := range slices.Sorted(maps.Keys(env.recs)) {
		p.Zones = append(p.Zones, env.recs[n].Policy)
	}
	v, err := p.Decide(zone, env.hostAddrs, firewall.Dest{Addr: dst.Addr(), Proto: proto, Port: dst.Port()})
	return err == nil && v.Allow
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// run makes the observations, probeParallel at a time. Targets
// outside nszone are first tried from the host: one that does not answer
// the host proves nothing about a zone, and is skipped (a machine without
// IPv6 internet, a gateway without a web interface).
func run(probes []*observation) {
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
			errs[i] = probe.Attempt(k.proto, k.dst, k.name)
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
				perr = probe.Attempt(p.proto, p.dst, p.dnsName)
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
func inOtherZone(a netip.Addr, zone string, recs map[string]*zones.Record) bool {
	for name, r := range recs {
		if name != zone && (r.Policy.Net4.Contains(a) || r.Policy.Net6.Contains(a)) {
			return true
		}
	}
	return false
}
