package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nszone/nszone/e2e/internal/sender"
	"github.com/nszone/nszone/e2e/internal/sink"
)

// BenchmarkChurn replays a day of a living host in half a minute: addresses
// added, rotated and removed, a Docker-like bridge, a VPN link with public
// addresses, iptables reloads alone and together with new addresses,
// Docker's jump put above nszone's, the uplink switched and switched back,
// with probers in every zone sending to everything they must not reach and
// an exec loop, once without nszone watch and once with it. It reports:
//
//	leaks       datagrams and connections of the probers that arrived (must be 0)
//	exec-%      exec attempts into wan and lan that started the program
//	conv-p50-ms, conv-p99-ms   with watch: from a change to watch's last write for it
//	idle-cpu-%, rss-MiB        watch, idle for 10 s after the churn
//
// Run it with scripts/bench-living (or go test -run '^$' -bench Churn
// -benchtime 1x ./e2e as root); NSZONE_CHURN_GAP sets the pause between
// changes (default 1s). It runs in the e2e sandbox like every test here.
func BenchmarkChurn(b *testing.B) {
	needSandbox(b)
	gap := time.Second
	if v := os.Getenv("NSZONE_CHURN_GAP"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("NSZONE_CHURN_GAP=%q: %v", v, err)
		}
		gap = d
	}
	for _, withWatch := range []bool{false, true} {
		name := map[bool]string{false: "without-watch", true: "with-watch"}[withWatch]
		b.Run(name, func(b *testing.B) {
			for range b.N {
				churnOnce(b, withWatch, gap)
			}
		})
	}
}

// churnChange is one change of the host: commands run on the simulated
// host, or do.
type churnChange struct {
	name string
	cmds [][]string
	do   func()
}

func churnChanges(v4 string) []churnChange {
	ip := func(args ...string) []string { return append([]string{"ip"}, args...) }
	flush := func() [][]string {
		var out [][]string
		for _, bin := range iptBins {
			for table := range iptTables {
				out = append(out, []string{bin, "-t", table, "-F"})
			}
			out = append(out, []string{bin, "-P", "FORWARD", "ACCEPT"}, []string{bin, "-P", "INPUT", "ACCEPT"})
		}
		return out
	}
	switchTo := func(from, to string) [][]string {
		return [][]string{ip("link", "set", from, "down"), ip("link", "set", from, "name", to), ip("link", "set", to, "up"),
			ip("-6", "addr", "replace", theLab.HostAddr6.String(), "dev", to, "nodad"),
			ip("route", "replace", "default", "via", theLab.Gateway4.String(), "dev", to),
			ip("-6", "route", "replace", "default", "via", theLab.Gateway6.String(), "dev", to)}
	}
	return []churnChange{
		{name: "privacy address", cmds: [][]string{ip("addr", "add", "fd00:50::77/64", "dev", "eth0", "nodad")}},
		{name: "second DHCP address", cmds: [][]string{ip("addr", "add", "192.168.50.77/24", "dev", "eth0")}},
		{name: "Docker-like bridge", cmds: [][]string{ip("link", "add", "churndock0", "type", "veth", "peer", "name", "churndock0p"),
			ip("addr", "add", "172.18.0.1/16", "dev", "churndock0"), ip("link", "set", "churndock0", "up")}},
		{name: "VPN link", cmds: [][]string{ip("link", "add", "churnvpn0", "type", "veth", "peer", "name", "churnvpn0p"),
			ip("addr", "add", "198.51.100.7/32", "dev", "churnvpn0"), ip("addr", "add", "2001:db8:77::7/128", "dev", "churnvpn0", "nodad"),
			ip("link", "set", "churnvpn0", "up")}},
		{name: "iptables reload", cmds: flush()},
		{name: "privacy address rotated", cmds: [][]string{ip("addr", "add", "fd00:50::78/64", "dev", "eth0", "nodad"), ip("addr", "del", "fd00:50::77/64", "dev", "eth0")}},
		{name: "iptables reload and a new address", cmds: append(flush(), ip("addr", "add", "192.0.2.99/32", "dev", "churnvpn0"))},
		{name: "Docker's jump above nszone's", cmds: [][]string{{v4, "-N", "CHURN-DOCKER-USER"}, {v4, "-I", "FORWARD", "1", "-j", "CHURN-DOCKER-USER"}}},
		{name: "uplink down", cmds: [][]string{ip("link", "set", "eth0", "down")}},
		{name: "Wi-Fi to Ethernet", cmds: switchTo("eth0", "wlan9")[1:]},
		{name: "and back", cmds: switchTo("wlan9", "eth0")},
		{name: "VPN gone", cmds: [][]string{ip("link", "del", "churnvpn0")}},
		{name: "DHCP address gone", cmds: [][]string{ip("addr", "del", "192.168.50.77/24", "dev", "eth0")}},
		{name: "new DHCP address", cmds: [][]string{ip("addr", "add", "192.168.50.78/24", "dev", "eth0")}},
		{name: "iptables reload", cmds: flush()},
		{name: "Docker-like bridge gone", cmds: [][]string{ip("link", "del", "churndock0")}},
		{name: "privacy address gone", cmds: [][]string{ip("addr", "del", "fd00:50::78/64", "dev", "eth0")}},
		{name: "DHCP address gone", cmds: [][]string{ip("addr", "del", "192.168.50.78/24", "dev", "eth0")}},
	}
}

