package zones

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"

	"github.com/nszone/nszone/firewall"
)

// What the last down puts back besides links, chains and directories: the
// iptables-nft tables nszone's rules made the kernel create, and the
// sysctls up set, each only while nothing else has come to depend on it.

// recordNewTables remembers in h which of nszone's iptables tables do not
// exist yet, before up first writes to them: recorded first, then created
// (by firewall.Apply), so that a crash in between cannot hide that nszone
// made them. The last down deletes each that is empty again.
//
// Only iptables-nft creates a table on its first use. iptables-legacy's
// tables are the kernel's: each exists as soon as its module is loaded and
// none can be deleted, so there is nothing to record or undo.
func (m *Manager) recordNewTables(h *hostRecord) error {
	if m.Firewall.Variant() != "nft" {
		return nil
	}
	missing, err := m.Kernel.MissingTables(firewall.Tables)
	if err != nil {
		return fmt.Errorf("looking up the iptables-nft tables: %w", err)
	}
	changed := false
	for _, k := range missing {
		if name := k.NftName(); !slices.Contains(h.CreatedTables, name) {
			h.CreatedTables = append(h.CreatedTables, name)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return writeJSON(m.hostRecordPath(), h)
}

// restoreTables deletes the iptables-nft tables nszone created, each only
// if it is empty of everything (nft.WhyNotEmpty): a table holding
// anyone else's chain or rule stays, and the returned note says why.
func (m *Manager) restoreTables(h *hostRecord) (notes []string) {
	for _, name := range h.CreatedTables {
		k, ok := firewall.ParseNftName(name)
		if !ok {
			continue // a damaged record: never delete a table it does not name exactly
		}
		why, err := m.Kernel.DeleteTableIfEmpty(k)
		if err != nil {
			why = err.Error()
		}
		if why != "" {
			notes = append(notes, fmt.Sprintf("iptables-nft table %s left: %s", name, why))
			continue
		}
		m.Log.Debug("deleted the iptables-nft table nszone created", "table", name)
	}
	return notes
}

// Forwarding keys: the sysctls that let the host route between interfaces,
// and the family whose filter table shows who else relies on them.
var forwardingKeys = map[string]firewall.Family{
	"net.ipv4.ip_forward":          firewall.IPv4,
	"net.ipv6.conf.all.forwarding": firewall.IPv6,
}

// forwardingTools names the filter-table chains of tools that route
// containers' or virtual machines' traffic through the host and so need
// forwarding for as long as their chains exist (they stay after the tool
// stops, as the tool's own networks do).
var forwardingTools = []struct {
	owner  string
	chains []string
}{
	{"Docker", []string{"DOCKER", "DOCKER-FORWARD"}},
	{"libvirt", []string{"LIBVIRT_FWI", "LIBVIRT_FWO", "LIBVIRT_FWX"}},
	{"Podman", []string{"NETAVARK_FORWARD"}},
}

// forwardNeeds lists what in one family's filter table (iptables-save text)
// needs forwarding, in a stable order:
//
//   - "chain:NAME" for each chain of forwardingTools that exists;
//   - "rule:LINE" for each rule of the FORWARD chain that is not nszone's
//     (no nszone comment, no jump to an NSZ- chain), whose target is
//     ACCEPT and which does not match on connection state (-m conntrack
//     --ctstate, -m state --state): someone lets new traffic through the
//     host.
//
// A rule matching on state accepts only what belongs to connections
// something else let through (firewalld's and Docker's "RELATED,ESTABLISHED"
// rules are there whether or not anything is forwarded). Jumps from FORWARD
// into other chains are not followed, for the same reason: ufw and
// firewalld jump into chains of their own that accept replies whether or
// not the host forwards anything, so following them would keep forwarding
// on wherever either is installed.
func forwardNeeds(save string) []string {
	var out []string
	for _, line := range strings.Split(save, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			for _, t := range forwardingTools {
				if slices.Contains(t.chains, name) {
					out = append(out, "chain:"+name)
				}
			}
		case strings.HasPrefix(line, "-A FORWARD ") && strings.HasSuffix(line, " -j ACCEPT") &&
			!strings.Contains(line, "--comment "+firewall.Comment) && !strings.Contains(line, " -j "+firewall.Prefix) &&
			!strings.Contains(line, " --ctstate ") && !strings.Contains(line, " --state "):
			out = append(out, "rule:"+line)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// describeNeeds says who needs forwarding, for a report line:
// "Docker's chains (DOCKER-FORWARD)".
func describeNeeds(needs []string) string {
	var parts, rules []string
	for _, t := range forwardingTools {
		var found []string
		for _, n := range needs {
			if name, ok := strings.CutPrefix(n, "chain:"); ok && slices.Contains(t.chains, name) {
				found = append(found, name)
			}
		}
		if len(found) > 0 {
			parts = append(parts, fmt.Sprintf("%s's chains (%s)", t.owner, strings.Join(found, ", ")))
		}
	}
	for _, n := range needs {
		if r, ok := strings.CutPrefix(n, "rule:"); ok {
			rules = append(rules, r)
		}
	}
	if len(rules) > 2 {
		rules = append(rules[:2], fmt.Sprintf("and %d more", len(rules)-2))
	}
	if len(rules) > 0 {
		parts = append(parts, fmt.Sprintf("someone else's forwarding rules (%s)", strings.Join(rules, "; ")))
	}
	return strings.Join(parts, " and ")
}

// setValue is what up writes to key (forwarding), for a record from before
// hostRecord.SysctlsSet.
func setValue(h *hostRecord, key string) string {
	if v, ok := h.SysctlsSet[key]; ok {
		return v
	}
	if strings.HasSuffix(key, ".accept_ra") {
		return "2"
	}
	return "1"
}

// sysctlFacts is what the last down knows of one sysctl up changed.
type sysctlFacts struct {
	Key    string
	Before string // its value before the first up
	Set    string // the value up wrote
	Now    string // its value now; "" when the key is gone (an uplink removed)
	// Needs lists what needs forwarding now that did not when up turned
	// it on (forwardNeeds); forwarding keys only.
	Needs []string
}

// decideSysctls decides which sysctls the last down restores: each key
// goes back to its value from before the first up unless something else
// has come to depend on the value up set:
//
//   - the key holds another value than up set: someone changed it since,
//     and it is theirs now (left as it is);
//   - a forwarding key: something needs forwarding (Needs);
//   - an uplink's accept_ra: net.ipv6.conf.all.forwarding is left at 1 for
//     the reason above, and accept_ra=1 would make the uplink ignore router
//     advertisements while forwarding (which is why up set 2).
//
// left holds one report line per key left.
func decideSysctls(facts []sysctlFacts) (restore [][2]string, left []string) {
	forwardingLeft := map[string]bool{}
	// Forwarding keys first: accept_ra follows net.ipv6.conf.all.forwarding.
	order := slices.Clone(facts)
	slices.SortStableFunc(order, func(a, b sysctlFacts) int {
		_, fa := forwardingKeys[a.Key]
		_, fb := forwardingKeys[b.Key]
		switch {
		case fa && !fb:
			return -1
		case fb && !fa:
			return 1
		}
		return strings.Compare(a.Key, b.Key)
	})
	for _, s := range order {
		_, isForwarding := forwardingKeys[s.Key]
		switch {
		case s.Now == "" || s.Now == s.Before:
			// Gone, or as it was: nothing to put back.
		case s.Now != s.Set:
			left = append(left, fmt.Sprintf("%s left at %s: changed since nszone set it to %s (it was %s before the first up)",
				s.Key, s.Now, s.Set, s.Before))
		case isForwarding && len(s.Needs) > 0:
			left = append(left, fmt.Sprintf("%s left at %s: %s need it", s.Key, s.Now, describeNeeds(s.Needs)))
			forwardingLeft[s.Key] = s.Now == "1"
		case strings.HasPrefix(s.Key, "net.ipv6.conf.") && strings.HasSuffix(s.Key, ".accept_ra") &&
			forwardingLeft["net.ipv6.conf.all.forwarding"]:
			left = append(left, fmt.Sprintf("%s left at %s: net.ipv6.conf.all.forwarding stays 1, with which accept_ra=%s would ignore router advertisements",
				s.Key, s.Now, s.Before))
		default:
			restore = append(restore, [2]string{s.Key, s.Before})
		}
	}
	return restore, left
}

// sysctlFactsOf gathers, for every sysctl in h, what decideSysctls needs.
func (m *Manager) sysctlFactsOf(h *hostRecord) ([]sysctlFacts, error) {
	var out []sysctlFacts
	saved := map[firewall.Family][]string{}
	for _, key := range slices.Sorted(maps.Keys(h.Sysctls)) {
		s := sysctlFacts{Key: key, Before: h.Sysctls[key], Set: setValue(h, key)}
		now, err := m.Kernel.Sysctl(key)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("reading sysctl %s: %w", key, err)
		default:
			s.Now = now
		}
		if f, ok := forwardingKeys[key]; ok && s.Now == s.Set && s.Now != s.Before && m.Firewall != nil {
			needs, ok := saved[f]
			if !ok {
				if needs, err = m.forwardNeedsOf(f); err != nil {
					return nil, err
				}
				saved[f] = needs
			}
			for _, n := range needs {
				if !slices.Contains(h.ForwardNeeds[key], n) {
					s.Needs = append(s.Needs, n)
				}
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// forwardNeedsOf reads the filter table of family f through the host's
// wall (the iptables variant up recorded) and says what needs forwarding.
func (m *Manager) forwardNeedsOf(f firewall.Family) ([]string, error) {
	out, err := m.Firewall.Save(f, []string{"filter"})
	if err != nil {
		return nil, fmt.Errorf("reading the %s filter table: %w", f, err)
	}
	return forwardNeeds(out), nil
}
