package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nszone/nszone/lab"
)

// defaultZones is the lab's zones file: the built-in default, with the
// lab's servers as check's targets.
var defaultZones = lab.Zones

// probe runs a real client inside zone and reports whether it got through.
func probe(t testing.TB, zone string, argv ...string) (bool, result) {
	t.Helper()
	r := run(t, nil, append([]string{"exec", zone, "--"}, argv...)...)
	return r.code == 0, r
}

func curl(url string) []string {
	return []string{"curl", "-sS", "--max-time", "3", url}
}

type statusJSON struct {
	Zones []zoneJSON
}

type zoneJSON struct {
	Name, State string
	Netns       string
	Allow, DNS  []string
	Addresses   []string
	Missing     []string
	Notes       []string
	Published   []string
	Via         string
	Counters    *struct {
		IPv4, IPv6 struct {
			Allowed, Refused, Logged struct{ Packets, Bytes uint64 }
		}
	}
	Processes []struct {
		PID     int
		Command string
	}
}

// status runs status -o json, which exits 1 while a zone is degraded (and
// must then say which), 0 otherwise.
func status(t testing.TB, args ...string) statusJSON {
	t.Helper()
	var st statusJSON
	args = append([]string{"status", "-o", "json"}, args...)
	r := run(t, nil, args...)
	if err := json.Unmarshal([]byte(r.out), &st); err != nil {
		t.Fatalf("nszone %s: exit %d: %v\n%s%s", strings.Join(args, " "), r.code, err, r.out, r.err)
	}
	degraded := 0
	for _, z := range st.Zones {
		if z.State == "degraded" {
			degraded++
		}
	}
	if want := min(degraded, 1); r.code != want {
		t.Errorf("nszone %s: exit %d with %d zone(s) degraded, want %d\n%s", strings.Join(args, " "), r.code, degraded, want, r.err)
	}
	return st
}

// TestDefaultZones is the whole path: up, the policies seen from inside
// each zone with real clients on both families, DNS, ip netns exec, a
// second up that changes nothing, and a down that leaves the host as before.
func TestDefaultZones(t *testing.T) {
	needSandbox(t)
	onBothVariants(t, func(t *testing.T, mode string) { testDefaultZones(t, mode) })
}

// onBothVariants runs test as a subtest on each iptables variant, nszone
// told which by NSZONE_IPTABLES.
func onBothVariants(t *testing.T, test func(t *testing.T, mode string)) {
	for _, mode := range []string{"nft", "legacy"} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv("NSZONE_IPTABLES", mode)
			test(t, mode)
		})
	}
}

