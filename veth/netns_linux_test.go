package veth

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nszone/nszone/internal/kerneltest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestCreateNamed(t *testing.T) {
	rootTest(t)
	id := newZone(t, "t-create", true)
	if home := NsID(kerneltest.Home()); id == home || id == (NsID{}) {
		t.Fatalf("CreateNamed returned %v, the sandbox's is %v", id, home)
	}
	if got, err := PinID("t-create"); err != nil || got != id {
		t.Fatalf("PinID = %v, %v; want %v", got, err, id)
	}

	// iproute2 sees the pin, from outside and from inside.
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil || !slices.Contains(strings.Fields(string(out)), "t-create") {
		t.Errorf("ip netns list: %v\n%s", err, out)
	}
	out, err = exec.Command("ip", "netns", "exec", "t-create", "ip", "netns", "identify").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "t-create" {
		t.Errorf("ip netns identify inside: %v %q", err, out)
	}

	for key, want := range map[string]string{
		"net.ipv6.conf.all.accept_ra":        "0",
		"net.ipv6.conf.default.accept_ra":    "0",
		"net.ipv6.conf.all.disable_ipv6":     "0",
		"net.ipv6.conf.default.disable_ipv6": "0",
	} {
		if got, err := GetSysctlIn("t-create", key); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", key, got, err, want)
		}
	}
	h := zoneHandle(t, "t-create")
	lo, err := h.LinkByName("lo")
	if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("lo not up in the new namespace: %v", err)
	}
	if addrs, _ := h.AddrList(lo, netlink.FAMILY_V6); len(addrs) != 1 || !addrs[0].IP.Equal(net.IPv6loopback) {
		t.Errorf("lo has IPv6 addresses %v, want ::1", addrs)
	}

	// A second CreateNamed of the name leaves the first namespace alone.
	if _, err := CreateNamed("t-create", false, testLog(t)); !errors.Is(err, ErrExists) {
		t.Errorf("CreateNamed on an existing pin: %v, want ErrExists", err)
	}
	if got, err := PinID("t-create"); err != nil || got != id {
		t.Errorf("after the refused CreateNamed, PinID = %v, %v; want %v", got, err, id)
	}
	if v, _ := GetSysctlIn("t-create", "net.ipv6.conf.all.disable_ipv6"); v != "0" {
		t.Errorf("the refused CreateNamed(ipv6=false) turned IPv6 off in the existing namespace")
	}

	// Set and get inside; the sandbox's own value stays.
	if err := SetSysctlIn("t-create", "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	if v, err := GetSysctlIn("t-create", "net.ipv4.ip_forward"); err != nil || v != "1" {
		t.Errorf("ip_forward in the zone = %q, %v; want 1", v, err)
	}
	if v, err := GetSysctl("net.ipv4.ip_forward"); err != nil || v != "0" {
		t.Errorf("ip_forward in the sandbox = %q, %v; want 0", v, err)
	}
	if err := SetSysctlIn("t-create", "net.ipv4.no_such_key", "1"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("setting a missing sysctl: %v, want ErrNotExist", err)
	}

	// DeleteNamed, twice.
	for i := range 2 {
		if err := DeleteNamed("t-create", testLog(t)); err != nil {
			t.Fatalf("DeleteNamed #%d: %v", i+1, err)
		}
	}
	if _, err := PinID("t-create"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("PinID after DeleteNamed: %v, want ErrNotExist", err)
	}
	if _, err := GetSysctlIn("t-create", "net.ipv4.ip_forward"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("GetSysctlIn after DeleteNamed: %v, want ErrNotExist", err)
	}
}

func TestCreateNamedWithoutIPv6(t *testing.T) {
	rootTest(t)
	newZone(t, "t-no6", false)
	for _, key := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6", "net.ipv6.conf.lo.disable_ipv6"} {
		if v, err := GetSysctlIn("t-no6", key); err != nil || v != "1" {
			t.Errorf("%s = %q, %v; want 1", key, v, err)
		}
	}
	p := testPair("t-no6", 2, false)
	mustEnsure(t, p, true)
	mustEnsure(t, p, false)
	if m := mustInspect(t, p); len(m) > 0 {
		t.Errorf("InspectPair: %q", m)
	}
	zh := zoneHandle(t, "t-no6")
	if addrs, err := zh.AddrList(nil, netlink.FAMILY_V6); err != nil || len(addrs) > 0 {
		t.Errorf("IPv6 addresses in an IPv4-only zone: %v %v", addrs, err)
	}
	hl, err := netlink.LinkByName(p.HostName)
	if err != nil {
		t.Fatal(err)
	}
	if addrs, err := netlink.AddrList(hl, netlink.FAMILY_V6); err != nil || len(addrs) > 0 {
		t.Errorf("IPv6 addresses on the host end of an IPv4-only zone: %v %v", addrs, err)
	}
	if v, err := GetSysctl("net/ipv6/conf/" + p.HostName + "/disable_ipv6"); err != nil || v != "1" {
		t.Errorf("disable_ipv6 on %s = %q, %v; want 1", p.HostName, v, err)
	}
	ns, err := OpenNamed("t-no6")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := ping(ns, p.Host4.Addr()); err != nil {
		t.Errorf("ping from the zone: %v", err)
	}
}

