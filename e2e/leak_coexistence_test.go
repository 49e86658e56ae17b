package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/nszone/nszone/e2e/internal/sender"
	"github.com/nszone/nszone/e2e/internal/sink"
	"github.com/nszone/nszone/e2e/internal/tap"
	"github.com/nszone/nszone/lab"
)

type foreignFirewall struct {
	name   string
	apply  func(t *testing.T, v4, v6 string)
	marker string // a rule of its own that must survive nszone's up
}

func applyRules(t testing.TB, bin string, rules ...string) {
	t.Helper()
	for _, r := range rules {
		hostCmd(t, true, bin, strings.Fields(r)...)
	}
}

var foreignFirewalls = []foreignFirewall{
	{"docker", func(t *testing.T, v4, v6 string) {
		for _, f := range []struct{ bin, net, lo string }{{v4, "172.17.0.0/16", "127.0.0.0/8"}, {v6, "fd00:d0c::/64", "::1/128"}} {
			applyRules(t, f.bin,
				"-N DOCKER", "-N DOCKER-ISOLATION-STAGE-1", "-N DOCKER-ISOLATION-STAGE-2", "-N DOCKER-USER",
				"-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
				"-A DOCKER-ISOLATION-STAGE-1 -j RETURN",
				"-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
				"-A DOCKER-ISOLATION-STAGE-2 -j RETURN",
				"-A DOCKER-USER -j RETURN",
				"-P FORWARD DROP",
				// dockerd restarting after nszone: its jumps go on top.
				"-I FORWARD 1 -j DOCKER-USER",
				"-I FORWARD 2 -j DOCKER-ISOLATION-STAGE-1",
				"-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
				"-A FORWARD -o docker0 -j DOCKER",
				"-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
				"-A FORWARD -i docker0 -o docker0 -j ACCEPT",
				"-t nat -N DOCKER",
				"-t nat -I PREROUTING 1 -m addrtype --dst-type LOCAL -j DOCKER",
				"-t nat -I OUTPUT 1 ! -d "+f.lo+" -m addrtype --dst-type LOCAL -j DOCKER",
				"-t nat -I POSTROUTING 1 -s "+f.net+" ! -o docker0 -j MASQUERADE",
				"-t nat -A DOCKER -i docker0 -j RETURN",
			)
		}
	}, "-A FORWARD -j DOCKER-USER"},
	{"ufw", func(t *testing.T, v4, v6 string) {
		for _, f := range []struct{ bin, icmp, mdns, ssdp string }{
			{v4, "-p icmp --icmp-type echo-request", "224.0.0.251/32", "239.255.255.250/32"},
			{v6, "-p ipv6-icmp", "ff02::fb/128", "ff02::c/128"},
		} {
			var rules []string
			for _, c := range []string{"before", "after", "user", "reject"} {
				for _, h := range []string{"input", "output", "forward"} {
					rules = append(rules, "-N ufw-"+c+"-"+h)
				}
			}
			rules = append(rules,
				"-P INPUT DROP", "-P FORWARD DROP",
				"-A ufw-before-input -i lo -j ACCEPT",
				"-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
				"-A ufw-before-input -m conntrack --ctstate INVALID -j DROP",
				"-A ufw-before-input "+f.icmp+" -j ACCEPT",
				"-A ufw-before-input -d "+f.mdns+" -p udp --dport 5353 -j ACCEPT",
				"-A ufw-before-input -d "+f.ssdp+" -p udp --dport 1900 -j ACCEPT",
				"-A ufw-before-input -j ufw-user-input",
				"-A ufw-user-input -p tcp --dport 22 -j ACCEPT", // ufw allow ssh
				fmt.Sprintf("-A ufw-user-input -p udp --dport %d -j ACCEPT", portHost),
				"-A ufw-before-forward -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
				"-A ufw-before-forward "+f.icmp+" -j ACCEPT",
				"-A ufw-before-forward -j ufw-user-forward",
				"-A ufw-before-output -o lo -j ACCEPT",
				"-A ufw-before-output -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
				// ufw reloading after nszone: its jumps go on top.
				"-I INPUT 1 -j ufw-before-input", "-I INPUT 2 -j ufw-after-input", "-I INPUT 3 -j ufw-reject-input",
				"-I FORWARD 1 -j ufw-before-forward", "-I FORWARD 2 -j ufw-after-forward", "-I FORWARD 3 -j ufw-reject-forward",
				"-I OUTPUT 1 -j ufw-before-output", "-I OUTPUT 2 -j ufw-after-output",
			)
			applyRules(t, f.bin, rules...)
		}
	}, "-A INPUT -j ufw-before-input"},
	{"firewalld", func(t *testing.T, v4, v6 string) {
		// A reload: everything flushed and deleted (nszone's chains too),
		// then firewalld's own chains.
		if strings.Contains(v4, "nft") {
			hostCmd(t, true, "nft", "flush", "ruleset")
		}
		for _, bin := range []string{v4, v6} {
			for table := range iptTables {
				hostCmd(t, false, bin, "-t", table, "-F")
				hostCmd(t, false, bin, "-t", table, "-X")
			}
		}
		for _, f := range []struct{ bin, icmp, reject string }{
			{v4, "icmp", "icmp-host-prohibited"},
			{v6, "ipv6-icmp", "icmp6-adm-prohibited"},
		} {
			applyRules(t, f.bin,
				"-N INPUT_direct", "-N INPUT_ZONES", "-N IN_public", "-N IN_public_allow",
				"-N FORWARD_direct", "-N FORWARD_IN_ZONES", "-N FORWARD_OUT_ZONES", "-N FWDI_public", "-N FWDO_public", "-N OUTPUT_direct",
				"-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT",
				"-A INPUT -i lo -j ACCEPT",
				"-A INPUT -j INPUT_direct",
				"-A INPUT -j INPUT_ZONES",
				"-A INPUT -m conntrack --ctstate INVALID -j DROP",
				"-A INPUT -j REJECT --reject-with "+f.reject,
				"-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT",
				"-A FORWARD -i lo -j ACCEPT",
				"-A FORWARD -j FORWARD_direct",
				"-A FORWARD -j FORWARD_IN_ZONES",
				"-A FORWARD -j FORWARD_OUT_ZONES",
				"-A FORWARD -m conntrack --ctstate INVALID -j DROP",
				"-A FORWARD -j REJECT --reject-with "+f.reject,
				"-A OUTPUT -o lo -j ACCEPT",
				"-A OUTPUT -j OUTPUT_direct",
				"-A INPUT_ZONES -g IN_public",
				"-A IN_public -j IN_public_allow",
				"-A IN_public -p "+f.icmp+" -j ACCEPT",
				"-A IN_public_allow -p tcp --dport 22 -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT",
				fmt.Sprintf("-A IN_public_allow -p udp --dport %d -j ACCEPT", portHost),
				"-A FORWARD_IN_ZONES -g FWDI_public",
				"-A FORWARD_OUT_ZONES -g FWDO_public",
				"-A FWDI_public -p "+f.icmp+" -j ACCEPT",
				"-t nat -N POSTROUTING_ZONES",
				"-t nat -A POSTROUTING -j POSTROUTING_ZONES",
			)
		}
	}, "-A INPUT -j INPUT_ZONES"},
	{"accept-first", func(t *testing.T, v4, v6 string) {
		// An admin's (or a script's) blanket accepts on top.
		for _, bin := range []string{v4, v6} {
			applyRules(t, bin, "-I INPUT 1 -j ACCEPT", "-I FORWARD 1 -j ACCEPT", "-I OUTPUT 1 -j ACCEPT")
		}
	}, "-A FORWARD -j ACCEPT"},
}

