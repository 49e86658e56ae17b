// Package zonestest is a host in memory for unit tests of the reconciler:
// namespaces, veth pairs, host links and addresses, sysctls, the iptables
// tables (firewalltest's fake), and both nftables walls, behind the
// interfaces package zones consumes. Like the kernel, it refuses what the
// kernel refuses (a pair into a namespace that does not exist, a link of
// someone else's), and Render prints all of it as text for golden files.
package zonestest

import (
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/firewall/firewalltest"
	"github.com/nszone/nszone/firewall/nft"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/veth"
	"github.com/nszone/nszone/zones"
)

// Machine is the simulated host. Its fields are what tests set up or
// damage before an operation; the methods of Kernel, Inner and Wall are
// what the reconciler calls.
type Machine struct {
	mu sync.Mutex // upZones and Down work on several zones side by side

	Firewall *firewalltest.Fake // the host's iptables tables

	namespaces map[string]*namespace
	pairs      map[string]veth.Pair // host end name -> pair
	links      map[string]*hostLink // the host's other links (the uplink, a foreign nsz-*)
	defaultV4  string               // link of the IPv4 default route
	defaultV6  string
	routes     []netip.Prefix // the host's routes besides its links' own prefixes
	sysctls    map[string]string
	processes  map[netns.NsID][]zones.Process
	foreign    []nft.Foreign
	nftTables  map[string]bool // iptables-nft tables that exist ("ip filter")
	inner      map[string]string
	counters   map[string]firewall.Counters // the inner walls' counters
	hostWall   map[firewall.Family][]firewall.Rule
	nextIno    uint64
	hostGen    uint32 // the host's nf_tables generation, but for the iptables fake's writes
	foreignGen int    // commits to the host's rulesets by someone else (DamageHostWall)
	hearing    int    // commit watchers open (WatchCommits, not yet closed)
	onHostWall func() // called after each write of the host wall (OnHostWallWrite)
	onZoneGen  func() // called once, at the next read of a zone's generation (OnZoneGeneration)
	wallReads  int    // how often a wall was read (Missing, Gaps)
	hostReads  int    // how often the host wall was (Gaps)
	// hostLinkReads counts batched reads of the host's side of the links
	// (HostLinks); pairReads the pairs checked or ensured, by whether they
	// had the batch.
	hostLinkReads int
	pairReads     map[bool]int
	vias          map[string]veth.Via
	listening     map[string]bool // "tcp/22"
}

// Listen makes a program of the host's listen on port ("tcp", 8080).
func (m *Machine) Listen(proto string, port uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listening[fmt.Sprintf("%s/%d", proto, port)] = true
}

// Count sets the counters of zone's inner wall, as if it had sent that;
// a write of the wall sets them to zero again.
func (m *Machine) Count(zone string, c firewall.Counters) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counters[zone] = c
}

// PairReads counts the batched reads of the host's side of the zones'
// links, and the pairs checked or ensured with that batch and without
// (reading their host side on their own), for tests of how often a
// convergence asks the kernel.
func (m *Machine) PairReads() (batches, batched, alone int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hostLinkReads, m.pairReads[true], m.pairReads[false]
}

// countPairRead counts one pair checked or ensured, with the host's side
// in a batch or not. The caller holds mu.
func (m *Machine) countPairRead(host *veth.HostLinks) { m.pairReads[host != nil]++ }

// WallReads counts the reads of both nftables walls, for tests of what
// exec skips.
func (m *Machine) WallReads() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.wallReads
}

// HostWallReads counts the reads of the nftables host wall alone.
func (m *Machine) HostWallReads() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hostReads
}

type namespace struct {
	id    netns.NsID
	alias string // the mark on its loopback; "" for a namespace of someone else
	ipv6  bool
	stale bool   // a pin file with nothing mounted on it
	gen   uint32 // its nf_tables generation: one more with every write of its rules
}

type hostLink struct {
	alias string
	addrs []netip.Prefix
}

