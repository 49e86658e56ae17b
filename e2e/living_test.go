package e2e

import (
	"encoding/json"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nszone/nszone/e2e/internal/sender"
	"github.com/nszone/nszone/e2e/internal/sink"
)

// The host never stands still: addresses come and go (IPv6 privacy
// addresses, DHCP, VPNs, Docker's bridges), firewalls reload, the uplink
// changes. These tests replay such changes with probes from inside the
// zones, without nszone watch (nothing may open) and with it (everything
// converges again by itself).

// livingAddrs are the host's new addresses of the tests: where they go and
// which zones of the default file must not reach them.
type livingAddr struct {
	prefix netip.Prefix
	dev    string // "eth0": the uplink; else a link the test makes
	what   string
}

func livingAddrs() []livingAddr {
	return []livingAddr{
		{netip.MustParsePrefix("fd00:50::77/64"), "eth0", "an IPv6 privacy address in the uplink's /64"},
		{netip.MustParsePrefix("192.168.50.77/24"), "eth0", "a second DHCP address"},
		{netip.MustParsePrefix("198.51.100.7/32"), "livvpn0", "a VPN's public IPv4 address"},
		{netip.MustParsePrefix("2001:db8:77::7/128"), "livvpn0", "a VPN's public IPv6 address"},
		{netip.MustParsePrefix("172.18.0.1/16"), "livdock0", "a Docker-like bridge"},
	}
}

// livingAdd gives the host the addresses, removed again when the test ends.
func livingAdd(t testing.TB, addrs []livingAddr) {
	t.Helper()
	made := map[string]bool{}
	for _, a := range addrs {
		if a.dev != "eth0" && !made[a.dev] {
			addHostLink(t, a.dev)
			made[a.dev] = true
		}
		args := []string{"addr", "add", a.prefix.String(), "dev", a.dev}
		if a.prefix.Addr().Is6() {
			args = append(args, "nodad")
		}
		hostCmd(t, true, "ip", args...)
		if a.dev == "eth0" {
			p := a.prefix.String()
			t.Cleanup(func() { runCmd(t, nil, "ip", "addr", "del", p, "dev", "eth0") })
		}
	}
}

// livingProbe sends TCP connections and datagrams from inside each zone to
// every new address and reports what arrived at the host's sink.
func livingProbe(t testing.TB, phase string, hostSink *sink.Sink, addrs []livingAddr) {
	t.Helper()
	var targets []string
	for _, a := range addrs {
		hp := netip.AddrPortFrom(a.prefix.Addr(), portHost).String()
		targets = append(targets, "tcp:"+hp, "udp:"+hp)
	}
	for _, zone := range []string{"wan", "lan", "offline"} {
		conns := hostSink.Conns()
		tok := sender.Token("living-" + zone)
		res := send(t, "netns:"+zone, tok, 2, targets...)
		waitInFlight()
		for tg, st := range res {
			if strings.HasPrefix(tg, "tcp:") && st.OK > 0 {
				t.Errorf("%s: zone %s connected to the host at %s", phase, zone, tg)
			}
		}
		if n := hostSink.Count(tok); n > 0 || hostSink.Conns() > conns {
			t.Errorf("%s: zone %s reached the host's new addresses: %d datagrams, %d connections:\n%s", phase, zone, n, hostSink.Conns()-conns, hostSink.Describe(tok))
		}
	}
}

