package firewall

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
)

// Backend reads and writes whole tables. The kernel-facing implementation
// is IPTables; Fake serves unit tests.
type Backend interface {
	// Save returns the named tables of family f in iptables-save form.
	Save(f Family, tables []string) (string, error)
	// Restore applies an iptables-restore script of one or more tables,
	// without flushing them.
	Restore(f Family, script string) error
	// Variant is the iptables variant behind the backend, "nft" or
	// "legacy"; "" for one that is no iptables (a fake).
	Variant() string
	// Writers returns the process ids of the Restore commands run since
	// the last call: with iptables-nft, who made the commits they made.
	Writers() []int
}

// ErrForeignChain is returned for a chain named like ours that holds rules
// nszone did not write: it is never taken over.
var ErrForeignChain = errors.New("chain is not nszone's")

// Tables lists every table nszone may own rules in on the host.
var Tables = []Key{{IPv4, "filter"}, {IPv4, "nat"}, {IPv6, "filter"}, {IPv6, "nat"}}

// hookAt is one jump into an owned chain found in a built-in chain.
type hookAt struct {
	line string // as saved: "-A FORWARD ... -j NSZ-FORWARD"
	pos  int    // index among the built-in chain's rules
}

// state is what the kernel holds of one table, as far as nszone cares.
type state struct {
	chains map[string][]string
	hooks  map[string][]hookAt
	first  map[string]string // built-in chain -> its first rule
}

// parseSave reads iptables-save output for one table.
func parseSave(out string) (*state, error) {
	s := &state{chains: map[string][]string{}, hooks: map[string][]hookAt{}, first: map[string]string{}}
	count := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if strings.HasPrefix(name, Prefix) {
				s.chains[name] = nil
			}
		case strings.HasPrefix(line, "-A "):
			chain, _, _ := strings.Cut(line[3:], " ")
			if strings.HasPrefix(chain, Prefix) {
				if !strings.Contains(line, "--comment "+Comment) {
					return nil, fmt.Errorf("chain %s: rule %q: %w", chain, line, ErrForeignChain)
				}
				s.chains[chain] = append(s.chains[chain], line)
				continue
			}
			if strings.Contains(line, " -j "+Prefix) {
				s.hooks[chain] = append(s.hooks[chain], hookAt{line: line, pos: count[chain]})
			}
			if count[chain] == 0 {
				s.first[chain] = line
			}
			count[chain]++
		}
	}
	return s, nil
}

// toTable converts saved state to a Table (hooks that are in place only).
func (s *state) toTable() *Table {
	t := newTable()
	for c, rules := range s.chains {
		t.Chains[c] = rules
	}
	for b, hs := range s.hooks {
		if len(hs) == 1 && hs[0].pos == 0 {
			_, target, _ := strings.Cut(hs[0].line, " -j ")
			if hookRule(b, target) == hs[0].line {
				t.Hooks[b] = target
			}
		}
		if len(hs) > 0 && hs[0].pos > 0 {
			if t.Above == nil {
				t.Above = map[string]string{}
			}
			t.Above[b] = ruleTarget(s.first[b])
		}
	}
	return t
}

// ruleTarget names what a saved rule does: its jump target ("DOCKER-USER",
// "ACCEPT"), else the rule itself.
func ruleTarget(line string) string {
	if _, t, ok := strings.Cut(line, " -j "); ok {
		t, _, _ = strings.Cut(t, " ")
		return t
	}
	return line
}

