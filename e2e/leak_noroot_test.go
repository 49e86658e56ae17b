package e2e

import (
	"fmt"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"
)

var nftCounters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// innerRules is every rule inside a zone's namespace, as both iptables
// variants and nft see them, without counters.
func innerRules(t testing.TB, zone string) string {
	t.Helper()
	var b strings.Builder
	for _, argv := range [][]string{{"iptables-nft-save"}, {"ip6tables-nft-save"}, {"iptables-legacy-save"}, {"ip6tables-legacy-save"}, {"nft", "list", "ruleset"}} {
		r := runAt(t, "netns:"+zone, 10*time.Second, nil, argv...)
		fmt.Fprintf(&b, "== %s (exit %d)\n", argv[0], r.code)
		for _, l := range strings.Split(r.out, "\n") {
			if !strings.HasPrefix(l, "#") {
				l = counters.ReplaceAllString(l, "[]")
				b.WriteString(nftCounters.ReplaceAllString(l, "counter") + "\n")
			}
		}
	}
	return b.String()
}

// TestLeakNoRootInZone: a program in a zone, run as a user (through sudo),
// can change neither wall, whatever it tries.
func TestLeakNoRootInZone(t *testing.T) {
	guardHost(t)
	file := writeZones(t, defaultZones)
	mustRun(t, "up", "-c", file, "wan")
	inner := innerRules(t, "wan")
	if !strings.Contains(inner, "nszone-wan") {
		t.Fatalf("positive control: no inner wall (rules commented nszone-wan) seen in zone wan:\n%s", inner)
	}
	host := saveRules(t)
	nobody := []string{"SUDO_UID=65534", "SUDO_GID=65534", "SUDO_USER=nobody"}

	// Positive control: the user's programs do run, and reach the internet.
	if r := run(t, nobody, "exec", "wan", "--", "id", "-u"); r.code != 0 || strings.TrimSpace(r.out) != "65534" {
		t.Fatalf("positive control: exec as nobody: exit %d %q %s", r.code, r.out, r.err)
	}
	if r := run(t, nobody, append([]string{"exec", "wan", "--"}, curl(pageURL(theLab.InetServer4, 80))...)...); r.code != 0 {
		t.Errorf("positive control: nobody in wan cannot reach the internet: %d %s", r.code, r.err)
	}
	attempts := [][]string{
		{"iptables", "-F"},
		{"iptables", "-P", "OUTPUT", "ACCEPT"},
		{"iptables", "-I", "OUTPUT", "1", "-j", "ACCEPT"},
		{"iptables", "-t", "nat", "-F"},
		{"ip6tables", "-F"},
		{"iptables-nft", "-F"},
		{"iptables-legacy", "-F"},
		{"ip6tables-legacy", "-F"},
		{"nft", "flush", "ruleset"},
		{"unshare", "-r", "iptables", "-F"}, // root of a new user namespace is no root here
		{"unshare", "-r", "nft", "flush", "ruleset"},
		{"ip", "link", "set", "eth0", "down"},
		{"ip", "route", "add", "192.168.50.0/24", "dev", "eth0"},
		{"sysctl", "-w", "net.ipv6.conf.all.accept_ra=2"},
	}
	for _, a := range attempts {
		r := run(t, nobody, append([]string{"exec", "wan", "--"}, a...)...)
		switch r.code {
		case 0:
			t.Errorf("as nobody in wan, %q succeeded (exit 0): %s%s", a, r.out, r.err)
		case 126, 127:
			t.Logf("as nobody in wan, %q could not be run (exit %d): %s", a, r.code, r.err)
		default:
			t.Logf("as nobody in wan, %q: exit %d: %s", a, r.code, firstLine(r.err))
		}
	}
	if now := innerRules(t, "wan"); now != inner {
		t.Errorf("the inner wall changed:\n%s", diffLines(inner, now))
	}
	if now := saveRules(t); !maps.Equal(now, host) {
		for k := range host {
			if now[k] != host[k] {
				t.Errorf("the host's %s rules changed:\n%s", k, diffLines(host[k], now[k]))
			}
		}
	}
	if s := zoneStates(t)["wan"]; s != "up" {
		t.Errorf("after the attempts, wan is %q", s)
	}
	expectUnreached(t, "after the attempts", "wan", pageURL(theLab.LANServer4, 80), pageURL(theLab.LANServer6, 80))
}
