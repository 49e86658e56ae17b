package zones

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
)

// PlanResult is what `plan` shows, as data: `nszone plan -o json` prints it.
// The field names are part of nszone's interface (README, "JSON output").
type PlanResult struct {
	Changed  bool           `json:"changed"`  // up would change something
	Zones    []PlanZone     `json:"zones"`    // every zone of the file, then those up would remove
	Firewall []PlanFirewall `json:"firewall"` // tables whose nszone chains up would rewrite
	Sysctls  []PlanSysctl   `json:"sysctls"`  // sysctls up would set
	Notes    []string       `json:"notes"`    // warnings: no DNS found, a zone left up for its programs
	lines    []planLine     // the text of `plan`, in order
}

// PlanZone is one zone in a plan.
type PlanZone struct {
	Name        string   `json:"name"`
	Action      string   `json:"action"` // add, change, remove or none
	Netns       string   `json:"netns,omitempty"`
	HostIf      string   `json:"host_interface,omitempty"`
	Addresses   []string `json:"addresses"` // the zone's end of its link, as up would make it
	Allow       []string `json:"allow"`
	DNS         []string `json:"dns"`
	DNSOpenings []string `json:"dns_openings"`  // port-53-only openings the policy needs
	Published   []string `json:"published"`     // ports published into the zone ("8080->80/tcp")
	Via         string   `json:"via,omitempty"` // the interface its internet leaves by
	Changes     []string `json:"changes"`       // what differs (change), as the text says it
}

// PlanFirewall is one table in a plan.
type PlanFirewall struct {
	Table  string   `json:"table"`  // "ipv4 filter", "ipv4 nat", "ipv6 filter", "ipv6 nat"
	Write  []string `json:"write"`  // chains written whole
	Remove []string `json:"remove"` // chains removed
	Jumps  bool     `json:"jumps"`  // the jumps from the built-in chains are (re)placed first
}

// PlanSysctl is one sysctl in a plan.
type PlanSysctl struct {
	Key  string `json:"key"`
	From string `json:"from"`
	To   string `json:"to"`
}

// Plan actions of a zone.
const (
	PlanAdd    = "add"
	PlanChange = "change"
	PlanRemove = "remove"
	PlanNone   = "none"
)

type planLine struct {
	text   string
	change bool // a change (+ ~ -), not a note
}

func (r *PlanResult) add(format string, args ...any) {
	r.lines = append(r.lines, planLine{fmt.Sprintf(format, args...), true})
	r.Changed = true
}

func (r *PlanResult) note(format string, args ...any) {
	r.lines = append(r.lines, planLine{text: fmt.Sprintf(format, args...)})
}

// Report is the plan as `nszone plan` prints it, one line each.
func (r *PlanResult) Report() *Report {
	rep := &Report{}
	for _, l := range r.lines {
		if l.change {
			rep.add("%s", l.text)
		} else {
			rep.note("%s", l.text)
		}
	}
	return rep
}

