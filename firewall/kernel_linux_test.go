package firewall

import (
	"net/netip"
	"os/exec"
	"testing"

	"github.com/nszone/nszone/internal/kerneltest"
)

// Kernel tests apply rules: only ever inside a sandbox.
func TestMain(m *testing.M) { kerneltest.Main(m, "firewall tests") }

// TestKernelAgrees applies the sample ruleset with each iptables variant and
// reads it back: the kernel's canonical form must equal ours exactly, or
// every up would rewrite everything.
func TestKernelAgrees(t *testing.T) {
	kerneltest.Root(t)
	for _, mode := range []string{"nft", "legacy"} {
		t.Run(mode, func(t *testing.T) {
			if _, err := exec.LookPath("iptables-" + mode + "-restore"); err != nil {
				t.Skipf("iptables-%s not installed", mode)
			}
			b := &IPTables{Mode: mode}
			want := Build(samplePolicy())
			if changed, err := Apply(b, want, Tables, quiet); err != nil || !changed {
				t.Fatalf("apply: changed=%v err=%v", changed, err)
			}
			scripts, err := Scripts(b, want, Tables)
			if err != nil {
				t.Fatal(err)
			}
			if len(scripts) != 0 {
				t.Fatalf("after apply the kernel still differs:\n%v", scripts)
			}
			cur, err := Current(b, Tables)
			if err != nil {
				t.Fatal(err)
			}
			if cur.String() != want.String() {
				t.Fatalf("kernel:\n%s\nwant:\n%s", cur, want)
			}
			// Another tool's jump inserted above ours is moved below it.
			if out, err := exec.Command("iptables-"+mode, "-I", "FORWARD", "1", "-j", "ACCEPT").CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if changed, err := Apply(b, want, Tables, quiet); err != nil || !changed {
				t.Fatalf("re-apply after a foreign jump: changed=%v err=%v", changed, err)
			}
			if cur, _ := Current(b, Tables); cur.String() != want.String() {
				t.Fatalf("hooks not first again:\n%s", cur)
			}
			exec.Command("iptables-"+mode, "-D", "FORWARD", "-j", "ACCEPT").Run()

			// The inner wall's rules (sources, loopback, ICMPv6) agree too.
			z := samplePolicy().Zones[1]
			z.FromZoneAddrs = []netip.Addr{netip.MustParseAddr("10.250.0.14"), netip.MustParseAddr("fd6e:737a:0:4::2")}
			z.HostAddrs = []netip.Addr{netip.MustParseAddr("192.168.50.2"), netip.MustParseAddr("fd00:50::2")}
			inner := BuildInner(z, defaultLAN)
			if _, err := Apply(b, inner, InnerTables, quiet); err != nil {
				t.Fatalf("inner wall: %v", err)
			}
			if scripts, err := Scripts(b, inner, InnerTables); err != nil || len(scripts) != 0 {
				t.Fatalf("inner wall differs after apply: %v %v", scripts, err)
			}
			if _, err := Apply(b, Build(Policy{}), Tables, quiet); err != nil {
				t.Fatalf("removing: %v", err)
			}
			if cur, _ := Current(b, Tables); len(cur) != 0 {
				t.Fatalf("left after removal:\n%s", cur)
			}
		})
	}
}
