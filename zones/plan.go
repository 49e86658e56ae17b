package zones

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/veth"
)

// Plan says what Up(f, nil) would add (+), change (~) and remove (-),
// changing nothing.
func (m *Manager) Plan(f *config.File) (*Report, error) {
	p, err := m.prepare(f, nil)
	if err != nil {
		return nil, err
	}
	rep := &Report{Lines: p.notes}
	cur, err := firewall.Current(m.Firewall, firewall.Tables)
	if err != nil {
		return nil, err
	}
	recorded := m.recordedRuleset(p.recs)
	for _, name := range sortedKeys(p.want) {
		d, rec := p.want[name], p.recs[name]
		r := d.record()
		switch {
		case rec == nil:
			rep.add("+ zone %s: namespace %s/%s, link %s %s / %s, allow %s, dns %s",
				name, veth.PinDir, name, d.pair.HostName, d.pair.Zone4, v6Text(d.pair), allowText(r.Allow), dnsText(r.DNS))
			if len(d.openings) > 0 {
				rep.add("+ zone %s: DNS opening to %s (port 53 only)", name, strings.Join(d.openings, ", "))
			}
		default:
			r.Netns = rec.Netns
			diffs := recordDiff(rec, r)
			if gaps := m.missing(name, rec, cur, recorded); len(gaps) > 0 {
				diffs = append(diffs, "repair "+strings.Join(gaps, ", "))
			}
			if len(diffs) > 0 {
				rep.add("~ zone %s: %s", name, strings.Join(diffs, "; "))
			} else {
				rep.note("= zone %s: no change", name)
			}
		}
	}
	for _, name := range p.remove {
		rep.add("- zone %s: no longer in %s", name, fileName(f.Path))
	}
	scripts, err := firewall.Scripts(m.Firewall, firewall.Build(p.policy), firewall.Tables)
	if err != nil {
		return nil, err
	}
	for _, k := range firewall.Tables {
		if sc, ok := scripts[k]; ok {
			rep.add("~ firewall %s: %s", k, summarize(sc))
		}
	}
	for _, kv := range forwarding(p.fc.uplink, p.v6) {
		if v, err := veth.GetSysctl(kv[0]); err == nil && v != kv[1] && !(kv[1] == "2" && v != "1") && len(p.policy.Zones) > 0 {
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

// recordDiff names the fields in which the recorded zone differs from the wanted one.
func recordDiff(old, new *Record) []string {
	var out []string
	if old.Pair != new.Pair {
		out = append(out, fmt.Sprintf("link %s/%s -> %s/%s", old.Pair.Zone4, v6Text(old.Pair), new.Pair.Zone4, v6Text(new.Pair)))
	}
	if fmt.Sprint(old.Allow) != fmt.Sprint(new.Allow) {
		out = append(out, fmt.Sprintf("allow %s -> %s", allowText(old.Allow), allowText(new.Allow)))
	}
	if fmt.Sprint(old.DNS) != fmt.Sprint(new.DNS) {
		out = append(out, fmt.Sprintf("dns %s -> %s", dnsText(old.DNS), dnsText(new.DNS)))
	}
	if fmt.Sprint(old.Openings) != fmt.Sprint(new.Openings) {
		out = append(out, fmt.Sprintf("dns openings %v -> %v", old.Openings, new.Openings))
	}
	if old.Policy.Uplink != new.Policy.Uplink {
		out = append(out, fmt.Sprintf("uplink %q -> %q", old.Policy.Uplink, new.Policy.Uplink))
	}
	if old.IPv6 != new.IPv6 {
		out = append(out, fmt.Sprintf("ipv6 %v -> %v", old.IPv6, new.IPv6))
	}
	if len(out) == 0 && !recordEqual(old, new) {
		out = append(out, "policy details (lan list or openings)")
	}
	return out
}

// summarize turns a restore script into "rewrite A, B; remove C; fix jumps".
func summarize(script string) string {
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
	var parts []string
	var rw []string
	for _, c := range rewrite {
		if !slices.Contains(remove, c) {
			rw = append(rw, c)
		}
	}
	if len(rw) > 0 {
		parts = append(parts, "write "+strings.Join(rw, ", "))
	}
	if len(remove) > 0 {
		parts = append(parts, "remove "+strings.Join(remove, ", "))
	}
	if jumps {
		parts = append(parts, "place jumps first in built-in chains")
	}
	return strings.Join(parts, "; ")
}
