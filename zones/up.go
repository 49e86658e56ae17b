package zones

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/firewall/nft"
	"github.com/nszone/nszone/internal/atomicfile"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/veth"
	"golang.org/x/sync/errgroup"
)

// ErrNotOwned is returned for a namespace or interface named like a zone
// that nszone did not create: it is never taken over or deleted.
var ErrNotOwned = veth.ErrNotOwned

// UnknownZoneError is a zone named on the command line that the file lacks.
type UnknownZoneError struct{ Zone, File string }

func (e *UnknownZoneError) Error() string {
	return fmt.Sprintf("zone %q is not in %s", e.Zone, FileName(e.File))
}

// FileName names a zones file in messages: its path, or the built-in default.
func FileName(p string) string {
	if p == "" {
		return "the built-in default zones"
	}
	return p
}

// Report says what an operation did, one line per change.
type Report struct {
	Lines   []string
	Changed bool
}

func (r *Report) add(format string, args ...any) {
	r.Lines = append(r.Lines, fmt.Sprintf(format, args...))
	r.Changed = true
}

func (r *Report) note(format string, args ...any) {
	r.Lines = append(r.Lines, fmt.Sprintf(format, args...))
}

func checkNames(f *config.File, names []string) error {
	for _, n := range names {
		if f.Zone(n) == nil {
			return &UnknownZoneError{Zone: n, File: f.Path}
		}
	}
	return nil
}

// owned reports whether the namespace pinned as zone is nszone's: it
// matches the record, or (after a crash lost the record) it holds the
// zone's marked veth end. ok is false with a nil error when there is no pin.
func (m *Manager) owned(zone string, rec *Record) (id netns.NsID, exists bool, err error) {
	id, err = m.Kernel.NamespaceID(zone)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return netns.NsID{}, false, nil
	case errors.Is(err, netns.ErrStalePin):
		if rec != nil {
			return netns.NsID{}, true, nil // ours, from before a reboot or crash: recreated
		}
		return netns.NsID{}, true, fmt.Errorf("%s/%s exists but is no mounted namespace: %w", netns.PinDir, zone, ErrNotOwned)
	case err != nil:
		return netns.NsID{}, false, fmt.Errorf("reading namespace %s: %w", zone, err)
	}
	if rec != nil && rec.Netns == id {
		return id, true, nil
	}
	if has, err := m.Kernel.NamespaceHasAlias(zone, alias(zone)); err == nil && has {
		return id, true, nil
	}
	return id, true, fmt.Errorf("network namespace %s/%s exists and is not nszone's (remove it or rename the zone): %w", netns.PinDir, zone, ErrNotOwned)
}

// checkLink refuses a host interface named like the zone's that nszone did not make.
func (m *Manager) checkLink(zone string, ours map[string]string) error {
	name := HostIf(zone)
	if ours[name] == alias(zone) {
		return nil // there, and nszone's: no need to ask the kernel again
	}
	exists, err := m.Kernel.LinkExists(name)
	if err != nil {
		return fmt.Errorf("looking up interface %s: %w", name, err)
	}
	if exists && ours[name] != alias(zone) && !m.Kernel.CutShort(zone, name) {
		return fmt.Errorf("interface %s exists and is not nszone's: %w", name, ErrNotOwned)
	}
	return nil
}

