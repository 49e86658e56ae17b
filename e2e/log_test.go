package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nszone/nszone/e2e/internal/sender"
)

const logZones = `version: 1
zones:
  wan:
    allow: [internet]
  lan:
    allow: [lan]
  quiet:
    allow: [internet]
    log: false
`

// logEntry is one object of nszone log -o json.
type logEntry struct {
	Time  time.Time
	Zone  string
	Proto string
	Src   string
	Sport int
	Dst   string
	Dport int
	Class string
	UID   *int
}

func readLog(t testing.TB, args ...string) []logEntry {
	t.Helper()
	r := run(t, nil, append([]string{"log", "-o", "json"}, args...)...)
	var es []logEntry
	if err := json.Unmarshal([]byte(r.out), &es); err != nil || r.code != 0 {
		t.Fatalf("log -o json %v: exit %d %v\n%s%s", args, r.code, err, r.out, r.err)
	}
	return es
}

// findEntry finds the entry of an attempt since the test began: the ring
// keeps what earlier tests' zones of the same names were refused.
func findEntry(es []logEntry, since time.Time, zone, proto string, dst netip.Addr, dport int) *logEntry {
	for i, e := range es {
		if e.Zone == zone && e.Proto == proto && e.Dst == dst.String() && e.Dport == dport && !e.Time.Before(since) {
			return &es[i]
		}
	}
	return nil
}

