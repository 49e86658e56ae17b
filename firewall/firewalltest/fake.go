// Package firewalltest holds an in-memory firewall.Backend for the unit
// tests of firewall and of the packages that use it.
package firewalltest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/nszone/nszone/firewall"
)

// Fake is an in-memory Backend for unit tests. Like the kernel it rejects
// a jump to a chain that does not exist and the deletion of a chain that is
// still referenced, and a failed script changes nothing.
type Fake struct {
	// Mode is what Variant returns: "" (no iptables) unless a test sets
	// "nft" or "legacy" to exercise code for those hosts.
	Mode   string
	mu     sync.Mutex // Apply reads both families side by side
	tables map[firewall.Key]*fakeTable
	// Writes counts successful Restore calls, Reads Save calls.
	Writes, Reads int
}

type fakeTable struct {
	order []string            // chain names, built-ins first
	rules map[string][]string // chain -> rules ("-A CHAIN ...")
}

var _ firewall.Backend = (*Fake)(nil)

var builtins = map[string][]string{
	"filter": {"INPUT", "FORWARD", "OUTPUT"},
	"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
}

// NewFake returns a Fake with empty built-in chains.
func NewFake() *Fake { return &Fake{tables: map[firewall.Key]*fakeTable{}} }

func (f *Fake) table(k firewall.Key) *fakeTable {
	t := f.tables[k]
	if t == nil {
		t = &fakeTable{rules: map[string][]string{}}
		t.order = append(t.order, builtins[k.Table]...)
		for _, c := range t.order {
			t.rules[c] = nil
		}
		f.tables[k] = t
	}
	return t
}

func (t *fakeTable) clone() *fakeTable {
	c := &fakeTable{order: append([]string(nil), t.order...), rules: map[string][]string{}}
	for k, v := range t.rules {
		c.rules[k] = append([]string(nil), v...)
	}
	return c
}

// Variant implements Backend.
func (f *Fake) Variant() string { return f.Mode }

// Writers: the fake's writes are this process's own.
func (f *Fake) Writers() []int { return nil }

// Save implements Backend.
func (f *Fake) Save(fam firewall.Family, tables []string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Reads++
	var b strings.Builder
	for _, table := range tables {
		t := f.table(firewall.Key{Family: fam, Table: table})
		b.WriteString("*" + table + "\n")
		for i, c := range t.order {
			policy := "-" // as iptables-save: built-in chains show their policy
			if i < len(builtins[table]) {
				policy = "ACCEPT"
			}
			fmt.Fprintf(&b, ":%s %s [0:0]\n", c, policy)
		}
		for _, c := range t.order {
			for _, r := range t.rules[c] {
				b.WriteString(r + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String(), nil
}

// Add appends a rule as another tool would (for tests of coexistence).
func (f *Fake) Add(fam firewall.Family, table, chain, rule string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.table(firewall.Key{Family: fam, Table: table})
	if _, ok := t.rules[chain]; !ok {
		t.order = append(t.order, chain)
	}
	t.rules[chain] = append(t.rules[chain], "-A "+chain+" "+rule)
}

// Restore implements Backend for the subset of iptables-restore nszone
// writes. Like the kernel, a script that fails changes nothing.
func (f *Fake) Restore(fam firewall.Family, script string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	changed := map[firewall.Key]*fakeTable{}
	var t *fakeTable
	for _, line := range strings.Split(strings.TrimSpace(script), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch {
		case strings.HasPrefix(line, "*"):
			k := firewall.Key{Family: fam, Table: line[1:]}
			t = f.table(k).clone()
			changed[k] = t
		case t == nil:
			return fmt.Errorf("fake: %q outside a table", line)
		case line == "COMMIT":
			t = nil
		case strings.HasPrefix(line, ":"):
			c := fields[0][1:]
			if _, ok := t.rules[c]; !ok {
				t.order = append(t.order, c)
			}
			t.rules[c] = nil
		case fields[0] == "-A" || fields[0] == "-I":
			c := fields[1]
			if _, ok := t.rules[c]; !ok {
				return fmt.Errorf("fake: %q: no chain %s", line, c)
			}
			if tgt := target(fields); tgt != "" && strings.HasPrefix(tgt, firewall.Prefix) {
				if _, ok := t.rules[tgt]; !ok {
					return fmt.Errorf("fake: %q: jump to missing chain %s", line, tgt)
				}
			}
			if fields[0] == "-A" {
				t.rules[c] = append(t.rules[c], line)
			} else {
				rest := strings.Join(append([]string{"-A", c}, fields[3:]...), " ")
				t.rules[c] = append([]string{rest}, t.rules[c]...)
			}
		case fields[0] == "-D":
			want := "-A" + strings.TrimPrefix(line, "-D")
			rules := t.rules[fields[1]]
			i := indexOf(rules, want)
			if i < 0 {
				return fmt.Errorf("fake: %q: no such rule", line)
			}
			t.rules[fields[1]] = append(rules[:i:i], rules[i+1:]...)
		case fields[0] == "-X":
			c := fields[1]
			for _, other := range t.order {
				for _, r := range t.rules[other] {
					if target(strings.Fields(r)) == c {
						return fmt.Errorf("fake: %q: chain still referenced by %q", line, r)
					}
				}
			}
			delete(t.rules, c)
			t.order = removeString(t.order, c)
		default:
			return fmt.Errorf("fake: unsupported line %q", line)
		}
	}
	for k, t := range changed {
		f.tables[k] = t
	}
	f.Writes++
	return nil
}

// Empty reports whether a table holds no rule and no chain of its own (as
// a table nobody wrote to); unlike Save it counts as no read.
func (f *Fake) Empty(fam firewall.Family, table string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.table(firewall.Key{Family: fam, Table: table})
	if len(t.order) > len(builtins[table]) {
		return false
	}
	for _, c := range t.order {
		if len(t.rules[c]) > 0 {
			return false
		}
	}
	return true
}

// Chains lists the user chains of a table, sorted.
func (f *Fake) Chains(fam firewall.Family, table string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.table(firewall.Key{Family: fam, Table: table})
	out := slices.Clone(t.order[len(builtins[table]):])
	sort.Strings(out)
	return out
}

func target(fields []string) string {
	for i, f := range fields {
		if f == "-j" && i+1 < len(fields) {
			return fields[i+1]
		}
	}
	return ""
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func removeString(list []string, s string) []string {
	if i := indexOf(list, s); i >= 0 {
		return append(list[:i:i], list[i+1:]...)
	}
	return list
}