// TestLivingHostWithoutWatch: new host addresses of every kind, then a
// reload of the host's iptables rules, with nothing running to repair
// anything: no zone reaches any of them, and until the reload every zone
// stays up and exec starts programs.
func TestLivingHostWithoutWatch(t *testing.T) {
	guardHost(t)
	file := writeZones(t, defaultZones)
	mustRun(t, "up", "-c", file)
	hostSink := sink.Listen(t, atHost, sink.Options{UDP: []int{portHost}, TCP: []int{portHost}})
	addrs := livingAddrs()
	livingAdd(t, addrs)

	for _, z := range status(t, "-c", file).Zones {
		if z.State != "up" {
			t.Errorf("zone %s after new host addresses: %s, missing %v", z.Name, z.State, z.Missing)
		}
	}
	for _, zone := range []string{"wan", "lan", "offline"} {
		if r := run(t, nil, "exec", zone, "--", "true"); r.code != 0 {
			t.Errorf("exec %s after new host addresses that open nothing: exit %d %s", zone, r.code, r.err)
		}
	}
	livingProbe(t, "new addresses", hostSink, addrs)

	flushIPTables(t)
	livingProbe(t, "new addresses and an iptables reload", hostSink, addrs)
	// Positive control: what the zones may do still leaves them (one-way:
	// the reload took the NAT with it).
	tok := sender.Token("living-inet")
	inetSink := sink.Listen(t, "lab_inet", sink.Options{UDP: []int{portUDP}})
	send(t, "netns:wan", tok, 5, udpTargets(portUDP, theLab.InetServer4)...)
	waitInFlight()
	if inetSink.Count(tok) == 0 {
		t.Errorf("positive control: wan's datagrams to the internet do not arrive after the reload")
	}
}

// watcher is a running nszone watch.
type watcher struct {
	cmd *exec.Cmd
	out syncBuf
}

