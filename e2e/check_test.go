package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/nszone/nszone/lab"
)

// checkZones is the lab's zones file with a zone more, so that it has every
// class check knows: internet, lan, host, zone:NAME (one direction), a
// pinhole, DNS through an opening and none at all. The check: section names
// the lab's servers; nothing outside the sandbox is ever probed.
var checkZones = strings.Replace(lab.Zones, "\ncheck:",
	"\n  web:\n    allow: [host, \"zone:lan\", \"192.168.50.10:80/tcp\"]\ncheck:", 1)

type checkResultJSON struct {
	Class, Target, Proto, Expected, Observed, Note string
	OK                                             bool
}

type checkJSON struct {
	OK    bool
	Zones []struct {
		Name    string
		Results []checkResultJSON
	}
}

func checkJSONOf(t *testing.T, args ...string) (checkJSON, result) {
	t.Helper()
	r := run(t, nil, append([]string{"check", "-o", "json"}, args...)...)
	var ck checkJSON
	if err := json.Unmarshal([]byte(r.out), &ck); err != nil {
		t.Fatalf("check -o json: exit %d: %v\nstdout:\n%s\nstderr:\n%s", r.code, err, r.out, r.err)
	}
	return ck, r
}

// results returns zone's results of class whose target starts with target
// and whose protocol is proto ("" for any).
func (ck checkJSON) results(zone, class, target, proto string) []checkResultJSON {
	var out []checkResultJSON
	for _, z := range ck.Zones {
		for _, r := range z.Results {
			if z.Name == zone && r.Class == class && strings.HasPrefix(r.Target, target) && (proto == "" || r.Proto == proto) {
				out = append(out, r)
			}
		}
	}
	return out
}

// mismatches lists every result that is not ok, one per line.
func (ck checkJSON) mismatches() string {
	var b strings.Builder
	for _, z := range ck.Zones {
		for _, r := range z.Results {
			if !r.OK {
				fmt.Fprintf(&b, "  %s %s %s %s: expected %s, observed %s (%s)\n", z.Name, r.Class, r.Target, r.Proto, r.Expected, r.Observed, r.Note)
			}
		}
	}
	return b.String()
}

