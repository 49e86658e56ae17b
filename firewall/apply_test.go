package firewall_test

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/firewall/firewalltest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestApplyIsIdempotentAndRemovable(t *testing.T) {
	fake := firewalltest.NewFake()
	want := firewall.Build(firewall.SamplePolicy())
	changed, err := firewall.Apply(fake, want, firewall.Tables, quiet)
	if err != nil || !changed {
		t.Fatalf("first apply: changed=%v err=%v", changed, err)
	}
	writes := fake.Writes
	changed, err = firewall.Apply(fake, want, firewall.Tables, quiet)
	if err != nil || changed || fake.Writes != writes {
		t.Fatalf("second apply: changed=%v err=%v writes %d->%d", changed, err, writes, fake.Writes)
	}
	cur, err := firewall.Current(fake, firewall.Tables)
	if err != nil {
		t.Fatal(err)
	}
	if cur.String() != want.String() {
		t.Fatalf("kernel state differs from the desired one:\n%s\nwant:\n%s", cur, want)
	}
	if _, err := firewall.Apply(fake, firewall.Build(firewall.Policy{}), firewall.Tables, quiet); err != nil {
		t.Fatalf("removing: %v", err)
	}
	for _, k := range firewall.Tables {
		if cs := fake.Chains(k.Family, k.Table); len(cs) != 0 {
			t.Errorf("%s: chains left after removal: %v", k, cs)
		}
		out, _ := fake.Save(k.Family, []string{k.Table})
		if strings.Contains(out, firewall.Prefix) {
			t.Errorf("%s: rules left after removal:\n%s", k, out)
		}
	}
}

func TestApplyRewritesOnlyChangedChains(t *testing.T) {
	fake := firewalltest.NewFake()
	p := firewall.SamplePolicy()
	if _, err := firewall.Apply(fake, firewall.Build(p), firewall.Tables, quiet); err != nil {
		t.Fatal(err)
	}
	p.Zones[0].Internet = false // narrow wan
	p.Zones = p.Zones[:3]       // drop web
	scripts, err := firewall.Scripts(fake, firewall.Build(p), firewall.Tables)
	if err != nil {
		t.Fatal(err)
	}
	sc := scripts[firewall.Key{Family: firewall.IPv4, Table: "filter"}]
	for _, want := range []string{":NSZ-wan-out - [0:0]", "-X NSZ-web-out", ":NSZ-FORWARD - [0:0]"} {
		if !strings.Contains(sc, want) {
			t.Errorf("script lacks %q:\n%s", want, sc)
		}
	}
	if strings.Contains(sc, ":NSZ-lan-out") {
		t.Errorf("unchanged chain NSZ-lan-out rewritten:\n%s", sc)
	}
	if _, err := firewall.Apply(fake, firewall.Build(p), firewall.Tables, quiet); err != nil {
		t.Fatal(err)
	}
	cur, _ := firewall.Current(fake, firewall.Tables)
	if cur.String() != firewall.Build(p).String() {
		t.Fatalf("after narrowing:\n%s\nwant:\n%s", cur, firewall.Build(p))
	}
}

// Another tool (Docker) inserting its jump above ours gets ours moved back first.
func TestApplyPutsHooksFirst(t *testing.T) {
	fake := firewalltest.NewFake()
	want := firewall.Build(firewall.SamplePolicy())
	if _, err := firewall.Apply(fake, want, firewall.Tables, quiet); err != nil {
		t.Fatal(err)
	}
	fake.Add(firewall.IPv4, "filter", "DOCKER-USER", "-j RETURN")
	out, _ := fake.Save(firewall.IPv4, []string{"filter"})
	fake.Restore(firewall.IPv4, "*filter\n-I FORWARD 1 -j DOCKER-USER\nCOMMIT\n")
	if out2, _ := fake.Save(firewall.IPv4, []string{"filter"}); out2 == out {
		t.Fatal("setup: docker jump not inserted")
	}
	changed, err := firewall.Apply(fake, want, firewall.Tables, quiet)
	if err != nil || !changed {
		t.Fatalf("apply: changed=%v err=%v", changed, err)
	}
	out, _ = fake.Save(firewall.IPv4, []string{"filter"})
	var fwd []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A FORWARD ") {
			fwd = append(fwd, l)
		}
	}
	if len(fwd) != 2 || fwd[0] != firewall.HookRule("FORWARD", "NSZ-FORWARD") || fwd[1] != "-A FORWARD -j DOCKER-USER" {
		t.Fatalf("FORWARD = %q", fwd)
	}
}

func TestForeignChainIsRefused(t *testing.T) {
	fake := firewalltest.NewFake()
	fake.Add(firewall.IPv4, "filter", "NSZ-wan-out", "-j ACCEPT")
	_, err := firewall.Apply(fake, firewall.Build(firewall.SamplePolicy()), firewall.Tables, quiet)
	if !errors.Is(err, firewall.ErrForeignChain) {
		t.Fatalf("err = %v, want firewall.ErrForeignChain", err)
	}
	out, _ := fake.Save(firewall.IPv4, []string{"filter"})
	if !strings.Contains(out, "-A NSZ-wan-out -j ACCEPT") {
		t.Fatal("foreign chain was changed")
	}
}

// BenchmarkPlanUnchanged200 is deciding that 200 zones' rules need no
// write: the diff every up makes.
func BenchmarkPlanUnchanged200(b *testing.B) {
	fake := firewalltest.NewFake()
	want := firewall.Build(firewall.ManyZones(200))
	if _, err := firewall.Apply(fake, want, firewall.Tables, quiet); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if sc, err := firewall.Scripts(fake, want, firewall.Tables); err != nil || len(sc) != 0 {
			b.Fatalf("%v %v", sc, err)
		}
	}
}
