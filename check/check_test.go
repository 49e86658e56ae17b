package check

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/veth"
	"github.com/nszone/nszone/zones"
)

// checkRecords are the records up writes for this zones file on a host
// like the lab's (uplink eth0 in 192.168.50.0/24 and fd00:50::/64, DNS at
// 192.168.50.10), inner walls completed; host are the host's addresses.
//
//	wan:     allow: [internet]
//	lan:     allow: [lan]
//	offline: allow: []
//	web:     allow: [host, "zone:lan", "192.168.50.10:80/tcp"]
//	old:     allow: [internet, "192.168.50.20:5353/udp"]
//	         ipv6: false
func checkRecords(t *testing.T) (map[string]*zones.Record, []netip.Addr) {
	t.Helper()
	pfx, addr := netip.MustParsePrefix, netip.MustParseAddr
	lan := []netip.Prefix{pfx("10.0.0.0/8"), pfx("172.16.0.0/12"), pfx("192.168.0.0/16"), pfx("100.64.0.0/10"),
		pfx("169.254.0.0/16"), pfx("fc00::/7"), pfx("fe80::/10"), pfx("192.168.50.0/24"), pfx("fd00:50::/64")}
	resolver := pfx("192.168.50.10/32")
	opening := firewall.Pinhole{Dst: resolver, PortLo: 53, PortHi: 53} // the resolver, for a zone without lan
	zs := []struct {
		policy   firewall.Zone
		allow    []string
		openings []string
	}{
		{firewall.Zone{Name: "wan", IPv6: true, Internet: true, Pinholes: []firewall.Pinhole{opening}},
			[]string{"internet"}, []string{"192.168.50.10:53"}},
		{firewall.Zone{Name: "lan", IPv6: true, LAN: true}, []string{"lan"}, nil},
		{firewall.Zone{Name: "offline", IPv6: true}, []string{}, nil},
		{firewall.Zone{Name: "web", IPv6: true, Host: true, ToHostIfs: []string{"nsz-lan"},
			Pinholes: []firewall.Pinhole{{Dst: resolver, Proto: "tcp", PortLo: 80, PortHi: 80}, opening}},
			[]string{"host", "zone:lan", "192.168.50.10:80/tcp"}, []string{"192.168.50.10:53"}},
		{firewall.Zone{Name: "old", Internet: true, Pinholes: []firewall.Pinhole{
			{Dst: pfx("192.168.50.20/32"), Proto: "udp", PortLo: 5353, PortHi: 5353}, opening}},
			[]string{"internet", "192.168.50.20:5353/udp"}, []string{"192.168.50.10:53"}},
	}
	hostNow := []netip.Addr{addr("127.0.0.1"), addr("::1"), addr("192.168.50.2"), addr("fd00:50::2"), addr("fe80::1")}
	host := slices.Clone(hostNow)
	recs := map[string]*zones.Record{}
	for i, z := range zs {
		p := z.policy
		p.HostIf, p.Uplink = zones.HostIf(p.Name), "eth0"
		p.Net4 = pfx(fmt.Sprintf("10.250.0.%d/30", 4*i))
		pair := veth.Pair{Zone: p.Name, HostName: p.HostIf, PeerName: "eth0",
			Host4: netip.PrefixFrom(p.Net4.Addr().Next(), 30), Zone4: netip.PrefixFrom(p.Net4.Addr().Next().Next(), 30)}
		if p.IPv6 {
			p.Net6 = pfx(fmt.Sprintf("fd6e:737a:7a6f:%d::/64", i))
			pair.Host6, pair.Zone6 = netip.PrefixFrom(p.Net6.Addr().Next(), 64), netip.PrefixFrom(p.Net6.Addr().Next().Next(), 64)
		}
		r := &zones.Record{Name: p.Name, Pair: pair, Policy: p, Allow: z.allow, IPv6: p.IPv6, Openings: z.openings, LAN: lan}
		if len(z.allow) > 0 {
			r.DNS = []string{"192.168.50.10"}
		}
		recs[p.Name] = r
		host = append(host, pair.Host4.Addr())
		if p.IPv6 {
			host = append(host, pair.Host6.Addr())
		}
	}
	// The inner walls, as up completes them: the host's addresses but
	// loopback, link-local and the zones' gateways, the zone's own gateway,
	// the zones it may reach and that may reach it, the zones' ranges.
	for _, r := range recs {
		p := &r.Policy
		p.HostAddrs = []netip.Addr{addr("192.168.50.2"), addr("fd00:50::2"), r.Pair.Host4.Addr()}
		if r.IPv6 {
			p.HostAddrs = append(p.HostAddrs, r.Pair.Host6.Addr())
		}
		p.ZoneNets = []netip.Prefix{pfx("10.250.0.0/16"), pfx("fd6e:737a:7a6f::/48")}
		for _, o := range recs {
			own := []netip.Addr{o.Pair.Zone4.Addr()}
			if o.IPv6 {
				own = append(own, o.Pair.Zone6.Addr())
			}
			if slices.Contains(p.ToHostIfs, o.Pair.HostName) {
				p.ToZoneAddrs = append(p.ToZoneAddrs, own...)
			}
			if slices.Contains(o.Policy.ToHostIfs, r.Pair.HostName) {
				p.FromZoneAddrs = append(p.FromZoneAddrs, own...)
			}
		}
	}
	return recs, host
}