func testDefaultZones(t testing.TB, mode string) {
	file := writeZones(t, defaultZones)
	before := snapshot(t)
	out := mustRun(t, "up", "-c", file)
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	for _, z := range []string{"wan", "lan", "offline"} {
		if !strings.Contains(out, "zone "+z+" up") {
			t.Errorf("up did not report zone %s:\n%s", z, out)
		}
	}
	st := status(t, "-c", file)
	if len(st.Zones) != 3 {
		t.Fatalf("status: %d zones, want 3: %+v", len(st.Zones), st)
	}
	for _, z := range st.Zones {
		if z.State != "up" || z.Netns != "/run/netns/"+z.Name || len(z.Addresses) != 2 {
			t.Errorf("status of %s: %+v", z.Name, z)
		}
	}

	l := theLab
	inet4, inet6 := "http://"+l.InetServer4.String()+"/", "http://["+l.InetServer6.String()+"]/"
	lan4, lan6 := "http://"+l.LANServer4.String()+"/", "http://["+l.LANServer6.String()+"]/"
	cases := []struct {
		zone, url string
		want      bool
	}{
		{"wan", inet4, true}, {"wan", inet6, true}, {"wan", lan4, false}, {"wan", lan6, false},
		{"lan", inet4, false}, {"lan", inet6, false}, {"lan", lan4, true}, {"lan", lan6, true},
		{"offline", inet4, false}, {"offline", inet6, false}, {"offline", lan4, false}, {"offline", lan6, false},
	}
	for _, c := range cases {
		ok, r := probe(t, c.zone, curl(c.url)...)
		if ok != c.want {
			t.Errorf("zone %s -> %s: reached=%v, want %v (exit %d: %s%s)", c.zone, c.url, ok, c.want, r.code, r.out, r.err)
		}
		if ok && !strings.Contains(r.out, "lab-") {
			t.Errorf("zone %s -> %s: unexpected body %q", c.zone, c.url, r.out)
		}
		// A forbidden TCP connection is refused at once (curl exit 7), not left to time out (28).
		if !ok && c.zone != "offline" && r.code != 7 {
			t.Errorf("zone %s -> %s: curl exit %d, want 7 (connection refused): %s", c.zone, c.url, r.code, r.err)
		}
	}

	// DNS: through the zone's own resolv.conf, with nszone exec and ip netns exec alike.
	for _, z := range []string{"wan", "lan"} {
		if ok, r := probe(t, z, "getent", "ahostsv4", l.DNSName); !ok || !strings.Contains(r.out, l.InetServer4.String()) {
			t.Errorf("zone %s: getent hosts %s: exit %d %q %s", z, l.DNSName, r.code, r.out, r.err)
		}
		r := runCmd(t, nil, "ip", "netns", "exec", z, "getent", "ahostsv4", l.DNSName)
		if r.code != 0 || !strings.Contains(r.out, l.InetServer4.String()) {
			t.Errorf("ip netns exec %s getent hosts: exit %d %q %s", z, r.code, r.out, r.err)
		}
		r = runCmd(t, nil, "ip", "netns", "exec", z, "cat", "/etc/resolv.conf")
		if !strings.Contains(r.out, "nszone: DNS for zone "+z) {
			t.Errorf("ip netns exec %s sees resolv.conf %q", z, r.out)
		}
	}
	if ok, r := probe(t, "offline", "getent", "hosts", l.DNSName); ok {
		t.Errorf("zone offline resolved %s: %q", l.DNSName, r.out)
	}
	// The wan zone reaches the LAN's DNS server through a port-53-only opening.
	if !strings.Contains(strings.Join(statusZone(st, "wan").DNS, " "), l.Nameserver.String()) {
		t.Errorf("wan's DNS: %+v", statusZone(st, "wan"))
	}
	if ok, _ := probe(t, "wan", curl("http://"+l.Nameserver.String()+":80/")...); ok {
		t.Error("wan reached the DNS server's port 80 through the DNS opening")
	}
	// ip netns sees the zones.
	r := runCmd(t, nil, "ip", "netns", "list")
	for _, z := range []string{"wan", "lan", "offline"} {
		if !strings.Contains(r.out, z) {
			t.Errorf("ip netns list lacks %s: %s", z, r.out)
		}
	}
	r = runCmd(t, nil, "ip", "netns", "exec", "wan", "ip", "netns", "identify")
	if strings.TrimSpace(r.out) != "wan" {
		t.Errorf("ip netns identify in wan: %q %s", r.out, r.err)
	}

	// A second up changes nothing, and says so.
	mid := snapshot(t)
	out = mustRun(t, "up", "-c", file)
	if !strings.Contains(out, "nothing to change") {
		t.Errorf("second up:\n%s", out)
	}
	if after := snapshot(t); after != mid {
		t.Errorf("second up changed the host:\n%s", diffLines(mid, after))
	}
	if out := mustRun(t, "plan", "-c", file); !strings.Contains(out, "nothing to change") {
		t.Errorf("plan after up:\n%s", out)
	}

	mustRun(t, "down", "-c", file)
	if after := snapshot(t); after != before {
		t.Errorf("down did not leave the host as before:\n%s", diffLines(before, after))
	}
}

func statusZone(st statusJSON, name string) zoneJSON {
	for _, z := range st.Zones {
		if z.Name == name {
			return z
		}
	}
	return st.Zones[0]
}

