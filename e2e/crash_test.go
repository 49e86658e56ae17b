package e2e

import (
	"strings"
	"testing"

	"github.com/nszone/nszone/zones"
)

// forbiddenReachable tries, bypassing nszone (ip netns exec), what no zone
// of defaultZones may do; a zone caught half-made must be closed too.
func forbiddenReachable(t testing.TB) []string {
	t.Helper()
	var leaks []string
	tries := map[string][]string{
		"wan":     {"http://" + theLab.LANServer4.String() + "/", "http://[" + theLab.LANServer6.String() + "]/"},
		"lan":     {"http://" + theLab.InetServer4.String() + "/", "http://[" + theLab.InetServer6.String() + "]/"},
		"offline": {"http://" + theLab.InetServer4.String() + "/", "http://" + theLab.LANServer4.String() + "/"},
	}
	for zone, urls := range tries {
		if r := runCmd(t, nil, "ip", "netns", "pids", zone); r.code != 0 {
			continue // no such namespace
		}
		for _, u := range urls {
			if r := runCmd(t, nil, "ip", "netns", "exec", zone, "curl", "-s", "--max-time", "2", "-o", "/dev/null", u); r.code == 0 {
				leaks = append(leaks, zone+" -> "+u)
			}
		}
	}
	return leaks
}

// TestCrashAtEveryPoint kills nszone (as kill -9 would) and makes it fail,
// at every fault point of up and down: no zone is ever open, the next up
// converges, and the next down leaves the host as before.
func TestCrashAtEveryPoint(t *testing.T) {
	needSandbox(t)
	file := writeZones(t, defaultZones)
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	before := snapshot(t)
	for _, point := range zones.FaultPoints {
		for _, mode := range []string{"", ":error"} {
			name := point + mode
			t.Run(name, func(t *testing.T) {
				down := strings.HasPrefix(point, "down-")
				faulted := file
				if down || point == "up-remove" {
					mustRun(t, "up", "-c", file)
				}
				if point == "up-remove" {
					// An up that has a zone to take away reaches this point.
					faulted = writeZones(t, strings.Replace(defaultZones, "  offline:\n    allow: []\n", "", 1))
				}
				op := "up"
				if down {
					op = "down"
				}
				r := run(t, []string{zones.EnvFault + "=" + name}, op, "-c", faulted)
				want := 137 // SIGKILL
				if mode != "" {
					want = 1
				}
				if r.code != want {
					t.Fatalf("%s with %s: exit %d, want %d\n%s%s", op, name, r.code, want, r.out, r.err)
				}
				if leaks := forbiddenReachable(t); len(leaks) > 0 {
					t.Errorf("after %s at %s, forbidden traffic passes: %v", op, name, leaks)
				}
				// The next up converges to the file.
				mustRun(t, "up", "-c", file)
				for _, z := range status(t, "-c", file).Zones {
					if z.State != "up" {
						t.Errorf("after %s at %s and a new up: zone %s %s, missing %v", op, name, z.Name, z.State, z.Missing)
					}
				}
				if ok, r := probe(t, "wan", curl("http://"+theLab.InetServer4.String()+"/")...); !ok {
					t.Errorf("after recovery wan cannot reach the internet: %d %s", r.code, r.err)
				}
				if leaks := forbiddenReachable(t); len(leaks) > 0 {
					t.Errorf("after recovery, forbidden traffic passes: %v", leaks)
				}
				// And down leaves the host as before, with --all too.
				if down {
					mustRun(t, "down", "--all")
				} else {
					mustRun(t, "down", "-c", file)
				}
				if after := snapshot(t); after != before {
					t.Errorf("after %s at %s, up and down: host differs:\n%s", op, name, diffLines(before, after))
				}
			})
		}
	}
}
