package zones_test

// Unit tests of the reconciler on zonestest's host in memory: no root, no
// kernel. Each zones file of testdata/reconcile is applied in turn; the
// host is then rendered as text and compared with the file's golden
// (go test ./zones -update rewrites them), plan must find nothing to do,
// and a second up must change nothing. The files are then visited in
// random orders: where every zone's subnets are fixed, the state after a
// file does not depend on what came before, but for the sysctls and
// iptables-nft tables, which only the last down gives back.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/config/zonesfile"
	"github.com/nszone/nszone/firewall"
	"github.com/nszone/nszone/zones"
	"github.com/nszone/nszone/zones/zonestest"
)

// updating says -update was given: rewrite the golden files. The flag may
// be defined by this package's internal tests already.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files")
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// host is a simulated machine with a zones.Manager on it.
type host struct {
	*zonestest.Machine
	m    *zones.Manager
	root string
}

func newHost(t *testing.T) *host {
	t.Helper()
	root := t.TempDir()
	for name, content := range map[string]string{
		"etc/resolv.conf":   "nameserver 192.168.1.1\nsearch example.org\n",
		"etc/nsswitch.conf": "passwd: files\nhosts: files mdns4_minimal [NOTFOUND=return] dns myhostname\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"run", "var/lib"} { // as on any host
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mc := zonestest.New()
	return &host{Machine: mc, m: mc.Manager(root, quiet), root: root}
}

// render is the machine and the files nszone keeps, as text.
func (h *host) render(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(h.Render())
	err := filepath.WalkDir(h.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == h.root {
			return err
		}
		rel, _ := filepath.Rel(h.root, p)
		switch {
		case strings.HasPrefix(rel, "etc/resolv.conf"), strings.HasPrefix(rel, "etc/nsswitch.conf"):
		case d.IsDir():
			fmt.Fprintf(&b, "dir %s\n", rel)
		case strings.HasPrefix(rel, "etc/netns/"):
			data, _ := os.ReadFile(p)
			for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
				fmt.Fprintf(&b, "file %s: %s\n", rel, l)
			}
		default:
			fmt.Fprintf(&b, "file %s\n", rel) // records: their content is the rendered state's source
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func load(t *testing.T, name string) *config.File {
	t.Helper()
	f, err := zonesfile.Load(filepath.Join("testdata", "reconcile", name))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func files(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "reconcile", "*.yaml"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no zones files in testdata/reconcile: %v", err)
	}
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	return names
}

// up applies name and checks what must hold after every up: plan finds
// nothing, and a second up changes nothing.
func (h *host) up(t *testing.T, name string) {
	t.Helper()
	f := load(t, name)
	if _, err := h.m.Up(f, nil); err != nil {
		t.Fatalf("up %s: %v", name, err)
	}
	plan, err := h.m.PlanDetail(f)
	if err != nil {
		t.Fatalf("plan after up %s: %v", name, err)
	}
	if plan.Changed {
		t.Fatalf("plan after up %s is not empty:\n%s", name, strings.Join(plan.Report().Lines, "\n"))
	}
	rep, err := h.m.Up(f, nil)
	if err != nil || rep.Changed {
		t.Fatalf("second up %s: changed=%v err=%v\n%s", name, rep != nil && rep.Changed, err, strings.Join(rep.Lines, "\n"))
	}
	st, err := h.m.Status(f, nil)
	if err != nil {
		t.Fatalf("status after up %s: %v", name, err)
	}
	for _, z := range st.Zones {
		if z.State != zones.StateUp {
			t.Errorf("after up %s: zone %s is %s: %v", name, z.Name, z.State, z.Missing)
		}
	}
}

// noCache drops the vouches (vouch.go): what they hold depends on which
// commands ran before, not on the state.
func noCache(state string) string {
	var out []string
	for _, l := range strings.Split(state, "\n") {
		if !strings.Contains(l, "run/nszone/vouch") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	got = noCache(got)
	path := filepath.Join("testdata", "reconcile", strings.TrimSuffix(name, ".yaml")+".golden")
	if updating() {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./zones -update and review the file)", err)
	}
	if got != string(want) {
		t.Errorf("after up %s the host differs from %s:\n%s", name, path, diff(string(want), got))
	}
}

// diff lists the lines only one side has: enough to see what moved.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

func TestReconcileSequence(t *testing.T) {
	h := newHost(t)
	before := h.render(t)
	for _, name := range files(t) {
		h.up(t, name)
		golden(t, name, h.render(t))
	}
	h.downAll(t, before)
}

// downAll takes every zone away and checks the host is as it was.
func (h *host) downAll(t *testing.T, before string) {
	t.Helper()
	l, err := h.m.Lock(true) // as the command does: its release takes /run/nszone away
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.m.Down(&config.File{}, nil, true)
	l.Unlock()
	if err != nil {
		t.Fatalf("down --all: %v", err)
	}
	if got := h.render(t); got != before {
		t.Errorf("down --all did not give the host back as it was:\n%s", diff(before, got))
	}
}

// sticky drops what only the last down gives back (nszone's directories
// among it).
func sticky(state string) string {
	var out []string
	for _, l := range strings.Split(state, "\n") {
		if !strings.HasPrefix(l, "sysctl ") && !strings.HasPrefix(l, "iptables-nft table ") && !strings.HasPrefix(l, "dir ") &&
			!strings.Contains(l, "run/nszone/vouch") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestReconcileAnyOrder(t *testing.T) {
	names := files(t)
	want := map[string]string{}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join("testdata", "reconcile", strings.TrimSuffix(name, ".yaml")+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		want[name] = sticky(string(b))
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for range 8 {
		h := newHost(t)
		before := h.render(t)
		order := slices.Clone(names)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		order = append(order, order[rng.IntN(len(order))]) // and one file twice
		for _, name := range order {
			h.up(t, name)
			if got := sticky(h.render(t)); got != want[name] {
				t.Fatalf("order %v: after %s the host differs from its golden:\n%s", order, name, diff(want[name], got))
			}
		}
		h.downAll(t, before)
	}
}

// Damage of every kind is seen by status and plan and repaired by up.
func TestReconcileRepairs(t *testing.T) {
	damages := []struct {
		name   string
		damage func(h *host)
		state  string // of zone wan afterwards
	}{
		{"inner wall gone", func(h *host) { h.DamageInner("wan") }, zones.StateDegraded},
		{"host link deleted", func(h *host) { h.DeleteLink("nsz-wan") }, zones.StateDegraded},
		{"iptables flushed", func(h *host) { flush(h) }, zones.StateDegraded},
		{"nftables host wall gone", func(h *host) { h.DamageHostWall() }, zones.StateDegraded},
		{"stale pin after a reboot", func(h *host) { h.StalePin("wan") }, zones.StateDegraded},
		{"resolv.conf removed", func(h *host) {
			os.Remove(filepath.Join(h.root, "etc/netns/wan/resolv.conf"))
		}, zones.StateDegraded},
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			h := newHost(t)
			f := load(t, "01-four-zones.yaml")
			h.up(t, "01-four-zones.yaml")
			want := h.render(t)
			d.damage(h)
			st, err := h.m.Status(f, []string{"wan"})
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Zones[0].State; got != d.state {
				t.Fatalf("status says %s (missing %v), want %s", got, st.Zones[0].Missing, d.state)
			}
			if _, err := h.m.Ready("wan"); err == nil && d.state == zones.StateDegraded && d.name != "iptables flushed" {
				t.Errorf("exec would start in a zone whose %s", d.name)
			}
			plan, err := h.m.PlanDetail(f)
			if err != nil || !plan.Changed {
				t.Fatalf("plan sees nothing to repair: %v", err)
			}
			h.up(t, "01-four-zones.yaml")
			if got := h.render(t); sticky(got) != sticky(want) {
				t.Errorf("up did not repair:\n%s", diff(want, got))
			}
		})
	}
}

// flush empties the host's iptables tables, as `iptables -F; iptables -X`.
func flush(h *host) {
	for _, fam := range firewall.Families {
		for _, table := range []string{"filter", "nat"} {
			script := "*" + table + "\n"
			for _, c := range []string{"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"} {
				if table == "filter" && (c == "PREROUTING" || c == "POSTROUTING") || table == "nat" && c == "FORWARD" {
					continue
				}
				script += ":" + c + " ACCEPT [0:0]\n"
			}
			for _, c := range h.Firewall.Chains(fam, table) {
				script += ":" + c + " - [0:0]\n"
			}
			for _, c := range h.Firewall.Chains(fam, table) {
				script += "-X " + c + "\n"
			}
			if err := h.Firewall.Restore(fam, script+"COMMIT\n"); err != nil {
				panic(err)
			}
		}
	}
}

// Nothing named like a zone that nszone did not make is taken over.
func TestReconcileRefusesForeign(t *testing.T) {
	t.Run("namespace", func(t *testing.T) {
		h := newHost(t)
		h.AddForeignNamespace("wan")
		before := h.render(t)
		_, err := h.m.Up(load(t, "01-four-zones.yaml"), nil)
		if !errors.Is(err, zones.ErrNotOwned) {
			t.Fatalf("up: %v, want ErrNotOwned", err)
		}
		if got := h.render(t); got != before {
			t.Errorf("a refused up changed the host:\n%s", diff(before, got))
		}
	})
	t.Run("link", func(t *testing.T) {
		h := newHost(t)
		h.AddLink("nsz-lan", "", "192.0.2.1/24")
		_, err := h.m.Up(load(t, "01-four-zones.yaml"), nil)
		if !errors.Is(err, zones.ErrNotOwned) {
			t.Fatalf("up: %v, want ErrNotOwned", err)
		}
	})
}

// A zone that leaves the file stays while programs run in it.
func TestReconcileKeepsZoneWithPrograms(t *testing.T) {
	h := newHost(t)
	h.up(t, "01-four-zones.yaml")
	h.StartProcess("web", zones.Process{PID: 4242, Command: "httpd"})
	rep, err := h.m.Up(load(t, "02-narrowed.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Lines, func(l string) bool { return strings.Contains(l, "httpd[4242]") }) {
		t.Errorf("up does not say why web stays:\n%s", strings.Join(rep.Lines, "\n"))
	}
	if _, err := h.Kernel().NamespaceID("web"); err != nil {
		t.Errorf("web was taken away under its program: %v", err)
	}
}

// exec reads the walls once; while nothing changes it trusts the kernel's
// generations, and every damage sends it back to the full check.
func TestExecVouch(t *testing.T) {
	h := newHost(t)
	h.up(t, "01-four-zones.yaml")
	if _, err := h.m.Ready("wan"); err != nil {
		t.Fatal(err)
	}
	reads := h.WallReads()
	if reads == 0 {
		t.Fatal("the first exec did not read the walls")
	}
	if _, err := h.m.Ready("wan"); err != nil {
		t.Fatal(err)
	}
	if h.WallReads() != reads {
		t.Fatal("an exec with nothing changed read the walls again")
	}
	damages := []struct {
		name   string
		damage func(h *host)
		closed bool // exec starts, with a warning
	}{
		{"inner wall gone", func(h *host) { h.DamageInner("wan") }, false},
		{"nftables host wall gone", func(h *host) { h.DamageHostWall() }, false},
		{"host link deleted", func(h *host) { h.DeleteLink("nsz-wan") }, false},
		{"iptables flushed", flush, true},
		{"resolv.conf removed", func(h *host) { os.Remove(filepath.Join(h.root, "etc/netns/wan/resolv.conf")) }, false},
	}
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			h := newHost(t)
			h.up(t, "01-four-zones.yaml")
			for range 2 {
				if _, err := h.m.Ready("wan"); err != nil {
					t.Fatal(err)
				}
			}
			d.damage(h)
			e, err := h.m.Ready("wan")
			switch {
			case d.closed && (err != nil || e.Warning == ""):
				t.Errorf("exec after %s: err %v, warning %q; want a start with a warning", d.name, err, e.Warning)
			case !d.closed && !errors.Is(err, zones.ErrNotUp):
				t.Errorf("exec after %s: err %v, want a refusal", d.name, err)
			}
		})
	}
}

// An up with nothing to change reads no wall the kernel vouches for, and
// one rule changed by someone else is still found and repaired.
func TestUpVouch(t *testing.T) {
	h := newHost(t)
	f := load(t, "01-four-zones.yaml")
	for range 2 { // the second finds the host's walls as the first wrote them
		if _, err := h.m.Up(f, nil); err != nil {
			t.Fatal(err)
		}
	}
	reads, saves := h.WallReads(), h.Firewall.Reads
	rep, err := h.m.Up(f, nil)
	if err != nil || rep.Changed {
		t.Fatalf("up: %v %v", err, rep.Lines)
	}
	if h.WallReads() != reads || h.Firewall.Reads != saves {
		t.Errorf("a no-change up read the walls: nftables %d -> %d, iptables %d -> %d", reads, h.WallReads(), saves, h.Firewall.Reads)
	}
	h.DamageInner("lan")
	if rep, err := h.m.Up(f, nil); err != nil || !rep.Changed {
		t.Fatalf("up after the inner wall of lan went: changed %v, %v", rep != nil && rep.Changed, err)
	}
	flush(h)
	if rep, err := h.m.Up(f, nil); err != nil || !rep.Changed {
		t.Fatalf("up after iptables was flushed: changed %v, %v", rep != nil && rep.Changed, err)
	}
	h.up(t, "01-four-zones.yaml")
}

// A via's interface gone leaves the zone degraded but closed, named; a host
// port a program already listens on is refused before anything changes.
func TestReconcileVia(t *testing.T) {
	h := newHost(t)
	f := load(t, "05-publish-via.yaml")
	h.up(t, "05-publish-via.yaml")
	h.DeleteLink("wg0")
	st, err := h.m.Status(f, []string{"vpn"})
	if err != nil {
		t.Fatal(err)
	}
	if z := st.Zones[0]; z.State != zones.StateDegraded || !strings.Contains(strings.Join(z.Missing, " "), "wg0") {
		t.Errorf("vpn with wg0 gone: %s, missing %v", z.State, z.Missing)
	}
	if e, err := h.m.Ready("vpn"); err != nil || !strings.Contains(e.Warning, "wg0") {
		t.Errorf("exec in vpn with wg0 gone: %v, %+v", err, e)
	}
	h.AddLink("wg0", "", "10.64.0.2/32")
	h.up(t, "05-publish-via.yaml")

	h2 := newHost(t)
	h2.Listen("tcp", 8080)
	before := h2.render(t)
	_, err = h2.m.Up(f, nil)
	var cerr *config.Error
	if !errors.As(err, &cerr) || cerr.Line != 7 || !strings.Contains(cerr.Msg, "listens on tcp port 8080") {
		t.Errorf("up with 8080 taken: %v", err)
	}
	if got := h2.render(t); got != before {
		t.Errorf("a refused up changed the host:\n%s", diff(before, got))
	}
}

// explain answers from the file and the host, with nothing up, as the walls
// up would write: the class and its reason, the deciding term.
func TestExplain(t *testing.T) {
	h := newHost(t)
	f := load(t, "01-four-zones.yaml")
	for _, c := range []struct {
		zone, dst string
		port      uint16
		proto     string
		allow     bool
		class     string
		term      string
		reason    string
	}{
		{"wan", "203.0.113.10", 443, "tcp", true, "internet", "internet", ""},
		{"wan", "192.168.50.10", 80, "tcp", false, "lan", "", "192.168.0.0/16"},
		{"lan", "192.168.50.10", 80, "tcp", true, "lan", "lan", "192.168.0.0/16"},
		{"web", "192.168.50.10", 22, "tcp", true, "lan", "192.168.50.10:22/tcp", ""},
		{"web", "192.168.50.10", 23, "tcp", false, "lan", "", ""},
		{"web", "192.168.1.10", 8080, "tcp", true, "host", "host", ""},
		{"offline", "203.0.113.10", 443, "tcp", false, "internet", "", ""},
		{"web", "10.250.0.6", 80, "tcp", true, "zone:lan", "zone:lan", ""},
		{"wan", "192.168.1.1", 53, "udp", true, "lan", "192.168.1.1:53", ""}, // the DNS opening
	} {
		v, err := h.m.Explain(f, c.zone, firewall.Dest{Addr: netip.MustParseAddr(c.dst), Port: c.port, Proto: c.proto})
		if err != nil {
			t.Fatalf("%s to %s: %v", c.zone, c.dst, err)
		}
		if v.Allow != c.allow || v.Class != c.class || v.Term != c.term || !strings.Contains(v.Reason, c.reason) {
			t.Errorf("%s to %s:%d/%s: %+v; want allow %v, class %s, term %q, reason with %q",
				c.zone, c.dst, c.port, c.proto, v, c.allow, c.class, c.term, c.reason)
		}
	}
	if _, err := h.m.Explain(f, "nosuch", firewall.Dest{Addr: netip.MustParseAddr("192.0.2.1")}); !errors.As(err, new(*zones.UnknownZoneError)) {
		t.Errorf("an unknown zone: %v", err)
	}
	if got := h.Render(); strings.Contains(got, "namespace ") {
		t.Error("explain brought something up")
	}
}

// plan says a change of published ports, of the via or of log: in words.
func TestPlanPublishVia(t *testing.T) {
	h := newHost(t)
	h.up(t, "05-publish-via.yaml")
	f := load(t, "05-publish-via.yaml")
	f.Zones[0].Publish = f.Zones[0].Publish[:1]
	f.Zones[1].Via = "eth0"
	f.Zones[1].NoLog = true
	plan, err := h.m.PlanDetail(f)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan.Report().Lines, "\n")
	for _, want := range []string{"~ zone web: published 8080->80/tcp, 127.0.0.1:5432->5432/tcp", "-> 8080->80/tcp", `~ zone vpn: via "wg0" -> "eth0"`, "log true -> false"} {
		if !strings.Contains(text, want) {
			t.Errorf("plan lacks %q:\n%s", want, text)
		}
	}
}

// A zone that stops publishing gets route_localnet back at 0: with no zone
// publishing, the host wall no longer drops what a zone sends to the
// host's 127.0.0.0/8.
func TestUnpublishResetsLocalnet(t *testing.T) {
	h := newHost(t)
	h.up(t, "05-publish-via.yaml")
	f := load(t, "05-publish-via.yaml")
	f.Zones[0].Publish = nil
	if _, err := h.m.Up(f, nil); err != nil {
		t.Fatal(err)
	}
	if v, _ := h.Kernel().Sysctl("net.ipv4.conf.nsz-web.route_localnet"); v != "0" {
		t.Errorf("route_localnet of nsz-web is %q after web stopped publishing", v)
	}
}

// status shows each zone's counters as its inner wall holds them; a zone
// that is down has none; a rewritten wall counts from zero.
func TestStatusCounters(t *testing.T) {
	h := newHost(t)
	f := load(t, "01-four-zones.yaml")
	h.up(t, "01-four-zones.yaml")
	want := firewall.Counters{IPv4: firewall.FamilyCounters{Allowed: firewall.Count{Packets: 12, Bytes: 3400}, Refused: firewall.Count{Packets: 3, Bytes: 180}}}
	h.Count("wan", want)
	st, err := h.m.Status(f, []string{"wan", "nosuch"})
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Zones[0].Counters; c == nil || *c != want {
		t.Errorf("wan's counters: %+v, want %+v", c, want)
	}
	if c := st.Zones[1].Counters; c != nil {
		t.Errorf("a zone that is not up has counters %+v", c)
	}
	h.up(t, "02-narrowed.yaml") // rewrites wan's wall
	if st, err = h.m.Status(f, []string{"wan"}); err != nil || st.Zones[0].Counters == nil || *st.Zones[0].Counters != (firewall.Counters{}) {
		t.Errorf("after a rewrite, wan's counters: %+v %v", st.Zones[0].Counters, err)
	}
}

// A convergence reads the host's side of the zones' links once, in a
// batch, and hands each existing zone its part; a zone being made, and
// exec's look at one zone, read their own.
func TestHostLinksBatched(t *testing.T) {
	h := newHost(t)
	f := load(t, "01-four-zones.yaml")
	if _, err := h.m.Up(f, nil); err != nil {
		t.Fatal(err)
	}
	if batches, batched, alone := h.PairReads(); batches != 0 || batched != 0 || alone != 4 {
		t.Errorf("a fresh up of 4 zones: %d batches, %d pairs with one, %d alone; want 0, 0, 4", batches, batched, alone)
	}
	check := func(what string, wantBatches, wantBatched, wantAlone int) {
		t.Helper()
		batches, batched, alone := h.PairReads()
		if batches != wantBatches || batched != wantBatched || alone != wantAlone {
			t.Errorf("after %s: %d batches, %d pairs with one, %d alone; want %d, %d, %d",
				what, batches, batched, alone, wantBatches, wantBatched, wantAlone)
		}
	}
	if rep, err := h.m.Up(f, nil); err != nil || rep.Changed {
		t.Fatalf("up: %v %v", err, rep.Lines)
	}
	check("a no-change up", 1, 4, 4)
	if _, err := h.m.Status(f, nil); err != nil {
		t.Fatal(err)
	}
	check("status", 2, 8, 4)
	if _, err := h.m.Ready("wan"); err != nil {
		t.Fatal(err)
	}
	_, _, alone := h.PairReads()
	if _, err := h.m.Ready("wan"); err != nil {
		t.Fatal(err)
	}
	check("a second exec", 2, 8, alone+1)
}

// An up that wrote the host's walls vouches for them when every commit
// since it read them was its own: the next up reads neither iptables nor
// the nftables host wall. Another program's commit in between, and it
// does not: the next up reads them.
func TestHostVouchAfterWrite(t *testing.T) {
	for _, foreign := range []bool{false, true} {
		h := newHost(t)
		f := load(t, "01-four-zones.yaml")
		if foreign {
			h.OnHostWallWrite(h.ForeignCommit)
		}
		if rep, err := h.m.Up(f, nil); err != nil || !rep.Changed {
			t.Fatalf("first up: %v", err)
		}
		h.OnHostWallWrite(nil)
		// The zones vouch for their walls, the host's part included, only
		// when the host's are known whole.
		for _, zone := range []string{"wan", "lan"} {
			_, err := os.Stat(filepath.Join(h.m.Root, zones.RunDir, "vouch", zone+".json"))
			if vouched := err == nil; vouched == foreign {
				t.Errorf("another program committed during the first up: %v; zone %s vouched for: %v", foreign, zone, vouched)
			}
		}
		reads, saves := h.WallReads(), h.Firewall.Reads
		if rep, err := h.m.Up(f, nil); err != nil || rep.Changed {
			t.Fatalf("second up: changed %v, %v", rep.Changed, err)
		}
		read := h.WallReads() != reads || h.Firewall.Reads != saves
		if read != foreign {
			t.Errorf("another program committed during the first up: %v; the second up read the walls: %v (nftables %d -> %d, iptables %d -> %d)",
				foreign, read, reads, h.WallReads(), saves, h.Firewall.Reads)
		}
		if n := h.Hearing(); n != 0 {
			t.Errorf("%d commit watchers left open", n)
		}
	}
	// Another program's commit after the host's walls are in place, before
	// the zones vouch for theirs: no zone vouches (its vouch would cover
	// the host's walls at a generation no one checked).
	h := newHost(t)
	h.OnZoneGeneration(h.ForeignCommit)
	if _, err := h.m.Up(load(t, "01-four-zones.yaml"), nil); err != nil {
		t.Fatal(err)
	}
	for _, zone := range []string{"wan", "lan"} {
		if _, err := os.Stat(filepath.Join(h.m.Root, zones.RunDir, "vouch", zone+".json")); err == nil {
			t.Errorf("zone %s vouched for after another program's commit to the host's rulesets", zone)
		}
	}
	// An up that fails writing the walls (a chain of nszone's name holding
	// someone else's rule) leaves no watcher open either.
	h = newHost(t)
	if err := h.Firewall.Restore(firewall.IPv4, "*filter\n:NSZ-wan-out - [0:0]\n-A NSZ-wan-out -j ACCEPT\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.Up(load(t, "01-four-zones.yaml"), nil); err == nil {
		t.Fatal("up took over a chain of someone else's")
	}
	if n := h.Hearing(); n != 0 {
		t.Errorf("a failed up left %d commit watchers open", n)
	}
}

// status and plan read the nftables host wall once, whatever the number of
// zones (each zone's part is checked against that one read), and still see
// a zone's rules gone.
func TestHostWallReadOnce(t *testing.T) {
	h := newHost(t)
	f := load(t, "01-four-zones.yaml")
	if _, err := h.m.Up(f, nil); err != nil {
		t.Fatal(err)
	}
	reads := h.HostWallReads()
	st, err := h.m.Status(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := h.HostWallReads() - reads; n != 1 {
		t.Errorf("status of %d zones read the host wall %d times, want 1", len(st.Zones), n)
	}
	if st.Degraded() != 0 {
		t.Errorf("status after up: %d degraded", st.Degraded())
	}
	reads = h.HostWallReads()
	if _, err := h.m.PlanDetail(f); err != nil {
		t.Fatal(err)
	}
	if n := h.HostWallReads() - reads; n != 1 {
		t.Errorf("plan read the host wall %d times, want 1", n)
	}
}
