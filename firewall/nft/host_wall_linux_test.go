package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nszone/nszone/firewall"
)

// hostPolicy is a host wall of every kind of zone, on interfaces nsz-NAME.
func hostPolicy() firewall.Policy {
	p := firewall.Policy{LAN: defaultLAN, IfWildcard: "nsz-+"}
	for i, z := range sampleZones() {
		z.HostIf, z.Uplink = "nsz-"+z.Name, "eth0"
		if i == 0 {
			z.ToHostIfs = []string{"nsz-lan"}
		}
		p.Zones = append(p.Zones, z)
	}
	return p
}

// Every form HostRules produces translates, jumps included, and each zone's
// chains become regular chains of one table per family.
func TestCompileHostRules(t *testing.T) {
	rules := firewall.HostRules(hostPolicy())
	for _, f := range firewall.Families {
		chains, err := compile(hostSpec(f), map[firewall.Family][]firewall.Rule{f: rules[f]})
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var names []string
		for _, c := range chains {
			names = append(names, c.name)
			if (c.hook != nil) != (c.name == "forward" || c.name == "input" || c.name == "output") {
				t.Errorf("%s: chain %s: hook %v", f, c.name, c.hook)
			}
		}
		if got := strings.Join(names[:4], " "); got != "forward input output NSZ-both-host" {
			t.Errorf("%s: chains begin %s", f, got)
		}
	}
	if len(firewall.HostRules(firewall.Policy{})) != 0 {
		t.Error("no zones: want no host rules")
	}
}

// The host wall is written once, then never again; an iptables reload does
// not touch it; outside damage is named and repaired; no zones, no tables.
func TestHostWallKernel(t *testing.T) {
	rootTest(t)
	needNft(t)
	const name = "nfthost"
	ns := newNS(t, name)
	rules := firewall.HostRules(hostPolicy())
	for _, f := range firewall.Families {
		sp, fr := hostSpec(f), map[firewall.Family][]firewall.Rule{f: rules[f]}
		t.Run(f.String(), func(t *testing.T) {
			if changed, _, err := apply(ns.Fd(), sp, fr, quiet); err != nil || !changed {
				t.Fatalf("first apply: changed=%v err=%v", changed, err)
			}
			if changed, _, err := apply(ns.Fd(), sp, fr, quiet); err != nil || changed {
				t.Fatalf("second apply: changed=%v err=%v", changed, err)
			}
			fam := sp.famName
			listed := run(t, name, "nft", "list", "table", fam, Table)
			for _, want := range []string{"hook forward", "hook input", "hook output", "jump NSZ-wan-out", `iifname "nsz-*"`, "chain NSZ-wan-host"} {
				if !strings.Contains(listed, want) {
					t.Errorf("nft list table %s %s lacks %q:\n%s", fam, Table, want, listed)
				}
			}
			bin := "iptables-nft"
			if f == firewall.IPv6 {
				bin = "ip6tables-nft"
			}
			for _, table := range []string{"filter", "nat"} {
				run(t, name, bin, "-t", table, "-F")
			}
			if gaps, err := missing(ns.Fd(), sp, fr); err != nil || len(gaps) != 0 {
				t.Fatalf("after %s -F: gaps %q %v", bin, gaps, err)
			}
			run(t, name, "nft", "flush", "chain", fam, Table, "NSZ-wan-out")
			gaps, err := missing(ns.Fd(), sp, fr)
			if err != nil || len(gaps) != 1 || !strings.Contains(gaps[0], "chain NSZ-wan-out has 0 rules") {
				t.Fatalf("after flushing NSZ-wan-out: gaps %q %v", gaps, err)
			}
			// A check of one zone looks at its chains and the dispatch
			// chains only: wan's damage is wan's, not lan's.
			if gaps, err := missingHost(ns.Fd(), fr, "wan"); err != nil || len(gaps) != 1 || !strings.Contains(gaps[0], "chain NSZ-wan-out has 0 rules") {
				t.Errorf("wan's check after flushing NSZ-wan-out: gaps %q %v", gaps, err)
			}
			if gaps, err := missingHost(ns.Fd(), fr, "lan"); err != nil || len(gaps) != 0 {
				t.Errorf("lan's check after flushing NSZ-wan-out: gaps %q %v", gaps, err)
			}
			run(t, name, "nft", "delete", "rule", fam, Table, "forward", "handle", forwardHandle(t, name, fam))
			if gaps, err := missingHost(ns.Fd(), fr, "lan"); err != nil || len(gaps) == 0 {
				t.Errorf("lan's check with a dispatch rule deleted: gaps %q %v", gaps, err)
			}
			// One read checked for many zones (compiled once from the
			// second on) answers as a read for each zone alone.
			h, err := readHost(ns.Fd(), fr)
			if err != nil {
				t.Fatal(err)
			}
			for _, zone := range []string{"wan", "lan", "wan", "lan", ""} {
				got, err := h.Missing(zone)
				alone, aerr := missingHost(ns.Fd(), fr, zone)
				if err != nil || aerr != nil || !slices.Equal(got, alone) {
					t.Errorf("zone %q from a shared read: %q %v; alone: %q %v", zone, got, err, alone, aerr)
				}
			}
			if changed, _, err := apply(ns.Fd(), sp, fr, quiet); err != nil || !changed {
				t.Fatalf("repair: changed=%v err=%v", changed, err)
			}
			if gaps, err := missing(ns.Fd(), sp, fr); err != nil || len(gaps) != 0 {
				t.Fatalf("after the repair: gaps %q %v", gaps, err)
			}
			if changed, err := remove(ns.Fd(), sp, quiet); err != nil || !changed {
				t.Fatalf("remove: changed=%v err=%v", changed, err)
			}
			if out := run(t, name, "nft", "list", "tables"); strings.Contains(out, fmt.Sprintf("table %s %s\n", fam, Table)) {
				t.Errorf("after remove:\n%s", out)
			}
		})
	}
}