// PlanDetail says what Up(f, nil) would add (+), change (~) and remove
// (-), changing nothing; its Report is the text form.
func (m *Manager) PlanDetail(f *config.File) (*PlanResult, error) {
	p, err := m.prepare(f, nil)
	if err != nil {
		return nil, err
	}
	rep := &PlanResult{Zones: []PlanZone{}, Firewall: []PlanFirewall{}, Sysctls: []PlanSysctl{}, Notes: nonNil(slices.Clone(p.notes))}
	for _, n := range p.notes {
		rep.note("%s", n)
	}
	cur, err := firewall.Current(m.Firewall, firewall.Tables)
	if err != nil {
		return nil, err
	}
	recordedP := recordedPolicy(p.recs)
	recorded := firewall.Build(recordedP)
	ipt := firewall.NewChecker(cur, recorded)
	hostWall := m.hostWallGaps(recordedP)
	now := m.hostNow(p.recs)
	for _, name := range slices.Sorted(maps.Keys(p.want)) {
		d, rec := p.want[name], p.recs[name]
		r := d.record()
		pz := PlanZone{Name: name, Netns: netns.PinDir + "/" + name, HostIf: d.pair.HostName, Addresses: []string{},
			Allow: nonNil(r.Allow), DNS: nonNil(r.DNS), DNSOpenings: nonNil(slices.Clone(d.openings)), Changes: []string{},
			Published: PublishedText(d.policy.Publish), Via: d.policy.Via}
		for _, a := range []netip.Prefix{d.pair.Zone4, d.pair.Zone6} {
			if a.IsValid() {
				pz.Addresses = append(pz.Addresses, a.String())
			}
		}
		if rec == nil {
			pz.Action = PlanAdd
			rep.add("+ zone %s: namespace %s/%s, link %s %s / %s, allow %s, dns %s",
				name, netns.PinDir, name, d.pair.HostName, d.pair.Zone4, v6Text(d.pair), allowText(r.Allow), dnsText(r.DNS))
			if len(d.openings) > 0 {
				rep.add("+ zone %s: DNS opening to %s (port 53 only)", name, strings.Join(d.openings, ", "))
			}
			if len(d.policy.Publish) > 0 {
				rep.add("+ zone %s: published %s", name, strings.Join(PublishedText(d.policy.Publish), ", "))
			}
			if d.policy.Via != "" {
				rep.add("+ zone %s: internet only via %s (nothing leaves while it is gone)", name, d.policy.Via)
			}
		} else {
			r.Netns = rec.Netns
			diffs := recordDiff(rec, r)
			// up repairs what opens nothing too.
			g := m.missing(name, rec, ipt.Missing(name), hostWall, now)
			if gaps := append(g.missing(), g.notes...); len(gaps) > 0 {
				diffs = append(diffs, "repair "+strings.Join(gaps, ", "))
			}
			if len(diffs) > 0 {
				pz.Action, pz.Changes = PlanChange, diffs
				rep.add("~ zone %s: %s", name, strings.Join(diffs, "; "))
			} else {
				pz.Action = PlanNone
				rep.note("= zone %s: no change", name)
			}
		}
		rep.Zones = append(rep.Zones, pz)
	}
	for _, name := range p.remove {
		pz := PlanZone{Name: name, Action: PlanRemove, Netns: netns.PinDir + "/" + name, HostIf: HostIf(name),
			Addresses: []string{}, Allow: []string{}, DNS: []string{}, DNSOpenings: []string{}, Changes: []string{}, Published: []string{}}
		if rec := p.recs[name]; rec != nil {
			pz.Allow, pz.DNS, pz.DNSOpenings = nonNil(rec.Allow), nonNil(rec.DNS), nonNil(rec.Openings)
		}
		rep.Zones = append(rep.Zones, pz)
		rep.add("- zone %s: no longer in %s", name, FileName(f.Path))
	}
	scripts, err := firewall.Scripts(m.Firewall, firewall.Build(p.policy), firewall.Tables)
	if err != nil {
		return nil, err
	}
	for _, k := range firewall.Tables {
		if sc, ok := scripts[k]; ok {
			pf := summarizeScript(sc)
			pf.Table = k.String()
			rep.Firewall = append(rep.Firewall, pf)
			rep.add("~ firewall %s: %s", k, summarize(sc))
		}
	}
	for _, kv := range forwarding(p.fc.uplink, p.v6) {
		if v, err := m.Kernel.Sysctl(kv[0]); err == nil && v != kv[1] && !(kv[1] == "2" && v != "1") && len(p.policy.Zones) > 0 {
			rep.Sysctls = append(rep.Sysctls, PlanSysctl{Key: kv[0], From: v, To: kv[1]})
			rep.add("~ sysctl %s: %s -> %s", kv[0], v, kv[1])
		}
	}
	if !rep.Changed {
		rep.note("nothing to change")
	}
	return rep, nil
}

func dnsText(d []string) string {
	if len(d) == 0 {
		return "none"
	}
	return strings.Join(d, ", ")
}