func TestStalePin(t *testing.T) {
	rootTest(t)
	if err := os.MkdirAll(PinDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// An empty file, as a reboot leaves behind.
	if err := os.WriteFile(pinPath("t-stale"), nil, 0); err != nil {
		t.Fatal(err)
	}
	// A mounted namespace of another kind.
	if err := os.WriteFile(pinPath("t-uts"), nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("/proc/self/ns/uts", pinPath("t-uts"), "none", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"t-stale", "t-uts"} {
		if _, err := PinID(name); !errors.Is(err, ErrStalePin) {
			t.Errorf("PinID(%s): %v, want ErrStalePin", name, err)
		}
		if ns, err := OpenNamed(name); !errors.Is(err, ErrStalePin) {
			ns.Close()
			t.Errorf("OpenNamed(%s): %v, want ErrStalePin", name, err)
		}
		if _, err := CreateNamed(name, true, nil); !errors.Is(err, ErrExists) {
			t.Errorf("CreateNamed over %s: %v, want ErrExists", name, err)
		}
		if err := DeleteNamed(name, testLog(t)); err != nil {
			t.Errorf("DeleteNamed(%s): %v", name, err)
		}
		if _, err := os.Lstat(pinPath(name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there after DeleteNamed: %v", name, err)
		}
	}
	if _, err := PinID("t-never"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("PinID of no pin: %v, want ErrNotExist", err)
	}
}

func TestCreateNamedWithAlias(t *testing.T) {
	rootTest(t)
	if _, err := CreateNamedWithAlias("t-alias", "nszone:t-alias", false, testLog(t)); err != nil {
		t.Fatal(err)
	}
	defer DeleteNamed("t-alias", nil)
	if has, err := NamespaceHasAlias("t-alias", "nszone:t-alias"); err != nil || !has {
		t.Errorf("NamespaceHasAlias = %v, %v; want true", has, err)
	}
	if has, err := NamespaceHasAlias("t-alias", "nszone:other"); err != nil || has {
		t.Errorf("NamespaceHasAlias(other) = %v, %v; want false", has, err)
	}
	if _, err := NamespaceHasAlias("t-none", "nszone:t-none"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("NamespaceHasAlias without a pin: %v, want ErrNotExist", err)
	}
}

// TestPinDirNotMounted: like iproute2, CreateNamed turns a plain PinDir into
// a shared mount point of its own.
func TestPinDirNotMounted(t *testing.T) {
	rootTest(t)
	// A fresh /run, in the sandbox's own mount namespace, where PinDir is a
	// plain directory.
	if err := unix.Mount("t-run", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the zones' own cleanups
		if err := unix.Unmount("/run", unix.MNT_DETACH); err != nil {
			t.Error(err)
		}
	})
	if err := os.Mkdir(PinDir, 0o755); err != nil {
		t.Fatal(err)
	}
	run := mountOf(t, "/run")
	if mountOf(t, PinDir)[0] != run[0] {
		t.Fatal("PinDir is a mount point already")
	}
	newZone(t, "t-plain", true)
	pins := mountOf(t, PinDir)
	if pins[4] != PinDir || pins[1] != run[0] || !strings.Contains(strings.Join(pins[6:slices.Index(pins, "-")], " "), "shared:") {
		t.Errorf("PinDir is no shared mount point of its own: %q", pins)
	}
	// Once more: PinDir stays the same mount, not one more on top.
	newZone(t, "t-plain2", true)
	if again := mountOf(t, PinDir); again[0] != pins[0] {
		t.Errorf("PinDir was mounted again: %q", again)
	}
}

// mountOf returns the fields of the /proc/self/mountinfo line of the mount
// that path is on.
func mountOf(t *testing.T, path string) []string {
	t.Helper()
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_MNT_ID, &stx); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 6 && f[0] == strconv.FormatUint(stx.Mnt_id, 10) {
			return f
		}
	}
	t.Fatalf("no mount %d for %s", stx.Mnt_id, path)
	return nil
}