// churnTargets is what each zone of the default file must never reach:
// every address the host has or will have in the churn, and the other
// class of servers.
func churnTargets() map[string][]string {
	var host []netip.Addr
	for _, s := range []string{"192.168.50.2", "fd00:50::2", "172.17.0.1", "fd00:50::77", "fd00:50::78", "192.168.50.77", "192.168.50.78",
		"172.18.0.1", "198.51.100.7", "2001:db8:77::7", "192.0.2.99"} {
		host = append(host, netip.MustParseAddr(s))
	}
	var hostT []string
	for _, a := range host {
		hp := netip.AddrPortFrom(a, portHost).String()
		hostT = append(hostT, "tcp:"+hp, "udp:"+hp)
	}
	l := theLab
	lanT := udpTargets(portUDP, l.LANServer4, l.LANServer6)
	inetT := udpTargets(portUDP, l.InetServer4, l.InetServer6)
	return map[string][]string{
		"wan":     append(slices.Clone(hostT), lanT...),
		"lan":     append(slices.Clone(hostT), inetT...),
		"offline": append(append(slices.Clone(hostT), lanT...), inetT...),
	}
}

func churnOnce(b *testing.B, withWatch bool, gap time.Duration) {
	b.StopTimer()
	guardHost(b)
	file := writeZones(b, defaultZones)
	mustRun(b, "up", "-c", file)
	v4, _ := iptablesFor(b)
	b.Cleanup(func() {
		// Whatever the churn left: its links, addresses, chain and uplink name.
		if r := runCmd(b, nil, "ip", "link", "show", "wlan9"); r.code == 0 {
			runCmd(b, nil, "ip", "link", "set", "wlan9", "down")
			runCmd(b, nil, "ip", "link", "set", "wlan9", "name", "eth0")
			runCmd(b, nil, "ip", "link", "set", "eth0", "up")
		}
		runCmd(b, nil, "ip", "link", "set", "eth0", "up")
		restoreLabRoutes(b)
		for _, l := range []string{"churndock0", "churnvpn0"} {
			runCmd(b, nil, "ip", "link", "del", l)
		}
		for _, a := range []string{"fd00:50::77/64", "fd00:50::78/64", "192.168.50.77/24", "192.168.50.78/24"} {
			runCmd(b, nil, "ip", "addr", "del", a, "dev", "eth0")
		}
		runCmd(b, nil, v4, "-D", "FORWARD", "-j", "CHURN-DOCKER-USER")
		runCmd(b, nil, v4, "-X", "CHURN-DOCKER-USER")
		if err := settle(); err != nil {
			b.Error(err)
		}
	})

	var w *timedWatch
	if withWatch {
		w = startTimedWatch(b, file)
	}
	hostSink := sink.Listen(b, atHost, sink.Options{UDP: []int{portHost}, TCP: []int{portHost}})
	lanSink := sink.Listen(b, "lab_lan", sink.Options{UDP: []int{portUDP}})
	inetSink := sink.Listen(b, "lab_inet", sink.Options{UDP: []int{portUDP}})
	changes := churnChanges(v4)
	if _, err := exec.LookPath("dockerd"); err == nil {
		// A real dockerd, started after nszone and restarted during the churn.
		var d *dockerd
		changes = slices.Insert(changes, 8,
			churnChange{name: "dockerd started", do: func() { d = startDockerd(b) }},
			churnChange{name: "dockerd restarted", do: func() { d.stop(b); d.start(b) }})
	}
	dur := time.Duration(len(changes)+3) * gap
	tokens := map[string]string{}
	for zone, targets := range churnTargets() {
		tokens[zone] = sender.Token("churn-" + zone)
		startStream(b, "netns:"+zone, tokens[zone], dur, targets...)
	}
	stopExec := make(chan struct{})
	var execMu sync.Mutex
	var execOK, execAll int
	var execErrs []string
	var execWG sync.WaitGroup
	execWG.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopExec:
				return
			default:
			}
			zone := []string{"wan", "lan"}[i%2]
			r := run(b, nil, "exec", zone, "--", "true")
			execMu.Lock()
			execAll++
			if r.code == 0 {
				execOK++
			} else if len(execErrs) < 5 {
				execErrs = append(execErrs, firstLine(r.err))
			}
			execMu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	})

	b.StartTimer()
	time.Sleep(gap)
	// Each change's start and end: an iptables reload is two dozen
	// processes, so watch may write while it is still going on.
	var at, done []time.Time
	for _, c := range changes {
		at = append(at, time.Now())
		for _, cmd := range c.cmds {
			hostCmd(b, false, cmd[0], cmd[1:]...)
		}
		if c.do != nil {
			c.do()
		}
		done = append(done, time.Now())
		time.Sleep(gap)
	}
	time.Sleep(gap)
	b.StopTimer()
	close(stopExec)
	execWG.Wait()
	waitInFlight()

	leaks := hostSink.Conns()
	for _, tok := range tokens {
		leaks += hostSink.Count(tok) + lanSink.Count(tok) + inetSink.Count(tok)
	}
	if leaks > 0 {
		for zone, tok := range tokens {
			b.Logf("zone %s: host %s lan %s inet %s", zone, hostSink.Describe(tok), lanSink.Describe(tok), inetSink.Describe(tok))
		}
	}
	b.ReportMetric(float64(leaks), "leaks")
	b.ReportMetric(100*float64(execOK)/float64(max(execAll, 1)), "exec-%")
	b.Logf("%s: %d leaks; exec %d of %d; failures (first five): %q", b.Name(), leaks, execOK, execAll, execErrs)
	if w == nil {
		return
	}
	// Convergence: from the end of a change to watch's last write for it
	// (0 when that came before the change's last command, which then
	// needed nothing).
	var lat []time.Duration
	var report []string
	for i, t0 := range at {
		end := time.Now()
		if i+1 < len(at) {
			end = at[i+1]
		}
		last, ok := w.lastRepair(t0, end)
		if !ok {
			report = append(report, fmt.Sprintf("%-36s nothing to repair", changes[i].name))
			continue
		}
		d := max(last.Sub(done[i]), 0)
		lat = append(lat, d)
		report = append(report, fmt.Sprintf("%-36s took %s, converged %s after it", changes[i].name,
			done[i].Sub(t0).Round(time.Millisecond), d.Round(time.Millisecond)))
	}
	// Printed whole: the benchmark log keeps ten lines.
	fmt.Printf("%s: each change\n    %s\n", b.Name(), strings.Join(report, "\n    "))
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(percentile(lat, 50).Microseconds())/1000, "conv-p50-ms")
		b.ReportMetric(float64(percentile(lat, 99).Microseconds())/1000, "conv-p99-ms")
	}
	cpu, rss := w.idle(b, 10*time.Second)
	b.ReportMetric(cpu, "idle-cpu-%")
	b.ReportMetric(rss, "rss-MiB")
	if w.failed() != "" {
		b.Logf("watch failed to converge at times:\n%s", w.failed())
	}
}