// New returns a host with an uplink eth0 (192.168.1.10/24 and
// 2001:db8:1::10/64, both default routes), a VPN tunnel wg0, forwarding off, and the
// iptables-nft filter tables in place but no nat tables.
func New() *Machine {
	m := &Machine{
		Firewall:   firewalltest.NewFake(),
		namespaces: map[string]*namespace{},
		pairs:      map[string]veth.Pair{},
		links:      map[string]*hostLink{},
		sysctls: map[string]string{
			"net.ipv4.ip_forward":                "0",
			"net.ipv6.conf.all.forwarding":       "0",
			"net.ipv6.conf.all.disable_ipv6":     "0",
			"net.ipv6.conf.eth0.accept_ra":       "1",
			"net.ipv6.conf.default.disable_ipv6": "0",
		},
		processes: map[netns.NsID][]zones.Process{},
		nftTables: map[string]bool{"ip filter": true, "ip6 filter": true},
		inner:     map[string]string{},
		counters:  map[string]firewall.Counters{},
		hostWall:  map[firewall.Family][]firewall.Rule{},
		nextIno:   4026532000,
		vias:      map[string]veth.Via{},
		listening: map[string]bool{},
		pairReads: map[bool]int{},
	}
	m.Firewall.Mode = "nft"
	m.AddLink("lo", "", "127.0.0.1/8", "::1/128")
	m.AddLink("eth0", "", "192.168.1.10/24", "2001:db8:1::10/64")
	m.AddLink("wg0", "", "10.64.0.2/32") // a VPN's tunnel
	m.defaultV4, m.defaultV6 = "eth0", "eth0"
	return m
}

// Manager returns a zones.Manager on this machine, its files under root.
func (m *Machine) Manager(root string, log *slog.Logger) *zones.Manager {
	return &zones.Manager{Log: log, Firewall: m.Firewall, Inner: Inner{m}, HostWall: Wall{m}, Kernel: Kernel{m}, Root: root}
}

// Kernel is the machine as the reconciler sees it.
func (m *Machine) Kernel() zones.Kernel { return Kernel{m} }

// AddLink gives the host a link with addresses ("192.0.2.1/24").
func (m *Machine) AddLink(name, alias string, addrs ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := &hostLink{alias: alias}
	for _, a := range addrs {
		l.addrs = append(l.addrs, netip.MustParsePrefix(a))
	}
	m.links[name] = l
}

// DeleteLink removes a link of the host's, a zone's host end among them
// (which, as in the kernel, takes its peer along).
func (m *Machine) DeleteLink(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.links, name)
	m.dropPair(name)
}

// dropPair takes a pair away, and the host end's sysctls with it.
func (m *Machine) dropPair(host string) {
	delete(m.pairs, host)
	delete(m.sysctls, "net.ipv4.conf."+host+".route_localnet")
}

// SetDefaultRoutes moves the host's default routes ("" for none).
func (m *Machine) SetDefaultRoutes(v4, v6 string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.defaultV4, m.defaultV6 = v4, v6
}

// AddForeignNamespace pins a namespace nszone did not make.
func (m *Machine) AddForeignNamespace(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.namespaces[name] = &namespace{id: m.newID()}
}

// StalePin turns namespace name into a pin file with nothing mounted on
// it, as a reboot leaves /run/netns when /run is not a tmpfs.
func (m *Machine) StalePin(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ns := m.namespaces[name]; ns != nil {
		ns.stale = true
	}
	delete(m.inner, name)
}

// DamageInner removes the rules of zone's inner wall.
func (m *Machine) DamageInner(zone string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.inner, zone)
	if ns := m.namespaces[zone]; ns != nil {
		ns.gen++
	}
}

// DamageHostWall removes the nftables host wall.
func (m *Machine) DamageHostWall() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hostWall = map[firewall.Family][]firewall.Rule{}
	m.hostGen++
	m.foreignGen++
}

// Hearing counts the commit watchers open.
func (m *Machine) Hearing() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hearing
}

// ForeignCommit is another program's commit to the host's rulesets that
// leaves nszone's rules as they are (Docker adding a rule of its own).
func (m *Machine) ForeignCommit() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hostGen++
	m.foreignGen++
}

// OnHostWallWrite has f called after every write of the nftables host
// wall, outside the machine's lock: a test of what happens when someone
// else writes at that moment.
func (m *Machine) OnHostWallWrite(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onHostWall = f
}