// Up creates or converges the named zones of f (all of them when names is
// empty). Without names, zones no longer in the file are removed, unless
// programs still run in them.
//
// The order keeps every zone closed at every moment: records first (so a
// crash leaves findable leftovers), then the firewall (whose catch-all
// rules already reject a zone interface without policy), then forwarding,
// and only then namespaces and links.
func (m *Manager) Up(f *config.File, names []string) (*Report, error) {
	p, err := m.prepare(f, names)
	if err != nil {
		return nil, err
	}
	rep := &Report{Lines: p.notes}
	h, err := m.readHostRecord()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{m.path(StateDir), m.path(EtcNetns), m.path(netns.PinDir)} {
		if err := m.ensureDir(h, d); err != nil {
			return nil, err
		}
	}
	if v := m.Firewall.Variant(); v != "" && h.Firewall != v {
		h.Firewall = v
		if err := writeJSON(m.hostRecordPath(), h); err != nil {
			return nil, err
		}
	}
	if err := m.recordNewTables(h); err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(p.want)) {
		if err := m.saveRecord(name, p.want[name], p.recs[name]); err != nil {
			return rep, err
		}
		if old := p.recs[name]; old != nil && !old.Access.Equal(p.want[name].cfg.Access) {
			rep.add("zone %s: who may enter without sudo: %s", name, DescribeAccess(p.want[name].cfg.Access))
		}
	}
	if err := fault("up-records"); err != nil {
		return rep, err
	}
	// The host's walls, nftables' and iptables', side by side: a packet
	// passes only where both let it, and each family of each is written
	// atomically, so no moment is more open than the old policy or the
	// new one. They are in place before any zone's link is made.
	// Walls the kernel vouches for as they were last found are not read.
	hostRules := hostWallRules(p.policy)
	if p.hostGen, p.hostVouched = m.hostVouched(hostRules); !p.hostVouched {
		commits := m.watchCommits()
		if commits != nil {
			defer commits.Close()
		}
		m.Firewall.Writers() // forget those of earlier writes
		before, _ := m.generations("")
		var (
			g                    errgroup.Group
			hostChanged, changed bool
		)
		g.Go(func() (err error) {
			hostChanged, err = m.applyHostWall(p.policy)
			return err
		})
		g.Go(func() (err error) {
			changed, err = firewall.Apply(m.Firewall, firewall.Build(p.policy), firewall.Tables, m.Log)
			return err
		})
		if err := g.Wait(); err != nil {
			return rep, err
		}
		if changed || hostChanged {
			rep.add("firewall: rules updated")
			// Not read back: the host's walls are large. What was read
			// and then written is what is there, if no one else wrote
			// meanwhile.
			before = m.onlyOurs(commits, before)
		}
		// Zones vouch for their walls, the host's part included, only
		// at the generation the host's walls are known whole at.
		p.hostGen = m.vouchForHost(hostRules, before)
	}
	if err := fault("up-firewall"); err != nil {
		return rep, err
	}
	if len(p.policy.Zones) > 0 {
		if changed, err := m.enableForwarding(h, p.fc.uplink, p.v6); err != nil {
			return rep, err
		} else if changed {
			rep.add("forwarding enabled on the host (restored by the last down)")
		}
	}
	if err := fault("up-forwarding"); err != nil {
		return rep, err
	}
	if err := m.upZones(p, rep); err != nil {
		return rep, err
	}
	// Zones left as they are may still need their inner wall to know of a
	// zone allowed to reach them, or gone.
	for _, name := range slices.Sorted(maps.Keys(p.keep)) {
		r := p.keep[name]
		if _, err := m.Kernel.NamespaceID(name); err != nil {
			continue
		}
		if changed, err := m.applyInner(name, r.Policy, r.LAN, false); err != nil {
			return rep, err
		} else if changed {
			rep.add("zone %s: inner wall updated", name)
		}
		if old := p.recs[name]; !recordEqual(old, r) {
			if err := writeJSON(m.recordPath(name), r); err != nil {
				return rep, err
			}
		}
	}
	for _, name := range p.remove {
		if err := fault("up-remove"); err != nil {
			return rep, err
		}
		if err := m.removeZone(name, p.recs[name]); err != nil {
			return rep, err
		}
		rep.add("zone %s removed (no longer in %s)", name, FileName(f.Path))
	}
	if !rep.Changed {
		rep.note("nothing to change: %d zone(s) up as %s says", len(p.want), FileName(f.Path))
	}
	return rep, nil
}

// upPlan is what an up would do, decided before anything changes.
type upPlan struct {
	recs   map[string]*Record
	fc     *facts
	want   map[string]*desiredZone // zones to create or converge
	keep   map[string]*Record      // zones left as they are
	remove []string                // zones to take away
	notes  []string
	policy firewall.Policy // the firewall for want and keep
	v6     bool
	// hostVouched: the host's walls are as the last up found them
	// (vouch.go), and were not read. hostGen: the host's generation they
	// are known whole at (vouched for, or read and written by this process
	// alone); zero when they are not.
	hostVouched bool
	hostGen     nft.Gen
}