// TestExec covers exec's identities and exit statuses.
func TestExec(t *testing.T) {
	needSandbox(t)
	file := writeZones(t, defaultZones)
	mustRun(t, "up", "-c", file, "wan")
	t.Cleanup(func() { run(t, nil, "down", "--all") })

	sudo := []string{"SUDO_UID=65534", "SUDO_GID=65534", "SUDO_USER=nobody"}
	r := run(t, sudo, "exec", "wan", "--", "sh", "-c", "id -u; id -g; grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status; echo HOME=$HOME")
	if r.code != 0 {
		t.Fatalf("exec as sudo user: exit %d %s", r.code, r.err)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if lines[0] != "65534" || lines[1] != "65534" {
		t.Errorf("exec as sudo user ran as %q", lines[:2])
	}
	for _, l := range lines[2:6] {
		if !strings.HasSuffix(l, "0000000000000000") {
			t.Errorf("capability left: %s", l)
		}
	}
	if ok, r := probe(t, "wan", "sh", "-c", "ls /sys/class/net"); !ok || strings.Contains(r.out, "eth0") && strings.Contains(r.out, "nsz-") {
		t.Errorf("/sys in the zone shows %q", r.out)
	}

	dir := t.TempDir()
	notExec := filepath.Join(dir, "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\necho hi\n"), 0o644)
	codes := []struct {
		args []string
		want int
	}{
		{[]string{"exec", "wan", "--", "sh", "-c", "exit 7"}, 7},
		{[]string{"exec", "wan", "--", "sh", "-c", "kill -TERM $$"}, 128 + 15},
		{[]string{"exec", "wan", "--", "no-such-program-nszone"}, 127},
		{[]string{"exec", "wan", "--", notExec}, 126},
		{[]string{"exec", "lan", "--", "true"}, 1},    // in the file, not up
		{[]string{"exec", "../wan", "--", "true"}, 1}, // not a zone name
		{[]string{"exec", "nosuch", "--", "true"}, 1}, // no such zone
		{[]string{"exec", "--user", "no-such-user-x", "wan", "--", "true"}, 1},
		{[]string{"exec", "wan"}, 2},
	}
	for _, c := range codes {
		if r := run(t, nil, c.args...); r.code != c.want {
			t.Errorf("nszone %s: exit %d, want %d (%s)", strings.Join(c.args, " "), r.code, c.want, r.err)
		}
	}
	// A namespace that is not nszone's is never entered.
	runCmd(t, nil, "ip", "netns", "add", "foreign")
	defer runCmd(t, nil, "ip", "netns", "del", "foreign")
	if r := run(t, nil, "exec", "foreign", "--", "true"); r.code != 1 {
		t.Errorf("exec into a foreign namespace: exit %d", r.code)
	}
}

// TestBadInputChangesNothing: invalid files exit 2 naming file and line,
// and a namespace named like a zone that nszone does not own is refused.
func TestBadInputChangesNothing(t *testing.T) {
	needSandbox(t)
	before := snapshot(t)
	bad, _ := filepath.Glob("../testdata/bad/*.yaml")
	if len(bad) == 0 {
		t.Fatal("no bad zones files in testdata/bad")
	}
	for _, f := range bad {
		r := run(t, nil, "up", "-c", f)
		if r.code != 2 || !strings.Contains(r.err, filepath.Base(f)) {
			t.Errorf("up -c %s: exit %d, stderr %q; want 2 naming the file", f, r.code, r.err)
		}
	}
	if after := snapshot(t); after != before {
		t.Fatalf("bad files changed the host:\n%s", diffLines(before, after))
	}

	runCmd(t, nil, "ip", "netns", "add", "wan")
	defer runCmd(t, nil, "ip", "netns", "del", "wan")
	withForeign := snapshot(t)
	r := run(t, nil, "up", "-c", writeZones(t, defaultZones))
	if r.code != 1 || !strings.Contains(r.err, "not nszone's") {
		t.Errorf("up with a foreign namespace wan: exit %d, %s", r.code, r.err)
	}
	if after := snapshot(t); after != withForeign {
		t.Errorf("a refused up changed the host:\n%s", diffLines(withForeign, after))
	}
	if r := run(t, nil, "down", "--all"); r.code != 0 {
		t.Errorf("down --all: %d %s", r.code, r.err)
	}
	if r := runCmd(t, nil, "ip", "netns", "list"); !strings.Contains(r.out, "wan") {
		t.Error("down --all removed a namespace that is not nszone's")
	}
}

// TestForwardDropPolicy: under Docker's FORWARD DROP policy zones still work.
func TestForwardDropPolicy(t *testing.T) {
	needSandbox(t)
	runCmd(t, nil, "iptables", "-P", "FORWARD", "DROP")
	runCmd(t, nil, "ip6tables", "-P", "FORWARD", "DROP")
	defer runCmd(t, nil, "iptables", "-P", "FORWARD", "ACCEPT")
	defer runCmd(t, nil, "ip6tables", "-P", "FORWARD", "ACCEPT")
	file := writeZones(t, defaultZones)
	mustRun(t, "up", "-c", file, "wan")
	defer run(t, nil, "down", "--all")
	for _, u := range []string{"http://" + theLab.InetServer4.String() + "/", "http://[" + theLab.InetServer6.String() + "]/"} {
		if ok, r := probe(t, "wan", curl(u)...); !ok {
			t.Errorf("wan -> %s under FORWARD DROP: exit %d %s", u, r.code, r.err)
		}
	}
}

// TestNotRoot: commands that need root say so in one line.
func TestNotRoot(t *testing.T) {
	needSandbox(t)
	for _, args := range [][]string{{"up"}, {"down"}, {"status"}, {"exec", "wan", "--", "true"}} {
		r := runCmd(t, nil, "setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", nszoneBin}, args...)...)
		if r.code != 1 || !strings.Contains(r.err, "needs root") || strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
			t.Errorf("nszone %v as nobody: exit %d, %q", args, r.code, r.err)
		}
	}
}