func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// timedWatch is an nszone watch whose output lines are stamped on arrival.
type timedWatch struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []stampedLine
	done  chan struct{}
}

type stampedLine struct {
	at   time.Time
	text string
}

func startTimedWatch(tb testing.TB, file string) *timedWatch {
	tb.Helper()
	w := &timedWatch{cmd: exec.Command(nszoneBin, "watch", "-c", file), done: make(chan struct{})}
	pr, pw := io.Pipe()
	w.cmd.Stdout, w.cmd.Stderr = pw, pw
	if err := w.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			w.mu.Lock()
			w.lines = append(w.lines, stampedLine{time.Now(), sc.Text()})
			w.mu.Unlock()
		}
	}()
	go func() { w.cmd.Wait(); pw.Close(); close(w.done) }()
	tb.Cleanup(func() {
		w.cmd.Process.Signal(syscall.SIGTERM)
		<-w.done
	})
	deadline := time.Now().Add(20 * time.Second)
	for !w.saw("following the host's changes") {
		if time.Now().After(deadline) {
			tb.Fatalf("nszone watch did not get ready in 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return w
}

func (w *timedWatch) saw(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		if strings.Contains(l.text, s) {
			return true
		}
	}
	return false
}

// lastRepair is the arrival of the last repair line in [from, to).
func (w *timedWatch) lastRepair(from, to time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last time.Time
	for _, l := range w.lines {
		if strings.Contains(l.text, " repaired (") && !l.at.Before(from) && l.at.Before(to) {
			last = l.at
		}
	}
	return last, !last.IsZero()
}

func (w *timedWatch) failed() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, l := range w.lines {
		if strings.Contains(l.text, "watch: converging") {
			out = append(out, l.text)
		}
	}
	return strings.Join(out, "\n")
}

// idle measures watch's CPU share over d while nothing changes, and its
// resident memory at the end.
func (w *timedWatch) idle(tb testing.TB, d time.Duration) (cpuPercent, rssMiB float64) {
	tb.Helper()
	pid := w.cmd.Process.Pid
	ticks := func() float64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			tb.Fatal(err)
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		u, _ := strconv.ParseFloat(f[11], 64) // utime, field 14
		s, _ := strconv.ParseFloat(f[12], 64) // stime, field 15
		return u + s
	}
	t0, c0 := time.Now(), ticks()
	time.Sleep(d)
	cpu := (ticks() - c0) / 100 / time.Since(t0).Seconds() * 100 // USER_HZ is 100 on Linux
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(status), "\n") {
		if kb, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			v, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(kb), " kB"), 64)
			rssMiB = v / 1024
		}
	}
	return cpu, rssMiB
}
