package lab

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nszone/nszone/config"
	"github.com/nszone/nszone/config/zonesfile"
	"github.com/nszone/nszone/internal/kerneltest"
	"github.com/nszone/nszone/sandbox"
)

func TestMain(m *testing.M) { kerneltest.Main(m, "lab tests") }

func TestStartRefusesOutsideSandbox(t *testing.T) {
	t.Setenv(sandbox.EnvMarker, "")
	if l, err := Start(nil); err == nil {
		l.Close()
		t.Fatal("Start worked outside the sandbox")
	}
}

// run runs a real client and returns its output; it fails the test if the
// client fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is missing (scripts/test installs it): %v", name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

func TestLab(t *testing.T) {
	kerneltest.Root(t)
	resolvBefore, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	l, err := Start(slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			l.Close()
		}
	}()
	t.Log("\n" + l.Describe())

	// Zones, the lab's zones file, names these servers as check's targets.
	f, err := zonesfile.Parse("zones.yaml", []byte(Zones))
	if err != nil {
		t.Fatalf("lab.Zones: %v", err)
	}
	hp := func(a netip.Addr) string { return netip.AddrPortFrom(a, 80).String() }
	if want := (config.Check{Internet: []string{hp(l.InetServer4), hp(l.InetServer6)}, LAN: []string{hp(l.LANServer4), hp(l.LANServer6)},
		DNS: []string{l.DNSName}}); !reflect.DeepEqual(f.Check, want) {
		t.Errorf("lab.Zones: check %+v, want %+v", f.Check, want)
	}

	curl := []string{"-sS", "--max-time", "5"}
	dig := []string{"+time=2", "+tries=2", "+short"}
	checks := []struct {
		name string
		cmd  []string
		want string
	}{
		{"internet v4", append([]string{"curl"}, append(curl, "http://203.0.113.10/")...), "lab-internet\n"},
		{"internet v6", append([]string{"curl", "-6"}, append(curl, "http://[2001:db8:113::10]/")...), "lab-internet\n"},
		{"lan v4", append([]string{"curl"}, append(curl, "http://192.168.50.10/")...), "lab-lan\n"},
		{"lan v6", append([]string{"curl"}, append(curl, "http://[fd00:50::10]/")...), "lab-lan\n"},
		{"by name", append([]string{"curl", "-4"}, append(curl, "http://www.example/")...), "lab-internet\n"},
		{"dig A", append([]string{"dig"}, append(dig, "@192.168.50.10", "www.example", "A")...), "203.0.113.10\n"},
		{"dig AAAA", append([]string{"dig"}, append(dig, "@192.168.50.10", "www.example", "AAAA")...), "2001:db8:113::10\n"},
		{"dig LAN name over v6", append([]string{"dig"}, append(dig, "@fd00:50::10", "nas.lan.example", "A")...), "192.168.50.10\n"},
		{"dig TCP at the internet server", append([]string{"dig", "+tcp"}, append(dig, "@203.0.113.10", "nas.lan.example", "AAAA")...), "fd00:50::10\n"},
		{"dig NXDOMAIN", []string{"dig", "+time=2", "+tries=2", "@192.168.50.10", "nope.example", "A"}, "status: NXDOMAIN"},
		{"getent hosts", []string{"getent", "hosts", "www.example"}, "www.example"},
		{"getent ahostsv4", []string{"getent", "ahostsv4", "www.example"}, "203.0.113.10"},
		{"netns list", []string{"ip", "netns", "list"}, RouterNS},
		{"LAN to internet through the router", append([]string{"ip", "netns", "exec", LANNS, "curl"}, append(curl, "http://[2001:db8:113::10]/")...), "lab-internet\n"},
		{"internet to LAN through the router", append([]string{"ip", "netns", "exec", InetNS, "curl"}, append(curl, "http://192.168.50.10/")...), "lab-lan\n"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if got := run(t, c.cmd[0], c.cmd[1:]...); !strings.Contains(got, c.want) {
				t.Errorf("%s: got %q, want %q", strings.Join(c.cmd, " "), got, c.want)
			}
		})
	}
	if got := run(t, "getent", "hosts", "www.example"); !strings.Contains(got, "2001:db8:113::10") && !strings.Contains(got, "203.0.113.10") {
		t.Errorf("getent hosts www.example: %q", got)
	}

	closed = true
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	kerneltest.CheckThreads(t)
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	pins, err := os.ReadDir("/run/netns")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pins {
		t.Errorf("pin left behind: /run/netns/%s", p.Name())
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, link := range links {
		if link.Attrs().Name != "lo" {
			t.Errorf("link left behind: %s", link.Attrs().Name)
		}
	}
	if resolvAfter, err := os.ReadFile("/etc/resolv.conf"); err != nil || !bytes.Equal(resolvAfter, resolvBefore) {
		t.Errorf("/etc/resolv.conf not restored: %q, %v", resolvAfter, err)
	}
	if out := run(t, "findmnt", "-rn", "-o", "TARGET"); strings.Contains(out, "resolv.conf") || strings.Contains(out, "/run/netns/") {
		t.Errorf("mounts left behind:\n%s", out)
	}

	// Everything is gone, so a second lab starts cleanly.
	l2, err := Start(nil)
	if err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if err := l2.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestStartRollsBack makes Start fail halfway and checks that it leaves
// nothing behind and does not touch what it did not create.
func TestStartRollsBack(t *testing.T) {
	kerneltest.Root(t)
	// A foreign file where the LAN's pin must go makes Start fail after the
	// router namespace exists.
	foreign := "/run/netns/" + LANNS
	if err := os.WriteFile(foreign, []byte("not ours"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(foreign)
	if l, err := Start(nil); err == nil {
		l.Close()
		t.Fatal("Start worked with a foreign pin in the way")
	} else {
		t.Log(err)
	}
	if b, err := os.ReadFile(foreign); err != nil || string(b) != "not ours" {
		t.Errorf("foreign pin touched: %q %v", b, err)
	}
	if _, err := os.Stat("/run/netns/" + RouterNS); !os.IsNotExist(err) {
		t.Errorf("router pin left behind: %v", err)
	}
}