// OnZoneGeneration has f called once, outside the machine's lock, when a
// zone's ruleset generation is next read: a test of someone else writing
// between the host's part of an up and the zones'.
func (m *Machine) OnZoneGeneration(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onZoneGen = f
}

// StartProcess records a program running in namespace name.
func (m *Machine) StartProcess(name string, p zones.Process) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ns := m.namespaces[name]; ns != nil {
		m.processes[ns.id] = append(m.processes[ns.id], p)
	}
}

// AddForeignDrop makes ForeignDrops report f.
func (m *Machine) AddForeignDrop(f nft.Foreign) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.foreign = append(m.foreign, f)
}

// SetSysctl sets a sysctl as someone else would.
func (m *Machine) SetSysctl(key, value string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sysctls[key] = value
}

func (m *Machine) newID() netns.NsID {
	m.nextIno++
	return netns.NsID{Dev: 4, Ino: m.nextIno}
}

func (m *Machine) notExist(name string) error {
	return fmt.Errorf("%s/%s: %w", netns.PinDir, name, fs.ErrNotExist)
}

// Render is the whole machine as text, in a stable order: what a golden
// file holds. Namespace identities are left out (they depend on history).
func (m *Machine) Render() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(m.namespaces)) {
		ns := m.namespaces[name]
		fmt.Fprintf(&b, "namespace %s alias=%q ipv6=%v", name, ns.alias, ns.ipv6)
		if ns.stale {
			b.WriteString(" stale")
		}
		if ps := m.processes[ns.id]; len(ps) > 0 {
			fmt.Fprintf(&b, " processes=%v", ps)
		}
		b.WriteString("\n")
		if rules, ok := m.inner[name]; ok {
			b.WriteString(indent(rules, "  inner "))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.pairs)) {
		p := m.pairs[name]
		fmt.Fprintf(&b, "pair %s alias=%q -> %s:%s host %s %s zone %s %s mtu %d\n",
			name, p.Alias, p.Zone, p.PeerName, p.Host4, p.Host6, p.Zone4, p.Zone6, p.MTU)
	}
	for _, name := range slices.Sorted(maps.Keys(m.links)) {
		l := m.links[name]
		fmt.Fprintf(&b, "link %s alias=%q %v\n", name, l.alias, l.addrs)
	}
	fmt.Fprintf(&b, "default routes v4=%q v6=%q\n", m.defaultV4, m.defaultV6)
	for _, name := range slices.Sorted(maps.Keys(m.vias)) {
		v := m.vias[name]
		fmt.Fprintf(&b, "via %s: iif %s -> %s table %d priority %d ipv6=%v\n", v.Zone, v.HostIf, v.Iface, v.Table, v.Priority, v.IPv6)
	}
	for _, k := range slices.Sorted(maps.Keys(m.sysctls)) {
		fmt.Fprintf(&b, "sysctl %s = %s\n", k, m.sysctls[k])
	}
	for _, t := range slices.Sorted(maps.Keys(m.nftTables)) {
		fmt.Fprintf(&b, "iptables-nft table %s\n", t)
	}
	for _, k := range firewall.Tables {
		out, _ := m.Firewall.Save(k.Family, []string{k.Table})
		b.WriteString(indent(byChain(out), "iptables "+k.String()+" "))
	}
	for _, f := range firewall.Families {
		for _, r := range m.hostWall[f] {
			fmt.Fprintf(&b, "nftables %s host %s\n", f, r.Text())
		}
	}
	return b.String()
}

// byChain orders iptables-save text by chain, the built-in chains first:
// the order in which the chains were made is history, not state.
func byChain(save string) string {
	var builtins, own []string
	rules := map[string][]string{}
	for _, l := range strings.Split(save, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && strings.HasPrefix(f[0], ":"):
			name := f[0][1:]
			if f[1] == "-" {
				own = append(own, name)
			} else {
				builtins = append(builtins, name)
			}
		case len(f) >= 2 && f[0] == "-A":
			rules[f[1]] = append(rules[f[1]], l)
		}
	}
	slices.Sort(own)
	var b strings.Builder
	for _, c := range append(builtins, own...) {
		b.WriteString(":" + c + "\n")
		for _, r := range rules[c] {
			b.WriteString(r + "\n")
		}
	}
	return b.String()
}

func indent(text, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}