// forwardHandle is the handle of the first rule of chain forward.
func forwardHandle(t *testing.T, ns, fam string) string {
	t.Helper()
	out := run(t, ns, "nft", "-a", "list", "chain", fam, Table, "forward")
	for _, l := range strings.Split(out, "\n") {
		if _, h, ok := strings.Cut(l, "# handle "); ok && strings.Contains(l, "nszone") {
			return strings.TrimSpace(h)
		}
	}
	t.Fatalf("no rule in chain forward:\n%s", out)
	return ""
}

// A write never carries a jump to a chain it does not make; a check of one
// zone compiles only its chains and the dispatch ones.
func TestHostJumpsAndScope(t *testing.T) {
	rules := firewall.HostRules(hostPolicy())[firewall.IPv4]
	sp := hostSpec(firewall.IPv4)
	var dropped []firewall.Rule
	for _, r := range rules {
		if r.Chain != "NSZ-lan-in" {
			dropped = append(dropped, r)
		}
	}
	want, err := compile(sp, map[firewall.Family][]firewall.Rule{firewall.IPv4: dropped})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkJumps(sp, want); err == nil || !strings.Contains(err.Error(), "NSZ-lan-in") {
		t.Errorf("a jump to a chain with no rules: %v", err)
	}
	sp.only = "wan"
	want, err = compile(sp, map[firewall.Family][]firewall.Rule{firewall.IPv4: rules})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range want {
		if strings.HasPrefix(c.name, "NSZ-") && !strings.HasPrefix(c.name, "NSZ-wan-") {
			t.Errorf("wan's check compiled %s", c.name)
		}
	}
	if len(want) != 3+4 {
		t.Errorf("wan's check compiled %d chains, want the 3 dispatch chains and wan's 4", len(want))
	}
}

// A host wall of 200 zones is one batch of some megabytes: the socket must
// take it and its answers (up of ten zones once failed with ENOBUFS, of
// fifteen with EMSGSIZE).
func TestHostWallMany(t *testing.T) {
	rootTest(t)
	needNft(t)
	const name = "nftmany"
	ns := newNS(t, name)
	p := firewall.Policy{IfWildcard: "nsz-+"}
	for i := range 200 {
		z := fmt.Sprintf("z%03d", i)
		p.Zones = append(p.Zones, firewall.Zone{Name: z, HostIf: "nsz-" + z, Uplink: "eth0", IPv6: true, Internet: true,
			Net4: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250, byte(i * 4 / 256), byte(i * 4 % 256)}), 30),
			Net6: netip.MustParsePrefix(fmt.Sprintf("fd6e:737a:7a6f:%x::/64", i))})
	}
	rules := firewall.HostRules(p)
	for _, f := range firewall.Families {
		sp, fr := hostSpec(f), map[firewall.Family][]firewall.Rule{f: rules[f]}
		if changed, _, err := apply(ns.Fd(), sp, fr, quiet); err != nil || !changed {
			t.Fatalf("%s: apply: changed=%v err=%v", f, changed, err)
		}
		if gaps, err := missing(ns.Fd(), sp, fr); err != nil || len(gaps) != 0 {
			t.Fatalf("%s: after apply: %v %v", f, gaps, err)
		}
	}
}