// prepare decides everything up will do and refuses, before any change,
// anything named like a zone that nszone does not own.
func (m *Manager) prepare(f *config.File, names []string) (*upPlan, error) {
	if err := checkNames(f, names); err != nil {
		return nil, err
	}
	p := &upPlan{keep: map[string]*Record{}}
	var err error
	if p.recs, _, err = m.records(); err != nil {
		return nil, err
	}
	if p.fc, err = m.facts(f); err != nil {
		return nil, err
	}
	if p.want, err = m.desired(f, names, p.fc, p.recs); err != nil {
		return nil, err
	}
	if p.fc.dnsErr != nil {
		p.notes = append(p.notes, fmt.Sprintf("warning: %v; zones with dns: auto get no DNS server", p.fc.dnsErr))
	}
	for _, name := range slices.Sorted(maps.Keys(p.want)) {
		p.notes = append(p.notes, unknownAccounts(name, p.want[name].cfg.Access)...)
	}
	if len(p.want) > 0 {
		p.notes = append(p.notes, m.Coexistence()...)
	}
	for _, name := range slices.Sorted(maps.Keys(p.recs)) {
		r := p.recs[name]
		if _, ok := p.want[name]; ok {
			continue
		}
		if len(names) > 0 || f.Zone(name) != nil {
			p.keep[name] = r // not asked for this time: left as it is
			continue
		}
		if ps := m.Kernel.ProcessesIn(r.Netns); len(ps) > 0 {
			p.notes = append(p.notes, fmt.Sprintf("zone %s is no longer in %s but %d program(s) still run in it (%s): left up",
				name, FileName(f.Path), len(ps), describe(ps)))
			p.keep[name] = r
			continue
		}
		p.remove = append(p.remove, name)
	}
	ours, err := m.Kernel.LinksWithAlias(aliasPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing nszone's interfaces: %w", err)
	}
	if err := m.checkPublished(f, p.want); err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(p.want)) {
		if _, _, err := m.owned(name, p.recs[name]); err != nil {
			return nil, err
		}
		if err := m.checkLink(name, ours); err != nil {
			return nil, err
		}
	}
	completeInner(p)
	// Zones in name order, whichever were asked for: the rules then come
	// out the same as the records give them (status, exec), whatever up
	// wrote them.
	p.policy = firewall.Policy{LAN: p.fc.lan, IfWildcard: ifWildcard}
	all := map[string]firewall.Zone{}
	for name, d := range p.want {
		all[name] = d.policy
		p.v6 = p.v6 || d.cfg.IPv6
	}
	for name, r := range p.keep {
		all[name] = r.Policy
		p.v6 = p.v6 || r.IPv6
	}
	for _, name := range slices.Sorted(maps.Keys(all)) {
		p.policy.Zones = append(p.policy.Zones, all[name])
	}
	return p, nil
}

// saveRecord writes the zone's record and allocation when they differ.
func (m *Manager) saveRecord(name string, d *desiredZone, old *Record) error {
	r := d.record()
	if old != nil {
		r.Netns = old.Netns
	}
	if old == nil || !recordEqual(old, r) {
		if err := writeJSON(m.recordPath(name), r); err != nil {
			return err
		}
	}
	a := Allocation{Subnet4: d.policy.Net4.String()}
	if d.policy.Net6.IsValid() {
		a.Subnet6 = d.policy.Net6.String()
	}
	if cur, ok := m.allocation(name); !ok || cur != a {
		return writeJSON(m.allocPath(name), a)
	}
	return nil
}

// upZones converges the zones side by side: each zone's work (namespace,
// inner wall, link, files) is its own, and mostly waits on the kernel.
// The report lists them in name order all the same.
func (m *Manager) upZones(p *upPlan, rep *Report) error {
	names := slices.Sorted(maps.Keys(p.want))
	// The host's side of the zones' links that exist already, read at once
	// (a failed read leaves each zone to read its own, and say what fails).
	var host *veth.HostLinks
	if slices.ContainsFunc(names, func(n string) bool { return p.recs[n] != nil }) {
		host, _ = m.Kernel.HostLinks()
	}
	reps := make([]Report, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, 8) // on 2 CPUs, quicker than 4 for a fresh up and a repair alike
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = m.upZone(p.want[name], p.recs[name], p.hostVouched, p.hostGen, host, &reps[i])
		}()
	}
	wg.Wait()
	for i := range names {
		rep.Lines = append(rep.Lines, reps[i].Lines...)
		rep.Changed = rep.Changed || reps[i].Changed
	}
	return errors.Join(errs...)
}