func checkEnvFor(recs map[string]*zones.Record, host []netip.Addr) *checkEnv {
	env := &checkEnv{
		recs:      recs,
		hostAddrs: host,
		hostLL:    map[string]netip.Addr{},
		internet:  resolveTargets([]string{"203.0.113.10:80", "[2001:db8:113::10]:80"}),
		lan:       resolveTargets([]string{"192.168.50.10:80", "[fd00:50::10]:80"}),
		dnsNames:  []string{"www.example"},
		upstream:  []netip.Addr{netip.MustParseAddr("192.168.50.10")},
		hostPorts: echoPorts{tcp: 1000, udp: 1001},
		zonePorts: map[string]echoPorts{},
		badNetns:  map[string]string{},
	}
	for i, name := range slices.Sorted(maps.Keys(recs)) {
		env.hostLL[name] = netip.MustParseAddr(fmt.Sprintf("fe80::%x", 0xa0+i))
		env.zonePorts[name] = echoPorts{tcp: 2000, udp: 2001}
	}
	return env
}

func TestCheckExpectations(t *testing.T) {
	recs, host := checkRecords(t)
	env := checkEnvFor(recs, host)
	probes := plan(env, slices.Sorted(maps.Keys(recs)))
	type key struct{ zone, class, addr, proto string }
	got := map[key]*observation{}
	for _, p := range probes {
		k := key{p.zone, p.class, p.dst.Addr().WithZone("").String(), p.proto}
		if got[k] != nil {
			t.Errorf("probe %v planned twice", k)
		}
		got[k] = p
	}
	gw4 := func(z string) string { return recs[z].Pair.Host4.Addr().String() }
	zone4 := func(z string) string { return recs[z].Pair.Zone4.Addr().String() }
	zone6 := func(z string) string { return recs[z].Pair.Zone6.Addr().String() }
	ll := func(z string) string { return env.hostLL[z].String() }
	cases := []struct {
		zone, class, addr, proto string
		want                     bool
	}{
		{"wan", "internet", "203.0.113.10", "tcp", true},
		{"wan", "internet", "2001:db8:113::10", "tcp", true},
		{"wan", "lan", "192.168.50.10", "tcp", false}, // the DNS opening is port 53 only
		{"wan", "dns", "192.168.50.10", "udp", true},
		{"wan", "host", gw4("wan"), "tcp", false},
		{"wan", "host", gw4("wan"), "udp", false},
		{"wan", "host", "192.168.50.2", "tcp", false},
		{"wan", "host", ll("wan"), "udp", false}, // wan's own link-local gateway
		{"wan", "zone:lan", zone4("lan"), "tcp", false},
		{"wan", "zone:web", zone6("web"), "udp", false},

		{"lan", "lan", "192.168.50.10", "tcp", true},
		{"lan", "lan", "fd00:50::10", "tcp", true},
		{"lan", "internet", "203.0.113.10", "tcp", false},
		{"lan", "dns", "192.168.50.10", "udp", true},
		{"lan", "zone:web", zone4("web"), "tcp", false}, // zone:NAME is one direction only

		{"offline", "internet", "2001:db8:113::10", "tcp", false},
		{"offline", "lan", "192.168.50.10", "tcp", false},
		{"offline", "dns", "192.168.50.10", "udp", false}, // the host's resolver, out of reach
		{"offline", "host", gw4("offline"), "udp", false},

		{"web", "host", gw4("web"), "tcp", true},
		{"web", "host", gw4("web"), "udp", true},
		{"web", "host", recs["web"].Pair.Host6.Addr().String(), "udp", true},
		{"web", "host", ll("web"), "tcp", true},
		{"web", "host", "192.168.50.2", "udp", true},
		{"web", "host", "fd00:50::2", "tcp", true},
		{"web", "zone:lan", zone4("lan"), "tcp", true},
		{"web", "zone:lan", zone6("lan"), "udp", true},
		{"web", "zone:wan", zone4("wan"), "tcp", false},
		{"web", "lan", "192.168.50.10", "tcp", true}, // through the pinhole
		{"web", "lan", "fd00:50::10", "tcp", false},
		{"web", "internet", "203.0.113.10", "tcp", false},
		{"web", "pinhole", "192.168.50.10", "tcp", true},
		{"web", "dns", "192.168.50.10", "udp", true}, // an opening

		{"old", "internet", "203.0.113.10", "tcp", true},
		{"old", "lan", "192.168.50.10", "tcp", false},
		{"old", "pinhole", "192.168.50.20", "udp", true},
		{"old", "zone:lan", zone4("lan"), "udp", false},
	}
	for _, c := range cases {
		p := got[key{c.zone, c.class, c.addr, c.proto}]
		if p == nil {
			t.Errorf("%s: no %s probe of %s %s", c.zone, c.class, c.proto, c.addr)
			continue
		}
		if p.want != c.want {
			t.Errorf("%s: %s %s %s: expected %s, want %s", c.zone, c.class, c.proto, c.addr, verdict(p.want), verdict(c.want))
		}
	}

	// Another zone's gateway is a host address in that zone's subnet: a zone
	// reaches the host through its own gateway only, so it is not probed.
	if got[key{"web", "host", gw4("wan"), "tcp"}] != nil {
		t.Error("web probes wan's gateway as the host")
	}
	for k, p := range got {
		// IPv6 probes only from zones with IPv6, to zones with IPv6.
		if k.zone == "old" && p.dst.Addr().Is6() || k.class == "zone:old" && p.dst.Addr().Is6() {
			t.Errorf("IPv6 probe %v for an IPv4-only zone", k)
		}
		// Loopback is the zone's own; link-locals of other links are unreachable by design.
		if a := p.dst.Addr(); a.IsLoopback() || a.WithZone("").String() == "fe80::1" {
			t.Errorf("probe %v of %s", k, a)
		}
		if k.class == "pinhole" && k.zone != "web" && k.zone != "old" {
			t.Errorf("pinhole probe %v: DNS openings are the dns class's", k)
		}
		wantControl := k.class != "host" && k.class[:min(5, len(k.class))] != "zone:"
		if p.control != wantControl {
			t.Errorf("probe %v: control %v", k, p.control)
		}
		if p.dst.Addr().Is6() && p.dst.Addr().IsLinkLocalUnicast() && p.dst.Addr().Zone() != "eth0" {
			t.Errorf("link-local probe %v without the zone's interface: %s", k, p.dst)
		}
	}
	if p := got[key{"wan", "dns", "192.168.50.10", "udp"}]; p.target != "192.168.50.10:53 www.example" {
		t.Errorf("dns target %q", p.target)
	}
}