// TestCheck proves that check derives the right expectations from each
// zone's policy, that every observation in a healthy set of zones matches
// them, that a broken zone is caught (exit 1, ok false, the failing
// results named) and that up repairs it.
func TestCheck(t *testing.T) {
	needSandbox(t)
	file := writeZones(t, checkZones)
	mustRun(t, "up", "-c", file)
	t.Cleanup(func() { run(t, nil, "down", "--all") })

	ck, r := checkJSONOf(t, "-c", file)
	if r.code != 0 || !ck.OK {
		t.Errorf("check: exit %d, ok %v; mismatches:\n%s%s", r.code, ck.OK, ck.mismatches(), r.err)
	}
	var names []string
	for _, z := range ck.Zones {
		names = append(names, z.Name)
		for _, res := range z.Results {
			// Every lab target answers the host, and check's listeners open:
			// nothing may be skipped or fail to be probed.
			if res.Observed != "allow" && res.Observed != "block" {
				t.Errorf("%s %s %s %s: observed %q (%s)", z.Name, res.Class, res.Target, res.Proto, res.Observed, res.Note)
			}
		}
	}
	if got := strings.Join(names, " "); got != "lan offline wan web" {
		t.Fatalf("zones checked: %s", got)
	}
	for _, zone := range names {
		classes := []string{"internet", "lan", "host", "dns"}
		for _, other := range names {
			if other != zone {
				classes = append(classes, "zone:"+other)
			}
		}
		if zone == "web" {
			classes = append(classes, "pinhole")
		}
		for _, class := range classes {
			for _, proto := range []string{"tcp", "udp"} {
				if (class == "internet" || class == "lan" || class == "pinhole") && proto == "udp" || class == "dns" && proto == "tcp" {
					continue
				}
				res := ck.results(zone, class, "", proto)
				v4, v6 := false, false
				for _, r := range res {
					v6 = v6 || strings.HasPrefix(r.Target, "[")
					v4 = v4 || !strings.HasPrefix(r.Target, "[")
				}
				if !v4 || !v6 && class != "dns" && class != "pinhole" {
					t.Errorf("%s: %s %s probes: IPv4 %v, IPv6 %v (both families wanted)", zone, class, proto, v4, v6)
				}
			}
		}
	}

	cases := []struct {
		zone, class, target, proto, want string
	}{
		{"wan", "internet", "203.0.113.10:80", "tcp", "allow"},
		{"wan", "internet", "[2001:db8:113::10]:80", "tcp", "allow"},
		{"wan", "lan", "192.168.50.10:80", "tcp", "block"},
		{"wan", "lan", "[fd00:50::10]:80", "tcp", "block"},
		{"wan", "dns", "192.168.50.10:53 www.example", "udp", "allow"}, // through its DNS opening
		{"wan", "host", "192.168.50.2:", "tcp", "block"},
		{"wan", "host", "[fd00:50::2]:", "udp", "block"},
		{"wan", "host", "[fe80::", "udp", "block"},
		{"wan", "zone:web", "", "", "block"},
		{"lan", "lan", "[fd00:50::10]:80", "tcp", "allow"},
		{"lan", "internet", "203.0.113.10:80", "tcp", "block"},
		{"lan", "zone:web", "", "", "block"}, // zone:lan on web opens one direction only
		{"offline", "internet", "", "", "block"},
		{"offline", "lan", "", "", "block"},
		{"offline", "host", "", "", "block"},
		{"offline", "dns", "192.168.50.10:53 www.example", "udp", "block"},
		{"web", "host", "192.168.50.2:", "tcp", "allow"},
		{"web", "host", "192.168.50.2:", "udp", "allow"},
		{"web", "host", "[fd00:50::2]:", "udp", "allow"},
		{"web", "host", "[fe80::", "tcp", "allow"},
		{"web", "host", "10.250.", "udp", "allow"}, // the gateways, its own first
		{"web", "zone:lan", "", "tcp", "allow"},
		{"web", "zone:lan", "", "udp", "allow"},
		{"web", "zone:wan", "", "", "block"},
		{"web", "lan", "192.168.50.10:80", "tcp", "allow"}, // its pinhole
		{"web", "lan", "[fd00:50::10]:80", "tcp", "block"},
		{"web", "internet", "", "", "block"},
		{"web", "pinhole", "192.168.50.10:80", "tcp", "allow"},
		{"web", "dns", "192.168.50.10:53 www.example", "udp", "allow"},
	}
	for _, c := range cases {
		res := ck.results(c.zone, c.class, c.target, c.proto)
		if len(res) == 0 {
			t.Errorf("%s: no %s result for %q %s", c.zone, c.class, c.target, c.proto)
		}
		for _, r := range res {
			if r.Expected != c.want {
				t.Errorf("%s %s %s %s: expected %s, want %s", c.zone, c.class, r.Target, r.Proto, r.Expected, c.want)
			}
		}
	}

	// The table, and zones named on the command line.
	if r := run(t, nil, "check", "-c", file, "web"); r.code != 0 || !strings.Contains(r.out, "ZONE") ||
		!strings.Contains(r.out, "observations match the policy") || strings.Contains(r.out, "\nwan ") || !strings.Contains(r.out, "web ") {
		t.Errorf("check web: exit %d, table:\n%s%s", r.code, r.out, r.err)
	}
	if r := run(t, nil, "check", "-c", file, "nosuch"); r.code != 1 || !strings.Contains(r.err, `zone "nosuch" is not up`) {
		t.Errorf("check of a zone that is not up: exit %d: %s", r.code, r.err)
	}

	// Break wan: without its default routes, what its policy allows does
	// not get through. check must say so, for those results only.
	for _, family := range []string{"-4", "-6"} {
		if r := runCmd(t, nil, "ip", "-n", "wan", family, "route", "del", "default"); r.code != 0 {
			t.Fatalf("ip -n wan %s route del default: %s", family, r.err)
		}
	}
	ck, r = checkJSONOf(t, "-c", file)
	if r.code != 1 || ck.OK || !strings.Contains(r.err, "do not match the policy") {
		t.Errorf("check of a broken zone: exit %d, ok %v, stderr %s", r.code, ck.OK, r.err)
	}
	for _, target := range []string{"203.0.113.10:80", "[2001:db8:113::10]:80"} {
		res := ck.results("wan", "internet", target, "tcp")
		if len(res) != 1 || res[0].OK || res[0].Expected != "allow" || res[0].Observed != "block" {
			t.Errorf("wan internet %s with no route: %+v", target, res)
		}
	}
	for _, z := range ck.Zones {
		for _, res := range z.Results {
			if !res.OK && z.Name != "wan" {
				t.Errorf("%s %s %s %s: not ok, though only wan is broken (%s)", z.Name, res.Class, res.Target, res.Proto, res.Note)
			}
		}
	}

	// up puts the routes back, and check agrees.
	mustRun(t, "up", "-c", file)
	if ck, r := checkJSONOf(t, "-c", file); r.code != 0 || !ck.OK {
		t.Errorf("check after up: exit %d; mismatches:\n%s%s", r.code, ck.mismatches(), r.err)
	}
}

