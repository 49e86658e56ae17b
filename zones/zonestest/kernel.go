package zonestest

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/firewall/nft"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/veth"
	"github.com/nszone/nszone/zones"
)

// Kernel is the Machine as zones.Kernel.
type Kernel struct{ m *Machine }

var _ zones.Kernel = Kernel{}

func (k Kernel) NamespaceID(name string) (netns.NsID, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	ns := k.m.namespaces[name]
	switch {
	case ns == nil:
		return netns.NsID{}, k.m.notExist(name)
	case ns.stale:
		return netns.NsID{}, fmt.Errorf("%s/%s: %w", netns.PinDir, name, netns.ErrStalePin)
	}
	return ns.id, nil
}

func (k Kernel) Namespaces() ([]string, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	return slices.Sorted(maps.Keys(k.m.namespaces)), nil
}

func (k Kernel) NamespaceHasAlias(name, alias string) (bool, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	ns := k.m.namespaces[name]
	if ns == nil || ns.stale {
		return false, k.m.notExist(name)
	}
	if ns.alias == alias {
		return true, nil
	}
	for _, p := range k.m.pairs {
		if p.Zone == name && p.Alias == alias {
			return true, nil
		}
	}
	return false, nil
}

func (k Kernel) CreateNamespace(name, alias string, ipv6 bool) (netns.NsID, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	if k.m.namespaces[name] != nil {
		return netns.NsID{}, fmt.Errorf("creating namespace %s: %w", name, netns.ErrExists)
	}
	ns := &namespace{id: k.m.newID(), alias: alias, ipv6: ipv6}
	k.m.namespaces[name] = ns
	return ns.id, nil
}

// DeleteNamespace unpins the namespace; with nothing else holding it, it
// dies, and the veth pair whose end is in it with it.
func (k Kernel) DeleteNamespace(name string) error {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	ns := k.m.namespaces[name]
	if ns == nil {
		return nil
	}
	delete(k.m.namespaces, name)
	delete(k.m.inner, name)
	if len(k.m.processes[ns.id]) == 0 {
		for host, p := range k.m.pairs {
			if p.Zone == name {
				k.m.dropPair(host)
			}
		}
	}
	return nil
}

func (k Kernel) LinkExists(name string) (bool, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	_, pair := k.m.pairs[name]
	_, link := k.m.links[name]
	return pair || link, nil
}

func (k Kernel) LinksWithAlias(prefix string) (map[string]string, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	out := map[string]string{}
	for name, p := range k.m.pairs {
		if strings.HasPrefix(p.Alias, prefix) {
			out[name] = p.Alias
		}
	}
	for name, l := range k.m.links {
		if l.alias != "" && strings.HasPrefix(l.alias, prefix) {
			out[name] = l.alias
		}
	}
	return out, nil
}

// HostLinks stands for the batched read of the host's side: the fake's
// pairs are read from memory either way, so the batch carries nothing but
// is counted (PairReads).
func (k Kernel) HostLinks() (*veth.HostLinks, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	k.m.hostLinkReads++
	return &veth.HostLinks{}, nil
}

func (k Kernel) EnsurePair(p veth.Pair, host *veth.HostLinks) (bool, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	k.m.countPairRead(host)
	if ns := k.m.namespaces[p.Zone]; ns == nil || ns.stale {
		return false, fmt.Errorf("veth pair of zone %s: %w", p.Zone, k.m.notExist(p.Zone))
	}
	if l := k.m.links[p.HostName]; l != nil {
		return false, fmt.Errorf("link %s: %w", p.HostName, veth.ErrNotOwned)
	}
	if cur, ok := k.m.pairs[p.HostName]; ok && cur == p {
		return false, nil
	}
	if _, ok := k.m.pairs[p.HostName]; !ok {
		k.m.sysctls["net.ipv4.conf."+p.HostName+".route_localnet"] = "0" // a new link's
	}
	k.m.pairs[p.HostName] = p
	return true, nil
}

