package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The iptables-nft tables nszone writes to, as nft names them.
var restoreNftTables = []string{"ip filter", "ip nat", "ip6 filter", "ip6 nat"}

// restoreTablesNow lists which of restoreNftTables exist.
func restoreTablesNow(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		t.Fatalf("nft list tables: %v", err)
	}
	var have []string
	for _, l := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(l), "table "); ok && slices.Contains(restoreNftTables, name) {
			have = append(have, name)
		}
	}
	slices.Sort(have)
	return have
}

// restoreDropTables deletes the iptables-nft tables settle made, as on a
// host where nothing used iptables-nft yet; t's cleanup makes them again
// the way settle does, so later tests see the usual host.
func restoreDropTables(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		for _, bin := range []string{"iptables-nft", "ip6tables-nft"} {
			for _, table := range []string{"filter", "nat"} {
				for _, op := range []string{"-N", "-X"} { // creating a chain creates the table
					if out, err := exec.Command(bin, "-t", table, op, "E2E-INIT").CombinedOutput(); err != nil {
						t.Errorf("%s -t %s %s E2E-INIT: %v: %s", bin, table, op, err, out)
					}
				}
			}
		}
	})
	for _, name := range restoreNftTables {
		if have := restoreTablesNow(t); !slices.Contains(have, name) {
			continue
		}
		if out, err := exec.Command("nft", append([]string{"delete", "table"}, strings.Fields(name)...)...).CombinedOutput(); err != nil {
			t.Fatalf("nft delete table %s: %v: %s", name, err, out)
		}
	}
	if have := restoreTablesNow(t); len(have) != 0 {
		t.Fatalf("tables left after deleting them: %v", have)
	}
}

func restoreSh(t *testing.T, args ...string) {
	t.Helper()
	if r := runCmd(t, nil, args[0], args[1:]...); r.code != 0 {
		t.Fatalf("%s: exit %d: %s%s", strings.Join(args, " "), r.code, r.out, r.err)
	}
}

const (
	restoreIP4 = "net.ipv4.ip_forward"
	restoreIP6 = "net.ipv6.conf.all.forwarding"
	restoreRA  = "net.ipv6.conf.eth0.accept_ra" // the lab's uplink
)

func restoreSysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

func restoreGet(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile(restoreSysctlPath(key))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func restoreSet(t *testing.T, key, value string) {
	t.Helper()
	if err := os.WriteFile(restoreSysctlPath(key), []byte(value), 0o644); err != nil {
		t.Fatalf("setting %s=%s: %v", key, value, err)
	}
}

// restoreSysctls sets the forwarding sysctls as on a host that forwards
// nothing, and puts back what the lab had when t ends.
func restoreSysctls(t *testing.T) {
	t.Helper()
	orig := map[string]string{}
	for _, k := range []string{restoreIP4, restoreIP6, restoreRA} {
		orig[k] = restoreGet(t, k)
	}
	t.Cleanup(func() {
		for k, v := range orig {
			restoreSet(t, k, v)
		}
	})
	restoreSet(t, restoreIP4, "0")
	restoreSet(t, restoreIP6, "0")
	restoreSet(t, restoreRA, "1")
}

func restoreWant(t *testing.T, key, want string) {
	t.Helper()
	if got := restoreGet(t, key); got != want {
		t.Errorf("%s = %s, want %s", key, got, want)
	}
}

// TestRestoreCreatedTables: on a host where iptables-nft had no tables, up
// creates the four nszone writes to and the last down deletes them again,
// leaving the host as before; a table holding anyone else's chain or rule
// stays, and down says so.
func TestRestoreCreatedTables(t *testing.T) {
	needSandbox(t)
	t.Setenv("NSZONE_IPTABLES", "nft")
	file := writeZones(t, defaultZones)
	restoreDropTables(t)
	t.Cleanup(func() { run(t, nil, "down", "--all") })

	before := snapshot(t)
	mustRun(t, "up", "-c", file)
	if have := restoreTablesNow(t); len(have) != len(restoreNftTables) {
		t.Errorf("after up the tables are %v, want all of %v", have, restoreNftTables)
	}
	rec, err := os.ReadFile("/run/nszone/host.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range restoreNftTables {
		if !strings.Contains(string(rec), `"`+name+`"`) {
			t.Errorf("host.json does not record that nszone created %s:\n%s", name, rec)
		}
	}
	out := mustRun(t, "down", "-c", file)
	if strings.Contains(out, " left") {
		t.Errorf("down left something:\n%s", out)
	}
	if have := restoreTablesNow(t); len(have) != 0 {
		t.Errorf("after down these tables remain: %v\n%s", have, out)
	}
	if after := snapshot(t); after != before {
		t.Errorf("down did not leave the host as before:\n%s", diffLines(before, after))
	}

	// Someone else's chain in ip filter and rule in ip6 filter keep those
	// two; the nat tables, empty, go.
	mustRun(t, "up", "-c", file)
	restoreSh(t, "iptables-nft", "-N", "E2E-FOREIGN")
	restoreSh(t, "ip6tables-nft", "-A", "INPUT", "-i", "e2e-none0", "-j", "ACCEPT")
	out = mustRun(t, "down", "-c", file)
	for _, want := range []string{
		"iptables-nft table ip filter left: it holds chains of someone else's (E2E-FOREIGN)",
		"iptables-nft table ip6 filter left: its INPUT chain holds 1 rule(s) of someone else's",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("down does not say %q:\n%s", want, out)
		}
	}
	if have := restoreTablesNow(t); !slices.Equal(have, []string{"ip filter", "ip6 filter"}) {
		t.Errorf("after down the tables are %v, want [ip filter ip6 filter]", have)
	}
	restoreSh(t, "iptables-nft", "-X", "E2E-FOREIGN")
	restoreSh(t, "ip6tables-nft", "-D", "INPUT", "-i", "e2e-none0", "-j", "ACCEPT")
}

