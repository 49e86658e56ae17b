package follow

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nszone/nszone/internal/kerneltest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { kerneltest.Main(m, "follow tests") }

// rootTest: root only, in the sandbox, no thread left in another namespace.
func rootTest(tb testing.TB) { tb.Helper(); kerneltest.Root(tb) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const waitEvent = 2 * time.Second

// follow subscribes until the end of the test, and checks then that the
// channel closes.
func follow(t *testing.T) <-chan Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events, err := Subscribe(ctx, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		waitClosed(t, events)
	})
	return events
}

// testWriter logs through t, so that warnings show with the test.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func waitClosed(t *testing.T, events <-chan Event) {
	t.Helper()
	timeout := time.After(waitEvent)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("events still open %v after the end of ctx", waitEvent)
		}
	}
}

// waitFor waits for an event of kind whose detail contains substr, skipping
// others, and logs how long it took since the change.
func waitFor(t *testing.T, events <-chan Event, since time.Time, kind, substr string) Event {
	t.Helper()
	return waitForAny(t, events, since, Event{kind, substr})
}

// waitForAny waits for an event that matches one of want: the same kind and
// a detail that contains want's.
func waitForAny(t *testing.T, events <-chan Event, since time.Time, want ...Event) Event {
	t.Helper()
	timeout := time.After(waitEvent)
	var seen []string
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("events closed waiting for %v", want)
			}
			for _, w := range want {
				if e.Kind == w.Kind && strings.Contains(e.Detail, w.Detail) {
					t.Logf("%v after %v", e, time.Since(since))
					return e
				}
			}
			if len(seen) < 20 {
				seen = append(seen, e.String())
			}
		case <-timeout:
			t.Fatalf("no event like %v within %v; saw %q...", want, waitEvent, seen)
		}
	}
}

// noEvent checks that no event of kind arrives within d.
func noEvent(t *testing.T, events <-chan Event, d time.Duration, kind string) {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case e := <-events:
			if e.Kind == kind {
				t.Fatalf("unexpected %v", e)
			}
		case <-timeout:
			return
		}
	}
}

// link adds a veth pair, up if asked, deleted after the test. A veth
// rather than a dummy: the kernel may lack the dummy driver, never veth.
func link(t *testing.T, name string, up bool) netlink.Link {
	t.Helper()
	if err := addVeth(name); err != nil {
		t.Fatalf("adding %s: %v", name, err)
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(name); err == nil { // unless the test deleted it
			if err := netlink.LinkDel(l); err != nil {
				t.Error(err)
			}
		}
	})
	if up {
		for _, n := range []string{name, name + "p"} {
			if err := netlink.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: n}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return l
}

func addVeth(name string) error {
	return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"})
}

func addAddr(t *testing.T, l netlink.Link, cidr string) {
	t.Helper()
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	a.Flags = unix.IFA_F_NODAD // usable at once
	if err := netlink.AddrAdd(l, a); err != nil {
		t.Fatalf("adding %s: %v", cidr, err)
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if _, err := exec.LookPath(args[0]); err != nil {
		t.Skipf("%s not installed", args[0])
	}
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func TestLinkEvents(t *testing.T) {
	rootTest(t)
	events := follow(t)
	start := time.Now()
	l := link(t, "fl-link0", false)
	waitFor(t, events, start, KindLink, "link fl-link0 down")
	start = time.Now()
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, start, KindLink, "link fl-link0 up, no carrier") // its peer is down
	start = time.Now()
	if err := netlink.LinkDel(l); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, start, KindLink, "link fl-link0 del")
}

func TestAddrEvents(t *testing.T) {
	rootTest(t)
	events := follow(t)
	l := link(t, "fl-addr0", false)
	start := time.Now()
	addAddr(t, l, "192.0.2.5/24")
	waitFor(t, events, start, KindAddr, "addr add 192.0.2.5/24 on fl-addr0")
	start = time.Now()
	addAddr(t, l, "2001:db8::5/64")
	waitFor(t, events, start, KindAddr, "addr add 2001:db8::5/64 on fl-addr0")
	start = time.Now()
	a, _ := netlink.ParseAddr("192.0.2.5/24")
	if err := netlink.AddrDel(l, a); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, start, KindAddr, "addr del 192.0.2.5/24 on fl-addr0")
}

