package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEcosystemInit: in the simulated network, nszone init finds the
// uplink, its subnets, the DNS server and IPv6, writes a zones file that up
// takes and check proves, and never replaces a file without --force.
func TestEcosystemInit(t *testing.T) {
	needSandbox(t)
	l := theLab
	file := filepath.Join(t.TempDir(), "etc", "nszone", "zones.yaml") // a directory init creates
	r := run(t, nil, "init", "-c", file)
	if r.code != 0 || !strings.Contains(r.out, "wrote "+file+" (uplink "+l.Uplink+", 1 DNS server(s))") {
		t.Fatalf("init: exit %d\n%s%s", r.code, r.out, r.err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"uplink   " + l.Uplink + " (the default route's interface)",
		l.HostAddr4.Masked().String() + ", " + l.HostAddr6.Masked().String(),
		"DNS      " + l.Nameserver.String() + " (from /etc/resolv.conf)",
		"IPv6     yes, with a default route",
		"uplink: auto",
		"  wan:\n    allow: [internet]", "  lan:\n    allow: [lan]", "  offline:\n    allow: []",
	} {
		if !strings.Contains(string(data), s) {
			t.Errorf("the file init wrote does not say %q:\n%s", s, data)
		}
	}
	if r := run(t, nil, "init", "-c", "-"); r.code != 0 || r.out != string(data) {
		t.Errorf("init -c - printed something else than it wrote (exit %d):\n%s%s", r.code, r.out, r.err)
	}

	// Never over an existing file without --force.
	os.WriteFile(file, []byte("# mine\n"+string(data)), 0o644)
	r = run(t, nil, "init", "-c", file)
	if b, _ := os.ReadFile(file); r.code != 1 || !strings.Contains(r.err, "--force") || !strings.HasPrefix(string(b), "# mine\n") {
		t.Errorf("init over an existing file: exit %d %s; file now starts %.20q", r.code, r.err, b)
	}
	if r := run(t, nil, "init", "-c", file, "--force"); r.code != 0 {
		t.Fatalf("init --force: exit %d %s", r.code, r.err)
	}
	if b, _ := os.ReadFile(file); string(b) != string(data) {
		t.Error("init --force did not write the file anew")
	}
	// $NSZONE_CONFIG names the file when -c does not.
	envFile := filepath.Join(t.TempDir(), "env.yaml")
	if r := run(t, []string{"NSZONE_CONFIG=" + envFile}, "init"); r.code != 0 || !strings.Contains(r.out, "next: nszone plan, then nszone up") {
		t.Errorf("init with $NSZONE_CONFIG: exit %d %s%s", r.code, r.out, r.err)
	}
	if _, err := os.Stat(envFile); err != nil {
		t.Errorf("init did not write $NSZONE_CONFIG: %v", err)
	}

	// The file works: up, every zone up, check proves the policies, down.
	out := mustRun(t, "up", "-c", file)
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	for _, z := range []string{"wan", "lan", "offline"} {
		if !strings.Contains(out, "zone "+z+" up") {
			t.Errorf("up of init's file did not bring up %s:\n%s", z, out)
		}
	}
	for _, z := range status(t, "-c", file).Zones {
		if z.State != "up" {
			t.Errorf("zone %s is %s: %v", z.Name, z.State, z.Missing)
		}
	}
	if r := run(t, nil, "check", "-c", file); r.code != 0 {
		t.Errorf("check of init's zones: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if ok, r := probe(t, "wan", curl("http://"+l.InetServer4.String()+"/")...); !ok {
		t.Errorf("wan of init's file does not reach the internet: %s", r.err)
	}
	mustRun(t, "down", "-c", file)
}

// planJSON is plan -o json as the README documents it.
type planJSON struct {
	Changed  bool           `json:"changed"`
	Zones    []planZoneJSON `json:"zones"`
	Firewall []struct {
		Table  string   `json:"table"`
		Write  []string `json:"write"`
		Remove []string `json:"remove"`
		Jumps  bool     `json:"jumps"`
	} `json:"firewall"`
	Sysctls []struct{ Key, From, To string } `json:"sysctls"`
	Notes   []string                         `json:"notes"`
}

type planZoneJSON struct {
	Name        string   `json:"name"`
	Action      string   `json:"action"`
	Netns       string   `json:"netns"`
	HostIf      string   `json:"host_interface"`
	Addresses   []string `json:"addresses"`
	Allow       []string `json:"allow"`
	DNS         []string `json:"dns"`
	DNSOpenings []string `json:"dns_openings"`
	Changes     []string `json:"changes"`
}

func planOf(t *testing.T, file string) (planJSON, string) {
	t.Helper()
	var p planJSON
	out := mustRun(t, "plan", "-c", file, "-o", "json")
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("plan -o json: %v\n%s", err, out)
	}
	return p, out
}

// TestEcosystemJSON: plan, status and check speak JSON with the documented
// fields, and plan's JSON says what its text says.
func TestEcosystemJSON(t *testing.T) {
	needSandbox(t)
	file := writeZones(t, defaultZones)
	t.Cleanup(func() { run(t, nil, "down", "--all") })

	p, raw := planOf(t, file)
	text := mustRun(t, "plan", "-c", file)
	if !p.Changed || len(p.Zones) != 3 || len(p.Firewall) == 0 {
		t.Fatalf("plan before up:\n%s", raw)
	}
	for _, z := range p.Zones {
		if z.Action != "add" || z.Netns != "/run/netns/"+z.Name || z.HostIf != "nsz-"+z.Name || len(z.Addresses) != 2 {
			t.Errorf("plan zone %s: %+v", z.Name, z)
		}
		if !strings.Contains(text, "+ zone "+z.Name+": namespace /run/netns/"+z.Name) {
			t.Errorf("plan text lacks zone %s:\n%s", z.Name, text)
		}
	}
	if wan := p.Zones[slices.IndexFunc(p.Zones, func(z planZoneJSON) bool { return z.Name == "wan" })]; !slices.Equal(wan.Allow, []string{"internet"}) || len(wan.DNSOpenings) != 1 ||
		!strings.Contains(text, "+ zone wan: DNS opening to "+wan.DNSOpenings[0]) {
		t.Errorf("plan of wan: %+v\n%s", wan, text)
	}
	for _, f := range p.Firewall {
		if !strings.Contains(text, "~ firewall "+f.Table+": ") || len(f.Write) == 0 {
			t.Errorf("plan firewall %+v; text:\n%s", f, text)
		}
	}
	for _, s := range p.Sysctls {
		if !strings.Contains(text, "~ sysctl "+s.Key+": "+s.From+" -> "+s.To) {
			t.Errorf("plan sysctl %+v; text:\n%s", s, text)
		}
	}
	// Every key is there, empty lists as [] (not null), for scripts.
	for _, k := range []string{`"changed"`, `"zones"`, `"firewall"`, `"sysctls"`, `"notes": []`, `"changes": []`, `"dns_openings"`} {
		if !strings.Contains(raw, k) {
			t.Errorf("plan -o json lacks %s:\n%s", k, raw)
		}
	}

	mustRun(t, "up", "-c", file)
	p, raw = planOf(t, file)
	if p.Changed || len(p.Zones) != 3 || len(p.Firewall) != 0 || len(p.Sysctls) != 0 {
		t.Errorf("plan after up:\n%s", raw)
	}
	for _, z := range p.Zones {
		if z.Action != "none" {
			t.Errorf("plan after up: zone %s %s", z.Name, z.Action)
		}
	}
	// A zone taken out of the file is one plan would remove; one whose
	// policy changes, one it would change.
	file2 := writeZones(t, "version: 1\nzones:\n  wan:\n    allow: [internet, lan]\n  lan:\n    allow: [lan]\n")
	p, raw = planOf(t, file2)
	actions := map[string]string{}
	for _, z := range p.Zones {
		actions[z.Name] = z.Action
		if z.Name == "wan" && (len(z.Changes) == 0 || !strings.Contains(z.Changes[0], "allow")) {
			t.Errorf("plan of changed wan: %+v", z)
		}
	}
	if actions["wan"] != "change" || actions["offline"] != "remove" || len(actions) != 3 || !p.Changed {
		t.Errorf("plan of a changed file: %v\n%s", actions, raw)
	}
	if text := mustRun(t, "plan", "-c", file2); !strings.Contains(text, "~ zone wan: allow [internet] -> [internet lan]") ||
		!strings.Contains(text, "- zone offline: no longer in "+file2) {
		t.Errorf("plan text of a changed file:\n%s", text)
	}

	var st map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "status", "-c", file, "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	zs, _ := st["zones"].([]any)
	if len(zs) != 3 || st["firewall"] == nil {
		t.Fatalf("status -o json: %v", st)
	}
	for _, k := range []string{"name", "state", "netns", "allow", "dns", "dns_openings", "addresses", "host_interface", "uplink", "processes", "in_file"} {
		if _, ok := zs[0].(map[string]any)[k]; !ok {
			t.Errorf("status -o json: zone lacks %q: %v", k, zs[0])
		}
	}

	r := run(t, nil, "check", "-c", file, "-o", "json")
	var ck struct {
		OK    bool `json:"ok"`
		Zones []struct {
			Name    string           `json:"name"`
			Results []map[string]any `json:"results"`
		} `json:"zones"`
	}
	if err := json.Unmarshal([]byte(r.out), &ck); err != nil || r.code != 0 || !ck.OK || len(ck.Zones) != 3 {
		t.Fatalf("check -o json: exit %d %v\n%s%s", r.code, err, r.out, r.err)
	}
	for _, k := range []string{"class", "target", "proto", "expected", "observed", "ok"} {
		if _, ok := ck.Zones[0].Results[0][k]; !ok {
			t.Errorf("check -o json: result lacks %q: %v", k, ck.Zones[0].Results[0])
		}
	}
	mustRun(t, "down", "-c", file)
}

// TestEcosystemUnitCommands runs what systemd would run for nszone.service
// and nszone@wan.service (their Exec lines, read from the unit files) in the
// simulated network: start brings the zones up, reload changes nothing,
// stop leaves the host as it was.
func TestEcosystemUnitCommands(t *testing.T) {
	needSandbox(t)
	// The units name the zones file by default; here it is the example that
	// make install puts there.
	t.Setenv("NSZONE_CONFIG", "../dist/zones.example.yaml")
	execLines := func(unit, instance string) map[string][]string {
		b, err := os.ReadFile("../dist/systemd/" + unit + ".in")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, "=")
			if !ok || !strings.HasPrefix(k, "Exec") {
				continue
			}
			argv := strings.Fields(strings.ReplaceAll(v, "%i", instance))
			if argv[0] == "/bin/kill" || argv[0] == "/bin/sh" { // run as they are
				out[k] = []string{v}
				continue
			}
			if argv[0] != "@BINDIR@/nszone" {
				t.Fatalf("%s: %s runs %s, not nszone", unit, k, argv[0])
			}
			out[k] = argv[1:]
		}
		return out
	}
	before := snapshot(t)
	t.Cleanup(func() { run(t, nil, "down", "--all") })

	// nszone.service runs watch: start until it is ready, reload with
	// SIGHUP to its main process, stop by SIGTERM and then ExecStopPost.
	svc := execLines("nszone.service", "")
	if got := strings.Join(svc["ExecStart"], " "); got != "watch" {
		t.Fatalf("nszone.service: ExecStart runs nszone %s, want nszone watch", got)
	}
	if got := strings.Join(svc["ExecReload"], " "); got != "/bin/kill -HUP $MAINPID" {
		t.Fatalf("nszone.service: ExecReload is %s", got)
	}
	// ExecStopPost through sh, as systemd would run it, with the unit's result.
	stopPost := func(result string) {
		t.Helper()
		line := strings.ReplaceAll(svc["ExecStopPost"][0], "@BINDIR@/nszone", nszoneBin)
		r := runCmd(t, []string{"SERVICE_RESULT=" + result}, "/bin/sh", "-c", strings.TrimSuffix(strings.TrimPrefix(line, "/bin/sh -c '"), "'"))
		if r.code != 0 {
			t.Fatalf("ExecStopPost with SERVICE_RESULT=%s: exit %d %s", result, r.code, r.err)
		}
	}
	w := startWatch(t, "../dist/zones.example.yaml")
	for _, z := range []string{"wan", "lan", "offline"} {
		if !strings.Contains(w.out.String(), "zone "+z+" up") {
			t.Errorf("start: zone %s not up:\n%s", z, w.out.String())
		}
	}
	mark := len(w.out.String())
	w.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	if out := w.out.String()[mark:]; strings.Contains(out, "repaired") || w.cmd.ProcessState != nil {
		t.Errorf("reload changed something, or ended watch:\n%s", out)
	}
	w.stop(t, syscall.SIGKILL)
	stopPost("signal") // a crash: systemd restarts watch, the zones stay
	if st := status(t); len(st.Zones) == 0 || statusZone(st, "wan").State != "up" {
		t.Errorf("watch killed: the zones must stay as they are, status %v", st)
	}
	w = startWatch(t, "../dist/zones.example.yaml")
	w.stop(t, syscall.SIGTERM)
	if w.cmd.ProcessState.ExitCode() != 0 {
		t.Errorf("watch on SIGTERM: exit %d, want 0 (systemd's SERVICE_RESULT=success)", w.cmd.ProcessState.ExitCode())
	}
	stopPost("success")
	if after := snapshot(t); after != before {
		t.Errorf("stop did not leave the host as before:\n%s", diffLines(before, after))
	}

	one := execLines("nszone@.service", "wan")
	mustRun(t, one["ExecStart"]...)
	st := status(t)
	for _, z := range st.Zones {
		if want := map[bool]string{true: "up", false: "down"}[z.Name == "wan"]; z.State != want {
			t.Errorf("nszone@wan started: zone %s is %s, want %s", z.Name, z.State, want)
		}
	}
	if out := mustRun(t, one["ExecReload"]...); !strings.Contains(out, "nothing to change") {
		t.Errorf("nszone@wan reload changed something:\n%s", out)
	}
	mustRun(t, one["ExecStop"]...)
	if after := snapshot(t); after != before {
		t.Errorf("nszone@wan stop did not leave the host as before:\n%s", diffLines(before, after))
	}
}