// upZone makes one zone's namespace, link and files match d. host is the
// host's side of the zones' links as read before any was touched.
func (m *Manager) upZone(d *desiredZone, old *Record, hostVouched bool, hostGen nft.Gen, host *veth.HostLinks, rep *Report) (err error) {
	name := d.cfg.Name
	id, exists, err := m.owned(name, old)
	if err != nil {
		return err
	}
	created := false
	if exists && id == (netns.NsID{}) { // a stale pin of ours
		if err := m.Kernel.DeleteNamespace(name); err != nil {
			return err
		}
		exists = false
	}
	if !exists {
		if id, err = m.Kernel.CreateNamespace(name, alias(name), d.cfg.IPv6); err != nil {
			return fmt.Errorf("creating zone %s: %w", name, err)
		}
		created = true
		// A zone that cannot be completed is taken away again, so no
		// half-made zone lingers; its policy stays closed meanwhile.
		defer func() {
			if err != nil {
				if rerr := m.removeZone(name, &Record{Name: name, Netns: id}); rerr != nil {
					err = errors.Join(err, fmt.Errorf("removing half-made zone %s: %w", name, rerr))
				}
			}
		}()
	}
	if err := fault("up-netns"); err != nil {
		return err
	}
	// The inner wall is in place before the link exists. One the kernel
	// vouches for, with the record unchanged, is not read.
	_, digest, err := m.readRecord(name)
	if err != nil {
		return err
	}
	var (
		innerChanged, vouched bool
		before                vouch
	)
	if created || !hostVouched {
		before, _ = m.generations(name)
	} else {
		before, vouched = m.vouched(name, digest)
	}
	if !vouched {
		if innerChanged, err = m.applyInner(name, d.policy, d.lan, created); err != nil {
			return err
		}
	}
	if err := fault("up-inner"); err != nil {
		return err
	}
	// The via's rules and kill switch are in place before the link is.
	viaChanged, err := m.ensureVia(name, d.policy, old)
	if err != nil {
		return err
	}
	if created {
		host = nil // read before the zone was made: its link is read anew
	}
	pairChanged, err := m.Kernel.EnsurePair(d.pair, host)
	if err != nil {
		return fmt.Errorf("zone %s: %w", name, err)
	}
	if err := fault("up-pair"); err != nil {
		return err
	}
	localnetChanged, err := m.ensureLocalnet(d.policy)
	if err != nil {
		return err
	}
	pairChanged = pairChanged || viaChanged || localnetChanged
	filesChanged, err := m.writeZoneFiles(name, d)
	if err != nil {
		return err
	}
	if err := fault("up-files"); err != nil {
		return err
	}
	r := d.record()
	r.Netns = id
	if old == nil || !recordEqual(old, r) {
		if err := writeJSON(m.recordPath(name), r); err != nil {
			return err
		}
	}
	if err := fault("up-record"); err != nil {
		return err
	}
	if !vouched {
		if created || innerChanged {
			// Read back the wall just written, so the next up need not.
			if before, _ = m.generations(name); len(m.innerMissing(name, &Record{Policy: d.policy, LAN: d.lan})) > 0 {
				before = vouch{}
			}
		}
		if before.Host != hostGen || hostGen == (nft.Gen{}) {
			// The host's walls are not known whole at this generation:
			// another program wrote to the host's rulesets meanwhile.
			before = vouch{}
		}
		if _, now, err := m.readRecord(name); err == nil {
			m.vouchFor(name, now, before)
		}
	}
	switch {
	case created:
		rep.add("zone %s up: %s, %s%s, allow %s", name, d.pair.Zone4.Addr(), v6Text(d.pair), "", allowText(r.Allow))
		if len(d.openings) > 0 {
			rep.add("zone %s: DNS opening to %v (port 53 only)", name, d.openings)
		}
	case innerChanged || pairChanged || filesChanged || (old != nil && !recordEqual(old, r)):
		rep.add("zone %s converged", name)
	}
	return nil
}