func (k Kernel) InspectPair(p veth.Pair, host *veth.HostLinks) ([]string, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	k.m.countPairRead(host)
	if ns := k.m.namespaces[p.Zone]; ns == nil || ns.stale {
		return []string{"namespace " + p.Zone + " missing"}, nil
	}
	cur, ok := k.m.pairs[p.HostName]
	switch {
	case !ok:
		return []string{"host link " + p.HostName + " missing"}, nil
	case cur != p:
		return []string{"link " + p.HostName + " differs"}, nil
	}
	return nil, nil
}

// CutShort: the fake makes pairs in one step, never half.
func (k Kernel) CutShort(_, _ string) bool { return false }

func (k Kernel) DeletePair(_, hostName, alias string) error {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	if l := k.m.links[hostName]; l != nil {
		return fmt.Errorf("deleting link %s: %w", hostName, veth.ErrNotOwned)
	}
	p, ok := k.m.pairs[hostName]
	if !ok {
		return nil
	}
	if p.Alias != alias {
		return fmt.Errorf("deleting link %s: %w", hostName, veth.ErrNotOwned)
	}
	k.m.dropPair(hostName)
	return nil
}

func (k Kernel) DefaultRouteLink() (string, string, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	return k.m.defaultV4, k.m.defaultV6, nil
}

func (k Kernel) LinkAddrs(name string) ([]netip.Prefix, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	if l := k.m.links[name]; l != nil {
		return slices.Clone(l.addrs), nil
	}
	if p, ok := k.m.pairs[name]; ok {
		return valid(p.Host4, p.Host6), nil
	}
	return nil, fmt.Errorf("link %s: %w", name, k.m.notExist(name))
}

// hostPrefixes is every address of the host's links, the zones' host ends
// among them.
func (m *Machine) hostPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, name := range slices.Sorted(maps.Keys(m.links)) {
		out = append(out, m.links[name].addrs...)
	}
	for _, name := range slices.Sorted(maps.Keys(m.pairs)) {
		out = append(out, valid(m.pairs[name].Host4, m.pairs[name].Host6)...)
	}
	return out
}

func (k Kernel) HostAddrs() ([]netip.Addr, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	var out []netip.Addr
	for _, p := range k.m.hostPrefixes() {
		out = append(out, p.Addr())
	}
	return out, nil
}

func (k Kernel) HostPrefixes() ([]netip.Prefix, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	out := slices.Clone(k.m.routes)
	for _, p := range k.m.hostPrefixes() {
		out = append(out, p.Masked())
	}
	return out, nil
}

func (k Kernel) Sysctl(key string) (string, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	v, ok := k.m.sysctls[key]
	if !ok {
		return "", fmt.Errorf("sysctl %s: %w", key, k.m.notExist(key))
	}
	return v, nil
}

func (k Kernel) SetSysctl(key, value string) error {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	if _, ok := k.m.sysctls[key]; !ok {
		return fmt.Errorf("sysctl %s: %w", key, k.m.notExist(key))
	}
	k.m.sysctls[key] = value
	return nil
}

func (k Kernel) ProcessesIn(id netns.NsID) []zones.Process {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	return slices.Clone(k.m.processes[id])
}

func (k Kernel) ForeignDrops() ([]nft.Foreign, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	return slices.Clone(k.m.foreign), nil
}

// MissingTables: a table exists once iptables-nft wrote into it, as in the
// kernel, where iptables-nft creates a table on its first use.
func (k Kernel) MissingTables(keys []firewall.Key) ([]firewall.Key, error) {
	var out []firewall.Key
	for _, key := range keys {
		used := k.used(key)
		k.m.mu.Lock()
		if used {
			k.m.nftTables[key.NftName()] = true
		}
		if !k.m.nftTables[key.NftName()] {
			out = append(out, key)
		}
		k.m.mu.Unlock()
	}
	return out, nil
}