func TestCheckOnlyNamedZones(t *testing.T) {
	recs, host := checkRecords(t)
	env := checkEnvFor(recs, host)
	env.badNetns["lan"] = "namespace /run/netns/lan is not the one nszone made"
	probes := plan(env, []string{"web"})
	sawLan := false
	for _, p := range probes {
		if p.zone != "web" {
			t.Fatalf("probe from %s, only web asked for", p.zone)
		}
		if p.class == "zone:lan" {
			sawLan = true
			if r := p.result(); r.OK || r.Observed != "error" {
				t.Errorf("probe into a zone whose namespace is not ours: %+v", r)
			}
		}
	}
	if !sawLan {
		t.Error("no probe into lan")
	}
}

// TestAllows: what a probe should observe is what the walls built from the
// records do (firewall's Decide over every zone's recorded policy).
func TestAllows(t *testing.T) {
	recs, host := checkRecords(t)
	a := netip.MustParseAddr
	cases := []struct {
		zone  string
		dst   string
		proto string
		port  uint16
		want  bool
	}{
		{"web", "192.168.50.10", "tcp", 80, true},
		{"web", "192.168.50.10", "udp", 80, false}, // the pinhole is tcp only
		{"web", "192.168.50.10", "tcp", 81, false}, // and one port
		{"web", "fe80::1%eth0", "tcp", 22, true},   // the host's, by scope-less address
		{"old", "fd00:50::2", "tcp", 1, false},     // no IPv6 at all
		{"web", "10.250.0.1", "tcp", 1, false},     // wan's gateway is wan's, not the host web may reach
		{"lan", "10.250.200.1", "tcp", 1, false},   // the zones' range: no lan there
	}
	env := checkEnvFor(recs, host)
	for _, c := range cases {
		if got := env.allows(c.zone, netip.AddrPortFrom(a(c.dst), c.port), c.proto); got != c.want {
			t.Errorf("%s -> %s %s/%d: %v, want %v", c.zone, c.dst, c.proto, c.port, got, c.want)
		}
	}

	// Other zones are never reached through a pinhole or lan/internet terms.
	lanAddr := recs["lan"].Pair.Zone4.Addr()
	with := func(change func(*firewall.Zone)) *checkEnv {
		r := *recs["wan"]
		change(&r.Policy)
		rs := maps.Clone(recs)
		rs["wan"] = &r
		return checkEnvFor(rs, host)
	}
	e := with(func(p *firewall.Zone) {
		p.Pinholes = []firewall.Pinhole{{Dst: netip.PrefixFrom(lanAddr, 32)}}
		p.LAN = true
	})
	if e.allows("wan", netip.AddrPortFrom(lanAddr, 80), "tcp") {
		t.Error("a pinhole opened another zone")
	}
	// Without an uplink, lan and internet stay closed; a pinhole still opens.
	e = with(func(p *firewall.Zone) {
		p.Uplink = ""
		p.Pinholes = []firewall.Pinhole{{Dst: netip.MustParsePrefix("198.51.100.0/24"), Proto: "udp", PortLo: 5000, PortHi: 5010}}
	})
	if e.allows("wan", netip.MustParseAddrPort("203.0.113.10:80"), "tcp") {
		t.Error("internet without an uplink")
	}
	if !e.allows("wan", netip.MustParseAddrPort("198.51.100.7:5005"), "udp") || e.allows("wan", netip.MustParseAddrPort("198.51.100.7:5011"), "udp") {
		t.Error("port range of a pinhole")
	}
	// internet and lan together: everything out of the uplink.
	e = with(func(p *firewall.Zone) { p.LAN = true })
	if !e.allows("wan", netip.MustParseAddrPort("10.1.2.3:1"), "tcp") || !e.allows("wan", netip.MustParseAddrPort("8.8.8.8:1"), "udp") {
		t.Error("lan and internet")
	}
}