func v6Text(p veth.Pair) string {
	if !p.Zone6.IsValid() {
		return "no IPv6"
	}
	return p.Zone6.Addr().String()
}

func allowText(a []string) string {
	if len(a) == 0 {
		return "nothing"
	}
	return fmt.Sprint(a)
}

// writeZoneFiles writes /etc/netns/ZONE/{resolv.conf,nsswitch.conf} when they differ.
func (m *Manager) writeZoneFiles(name string, d *desiredZone) (bool, error) {
	dir := m.path(EtcNetns, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("creating %s: %w", dir, err)
	}
	changed := false
	for file, content := range map[string][]byte{"resolv.conf": d.resolv, "nsswitch.conf": d.nsswitch} {
		p := filepath.Join(dir, file)
		if cur, err := os.ReadFile(p); err == nil && bytes.Equal(cur, content) {
			continue
		}
		if err := writeFileAtomic(p, content, 0o644); err != nil {
			return changed, err
		}
		changed = true
	}
	return changed, nil
}

// removeZone takes a zone's link, namespace, files and records away. The
// caller re-applies the firewall without it; until then the zone's rules
// (or the catch-alls) still hold, and there is no link left to use them.
func (m *Manager) removeZone(name string, rec *Record) error {
	var errs []error
	if rec != nil && rec.Policy.Via != "" {
		if err := m.Kernel.DeleteVia(viaOf(rec.Policy)); err != nil {
			errs = append(errs, fmt.Errorf("removing the via of zone %s: %w", name, err))
		}
	}
	if err := m.Kernel.DeletePair(name, HostIf(name), alias(name)); err != nil {
		errs = append(errs, fmt.Errorf("removing link of zone %s: %w", name, err))
	}
	if err := fault("down-link"); err != nil {
		return err
	}
	if _, exists, err := m.owned(name, rec); err != nil && !errors.Is(err, ErrNotOwned) {
		errs = append(errs, err)
	} else if exists && err == nil {
		if err := m.Kernel.DeleteNamespace(name); err != nil {
			errs = append(errs, fmt.Errorf("removing namespace of zone %s: %w", name, err))
		}
	}
	if err := fault("down-netns"); err != nil {
		return err
	}
	dir := m.path(EtcNetns, name)
	for _, f := range []string{"resolv.conf", "nsswitch.conf"} {
		if err := removeFile(filepath.Join(dir, f)); err != nil {
			errs = append(errs, err)
		}
	}
	atomicfile.RemoveTemps(dir)
	os.Remove(dir) // only if empty: files a user put there stay
	if err := fault("down-files"); err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := removeFile(m.vouchPath(name)); err != nil {
		return err
	}
	if err := removeFile(m.allocPath(name)); err != nil {
		return err
	}
	return removeFile(m.recordPath(name))
}

// unknownAccounts warns of users: and groups: names this host does not
// know: nobody enters through them until the account exists.
func unknownAccounts(zone string, a config.Access) []string {
	var notes []string
	for _, u := range a.Users {
		if _, err := user.Lookup(u); err != nil {
			notes = append(notes, fmt.Sprintf("warning: zone %s: users: names %s, who is not a user of this host", zone, u))
		}
	}
	for _, g := range a.Groups {
		if _, err := user.LookupGroup(g); err != nil {
			notes = append(notes, fmt.Sprintf("warning: zone %s: groups: names %s, which is not a group of this host", zone, g))
		}
	}
	return notes
}

// DescribeAccess says who may enter a zone without sudo.
func DescribeAccess(a config.Access) string {
	var parts []string
	if len(a.Users) > 0 {
		parts = append(parts, "users "+strings.Join(a.Users, ", "))
	}
	if len(a.Groups) > 0 {
		parts = append(parts, "groups "+strings.Join(a.Groups, ", "))
	}
	if len(parts) == 0 {
		parts = append(parts, "root only")
	}
	if a.NoNewPrivs {
		parts = append(parts, "no_new_privs")
	}
	return strings.Join(parts, "; ")
}