// TestLog: with nszone watch running, a refused connection attempt of a
// zone appears in nszone log within a second of the kernel logging it,
// with its fields and the class that refused it; an allowed one does not; a
// retransmitting flow is one entry; a zone with log: false logs nothing; a
// flood of refused SYNs is held to the kernel's rate, and the ring to its
// size; log -f collects by itself while no watch runs.
func TestLog(t *testing.T) {
	guardHost(t)
	l := theLab
	file := writeZones(t, logZones)
	mustRun(t, "up", "-c", file)
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	w := startWatch(t, file)

	tok := sender.Token("log")
	hostTCP := netip.AddrPortFrom(l.HostAddr4.Addr(), 2222)
	began := time.Now()
	res := send(t, "wan", tok, 3,
		"tcp:"+netip.AddrPortFrom(l.LANServer4, 80).String(),   // lan: refused
		"tcp:"+netip.AddrPortFrom(l.LANServer6, 80).String(),   // lan, IPv6
		"tcp:"+hostTCP.String(),                                // host
		"udp:"+netip.AddrPortFrom(l.LANServer4, 9999).String(), // 3 datagrams from one socket: one attempt
		"tcp:"+netip.AddrPortFrom(l.InetServer4, 80).String())  // allowed
	if res["tcp:"+netip.AddrPortFrom(l.InetServer4, 80).String()].OK == 0 {
		t.Fatal("positive control: wan does not reach the internet server")
	}
	want := []struct {
		proto string
		dst   netip.Addr
		port  int
		class string
	}{
		{"tcp", l.LANServer4, 80, "lan"}, {"tcp", l.LANServer6, 80, "lan"},
		{"tcp", hostTCP.Addr(), 2222, "host"}, {"udp", l.LANServer4, 9999, "lan"},
	}
	var es []logEntry
	eventually(t, "the refused attempts in nszone log wan", func() bool {
		es = readLog(t, "wan")
		for _, w := range want {
			if findEntry(es, began, "wan", w.proto, w.dst, w.port) == nil {
				return false
			}
		}
		return true
	})
	own, _ := zoneAddrs(t, "wan")
	for _, w := range want {
		e := findEntry(es, began, "wan", w.proto, w.dst, w.port)
		if e == nil {
			t.Errorf("no entry for wan %s to %s:%d; log: %+v", w.proto, w.dst, w.port, es)
			continue
		}
		src, err := netip.ParseAddr(e.Src)
		if err != nil || !slices.Contains(own, src) || e.Sport == 0 || e.Class != w.class ||
			e.Time.Before(began.Add(-time.Second)) || e.Time.After(time.Now()) || e.UID == nil || *e.UID != 0 {
			t.Errorf("entry %+v: want source one of %v with a port, class %s, a time since %v, uid 0", *e, own, w.class, began)
		}
	}
	var udp, inet int
	for _, e := range es {
		if e.Time.Before(began) {
			continue
		}
		if e.Proto == "udp" && e.Dst == l.LANServer4.String() && e.Dport == 9999 {
			udp++
		}
		if e.Dst == l.InetServer4.String() {
			inet++
		}
	}
	if udp != 1 {
		t.Errorf("3 datagrams of one socket make %d entries, want 1", udp)
	}
	if inet != 0 {
		t.Errorf("the allowed connection to the internet server is logged %d times", inet)
	}
	// The journal: watch's output names each attempt.
	if !strings.Contains(w.out.String(), "blocked connection: zone wan tcp") {
		t.Errorf("watch's output has no refused line:\n%s", w.out.String())
	}
	// The table.
	tbl := mustRun(t, "log", "wan")
	if !strings.HasPrefix(tbl, "TIME") || !strings.Contains(tbl, netip.AddrPortFrom(l.LANServer4, 80).String()) {
		t.Errorf("log wan (table):\n%s", tbl)
	}

	// log: false: refused, never logged.
	if res := send(t, "quiet", tok, 1, "tcp:"+netip.AddrPortFrom(l.LANServer4, 80).String()); res["tcp:"+netip.AddrPortFrom(l.LANServer4, 80).String()].OK != 0 {
		t.Error("quiet reached the LAN server")
	}
	if res := send(t, "lan", tok, 1, "tcp:"+netip.AddrPortFrom(l.InetServer4, 80).String()); res["tcp:"+netip.AddrPortFrom(l.InetServer4, 80).String()].OK != 0 {
		t.Error("lan reached the internet server")
	}
	eventually(t, "lan's refused attempt to the internet in the log", func() bool {
		return findEntry(readLog(t, "lan"), began, "lan", "tcp", l.InetServer4, 80) != nil
	})
	if e := findEntry(readLog(t, "lan"), began, "lan", "tcp", l.InetServer4, 80); e != nil && e.Class != "internet" {
		t.Errorf("lan's attempt to the internet server: class %q", e.Class)
	}
	for _, e := range readLog(t) {
		if e.Time.Before(began) {
			continue
		}
		if e.Zone == "quiet" {
			t.Errorf("zone quiet, log: false, logged %+v", e)
		}
		if e.UID == nil {
			t.Errorf("an entry no program's socket sent (the kernel's own): %+v", e)
		}
	}
	// Counters: what each zone sent, let through and refused, in status.
	for _, z := range status(t, "-c", file).Zones {
		c := z.Counters
		if c == nil {
			t.Errorf("status: zone %s has no counters", z.Name)
			continue
		}
		t.Logf("zone %s counters: %+v", z.Name, *c)
		refused, allowed := c.IPv4.Refused.Packets+c.IPv6.Refused.Packets, c.IPv4.Allowed.Packets+c.IPv6.Allowed.Packets
		switch z.Name {
		case "wan":
			// 3 TCP attempts refused at once, 3 datagrams; the internet's connection.
			if refused < 6 || c.IPv6.Refused.Packets < 1 || allowed < 3 || c.IPv4.Refused.Bytes < 6*40 {
				t.Errorf("wan's counters: %+v", *c)
			}
		case "quiet", "lan": // one refused attempt each, logged or not
			if refused < 1 {
				t.Errorf("%s's counters: %+v", z.Name, *c)
			}
		}
	}

	// A flood of refused SYNs from new sockets, 40 ports at once for 3 s:
	// the kernel passes at most its burst and rate.
	before := len(readLog(t, "wan"))
	var targets []string
	for p := 1000; p < 1040; p++ {
		targets = append(targets, "tcp:"+netip.AddrPortFrom(l.LANServer4, uint16(p)).String())
	}
	flood := time.Now()
	fr := runAt(t, "wan", 30*time.Second, []string{sender.Env + "=1"},
		append([]string{senderPath(t), "stream", "-dur", "3s", "-gap", "0", "-token", tok, "-timeout", "200ms"}, targets...)...)
	secs := time.Since(flood).Seconds()
	attempts := 0
	for _, st := range sender.Results(fr.out) {
		attempts += st.Sent + st.Errors
	}
	time.Sleep(300 * time.Millisecond)
	logged := len(readLog(t, "wan")) - before
	limit := 50 + int(20*(secs+1))
	t.Logf("flood of %.1f s, %d attempts: %d entries (the kernel's limit allows %d)", secs, attempts, logged, limit)
	if attempts < 2*limit {
		t.Errorf("the flood made %d attempts only", attempts)
	}
	if logged > limit || logged < 20 {
		t.Errorf("the flood made %d entries, want between 20 and %d", logged, limit)
	}
	var size int64
	for _, name := range []string{"refused.jsonl", "refused.jsonl.1"} {
		if fi, err := os.Stat(filepath.Join("/run/nszone/log", name)); err == nil {
			size += fi.Size()
		}
	}
	if size > 1<<20 {
		t.Errorf("the ring holds %d bytes, more than 1 MiB", size)
	}
	// The counters tell that the log got only part of what was refused.
	for _, z := range status(t, "-c", file, "wan").Zones {
		c := z.Counters
		if c == nil || c.IPv4.Logged.Packets < uint64(logged) || c.IPv4.Logged.Packets*10 > c.IPv4.Refused.Packets {
			t.Errorf("wan's counters after the flood: %+v, want logged a tenth of refused at most", c)
		}
	}

	// Without watch, log -f collects by itself and prints as they come.
	w.stop(t, syscall.SIGTERM)
	f := exec.Command(nszoneBin, "log", "-f", "-o", "json", "lan")
	stdout, err := f.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Process.Signal(syscall.SIGTERM); _ = f.Wait() }()
	lines := make(chan logEntry, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e logEntry
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				lines <- e
			}
		}
		close(lines)
	}()
	time.Sleep(2500 * time.Millisecond) // the collector binds the group
	target := netip.AddrPortFrom(l.InetServer6, 8443)
	send(t, "lan", tok, 1, fmt.Sprintf("tcp:%s", target))
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e, ok := <-lines:
			if !ok {
				t.Fatal("log -f ended")
			}
			if e.Zone == "lan" && e.Dst == l.InetServer6.String() && e.Dport == 8443 {
				if e.Class != "internet" {
					t.Errorf("log -f: %+v, want class internet", e)
				}
				return
			}
		case <-deadline:
			t.Fatal("log -f without watch did not print lan's refused attempt within 5 s")
		}
	}
}