func TestCheckResult(t *testing.T) {
	cases := []struct {
		p        observation
		observed string
		ok       bool
		note     string
	}{
		{observation{want: true, got: true}, "allow", true, ""},
		{observation{want: false, got: false, note: "connection refused"}, "block", true, "connection refused"},
		{observation{want: false, got: true}, "allow", false, ""},
		{observation{want: true, got: false, note: "timeout"}, "block", false, "timeout"},
		{observation{want: true, skip: "does not answer the host itself"}, "skipped", true, "does not answer the host itself"},
		{observation{want: false, fail: "in namespace x: gone"}, "error", false, "in namespace x: gone"},
	}
	for _, c := range cases {
		r := c.p.result()
		if r.Observed != c.observed || r.OK != c.ok || r.Note != c.note || r.Expected != verdict(c.p.want) {
			t.Errorf("%+v: got %+v", c.p, r)
		}
	}
}

func TestParseGateways(t *testing.T) {
	route4 := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t0132A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n" +
		"eth0\t0032A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	route6 := "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n" +
		"00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000050000000000000000000000001 00000400 00000001 00000000 00000003 eth0\n" +
		"fd000050000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0\n"
	got := parseGateways([]byte(route4), []byte(route6))
	if fmt.Sprint(got) != "[192.168.50.1 fd00:50::1]" {
		t.Fatalf("gateways %v", got)
	}
}