// used reports whether the host's iptables table holds any rule or chain.
func (k Kernel) used(key firewall.Key) bool { return !k.m.Firewall.Empty(key.Family, key.Table) }

func (k Kernel) DeleteTableIfEmpty(key firewall.Key) (string, error) {
	if k.used(key) {
		return "it holds chains or rules", nil
	}
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	delete(k.m.nftTables, key.NftName())
	return "", nil
}

// commits hears the machine's commits: every one this process's, but the
// last in a range during which someone else committed (DamageHostWall).
type commits struct {
	m       *Machine
	foreign int // the machine's foreign commits when it began
}

func (k Kernel) WatchCommits() (zones.Commits, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	k.m.hearing++
	return &commits{m: k.m, foreign: k.m.foreignGen}, nil
}

func (c *commits) By(from, to uint32, _ time.Duration) ([]int, error) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	out := make([]int, int(to-from))
	for i := range out {
		out[i] = os.Getpid()
	}
	if c.m.foreignGen > c.foreign && len(out) > 0 {
		out[len(out)-1] = 1 // someone else's
	}
	return out, nil
}

func (c *commits) Close() {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	c.m.hearing--
}

func (k Kernel) OwnThread(id int) bool { return id == os.Getpid() }

// Generation: the host's counts the iptables fake's writes too, as
// iptables-nft's move the kernel's; a namespace's cookie is its inode here.
func (k Kernel) Generation(zone string) (nft.Gen, error) {
	if zone != "" {
		k.m.mu.Lock()
		hook := k.m.onZoneGen
		k.m.onZoneGen = nil
		k.m.mu.Unlock()
		if hook != nil {
			hook()
		}
	}
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	if zone == "" {
		return nft.Gen{Cookie: 1, ID: k.m.hostGen + uint32(k.m.Firewall.Writes)}, nil
	}
	ns := k.m.namespaces[zone]
	if ns == nil || ns.stale {
		return nft.Gen{}, k.m.notExist(zone)
	}
	return nft.Gen{Cookie: ns.id.Ino, ID: ns.gen}, nil
}

// HostComments reads the comments out of the fake's iptables-save text.
func (k Kernel) HostComments(f firewall.Family, table string, chains []string) (map[string][]string, error) {
	out, err := k.m.Firewall.Save(f, []string{table})
	if err != nil {
		return nil, err
	}
	c := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "-A" || !slices.Contains(chains, fields[1]) {
			continue
		}
		comment := ""
		if i := slices.Index(fields, "--comment"); i >= 0 && i+1 < len(fields) {
			comment = fields[i+1]
		}
		c[fields[1]] = append(c[fields[1]], comment)
	}
	return c, nil
}

func valid(ps ...netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.IsValid() {
			out = append(out, p)
		}
	}
	return out
}

// EnsureVia keeps the via as asked; its route out exists while the
// interface does, as the kernel drops routes through a link that goes.
func (k Kernel) EnsureVia(v veth.Via) (bool, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	if cur, ok := k.m.vias[v.HostIf]; ok && cur == v {
		return false, nil
	}
	k.m.vias[v.HostIf] = v
	return true, nil
}

func (k Kernel) InspectVia(v veth.Via) ([]string, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	var gaps []string
	if _, ok := k.m.links[v.Iface]; !ok {
		gaps = append(gaps, "interface "+v.Iface+" missing")
	}
	if cur, ok := k.m.vias[v.HostIf]; !ok || cur != v {
		gaps = append(gaps, "rules of "+v.HostIf+" missing")
	}
	return gaps, nil
}

func (k Kernel) DeleteVia(v veth.Via) error {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	delete(k.m.vias, v.HostIf)
	return nil
}

// Listening: the machine's listeners, as tests set them ("tcp/22").
func (k Kernel) Listening(proto string, _ netip.Addr, port uint16) (bool, error) {
	k.m.mu.Lock()
	defer k.m.mu.Unlock()
	return k.m.listening[fmt.Sprintf("%s/%d", proto, port)], nil
}
