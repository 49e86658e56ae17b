package nft

import (
	"fmt"
	"os/exec"
	"slices"
	"testing"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/veth"
)

// The inner wall's cost per zone, against the iptables inner wall it
// replaces (iptables-save and iptables-restore run inside the zone):
//
//	go test -run '^$' -bench . -benchtime 200x ./firewall/nft
//
// Fresh: the first apply in a new namespace (its creation is not timed).
// Unchanged: an apply with nothing to do. Missing: the check of status and exec.
// HostAddr: an apply for a host address added or removed.

// benchRules is a zone of every kind of term, both families.
func benchRules(zone string) map[firewall.Family][]firewall.Rule {
	return firewall.InnerRules(wideZone(zone), defaultLAN)
}

// fresh runs apply b.N times, each in a namespace of its own, timing only apply.
func fresh(b *testing.B, apply func(zone string) error) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		zone := fmt.Sprintf("nftb%d", i)
		if _, err := netns.CreateNamed(zone, veth.SetUpNamespace("", true), nil); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		err := apply(zone)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if err := netns.DeleteNamed(zone, nil); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func BenchmarkApply(b *testing.B) {
	rootTest(b)
	fresh(b, func(zone string) error {
		// Timed as zones applies it: the namespace opened by name first.
		ns, err := netns.OpenNamed(zone)
		if err != nil {
			return err
		}
		defer ns.Close()
		changed, err := Apply(ns, benchRules(zone), quiet)
		if err == nil && !changed {
			err = fmt.Errorf("zone %s: fresh apply changed nothing", zone)
		}
		return err
	})
}

func BenchmarkApplyUnchanged(b *testing.B) {
	rootTest(b)
	const zone = "nftbench"
	ns := newNS(b, zone)
	rules := benchRules(zone)
	if _, err := Apply(ns, rules, quiet); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if changed, err := Apply(ns, benchRules(zone), quiet); err != nil || changed {
			b.Fatalf("changed=%v err=%v", changed, err)
		}
	}
}

func BenchmarkMissing(b *testing.B) {
	rootTest(b)
	const zone = "nftbench"
	ns := newNS(b, zone)
	rules := benchRules(zone)
	if _, err := Apply(ns, rules, quiet); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if gaps, err := Missing(ns, benchRules(zone)); err != nil || len(gaps) != 0 {
			b.Fatalf("gaps=%q err=%v", gaps, err)
		}
	}
}

// iptablesModes runs one sub-benchmark per installed iptables variant, with
// the inner backend zones.NewManager gives: the commands started in the zone.
func iptablesModes(b *testing.B, fn func(b *testing.B, backend func(zone string) firewall.Backend)) {
	for _, mode := range []string{"nft", "legacy"} {
		b.Run(mode, func(b *testing.B) {
			if _, err := exec.LookPath("iptables-" + mode + "-restore"); err != nil {
				b.Skipf("iptables-%s not installed", mode)
			}
			fn(b, func(zone string) firewall.Backend {
				return &firewall.IPTables{Mode: mode, Start: func(c *exec.Cmd) error { return netns.StartIn(zone, c) }}
			})
		})
	}
}

func BenchmarkIPTablesApply(b *testing.B) {
	rootTest(b)
	iptablesModes(b, func(b *testing.B, backend func(string) firewall.Backend) {
		fresh(b, func(zone string) error {
			changed, err := firewall.Apply(backend(zone), firewall.BuildInner(wideZone(zone), defaultLAN), firewall.InnerTables, quiet)
			if err == nil && !changed {
				err = fmt.Errorf("zone %s: fresh apply changed nothing", zone)
			}
			return err
		})
	})
}

func BenchmarkIPTablesApplyUnchanged(b *testing.B) {
	rootTest(b)
	iptablesModes(b, func(b *testing.B, backend func(string) firewall.Backend) {
		const zone = "nftbench"
		newNS(b, zone)
		want := firewall.BuildInner(wideZone(zone), defaultLAN)
		if _, err := firewall.Apply(backend(zone), want, firewall.InnerTables, quiet); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			want := firewall.BuildInner(wideZone(zone), defaultLAN)
			if changed, err := firewall.Apply(backend(zone), want, firewall.InnerTables, quiet); err != nil || changed {
				b.Fatalf("changed=%v err=%v", changed, err)
			}
		}
	})
}

// As zones' innerMissing does it: read both families, compare the text.
func BenchmarkIPTablesMissing(b *testing.B) {
	rootTest(b)
	iptablesModes(b, func(b *testing.B, backend func(string) firewall.Backend) {
		const zone = "nftbench"
		newNS(b, zone)
		want := firewall.BuildInner(wideZone(zone), defaultLAN)
		if _, err := firewall.Apply(backend(zone), want, firewall.InnerTables, quiet); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			cur, err := firewall.Current(backend(zone), firewall.InnerTables)
			if err != nil {
				b.Fatal(err)
			}
			want := firewall.BuildInner(wideZone(zone), defaultLAN)
			for _, k := range want.Keys() {
				if c := cur[k]; c == nil || (firewall.Ruleset{k: c}).String() != (firewall.Ruleset{k: want[k]}).String() {
					b.Fatalf("%s differs", k)
				}
			}
		}
	})
}

// BenchmarkCompile is the part of each call that needs no kernel: the
// translation of a zone's rules and their tags.
func BenchmarkCompile(b *testing.B) {
	rules := benchRules("nftbench")
	for b.Loop() {
		if _, err := compile(innerSpec, rules); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyHostAddr is watch's most common repair: a host address
// added or removed, and each zone's wall rewritten for it, one zone after
// the other.
func BenchmarkApplyHostAddr(b *testing.B) {
	rootTest(b)
	const zones = 10
	var nss []*netns.Handle
	z := wideZone("nftbench")
	for i := range zones {
		ns := newNS(b, fmt.Sprintf("nftbench%d", i))
		if _, err := Apply(ns, firewall.InnerRules(z, defaultLAN), quiet); err != nil {
			b.Fatal(err)
		}
		nss = append(nss, ns)
	}
	extra := addrs("198.51.100.7", "2001:db8:ff::7")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w, round := z, i/zones
		if round%2 == 0 {
			w.HostAddrs = append(slices.Clone(z.HostAddrs), extra[round/2%2])
		}
		if changed, err := Apply(nss[i%zones], firewall.InnerRules(w, defaultLAN), quiet); err != nil || !changed {
			b.Fatalf("changed=%v err=%v", changed, err)
		}
	}
}