func describe(ps []Process) string {
	var b []byte
	for i, p := range ps {
		if i == 3 {
			b = fmt.Appendf(b, ", ...")
			break
		}
		if i > 0 {
			b = append(b, ", "...)
		}
		b = fmt.Appendf(b, "%s[%d]", p.Command, p.PID)
	}
	return string(b)
}

// applyInner makes zone's inner wall match policy.
func (m *Manager) applyInner(zone string, policy firewall.Zone, lan []netip.Prefix, fresh bool) (bool, error) {
	changed, err := m.Inner.Apply(zone, policy, lan, fresh, m.Log)
	if err != nil {
		return changed, fmt.Errorf("zone %s: inner wall: %w", zone, err)
	}
	return changed, nil
}

// completeInner gives every zone's policy the addresses its inner wall
// needs: the host's own (every zone's gateway among them), the zones it
// may reach and that may reach it, and all zone subnets. They are computed
// from the plan alone, so they are the same before and after the links
// exist, and a second up finds nothing to change.
func completeInner(p *upPlan) {
	type zone struct {
		policy *firewall.Zone
		pair   veth.Pair
	}
	all := map[string]zone{}
	for name, d := range p.want {
		all[name] = zone{&d.policy, d.pair}
	}
	for name, r := range p.keep {
		c := *r
		c.Policy.HostAddrs, c.Policy.ToZoneAddrs, c.Policy.FromZoneAddrs, c.Policy.ZoneNets = nil, nil, nil, nil
		p.keep[name] = &c
		all[name] = zone{&p.keep[name].Policy, c.Pair}
	}
	var nets []netip.Prefix
	for _, name := range slices.Sorted(maps.Keys(all)) {
		nets = append(nets, all[name].policy.Net4, all[name].policy.Net6)
	}
	ranges := zoneRanges(nets)
	host := innerHostAddrs(p.fc.addrs, ranges)
	for _, name := range slices.Sorted(maps.Keys(all)) {
		z := all[name]
		z.policy.HostAddrs, z.policy.ZoneNets = withGateway(host, z.pair), ranges
		for _, other := range slices.Sorted(maps.Keys(all)) {
			o := all[other]
			if slices.Contains(z.policy.ToHostIfs, HostIf(other)) {
				z.policy.ToZoneAddrs = append(z.policy.ToZoneAddrs, addrsOf(o.pair.Zone4, o.pair.Zone6)...)
			}
			if slices.Contains(o.policy.ToHostIfs, HostIf(name)) {
				z.policy.FromZoneAddrs = append(z.policy.FromZoneAddrs, addrsOf(o.pair.Zone4, o.pair.Zone6)...)
			}
		}
	}
}

// zoneRanges covers every zone subnet with as few prefixes as it can: the
// pools, plus subnets fixed in the file outside them. An inner wall then
// has the same size however many zones there are.
func zoneRanges(nets []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range nets {
		if !n.IsValid() {
			continue
		}
		n = n.Masked()
		for _, pool := range []netip.Prefix{pool4, pool6} {
			if pool.Contains(n.Addr()) && n.Bits() >= pool.Bits() {
				n = pool
			}
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out
}

// innerHostAddrs is the host's own addresses as inner walls list them: all
// but loopback, link-local (the inner wall covers link-local as a whole)
// and the zones' gateways (a zone reaches the host through its own).
func innerHostAddrs(addrs []netip.Addr, zoneRanges []netip.Prefix) []netip.Addr {
	var host []netip.Addr
	for _, a := range addrs {
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() && !inAny(a, zoneRanges) {
			host = append(host, a.WithZone(""))
		}
	}
	slices.SortFunc(host, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(host)
}

// withGateway adds the zone's own gateway addresses to the host's.
func withGateway(host []netip.Addr, pair veth.Pair) []netip.Addr {
	out := append(slices.Clone(host), addrsOf(pair.Host4, pair.Host6)...)
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

func addrsOf(ps ...netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for _, p := range ps {
		if p.IsValid() {
			out = append(out, p.Addr())
		}
	}
	return out
}