func TestRouteEvents(t *testing.T) {
	rootTest(t)
	events := follow(t)
	l := link(t, "fl-route0", true)
	addAddr(t, l, "192.0.2.5/24")
	addAddr(t, l, "2001:db8::5/64")
	for _, c := range []struct{ dst, gw, want string }{
		{"198.51.100.0/24", "192.0.2.1", "route add 198.51.100.0/24 via 192.0.2.1 dev fl-route0"},
		{"2001:db8:1::/64", "2001:db8::1", "route add 2001:db8:1::/64 via 2001:db8::1 dev fl-route0"},
	} {
		_, dst, _ := net.ParseCIDR(c.dst)
		r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Gw: net.ParseIP(c.gw)}
		start := time.Now()
		if err := netlink.RouteAdd(r); err != nil {
			t.Fatalf("adding %s: %v", c.want, err)
		}
		waitFor(t, events, start, KindRoute, c.want)
		start = time.Now()
		if err := netlink.RouteDel(r); err != nil {
			t.Fatal(err)
		}
		waitFor(t, events, start, KindRoute, "route del "+c.dst)
	}
	start := time.Now()
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("192.0.2.1")}
	if err := netlink.RouteAdd(r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, events, start, KindRoute, "route add default via 192.0.2.1 dev fl-route0")
}

func TestRulesetEvents(t *testing.T) {
	rootTest(t)
	events := follow(t)

	start := time.Now()
	run(t, "nft", "add", "table", "inet", "t1")
	t.Cleanup(func() { run(t, "nft", "delete", "table", "inet", "t1") })
	waitFor(t, events, start, KindRuleset, "1 changes by nft")

	// One batch, one event.
	start = time.Now()
	run(t, "nft", "add chain inet t1 c1; add chain inet t1 c2; add rule inet t1 c1 accept; add rule inet t1 c2 drop")
	waitFor(t, events, start, KindRuleset, "4 changes by nft")
	noEvent(t, events, 100*time.Millisecond, KindRuleset)

	start = time.Now()
	run(t, "iptables-nft", "-N", "NSZFOLLOW")
	t.Cleanup(func() {
		run(t, "iptables-nft", "-X", "NSZFOLLOW")
		run(t, "iptables-nft", "-F") // the chains iptables-nft created with its table stay: harmless in the sandbox
	})
	waitFor(t, events, start, KindRuleset, "by iptables")
}

// A reader that falls behind overflows the sockets: the changes lost are
// reported as a resync, and the subscription goes on.
func TestOverflowResync(t *testing.T) {
	rootTest(t)
	old := rcvBuf
	rcvBuf = 1 // the kernel's minimum, a few messages
	t.Cleanup(func() { rcvBuf = old })
	events := follow(t)
	l := link(t, "fl-flood0", false)
	for i := range 2000 {
		addAddr(t, l, fmt.Sprintf("10.99.%d.%d/32", i/250, i%250+1))
	}
	waitFor(t, events, time.Now(), KindResync, "addr events lost")
	// Every change is reported, or followed by a resync: while overflows
	// drain, a new address may be lost again, but never silently.
	for i := 1; ; i++ {
		if i > 20 {
			t.Fatal("no address event after 20 tries")
		}
		start := time.Now()
		addAddr(t, l, fmt.Sprintf("10.98.0.%d/32", i))
		e := waitForAny(t, events, start,
			Event{KindAddr, fmt.Sprintf("addr add 10.98.0.%d/32 on fl-flood0", i)},
			Event{KindResync, "addr "})
		if e.Kind == KindAddr {
			return
		}
	}
}

// The end of ctx closes the channel, the sockets and the goroutines.
func TestCancel(t *testing.T) {
	rootTest(t)
	fds := func() int { e, _ := os.ReadDir("/proc/self/fd"); return len(e) }
	goroutines, files := runtime.NumGoroutine(), fds()
	ctx, cancel := context.WithCancel(context.Background())
	events, err := Subscribe(ctx, quiet)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if n := fds(); n < files+4 {
		t.Errorf("%d files open while subscribed, want at least %d more than %d", n, 4, files)
	}
	cancel()
	waitClosed(t, events)
	for deadline := time.Now().Add(waitEvent); ; time.Sleep(10 * time.Millisecond) {
		g, f := runtime.NumGoroutine(), fds()
		if g <= goroutines && f <= files {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("after cancel: %d goroutines (was %d), %d files (was %d)\n%s",
				g, goroutines, f, files, buf[:runtime.Stack(buf, true)])
		}
	}
}
