package e2e

import (
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestOutsideDamage breaks one part of a zone at a time from outside:
// status says degraded and names what is missing, exec refuses, up repairs.
func TestOutsideDamage(t *testing.T) {
	needSandbox(t)
	file := writeZones(t, defaultZones)
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	mustRun(t, "up", "-c", file)
	// closed: the damage breaks what the zone may do but opens nothing (the
	// other walls hold), so exec starts the program with a warning.
	damages := []struct {
		name    string
		cmd     [][]string
		missing string
		closed  bool
	}{
		{"veth deleted", [][]string{{"ip", "link", "del", "nsz-wan"}}, "nsz-wan", false},
		{"pin removed", [][]string{{"umount", "/run/netns/wan"}, {"rm", "/run/netns/wan"}}, "namespace pin", false},
		{"host chains flushed", [][]string{{"iptables", "-F", "NSZ-wan-out"}, {"ip6tables", "-F", "NSZ-FORWARD"}}, "NSZ-", true},
		{"nftables host wall flushed", [][]string{{"nft", "flush", "table", "ip", "nszone"}}, "host wall", false},
		{"inner wall flushed", [][]string{{"ip", "netns", "exec", "wan", "nft", "flush", "table", "inet", "nszone"}}, "inner wall", false},
		{"hooks deleted", [][]string{{"iptables", "-D", "FORWARD", "-m", "comment", "--comment", "nszone", "-j", "NSZ-FORWARD"}}, "jump from FORWARD", true},
		{"resolv.conf deleted", [][]string{{"rm", "/etc/netns/wan/resolv.conf"}}, "resolv.conf", false},
		{"address deleted", [][]string{{"ip", "netns", "exec", "wan", "ip", "addr", "flush", "dev", "eth0", "scope", "global"}}, "address", false},
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			for _, c := range d.cmd {
				if r := runCmd(t, nil, c[0], c[1:]...); r.code != 0 {
					t.Fatalf("%v: %d %s", c, r.code, r.err)
				}
			}
			z := statusZone(status(t, "-c", file), "wan")
			if z.State != "degraded" || !strings.Contains(strings.Join(z.Missing, "\n"), d.missing) {
				t.Errorf("status after %s: %s, missing %q (want it to name %q)", d.name, z.State, z.Missing, d.missing)
			}
			r := run(t, nil, "exec", "wan", "--", "true")
			switch {
			case d.closed && (r.code != 0 || !strings.Contains(r.err, "degraded but closed")):
				t.Errorf("exec in the damaged (closed) zone: exit %d %s", r.code, r.err)
			case !d.closed && (r.code != 1 || !strings.Contains(r.err, "degraded")):
				t.Errorf("exec in the damaged zone: exit %d %s", r.code, r.err)
			}
			mustRun(t, "up", "-c", file)
			if z := statusZone(status(t, "-c", file), "wan"); z.State != "up" {
				t.Errorf("after up: %s, missing %v", z.State, z.Missing)
			}
			if ok, r := probe(t, "wan", curl("http://"+theLab.InetServer4.String()+"/")...); !ok {
				t.Errorf("after repair wan cannot reach the internet: %s", r.err)
			}
			if leaks := forbiddenReachable(t); len(leaks) > 0 {
				t.Errorf("after repair: %v", leaks)
			}
		})
	}
}

// TestUplinkGone: the uplink disappears (Wi-Fi to nothing): zones fail
// closed and status says why; it comes back: up follows it.
func TestUplinkGone(t *testing.T) {
	needSandbox(t)
	file := writeZones(t, defaultZones)
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	mustRun(t, "up", "-c", file)
	runCmd(t, nil, "ip", "link", "set", "eth0", "down")
	runCmd(t, nil, "ip", "link", "set", "eth0", "name", "wlan9")
	defer func() {
		runCmd(t, nil, "ip", "link", "set", "wlan9", "name", "eth0")
		runCmd(t, nil, "ip", "link", "set", "eth0", "up")
		restoreLabRoutes(t)
		// The next test's snapshot must not catch the link-local address
		// of the renewed link still tentative.
		if err := settle(); err != nil {
			t.Error(err)
		}
	}()
	// Closed, not open: the zone stays up, and status says why it reaches nothing.
	if z := statusZone(status(t, "-c", file), "wan"); z.State != "up" || !strings.Contains(strings.Join(z.Notes, " "), "uplink eth0 is gone") {
		t.Errorf("status with the uplink gone: %s %v %v", z.State, z.Missing, z.Notes)
	}
	runCmd(t, nil, "ip", "link", "set", "wlan9", "up")
	restoreLabRoutes(t)
	mustRun(t, "up", "-c", file)
	if ok, r := probe(t, "wan", curl("http://"+theLab.InetServer4.String()+"/")...); !ok {
		t.Errorf("wan after following the renamed uplink: %s", r.err)
	}
	if leaks := forbiddenReachable(t); len(leaks) > 0 {
		t.Errorf("with the new uplink: %v", leaks)
	}
	// A named uplink that does not exist: exit 1, nothing changed.
	before := snapshot(t)
	bad := writeZones(t, "version: 1\nuplink: eth9\nzones:\n  x:\n    allow: [internet]\n")
	if r := run(t, nil, "up", "-c", bad); r.code != 1 || !strings.Contains(r.err, "eth9") {
		t.Errorf("missing uplink: exit %d %s", r.code, r.err)
	}
	if after := snapshot(t); after != before {
		t.Errorf("a missing uplink changed the host:\n%s", diffLines(before, after))
	}
}

