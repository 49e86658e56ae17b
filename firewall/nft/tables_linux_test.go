package nft

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/nszone/nszone/firewall"
)

func TestWhyNotEmpty(t *testing.T) {
	accept := func(name string) TableChain { return TableChain{Name: name, Base: true, Policy: "ACCEPT"} }
	cases := []struct {
		table  string
		chains []TableChain
		want   string
	}{
		{"filter", nil, ""},
		{"filter", []TableChain{accept("INPUT"), accept("FORWARD"), accept("OUTPUT")}, ""},
		{"nat", []TableChain{accept("POSTROUTING"), accept("PREROUTING")}, ""},
		{"filter", []TableChain{accept("FORWARD"), {Name: "DOCKER-FORWARD"}, {Name: "DOCKER"}},
			"it holds chains of someone else's (DOCKER, DOCKER-FORWARD)"},
		{"filter", []TableChain{{Name: "FORWARD", Base: true, Policy: "ACCEPT", Rules: 2}},
			"its FORWARD chain holds 2 rule(s) of someone else's"},
		{"filter", []TableChain{{Name: "FORWARD", Base: true, Policy: "DROP"}}, "its FORWARD chain's policy is DROP"},
		// A base chain iptables would not make there, and a user chain named like a built-in one.
		{"nat", []TableChain{accept("FORWARD")}, "it holds chains of someone else's (FORWARD)"},
		{"filter", []TableChain{{Name: "INPUT"}}, "it holds chains of someone else's (INPUT)"},
	}
	for _, c := range cases {
		if got := WhyNotEmpty(c.table, c.chains); got != c.want {
			t.Errorf("WhyNotEmpty(%s, %+v) = %q, want %q", c.table, c.chains, got, c.want)
		}
	}
}

// TestDeleteTableIfEmpty makes the raw table (which nszone never uses)
// with iptables-nft and nft, and deletes it only when nothing of anyone's
// is in it.
func TestDeleteTableIfEmpty(t *testing.T) {
	rootTest(t)
	for _, bin := range []string{"iptables-nft", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	k := firewall.Key{Family: firewall.IPv4, Table: "raw"}
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	exists := func() bool {
		t.Helper()
		missing, err := MissingTables([]firewall.Key{k})
		if err != nil {
			t.Fatal(err)
		}
		return len(missing) == 0
	}
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "ip", "raw").Run() })
	exec.Command("nft", "delete", "table", "ip", "raw").Run()
	if exists() {
		t.Fatal("ip raw exists after nft delete table ip raw")
	}
	if why, err := DeleteTableIfEmpty(k); err != nil || why != "" {
		t.Fatalf("deleting a missing table: why=%q err=%v", why, err)
	}
	steps := []struct {
		name string
		make [][]string
		why  string // "" means deleted
	}{
		{"no chain at all", [][]string{{"iptables-nft", "-t", "raw", "-N", "T"}, {"iptables-nft", "-t", "raw", "-X", "T"}}, ""},
		{"built-in chains", [][]string{{"iptables-nft", "-t", "raw", "-P", "OUTPUT", "ACCEPT"}, {"iptables-nft", "-t", "raw", "-P", "PREROUTING", "ACCEPT"}}, ""},
		{"a foreign chain", [][]string{{"iptables-nft", "-t", "raw", "-N", "FOREIGN"}}, "it holds chains of someone else's (FOREIGN)"},
		{"a foreign rule", [][]string{{"iptables-nft", "-t", "raw", "-A", "OUTPUT", "-o", "nsz-none0", "-j", "ACCEPT"}}, "its OUTPUT chain holds 1 rule(s) of someone else's"},
		{"a foreign set", [][]string{{"iptables-nft", "-t", "raw", "-P", "OUTPUT", "ACCEPT"}, {"nft", "add", "set", "ip", "raw", "s", "{ type ipv4_addr; }"}},
			"it holds a set, an object or a flowtable of someone else's"},
	}
	for _, s := range steps {
		exec.Command("nft", "delete", "table", "ip", "raw").Run()
		for _, c := range s.make {
			sh(c...)
		}
		if !exists() {
			t.Fatalf("%s: the table was not made", s.name)
		}
		why, err := DeleteTableIfEmpty(k)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if why != s.why {
			t.Errorf("%s: why = %q, want %q", s.name, why, s.why)
		}
		if gone := !exists(); gone != (s.why == "") {
			out, _ := exec.Command("nft", "list", "table", "ip", "raw").CombinedOutput()
			t.Errorf("%s: table gone = %v, want %v:\n%s", s.name, gone, s.why == "", out)
		}
	}
}
