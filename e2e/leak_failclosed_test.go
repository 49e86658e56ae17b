package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nszone/nszone/e2e/internal/sender"
	"github.com/nszone/nszone/e2e/internal/sink"
	"github.com/nszone/nszone/e2e/internal/tap"
	"github.com/nszone/nszone/lab"
	"github.com/nszone/nszone/zones"
)

// TestLeakFailClosed: a prober in wan sends without pause to targets that
// every policy of the test forbids, while up narrows and widens wan's
// policy, down and up remove and remake it, and faults stop up and down
// half-way. Not one forbidden packet may arrive. Positive control: the
// prober's packets to a permitted target arrive all along.
func TestLeakFailClosed(t *testing.T) {
	guardHost(t)
	l := theLab
	files := []string{
		writeZones(t, "version: 1\nzones:\n  wan:\n    allow: [internet]\n"),
		writeZones(t, "version: 1\nzones:\n  wan:\n    allow: [internet, \"192.168.50.10:80/tcp\"]\n"),
		writeZones(t, "version: 1\nzones:\n  wan:\n    allow: [internet, host]\n"),
	}
	mustRun(t, "up", "-c", files[0])
	lanSink := sink.Listen(t, lab.LANNS, sink.Options{UDP: []int{portUDP}, TCP: []int{portTCP}})
	lanTap := tap.Start(t, lab.LANNS, "eth0")
	inetSink := sink.Listen(t, lab.InetNS, sink.Options{UDP: []int{portUDP}, TCP: []int{portTCP}})
	inetTap := tap.Start(t, lab.InetNS, "eth0")

	tok := sender.Token("prober")
	forbidden := []string{
		"udp:" + netip.AddrPortFrom(l.LANServer4, portUDP).String(),
		"udp:" + netip.AddrPortFrom(l.LANServer6, portUDP).String(),
		"tcp:" + netip.AddrPortFrom(l.LANServer4, portTCP).String(),
		"tcp:" + netip.AddrPortFrom(l.LANServer6, portTCP).String(),
		"icmp:" + l.LANServer4.String(),
		"icmp:" + l.LANServer6.String(),
	}
	permitted := []string{
		"udp:" + netip.AddrPortFrom(l.InetServer4, portUDP).String(),
		"udp:" + netip.AddrPortFrom(l.InetServer6, portUDP).String(),
		"tcp:" + netip.AddrPortFrom(l.InetServer4, portTCP).String(),
		"icmp:" + l.InetServer4.String(),
	}
	targets := append(slices.Clone(forbidden), permitted...)
	var probers []*stream
	prober := func() {
		t.Helper()
		if len(probers) > 0 && probers[len(probers)-1].alive("wan") {
			return
		}
		if len(probers) > 0 {
			probers[len(probers)-1].stop()
		}
		if _, err := os.Stat("/run/netns/wan"); err != nil {
			return // wan is not there: nothing to probe from
		}
		// ip netns exec: a program in the zone, whatever state it is in.
		s := startStream(t, "netns:wan", tok, 2*time.Minute, targets...)
		probers = append(probers, s)
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(s.out.String(), "STREAMING") && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	prober()

	var steps []string
	var grew, stepsUp int
	step := func(name string, env []string, args ...string) {
		t.Helper()
		before := inetSink.Count(tok)
		r := run(t, env, args...)
		if len(env) == 0 && r.code != 0 {
			t.Fatalf("step %s: nszone %v: exit %d %s%s", name, args, r.code, r.out, r.err)
		}
		prober()
		mid := inetSink.Count(tok)
		waited := time.Now()
		wantUp := len(env) == 0 && args[0] == "up"
		for {
			if !wantUp {
				time.Sleep(50 * time.Millisecond)
				break
			}
			time.Sleep(50 * time.Millisecond)
			if inetSink.Count(tok) > mid+5 || time.Since(waited) > 3*time.Second {
				break
			}
		}
		after := inetSink.Count(tok)
		steps = append(steps, fmt.Sprintf("%s (exit %d): +%d during, +%d in %v after", name, r.code, mid-before, after-mid, time.Since(waited).Round(10*time.Millisecond)))
		if wantUp {
			stepsUp++
			if after > mid {
				grew++
			} else {
				t.Errorf("positive control: after step %s (wan up), none of the prober's datagrams reached the internet in 3s", name)
			}
		}
	}
	for i := 0; i < 20; i++ {
		f := files[i%len(files)]
		if i%4 == 3 {
			step(fmt.Sprintf("%d down wan", i), nil, "down", "-c", f, "wan")
			step(fmt.Sprintf("%d up wan", i), nil, "up", "-c", f, "wan")
			continue
		}
		step(fmt.Sprintf("%d up file %d", i, i%len(files)), nil, "up", "-c", f)
	}

	// Faults half-way through up and down (NSZONE_FAULT), when nszone has them.
	probe := run(t, []string{zones.EnvFault + "=up-records:error"}, "up", "-c", files[1])
	if probe.code == 0 {
		t.Logf("%s has no effect in this nszone: the fault part is skipped", zones.EnvFault)
	} else {
		mustRun(t, "up", "-c", files[0])
		prober()
		for i, point := range zones.FaultPoints {
			for _, mode := range []string{"", ":error"} {
				f := files[(i+1)%len(files)]
				if strings.HasPrefix(point, "down-") {
					step("fault "+point+mode, []string{zones.EnvFault + "=" + point + mode}, "down", "-c", f, "wan")
				} else {
					step("fault "+point+mode, []string{zones.EnvFault + "=" + point + mode}, "up", "-c", f)
				}
				step("converge after "+point+mode, nil, "up", "-c", f)
			}
		}
	}

	var sent []map[string]sender.Stat
	for _, p := range probers {
		sent = append(sent, p.stop())
	}
	waitInFlight()
	t.Logf("%d probers; steps:\n  %s", len(probers), strings.Join(steps, "\n  "))

	toLAN := func(p tap.Packet) bool { return p.Dst == l.LANServer4 || p.Dst == l.LANServer6 }
	if n := lanSink.Count(tok); n > 0 {
		t.Errorf("%d forbidden datagrams arrived at the LAN server:\n%s", n, lanSink.Describe(tok))
	}
	if n := lanSink.ConnsFrom(portTCP); n > 0 {
		t.Errorf("%d forbidden connections arrived at the LAN server", n)
	}
	forbiddenPkt := func(p tap.Packet) bool {
		return toLAN(p) && (tap.WithToken(tok)(p) || p.Proto == 6 && p.SYN && !p.ACK && p.DPort == portTCP)
	}
	if n := lanTap.Count(0, forbiddenPkt); n > 0 {
		t.Errorf("%d forbidden packets reached the LAN:\n%s", n, lanTap.Describe(0, forbiddenPkt))
	}
	// Positive controls.
	if inetSink.Count(tok) == 0 || inetSink.ConnsFrom(portTCP) == 0 {
		t.Errorf("positive control: the prober's permitted datagrams (%d) or connections (%d) never arrived", inetSink.Count(tok), inetSink.ConnsFrom(portTCP))
	}
	echo := func(p tap.Packet) bool { return p.Proto == 1 && p.ICMPType == 8 && tap.WithToken(tok)(p) }
	if inetTap.Count(0, echo) == 0 {
		t.Errorf("positive control: the prober's permitted pings never arrived")
	}
	total := 0
	for _, s := range sent {
		for tg, st := range s {
			if slices.Contains(forbidden, tg) {
				total += st.Sent
			}
		}
	}
	t.Logf("the probers tried %d forbidden sends; %d/%d up steps saw permitted traffic arrive", total, grew, stepsUp)
	if total < 1000 {
		t.Errorf("positive control: only %d forbidden sends were tried", total)
	}
}