// script returns the iptables-restore script that turns s into want for
// table name, or "" when nothing differs. Only differing chains are
// rewritten; declaring a chain in --noflush mode flushes it, so each chain
// is replaced whole inside one atomic transaction.
func (s *state) script(name string, want *Table) string {
	if want == nil {
		want = newTable()
	}
	var decl, rules, hooks, del []string
	for _, c := range slices.Sorted(maps.Keys(want.Chains)) {
		cur, ok := s.chains[c]
		if ok && slices.Equal(cur, want.Chains[c]) {
			continue
		}
		decl = append(decl, ":"+c+" - [0:0]")
		rules = append(rules, want.Chains[c]...)
	}
	for _, b := range slices.Sorted(maps.Keys(s.hooks)) {
		hs := s.hooks[b]
		target, wanted := want.Hooks[b]
		if wanted && len(hs) == 1 && hs[0].pos == 0 && hs[0].line == hookRule(b, target) {
			continue
		}
		for _, h := range hs {
			hooks = append(hooks, "-D"+strings.TrimPrefix(h.line, "-A"))
		}
	}
	for _, b := range slices.Sorted(maps.Keys(want.Hooks)) {
		hs := s.hooks[b]
		if len(hs) == 1 && hs[0].pos == 0 && hs[0].line == hookRule(b, want.Hooks[b]) {
			continue
		}
		hooks = append(hooks, fmt.Sprintf("-I %s 1 -m comment --comment %s -j %s", b, Comment, want.Hooks[b]))
	}
	for _, c := range slices.Sorted(maps.Keys(s.chains)) {
		if _, ok := want.Chains[c]; !ok {
			// Flush first: its rules may jump to other chains deleted here.
			decl = append(decl, ":"+c+" - [0:0]")
			del = append(del, "-X "+c)
		}
	}
	if len(decl)+len(hooks) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("*" + name + "\n")
	for _, part := range [][]string{decl, rules, hooks, del} {
		for _, l := range part {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// Current reads what nszone owns in the given tables now.
func Current(b Backend, tables []Key) (Ruleset, error) {
	states, err := read(b, tables)
	if err != nil {
		return nil, err
	}
	rs := Ruleset{}
	for _, k := range tables {
		if t := states[k].toTable(); len(t.Chains)+len(t.Hooks) > 0 {
			rs[k] = t
		}
	}
	return rs, nil
}

// read saves the given tables, one process per family.
func read(b Backend, tables []Key) (map[Key]*state, error) {
	// The families are saved side by side: two processes, one wait.
	texts := make([]string, len(Families))
	names := make([][]string, len(Families))
	var g errgroup.Group
	for i, f := range Families {
		for _, k := range tables {
			if k.Family == f {
				names[i] = append(names[i], k.Table)
			}
		}
		if len(names[i]) == 0 {
			continue
		}
		g.Go(func() (err error) {
			if texts[i], err = b.Save(f, names[i]); err != nil {
				return fmt.Errorf("reading %s rules: %w", f, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := map[Key]*state{}
	for i, f := range Families {
		sections := splitTables(texts[i])
		for _, name := range names[i] {
			k := Key{f, name}
			s, err := parseSave(sections[name])
			if err != nil {
				return nil, fmt.Errorf("reading %s rules: %w", k, err)
			}
			out[k] = s
		}
	}
	return out, nil
}

// splitTables cuts iptables-save output into its tables ("*filter" ... "COMMIT").
func splitTables(text string) map[string]string {
	out := map[string]string{}
	name := ""
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			name = line[1:]
			b.Reset()
		case line == "COMMIT" && name != "":
			out[name] = b.String()
			name = ""
		case name != "":
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return out
}

// Scripts returns, per table, the restore script that makes the given
// tables match want; an empty map means nothing would change. It writes
// nothing.
func Scripts(b Backend, want Ruleset, tables []Key) (map[Key]string, error) {
	states, err := read(b, tables)
	if err != nil {
		return nil, err
	}
	out := map[Key]string{}
	for _, k := range tables {
		if sc := states[k].script(k.Table, want[k]); sc != "" {
			out[k] = sc
		}
	}
	return out, nil
}

// Apply makes the given tables hold exactly want of what nszone owns, and
// reports whether anything had to change. Each family's tables go in one
// iptables-restore, filter before nat, so a zone's filtering is in place
// before its traffic can be translated; the families go side by side (two
// processes, one wait).
func Apply(b Backend, want Ruleset, tables []Key, log *slog.Logger) (changed bool, err error) {
	scripts, err := Scripts(b, want, tables)
	if err != nil {
		return false, err
	}
	var g errgroup.Group
	for _, f := range Families {
		var script strings.Builder
		for _, k := range tables {
			if sc, ok := scripts[k]; ok && k.Family == f {
				script.WriteString(sc)
			}
		}
		if script.Len() == 0 {
			continue
		}
		changed = true
		log.Debug("applying rules", "family", f.String(), "script", script.String())
		g.Go(func() error {
			if err := b.Restore(f, script.String()); err != nil {
				return fmt.Errorf("applying %s rules: %w", f, err)
			}
			return nil
		})
	}
	return changed, g.Wait()
}