// recordDiff says how the recorded zone differs from the wanted one, from
// the fields changedFields finds: what the user wrote first (link, allow,
// dns, ...), then, when only derived details differ, their stored names.
func recordDiff(old, new *Record) []string {
	var out, details []string
	once := map[string]bool{}
	for _, f := range changedFields(old, new) {
		top, _, _ := strings.Cut(f, ".")
		switch {
		case top == "link":
			if !once[top] {
				out = append(out, fmt.Sprintf("link %s/%s -> %s/%s", old.Pair.Zone4, v6Text(old.Pair), new.Pair.Zone4, v6Text(new.Pair)))
			}
		case f == "allow":
			out = append(out, fmt.Sprintf("allow %s -> %s", allowText(old.Allow), allowText(new.Allow)))
		case f == "dns":
			out = append(out, fmt.Sprintf("dns %s -> %s", dnsText(old.DNS), dnsText(new.DNS)))
		case f == "dns_openings":
			out = append(out, fmt.Sprintf("dns openings %v -> %v", old.Openings, new.Openings))
		case f == "policy.publish":
			out = append(out, fmt.Sprintf("published %s -> %s", publishedList(old.Policy.Publish), publishedList(new.Policy.Publish)))
		case f == "policy.via":
			out = append(out, fmt.Sprintf("via %q -> %q", old.Policy.Via, new.Policy.Via))
		case f == "policy.uplink":
			out = append(out, fmt.Sprintf("uplink %q -> %q", old.Policy.Uplink, new.Policy.Uplink))
		case f == "ipv6":
			out = append(out, fmt.Sprintf("ipv6 %v -> %v", old.IPv6, new.IPv6))
		case f == "policy.no_log":
			out = append(out, fmt.Sprintf("log %v -> %v", !old.Policy.NoLog, !new.Policy.NoLog))
		case f == "access.confine" && old.Access.ConfineOr() != new.Access.ConfineOr():
			out = append(out, fmt.Sprintf("confine %s -> %s (for programs started from now on)", old.Access.ConfineOr(), new.Access.ConfineOr()))
		case top == "access" && f != "access.confine":
			if !once[top] {
				out = append(out, "who may enter without sudo: "+DescribeAccess(new.Access))
			}
		default:
			details = append(details, f)
		}
		once[top] = true
	}
	if len(out) == 0 && len(details) > 0 {
		out = append(out, "policy details ("+strings.Join(details, ", ")+")")
	}
	return out
}

// summarizeScript reads a restore script: the chains it writes whole, those
// it removes, and whether it places the jumps from the built-in chains.
func summarizeScript(script string) PlanFirewall {
	var rewrite, remove []string
	jumps := false
	for _, l := range strings.Split(script, "\n") {
		switch {
		case strings.HasPrefix(l, ":"):
			name, _, _ := strings.Cut(l[1:], " ")
			rewrite = append(rewrite, name)
		case strings.HasPrefix(l, "-X "):
			remove = append(remove, l[3:])
		case strings.HasPrefix(l, "-I ") || strings.HasPrefix(l, "-D "):
			jumps = true
		}
	}
	pf := PlanFirewall{Write: []string{}, Remove: nonNil(remove), Jumps: jumps}
	for _, c := range rewrite {
		if !slices.Contains(remove, c) {
			pf.Write = append(pf.Write, c)
		}
	}
	return pf
}

// summarize turns a restore script into "write A, B; remove C; place jumps ...".
func summarize(script string) string {
	pf := summarizeScript(script)
	var parts []string
	if len(pf.Write) > 0 {
		parts = append(parts, "write "+strings.Join(pf.Write, ", "))
	}
	if len(pf.Remove) > 0 {
		parts = append(parts, "remove "+strings.Join(pf.Remove, ", "))
	}
	if pf.Jumps {
		parts = append(parts, "place jumps first in built-in chains")
	}
	return strings.Join(parts, "; ")
}