func startWatch(t testing.TB, file string) *watcher {
	t.Helper()
	w := &watcher{cmd: exec.Command(nszoneBin, "watch", "-c", file)}
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.stop(t, syscall.SIGTERM) })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(w.out.String(), "following the host's changes") {
		if time.Now().After(deadline) {
			t.Fatalf("nszone watch did not get ready in 20s:\n%s", w.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return w
}

// stop ends the watch by its PID with sig, once.
func (w *watcher) stop(t testing.TB, sig syscall.Signal) {
	if w.cmd.ProcessState != nil {
		return
	}
	w.cmd.Process.Signal(sig)
	w.cmd.Wait()
	t.Logf("nszone watch said:\n%s", w.out.String())
}

// eventually polls cond until it holds or 5s pass, and says how long it took.
func eventually(t testing.TB, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 5*time.Second {
			t.Errorf("%s: not within 5s", what)
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := time.Since(start)
	t.Logf("%s: after %s", what, d.Round(time.Millisecond))
	return d
}

func allUp(t testing.TB, file string) bool {
	t.Helper()
	r := run(t, nil, "status", "-c", file, "-o", "json")
	var st statusJSON
	if json.Unmarshal([]byte(r.out), &st) != nil || len(st.Zones) == 0 {
		return false
	}
	for _, z := range st.Zones {
		if z.State != "up" || len(z.Notes) > 0 {
			return false
		}
	}
	return r.code == 0
}

func innerWallHas(t testing.TB, zone, addr string) bool {
	t.Helper()
	r := runCmd(t, nil, "ip", "netns", "exec", zone, "nft", "list", "table", "inet", "nszone")
	return strings.Contains(r.out, addr)
}

// TestWatchFollows: with nszone watch running, every kind of change
// converges by itself: new addresses reach the inner walls, a firewall
// reload (iptables, or nftables' flush ruleset) is repaired, Docker's jump
// above nszone's is put below it again, the uplink switches and comes back,
// and killing watch leaves the zones as they are.
func TestWatchFollows(t *testing.T) {
	guardHost(t)
	file := writeZones(t, defaultZones)
	mustRun(t, "up", "-c", file)
	w := startWatch(t, file)
	hostSink := sink.Listen(t, atHost, sink.Options{UDP: []int{portHost}, TCP: []int{portHost}})

	addrs := livingAddrs()
	livingAdd(t, addrs)
	eventually(t, "the inner walls list the host's new addresses", func() bool {
		return innerWallHas(t, "wan", "198.51.100.7") && innerWallHas(t, "lan", "fd00:50::77") && allUp(t, file)
	})
	flushIPTables(t)
	eventually(t, "the host wall is back after an iptables reload", func() bool { return allUp(t, file) })
	livingProbe(t, "with watch, after new addresses and an iptables reload", hostSink, addrs)
	if ok, r := probe(t, "wan", curl("http://"+theLab.InetServer4.String()+"/")...); !ok {
		t.Errorf("wan after watch repaired the reload: %s", r.err)
	}

	hostCmd(t, true, "nft", "flush", "ruleset")
	eventually(t, "every wall is back after nft flush ruleset", func() bool { return allUp(t, file) })
	if leaks := forbiddenReachable(t); len(leaks) > 0 {
		t.Errorf("after watch repaired a flushed ruleset: %v", leaks)
	}

	// A zone's inner wall taken away inside the zone: watch follows each
	// zone's ruleset too, and exec waits for the repair rather than refuse.
	hostCmd(t, true, "ip", "netns", "exec", "wan", "nft", "delete", "table", "inet", "nszone")
	if r := run(t, nil, "exec", "wan", "--", "true"); r.code != 0 {
		t.Errorf("exec while watch repairs the inner wall: exit %d %s", r.code, r.err)
	}
	eventually(t, "the inner wall is back", func() bool { return innerWallHas(t, "wan", "nszone-wan") && allUp(t, file) })

	// Docker (re)starting puts its jump first in FORWARD.
	v4, _ := iptablesFor(t)
	hostCmd(t, true, v4, "-N", "LIVING-DOCKER-USER")
	t.Cleanup(func() {
		runCmd(t, nil, v4, "-D", "FORWARD", "-j", "LIVING-DOCKER-USER")
		runCmd(t, nil, v4, "-X", "LIVING-DOCKER-USER")
	})
	hostCmd(t, true, v4, "-I", "FORWARD", "1", "-j", "LIVING-DOCKER-USER")
	eventually(t, "nszone's jump is first in FORWARD again", func() bool {
		r := runCmd(t, nil, v4, "-S", "FORWARD")
		lines := strings.Split(r.out, "\n")
		return len(lines) > 1 && strings.Contains(lines[1], "NSZ-FORWARD")
	})

	// Wi-Fi to Ethernet: the uplink goes, another takes its place, and the
	// first comes back.
	runCmd(t, nil, "ip", "link", "set", "eth0", "down")
	eventually(t, "the zones close when the uplink goes", func() bool {
		r := runCmd(t, nil, v4, "-S", "NSZ-wan-out")
		return !strings.Contains(r.out, "-o eth0")
	})
	runCmd(t, nil, "ip", "link", "set", "eth0", "name", "wlan9")
	defer func() {
		runCmd(t, nil, "ip", "link", "set", "wlan9", "down")
		runCmd(t, nil, "ip", "link", "set", "wlan9", "name", "eth0")
		runCmd(t, nil, "ip", "link", "set", "eth0", "up")
		restoreLabRoutes(t)
		if err := settle(); err != nil {
			t.Error(err)
		}
	}()
	runCmd(t, nil, "ip", "link", "set", "wlan9", "up")
	restoreLabRoutes(t)
	eventually(t, "NAT follows the new uplink", func() bool {
		r := runCmd(t, nil, v4, "-t", "nat", "-S", "NSZ-POSTROUTING")
		return strings.Contains(r.out, "-o wlan9") && allUp(t, file)
	})
	if ok, r := probe(t, "wan", curl("http://"+theLab.InetServer4.String()+"/")...); !ok {
		t.Errorf("wan through the new uplink: %s", r.err)
	}
	if leaks := forbiddenReachable(t); len(leaks) > 0 {
		t.Errorf("with the new uplink: %v", leaks)
	}

	// Killed, watch changes nothing, and exec does not wait for it.
	w.stop(t, syscall.SIGKILL)
	if !allUp(t, file) {
		t.Errorf("after watch was killed, status: %v", zoneStates(t))
	}
	if r := run(t, nil, "exec", "wan", "--", "true"); r.code != 0 {
		t.Errorf("exec after watch was killed: exit %d %s", r.code, r.err)
	}
	if strings.Contains(w.out.String(), "watch: converging") {
		t.Errorf("watch failed to converge at some point:\n%s", w.out.String())
	}
}

// TestWatchLegacy: on an iptables-legacy host no event tells of a flushed
// wall; watch's periodic check finds and repairs it within seconds.
func TestWatchLegacy(t *testing.T) {
	guardHost(t)
	t.Setenv("NSZONE_IPTABLES", "legacy")
	file := writeZones(t, defaultZones)
	mustRun(t, "up", "-c", file)
	startWatch(t, file)
	for _, bin := range []string{"iptables-legacy", "ip6tables-legacy"} {
		hostCmd(t, true, bin, "-F")
		hostCmd(t, true, bin, "-t", "nat", "-F")
	}
	eventually(t, "the legacy wall is back", func() bool { return allUp(t, file) })
	if ok, r := probe(t, "wan", curl("http://"+theLab.InetServer4.String()+"/")...); !ok {
		t.Errorf("wan after watch repaired the legacy wall: %s", r.err)
	}
}

// TestForeignNftables: a native nftables firewall whose forward chain
// drops by policy makes the zones' connections fail; plan, up, status and
// check name the chain and the two rules that let zone traffic through,
// and with those rules the zones work again. nszone edits nothing of it.
func TestForeignNftables(t *testing.T) {
	guardHost(t)
	file := writeZones(t, defaultZones)
	hostCmd(t, true, "nft", "add table inet filter")
	t.Cleanup(func() { runCmd(t, nil, "nft", "delete", "table", "inet", "filter") })
	hostCmd(t, true, "nft", "add chain inet filter forward { type filter hook forward priority 0; policy drop; }")
	const chain = "table inet filter, chain forward (hook forward)"
	for _, args := range [][]string{{"plan", "-c", file}, {"up", "-c", file}} {
		if out := mustRun(t, args...); !strings.Contains(out, chain) || !strings.Contains(out, `nft insert rule inet filter forward iifname "nsz-*" accept`) {
			t.Errorf("nszone %s does not name the foreign chain and its fix:\n%s", args[0], out)
		}
	}
	if r := run(t, nil, "status", "-c", file); !strings.Contains(r.out, chain) {
		t.Errorf("status does not name the foreign chain:\n%s", r.out)
	}
	if ok, _ := probe(t, "wan", curl("http://"+theLab.InetServer4.String()+"/")...); ok {
		t.Error("wan reached the internet through a forward chain that drops everything: the test is wrong")
	}
	if r := run(t, nil, "check", "-c", file); r.code != 1 || !strings.Contains(r.out, chain) {
		t.Errorf("check with a dropping foreign chain: exit %d, want 1 and the chain named:\n%s", r.code, r.out)
	}
	hostCmd(t, true, "nft", `insert rule inet filter forward iifname "nsz-*" accept`)
	hostCmd(t, true, "nft", `insert rule inet filter forward oifname "nsz-*" accept`)
	if ok, r := probe(t, "wan", curl("http://"+theLab.InetServer4.String()+"/")...); !ok {
		t.Errorf("wan with the two rules added: %s", r.err)
	}
	if leaks := forbiddenReachable(t); len(leaks) > 0 {
		t.Errorf("with the two rules added: %v", leaks)
	}
	if r := run(t, nil, "status", "-c", file); strings.Contains(r.out, chain) {
		t.Errorf("status still names the fixed chain:\n%s", r.out)
	}
}

// TestForeignNamespace: a namespace of a zone's name that nszone did not
// make is named by status and exec, which do not advise an up that cannot
// work.
func TestForeignNamespace(t *testing.T) {
	guardHost(t)
	hostCmd(t, true, "ip", "netns", "add", "wan")
	t.Cleanup(func() { runCmd(t, nil, "ip", "netns", "del", "wan") })
	file := writeZones(t, defaultZones)
	z := statusZone(status(t, "-c", file), "wan")
	if z.State != "down" || !strings.Contains(strings.Join(z.Notes, " "), "is not nszone's") {
		t.Errorf("status with a foreign namespace wan: %s, notes %v", z.State, z.Notes)
	}
	r := run(t, nil, "exec", "wan", "--", "true")
	if r.code != 1 || !strings.Contains(r.err, "not nszone's") || strings.Contains(r.err, "run nszone up") {
		t.Errorf("exec into a foreign namespace: exit %d %s", r.code, r.err)
	}
}