// TestExplainAgreesWithCheck: for every observation check makes in the
// lab's zones (internet, lan, host, zone:NAME, pinhole, DNS openings),
// explain, asked the same question, gives the verdict check expected, and
// the verdict check saw.
func TestExplainAgreesWithCheck(t *testing.T) {
	needSandbox(t)
	file := writeZones(t, checkZones)
	mustRun(t, "up", "-c", file)
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	ck, _ := checkJSONOf(t, "-c", file)
	asked := 0
	for _, z := range ck.Zones {
		for _, res := range z.Results {
			target, _, _ := strings.Cut(res.Target, " ") // dns: "ADDR:53 NAME"
			if res.Observed == "skipped" || res.Observed == "error" || !strings.Contains(target, ":") ||
				res.Class == "published" || res.Class == "via" {
				continue
			}
			r := run(t, nil, "explain", "-c", file, "-o", "json", z.Name, target+"/"+res.Proto)
			var ex struct{ Verdict, Class, Term, Reason string }
			if err := json.Unmarshal([]byte(r.out), &ex); err != nil || r.code != 0 {
				t.Fatalf("explain %s %s/%s: exit %d %v\nstdout: %s\nstderr: %s", z.Name, target, res.Proto, r.code, err, r.out, r.err)
			}
			asked++
			if ex.Verdict != res.Expected || ex.Verdict != res.Observed {
				t.Errorf("zone %s to %s/%s (%s): explain says %s (%s, term %q: %s), check expected %s and saw %s",
					z.Name, target, res.Proto, res.Class, ex.Verdict, ex.Class, ex.Term, ex.Reason, res.Expected, res.Observed)
			}
		}
	}
	if asked < 20 {
		t.Errorf("only %d of check's observations asked of explain", asked)
	}
	t.Logf("explain agreed with check on %d observations", asked)
	if r := run(t, nil, "explain", "-c", file, "nosuch", "192.0.2.1:80"); r.code != 2 {
		t.Errorf("explain of an unknown zone: exit %d %s", r.code, r.err)
	}
	if r := run(t, nil, "explain", "-c", file, "wan"); r.code != 2 {
		t.Errorf("explain without a destination: exit %d %s", r.code, r.err)
	}
	if r := run(t, nil, "explain", "-c", file, "wan", "not-an-address"); r.code != 2 {
		t.Errorf("explain of a bad destination: exit %d %s", r.code, r.err)
	}
}
