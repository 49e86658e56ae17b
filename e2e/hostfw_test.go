package e2e

// The host's firewall, as other software changes it, and as a test finds
// and leaves it. Every command here runs in this process's network
// namespace: the sandbox's simulated host.

import (
	"maps"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nszone/nszone/sandbox"
)

var (
	iptBins   = []string{"iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy"}
	iptTables = map[string][]string{
		"filter": {"INPUT", "FORWARD", "OUTPUT"},
		"nat":    nil, // its built-in chains cannot have another policy
		"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
		"raw":    {"PREROUTING", "OUTPUT"},
	}
	forwardSysctls = []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"}
)

// hostCmd runs a command on the simulated host, refusing outside the
// sandbox. It returns the result; must: fail the test on a non-zero exit.
func hostCmd(t testing.TB, must bool, name string, args ...string) result {
	t.Helper()
	if !sandbox.Active() {
		t.Fatal("not in the sandbox: refusing to change this machine's firewall")
	}
	r := runAt(t, atHost, 30*time.Second, nil, append([]string{name}, args...)...)
	if must && r.code != 0 {
		t.Fatalf("%s %s: exit %d: %s%s", name, strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r
}

// saveRules returns the rules of every iptables variant, normalised.
func saveRules(t testing.TB) map[string]string {
	t.Helper()
	saves := map[string]string{}
	for _, bin := range iptBins {
		r := hostCmd(t, true, bin+"-save")
		saves[bin] = normalSave(r.out, strings.Contains(bin, "legacy"))
	}
	return saves
}

// guardHost checks the sandbox, records the host's firewall and forwarding,
// and makes sure that when the test ends every zone is down and both are
// as they were, whatever the test did to them.
func guardHost(t testing.TB) {
	t.Helper()
	needSandbox(t)
	if r := run(t, nil, "down", "--all"); r.code != 0 {
		t.Fatalf("down --all before the test: exit %d %s", r.code, r.err)
	}
	saves := saveRules(t)
	sysctls := map[string]string{}
	for _, k := range forwardSysctls {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		sysctls[k] = strings.TrimSpace(string(b))
	}
	t.Cleanup(func() {
		if r := run(t, nil, "down", "--all"); r.code != 0 {
			t.Errorf("down --all after the test: exit %d %s%s", r.code, r.out, r.err)
		}
		now := saveRules(t)
		for _, bin := range iptBins {
			if now[bin] == saves[bin] {
				continue
			}
			if strings.Contains(bin, "nft") {
				// Tables too (a simulated firewalld may have deleted them).
				fam := "ip"
				if strings.HasPrefix(bin, "ip6") {
					fam = "ip6"
				}
				for _, table := range []string{"filter", "nat", "mangle", "raw"} {
					runCmd(t, nil, "nft", "delete", "table", fam, table)
				}
			} else {
				for table := range iptTables {
					runCmd(t, nil, bin, "-t", table, "-F")
					runCmd(t, nil, bin, "-t", table, "-X")
				}
			}
			c := exec.Command(bin + "-restore")
			c.Stdin = strings.NewReader(saves[bin] + "\n")
			if out, err := c.CombinedOutput(); err != nil {
				t.Errorf("restoring the host's %s rules: %v: %s", bin, err, out)
			}
		}
		if now := saveRules(t); !maps.Equal(now, saves) {
			for _, bin := range iptBins {
				if now[bin] != saves[bin] {
					t.Errorf("the host's %s rules are not as before the test:\n%s", bin, diffLines(saves[bin], now[bin]))
				}
			}
		}
		for k, v := range sysctls {
			if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
				t.Errorf("restoring %s: %v", k, err)
			}
		}
	})
}

// normalSave drops comments and counters from iptables-save output and,
// for the legacy variant, tables that hold nothing: a legacy table, once
// touched (iptables-legacy -t raw -F), cannot be removed again.
func normalSave(out string, dropEmpty bool) string {
	var keep, table []string
	empty := true
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "#") || l == "":
		case strings.HasPrefix(l, "*"):
			table, empty = []string{l}, true
		case l == "COMMIT":
			if !empty || !dropEmpty {
				keep = append(append(keep, table...), l)
			}
			table = nil
		default:
			l = counters.ReplaceAllString(l, "[0:0]")
			if !strings.HasPrefix(l, ":") || !strings.HasSuffix(l, " ACCEPT [0:0]") {
				empty = false
			}
			table = append(table, l)
		}
	}
	return strings.Join(keep, "\n")
}

// flushHost does what a firewalld reload, a Docker restart, an admin's
// `iptables -F` or an nftables.service reload does to nszone's host wall:
// every table of both families in both iptables variants flushed, the
// policies ACCEPT, every nftables table gone, forwarding on.
func flushHost(t testing.TB) {
	t.Helper()
	flushIPTables(t)
	// And what Debian's nftables.service does on reload (its nftables.conf
	// starts with "flush ruleset"): every nftables table goes, native ones
	// and iptables-nft's alike.
	if _, err := exec.LookPath("nft"); err == nil {
		hostCmd(t, true, "nft", "flush", "ruleset")
		if r := hostCmd(t, true, "nft", "list", "ruleset"); strings.TrimSpace(r.out) != "" {
			t.Fatalf("nft list ruleset after the flush:\n%s", r.out)
		}
	}
	for _, k := range forwardSysctls {
		if err := os.WriteFile("/proc/sys/"+k, []byte("1"), 0o644); err != nil {
			t.Fatalf("turning forwarding on: %v", err)
		}
	}
	for _, bin := range iptBins {
		if r := hostCmd(t, true, bin+"-save"); strings.Contains(r.out, "\n-A ") {
			t.Fatalf("%s-save still shows rules after the flush:\n%s", bin, r.out)
		}
	}
}

// flushIPTables does what a firewalld (iptables backend) or ufw reload,
// a Docker restart or an admin's `iptables -F` does: every iptables table
// of both families in both variants flushed, the policies ACCEPT. Native
// nftables tables (nszone's host wall among them) stay.
func flushIPTables(t testing.TB) {
	t.Helper()
	for _, bin := range iptBins {
		for table, builtins := range iptTables {
			hostCmd(t, true, bin, "-t", table, "-F")
			for _, c := range builtins {
				hostCmd(t, true, bin, "-t", table, "-P", c, "ACCEPT")
			}
		}
	}
}

// iptablesFor returns the iptables commands of the variant nszone uses on the
// host, as status reports it.
func iptablesFor(t testing.TB) (v4, v6 string) {
	t.Helper()
	out := mustRun(t, "status", "-o", "json")
	switch {
	case strings.Contains(out, `"firewall": "iptables-legacy"`):
		return "iptables-legacy", "ip6tables-legacy"
	case strings.Contains(out, `"firewall": "iptables-nft"`):
		return "iptables-nft", "ip6tables-nft"
	}
	t.Fatalf("status -o json does not say which iptables it uses:\n%s", out)
	return "", ""
}
