package nflog

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nszone/nszone/internal/kerneltest"
)

func TestMain(m *testing.M) { kerneltest.Main(m, "nflog tests") }

const group = 28275

func sh(t *testing.T, cmd string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}

// A connection the kernel's rules log and reject arrives as one packet
// with the rule's prefix and the connection's addresses and ports; the
// group has one reader at a time; a socket of another namespace hears
// nothing of this one.
func TestListen(t *testing.T) {
	kerneltest.Root(t)
	sh(t, "ip link add nflogd0 type veth peer name nflogd1 && ip addr add 192.0.2.1/24 dev nflogd0 && ip link set nflogd0 up && ip link set nflogd1 up")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", "nflogd0").Run() })
	sh(t, `nft 'add table inet nflogtest; add chain inet nflogtest out { type filter hook output priority 0; };
		add rule inet nflogtest out ip daddr 192.0.2.77 log prefix "nszone-test" group 28275 snaplen 128;
		add rule inet nflogtest out ip daddr 192.0.2.77 reject with tcp reset'`)
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "inet", "nflogtest").Run() })

	l, err := Listen(0, group)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := Listen(0, group); !errors.Is(err, ErrBusy) {
		t.Errorf("a second reader of the group: err = %v, want ErrBusy", err)
	}
	// Another namespace's reader of the same group binds, and hears nothing.
	other := exec.Command("unshare", "--net", "sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	time.Sleep(100 * time.Millisecond)
	ns, err := os.Open("/proc/" + strconv.Itoa(other.Process.Pid) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	lo, err := Listen(int(ns.Fd()), group)
	if err != nil {
		t.Fatalf("the group in another namespace: %v", err)
	}
	defer lo.Close()
	heard := make(chan []Packet, 1)
	go func() {
		if ps, err := lo.Receive(); err == nil {
			heard <- ps
		}
	}()

	_, err = net.DialTimeout("tcp", "192.0.2.77:8443", time.Second)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("connect: %v, want refused", err)
	}
	got := make(chan []Packet, 1)
	go func() {
		ps, err := l.Receive()
		if err != nil {
			t.Error(err)
		}
		got <- ps
	}()
	var ps []Packet
	select {
	case ps = <-got:
	case <-time.After(2 * time.Second):
		t.Fatal("no packet logged within 2 s")
	}
	p := ps[0]
	if p.Prefix != "nszone-test" || p.UID != os.Getuid() || time.Since(p.Time) > 5*time.Second || len(p.Payload) == 0 {
		t.Errorf("packet: prefix %q uid %d time %v, %d bytes", p.Prefix, p.UID, p.Time, len(p.Payload))
	}
	f, err := ParseFlow(p.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if f.Proto != "tcp" || f.Src != netip.MustParseAddr("192.0.2.1") || f.Dst != netip.MustParseAddr("192.0.2.77") ||
		f.Dport != 8443 || f.Sport == 0 {
		t.Errorf("flow %+v", f)
	}
	select {
	case ps := <-heard:
		t.Errorf("the other namespace's reader heard %d packets", len(ps))
	case <-time.After(200 * time.Millisecond):
	}
	// Closed, the group is free again.
	l.Close()
	l2, err := Listen(0, group)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	l2.Close()
}