// TestLeakCoexistence: Docker, ufw and firewalld (simulated) load their
// rules after nszone. Until the next up the zones' policies still hold; up
// puts nszone's jumps first again, leaves the others' rules alone, and the
// zones work as their policies say.
func TestLeakCoexistence(t *testing.T) {
	needSandbox(t)
	l := theLab
	for _, fw := range foreignFirewalls {
		t.Run(fw.name, func(t *testing.T) {
			guardHost(t)
			file := writeZones(t, defaultZones)
			mustRun(t, "up", "-c", file)
			v4, v6 := iptablesFor(t)
			lanSink := sink.Listen(t, lab.LANNS, sink.Options{UDP: []int{portUDP}})
			inetSink := sink.Listen(t, lab.InetNS, sink.Options{UDP: []int{portUDP}})
			hostSink := sink.Listen(t, atHost, sink.Options{UDP: []int{portHost}, TCP: []int{22, portHost}})
			lanTap := tap.Start(t, lab.LANNS, "eth0")
			_, wanGW := zoneAddrs(t, "wan")

			fw.apply(t, v4, v6)

			policyHolds := func(phase string) {
				t.Helper()
				mark := lanTap.Mark()
				conns := hostSink.Conns()
				expectUnreached(t, phase, "netns:wan", pageURL(l.LANServer4, 80), pageURL(l.LANServer6, 80))
				tokWan := sender.Token("coex-wan")
				targets := udpTargets(portUDP, l.LANServer4, l.LANServer6)
				for _, a := range append([]netip.Addr{l.HostAddr4.Addr(), l.HostAddr6.Addr()}, wanGW...) {
					targets = append(targets, "tcp:"+netip.AddrPortFrom(a, 22).String(), "udp:"+netip.AddrPortFrom(a, portHost).String())
				}
				send(t, "netns:wan", tokWan, 5, targets...)
				tokLan := sender.Token("coex-lan")
				send(t, "netns:lan", tokLan, 5, udpTargets(portUDP, l.InetServer4, l.InetServer6)...)
				tokHost := sender.Token("coex-host")
				send(t, atHost, tokHost, 3, udpTargets(portUDP, l.LANServer4, l.LANServer6)...)
				waitInFlight()
				if n := lanSink.Count(tokWan); n > 0 {
					t.Errorf("%s: %d datagrams from wan arrived at the LAN server", phase, n)
				}
				for _, a := range []netip.Addr{l.LANServer4, l.LANServer6} {
					if n := lanTap.Count(mark, tap.SYNTo(a, 80)); n > 0 {
						t.Errorf("%s: %d SYNs from wan reached %s:80", phase, n, a)
					}
				}
				if n := hostSink.Count(tokWan); n > 0 || hostSink.Conns() > conns {
					t.Errorf("%s: wan reached the host's services: %d datagrams, %d connections", phase, n, hostSink.Conns()-conns)
				}
				if n := inetSink.Count(tokLan); n > 0 {
					t.Errorf("%s: %d datagrams from zone lan arrived on the internet", phase, n)
				}
				if lanSink.Count(tokHost) == 0 {
					t.Errorf("%s (positive control): the host's datagrams do not reach the LAN server", phase)
				}
			}
			policyHolds("after " + fw.name + ", before up")

			out := mustRun(t, "up", "-c", file)
			t.Logf("up after %s:\n%s", fw.name, out)
			for _, bin := range []string{v4, v6} {
				for _, h := range []struct{ table, chain, target string }{
					{"filter", "FORWARD", "NSZ-FORWARD"}, {"filter", "INPUT", "NSZ-INPUT"},
					{"filter", "OUTPUT", "NSZ-OUTPUT"}, {"nat", "POSTROUTING", "NSZ-POSTROUTING"},
				} {
					r := hostCmd(t, true, bin, "-t", h.table, "-S", h.chain)
					first := ""
					for _, line := range strings.Split(r.out, "\n") {
						if strings.HasPrefix(line, "-A ") {
							first = line
							break
						}
					}
					if !strings.Contains(first, "-j "+h.target) {
						t.Errorf("after %s and up: %s -t %s: the first rule of %s is %q, want nszone's jump to %s\n%s", fw.name, bin, h.table, h.chain, first, h.target, r.out)
					}
				}
				if r := hostCmd(t, true, bin+"-save"); !strings.Contains(r.out, fw.marker) {
					t.Errorf("after up, %s's rule %q is gone from %s:\n%s", fw.name, fw.marker, bin, r.out)
				}
			}
			// Never both variants.
			other := []string{"iptables-legacy", "ip6tables-legacy"}
			if strings.Contains(v4, "legacy") {
				other = []string{"iptables-nft", "ip6tables-nft"}
			}
			for _, bin := range other {
				if r := hostCmd(t, true, bin+"-save"); strings.Contains(r.out, "NSZ-") {
					t.Errorf("nszone uses %s, yet %s holds its chains:\n%s", v4, bin, r.out)
				}
			}
			for z, s := range zoneStates(t) {
				if s != "up" {
					t.Errorf("after %s and up, zone %s is %q", fw.name, z, s)
				}
			}
			expectReached(t, "after "+fw.name+" and up", "wan", pageURL(l.InetServer4, 80), pageURL(l.InetServer6, 80))
			expectReached(t, "after "+fw.name+" and up", "lan", pageURL(l.LANServer4, 80), pageURL(l.LANServer6, 80))
			policyHolds("after " + fw.name + " and up")
			if out := mustRun(t, "up", "-c", file); !strings.Contains(out, "nothing to change") {
				t.Errorf("a second up after %s changed something:\n%s", fw.name, out)
			}
		})
	}
}
