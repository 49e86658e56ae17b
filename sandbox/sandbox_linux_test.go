package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 && !Active() {
		if err := Reexec(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: run scripts/test")
	}
}

func TestCheckSeparate(t *testing.T) {
	self := "/proc/self/ns/net"
	if err := checkSeparate(self, []string{self}); err == nil {
		t.Error("checkSeparate accepted a namespace compared with itself")
	}
	if err := checkSeparate(self, []string{"/nonexistent/ns/net"}); err == nil {
		t.Error("checkSeparate accepted a namespace with no readable reference")
	}
	// An unreadable reference is skipped, the readable one still decides.
	if err := checkSeparate(self, []string{"/nonexistent/ns/net", self}); err == nil {
		t.Error("checkSeparate ignored a readable reference that is the same namespace")
	}
	// Two different namespaces (net and mnt always differ).
	if err := checkSeparate(self, []string{"/proc/self/ns/mnt"}); err != nil {
		t.Errorf("checkSeparate refused different namespaces: %v", err)
	}
}

func TestHostRefsReadable(t *testing.T) {
	needRoot(t)
	// The safety check is only as good as its references: at least one must
	// be readable on this machine.
	readable := 0
	for _, ref := range hostRefs("net") {
		if _, err := os.Stat(ref); err == nil {
			readable++
		}
	}
	if readable == 0 {
		t.Fatalf("none of %v is readable", hostRefs("net"))
	}
}

func TestInsideSandbox(t *testing.T) {
	needRoot(t)
	if !Active() {
		t.Fatal("Active() is false in the re-executed test binary")
	}
	if err := checkIsolated(); err != nil {
		t.Fatal(err)
	}
	// A second Reexec in a sandboxed process is a no-op.
	if err := Reexec(); err != nil {
		t.Fatalf("Reexec inside the sandbox: %v", err)
	}
	for _, dir := range stateDirs {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if st.Type != unix.TMPFS_MAGIC {
			t.Errorf("%s is not a tmpfs", dir)
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 0 {
			t.Errorf("%s: want an empty directory, got %d entries, %v", dir, len(entries), err)
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Attrs().Name != "lo" || links[0].Attrs().Flags&unix.IFF_UP == 0 {
		t.Errorf("want only loopback, up; got %d links", len(links))
	}
	sysNet, err := os.ReadDir("/sys/class/net")
	if err != nil || len(sysNet) != 1 || sysNet[0].Name() != "lo" {
		t.Errorf("/sys/class/net should show only the sandbox's lo: %v %v", sysNet, err)
	}
}

func TestHoldDirs(t *testing.T) {
	base := t.TempDir()
	existing := filepath.Join(base, "existing")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(base, "a", "b")

	first, err := holdDirs([]string{deep, existing})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(base, "a"), deep}; !slices.Equal(first[0].created, want) {
		t.Errorf("created %v, want %v", first[0].created, want)
	}
	if len(first[1].created) != 0 {
		t.Errorf("claims to have created the existing %v", first[1].created)
	}

	// While another sandbox holds it, the creator leaves it in place.
	second, err := holdDirs([]string{deep})
	if err != nil {
		t.Fatal(err)
	}
	if len(second[0].created) != 0 {
		t.Errorf("second holder claims to have created %v", second[0].created)
	}
	releaseDirs(first)
	if _, err := os.Stat(deep); err != nil {
		t.Errorf("removed while another sandbox held it: %v", err)
	}
	// The last one out removes it, when the file system took the mark (that
	// needs root).
	wasMarked := marked(deep) && marked(filepath.Join(base, "a"))
	releaseDirs(second)
	if _, err := os.Stat(filepath.Join(base, "a")); wasMarked != os.IsNotExist(err) {
		t.Errorf("marked %v, but after the last release: %v", wasMarked, err)
	}
	os.RemoveAll(filepath.Join(base, "a"))

	// Alone, the creator removes what it created and nothing else.
	third, err := holdDirs([]string{filepath.Join(base, "c", "d"), existing})
	if err != nil {
		t.Fatal(err)
	}
	releaseDirs(third)
	if _, err := os.Stat(filepath.Join(base, "c")); !os.IsNotExist(err) {
		t.Errorf("created directory left behind: %v", err)
	}
	if _, err := os.Stat(existing); err != nil {
		t.Errorf("pre-existing directory removed: %v", err)
	}

	// A directory that is not empty stays.
	fourth, err := holdDirs([]string{filepath.Join(base, "e")})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "e", "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	releaseDirs(fourth)
	if _, err := os.Stat(filepath.Join(base, "e", "f")); err != nil {
		t.Errorf("non-empty directory touched: %v", err)
	}
}