// restoreLabRoutes puts back the simulated host's IPv6 address and default
// routes (they go with the link when it is set down).
func restoreLabRoutes(t testing.TB) {
	dev := "eth0"
	if r := runCmd(t, nil, "ip", "link", "show", "wlan9"); r.code == 0 {
		dev = "wlan9"
	}
	// IPv6 addresses go when a link goes down.
	runCmd(t, nil, "ip", "-6", "addr", "replace", theLab.HostAddr6.String(), "dev", dev, "nodad")
	runCmd(t, nil, "ip", "route", "replace", "default", "via", theLab.Gateway4.String(), "dev", dev)
	runCmd(t, nil, "ip", "-6", "route", "replace", "default", "via", theLab.Gateway6.String(), "dev", dev)
}

// TestReboot: namespaces, links, rules, sysctls and /run vanish, /etc and
// /var/lib stay: up works as the first time did, with the same addresses.
func TestReboot(t *testing.T) {
	needSandbox(t)
	file := writeZones(t, defaultZones)
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	before := snapshot(t)
	mustRun(t, "up", "-c", file)
	addrs := map[string]string{}
	for _, z := range status(t, "-c", file).Zones {
		addrs[z.Name] = strings.Join(z.Addresses, ",")
	}
	// The reboot: everything in the kernel and in /run goes.
	for _, z := range []string{"wan", "lan", "offline"} {
		runCmd(t, nil, "ip", "link", "del", "nsz-"+z)
		runCmd(t, nil, "umount", "/run/netns/"+z)
		os.Remove("/run/netns/" + z)
	}
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat"} {
			out := runCmd(t, nil, bin+"-save", "-t", table).out
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "-A ") && strings.Contains(l, "NSZ-") && !strings.HasPrefix(l, "-A NSZ-") {
					runCmd(t, nil, bin, append([]string{"-t", table, "-D"}, strings.Fields(l)[1:]...)...)
				}
			}
			runCmd(t, nil, bin, "-t", table, "-F")
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, ":NSZ-") {
					runCmd(t, nil, bin, "-t", table, "-X", strings.Fields(l)[0][1:])
				}
			}
		}
	}
	entries, _ := os.ReadDir("/run/nszone")
	for _, e := range entries {
		os.RemoveAll(filepath.Join("/run/nszone", e.Name()))
	}
	runCmd(t, nil, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0", "net.ipv6.conf.eth0.accept_ra=1")

	mustRun(t, "up", "-c", file)
	for _, z := range status(t, "-c", file).Zones {
		if z.State != "up" || strings.Join(z.Addresses, ",") != addrs[z.Name] {
			t.Errorf("after the reboot: %s %s %v (addresses before: %s)", z.Name, z.State, z.Addresses, addrs[z.Name])
		}
	}
	if ok, r := probe(t, "wan", curl("http://"+theLab.InetServer4.String()+"/")...); !ok {
		t.Errorf("wan after the reboot: %s", r.err)
	}
	mustRun(t, "down", "-c", file)
	if after := snapshot(t); after != before {
		t.Errorf("down after the reboot: host differs:\n%s", diffLines(before, after))
	}
}

// TestConcurrentCommands: ups, downs and execs at once serialise: the end
// state is what the last command asked for, whole and consistent.
func TestConcurrentCommands(t *testing.T) {
	needSandbox(t)
	file := writeZones(t, defaultZones)
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	// Every command runs to its end, and every failure is reported.
	failures := make([]error, 6)
	var wg sync.WaitGroup
	for i := range failures {
		wg.Go(func() {
			args := [][]string{{"up", "-c", file}, {"down", "-c", file}, {"exec", "wan", "--", "true"}}[i%3]
			r := run(t, nil, args...)
			// exec may find the zone down (1); up and down must succeed.
			if args[0] != "exec" && r.code != 0 || args[0] == "exec" && r.code != 0 && r.code != 1 {
				failures[i] = errors.New(strings.Join(args, " ") + ": " + r.err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(failures...); err != nil {
		t.Errorf("concurrent commands failed:\n%v", err)
	}
	mustRun(t, "up", "-c", file)
	for _, z := range status(t, "-c", file).Zones {
		if z.State != "up" {
			t.Errorf("after the storm: %s %s %v", z.Name, z.State, z.Missing)
		}
	}
	// A command that waits for the lock says so.
	l := exec2(t, "flock", "/run/nszone/lock", "sleep", "1")
	time.Sleep(200 * time.Millisecond)
	r := run(t, nil, "up", "-c", file)
	l.Wait()
	if r.code != 0 || !strings.Contains(r.err, "waiting for another nszone") {
		t.Errorf("up while locked: exit %d, stderr %q", r.code, r.err)
	}
}

// TestKillAtRandomTimes kills up and down with SIGKILL after random delays;
// after each, no forbidden traffic passes, and up then down converge.
func TestKillAtRandomTimes(t *testing.T) {
	needSandbox(t)
	file := writeZones(t, defaultZones)
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	before := snapshot(t)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for i := 0; i < 12; i++ {
		op := []string{"up", "down"}[i%2]
		c := exec2(t, nszoneBin, op, "-c", file)
		time.Sleep(time.Duration(rng.Intn(400)) * time.Millisecond)
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
		if leaks := forbiddenReachable(t); len(leaks) > 0 {
			t.Errorf("after killing %s (round %d): %v", op, i, leaks)
		}
	}
	mustRun(t, "up", "-c", file)
	for _, z := range status(t, "-c", file).Zones {
		if z.State != "up" {
			t.Errorf("after the kills: %s %s %v", z.Name, z.State, z.Missing)
		}
	}
	mustRun(t, "down", "--all")
	if after := snapshot(t); after != before {
		t.Errorf("after kills, up and down --all: host differs:\n%s", diffLines(before, after))
	}
}