// TestRestoreForwardingNeeded: forwarding that something came to need
// while zones were up (Docker's chains, someone's ACCEPT in FORWARD) stays
// on after the last down, and down says why; what needed it already before
// the first up lived without it, and gets forwarding off again.
func TestRestoreForwardingNeeded(t *testing.T) {
	needSandbox(t)
	t.Setenv("NSZONE_IPTABLES", "nft")
	file := writeZones(t, defaultZones)
	restoreSysctls(t)
	t.Cleanup(func() {
		run(t, nil, "down", "--all")
		exec.Command("iptables-nft", "-X", "DOCKER-FORWARD").Run()
		exec.Command("iptables-nft", "-D", "FORWARD", "-i", "e2e-br0", "-j", "ACCEPT").Run()
	})

	// Docker starts while the zones are up.
	mustRun(t, "up", "-c", file)
	restoreWant(t, restoreIP4, "1")
	restoreSh(t, "iptables-nft", "-N", "DOCKER-FORWARD")
	out := mustRun(t, "down", "-c", file)
	if want := "net.ipv4.ip_forward left at 1: Docker's chains (DOCKER-FORWARD) need it"; !strings.Contains(out, want) {
		t.Errorf("down does not say %q:\n%s", want, out)
	}
	restoreWant(t, restoreIP4, "1")
	restoreWant(t, restoreIP6, "0") // Docker's chains are in ip filter only
	restoreWant(t, restoreRA, "1")

	// Docker was there before the first up, with forwarding off.
	restoreSet(t, restoreIP4, "0")
	mustRun(t, "up", "-c", file)
	out = mustRun(t, "down", "-c", file)
	if strings.Contains(out, "left at") {
		t.Errorf("down left a sysctl that nothing came to need:\n%s", out)
	}
	restoreWant(t, restoreIP4, "0")
	restoreSh(t, "iptables-nft", "-X", "DOCKER-FORWARD")

	// Someone routes a bridge's traffic through the host.
	mustRun(t, "up", "-c", file)
	restoreSh(t, "iptables-nft", "-A", "FORWARD", "-i", "e2e-br0", "-j", "ACCEPT")
	out = mustRun(t, "down", "-c", file)
	if want := "net.ipv4.ip_forward left at 1: someone else's forwarding rules (-A FORWARD -i e2e-br0 -j ACCEPT) need it"; !strings.Contains(out, want) {
		t.Errorf("down does not say %q:\n%s", want, out)
	}
	restoreWant(t, restoreIP4, "1")
	restoreSh(t, "iptables-nft", "-D", "FORWARD", "-i", "e2e-br0", "-j", "ACCEPT")
}

// TestRestoreChangedSysctl: a sysctl someone changed after up set it is
// theirs: down leaves it and says so, and restores the others.
func TestRestoreChangedSysctl(t *testing.T) {
	needSandbox(t)
	file := writeZones(t, defaultZones)
	restoreSysctls(t)
	t.Cleanup(func() { run(t, nil, "down", "--all") })

	mustRun(t, "up", "-c", file)
	restoreWant(t, restoreRA, "2")
	restoreWant(t, restoreIP6, "1")
	restoreSet(t, restoreRA, "0")
	out := mustRun(t, "down", "-c", file)
	if want := "net.ipv6.conf.eth0.accept_ra left at 0: changed since nszone set it to 2 (it was 1 before the first up)"; !strings.Contains(out, want) {
		t.Errorf("down does not say %q:\n%s", want, out)
	}
	restoreWant(t, restoreRA, "0")
	restoreWant(t, restoreIP4, "0")
	restoreWant(t, restoreIP6, "0")
}
