package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nszone/nszone/internal/kerneltest"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { kerneltest.Main(m, "netns tests") }

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// newNS creates a namespace and removes it after the test.
func newNS(t *testing.T, name string) NsID {
	t.Helper()
	id, err := CreateNamed(name, nil, testLog(t))
	if err != nil {
		t.Fatalf("CreateNamed(%s): %v", name, err)
	}
	t.Cleanup(func() {
		if err := DeleteNamed(name, nil); err != nil {
			t.Errorf("DeleteNamed(%s): %v", name, err)
		}
	})
	return id
}

// current is the identity of the calling thread's namespace.
func current() (NsID, error) {
	h, err := Current()
	if err != nil {
		return NsID{}, err
	}
	defer h.Close()
	return h.ID()
}

func TestCreateNamed(t *testing.T) {
	kerneltest.Root(t)
	home, err := current()
	if err != nil {
		t.Fatal(err)
	}
	var inside NsID
	id, err := CreateNamed("t-create", func() (err error) {
		inside, err = current()
		return err
	}, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { DeleteNamed("t-create", nil) })
	if id == home || id == (NsID{}) || inside != id {
		t.Fatalf("CreateNamed returned %v, setup ran in %v, the sandbox's is %v", id, inside, home)
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

	// A second CreateNamed of the name leaves the first namespace alone.
	ran := false
	if _, err := CreateNamed("t-create", func() error { ran = true; return nil }, testLog(t)); !errors.Is(err, ErrExists) || ran {
		t.Errorf("CreateNamed on an existing pin: %v (setup ran: %v), want ErrExists", err, ran)
	}
	if got, err := PinID("t-create"); err != nil || got != id {
		t.Errorf("after the refused CreateNamed, PinID = %v, %v; want %v", got, err, id)
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
	if err := RunIn("t-create", func() error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RunIn after DeleteNamed: %v, want ErrNotExist", err)
	}
}

// TestCreateNamedSetupFails: a failed set-up leaves no pin behind.
func TestCreateNamedSetupFails(t *testing.T) {
	kerneltest.Root(t)
	boom := errors.New("boom")
	if _, err := CreateNamed("t-fail", func() error { return boom }, testLog(t)); !errors.Is(err, boom) {
		t.Fatalf("CreateNamed with a failing set-up: %v, want boom", err)
	}
	if _, err := os.Lstat(pinPath("t-fail")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("pin left behind: %v", err)
	}
}

func TestRunIn(t *testing.T) {
	kerneltest.Root(t)
	id := newNS(t, "t-run")
	var got NsID
	if err := RunIn("t-run", func() (err error) {
		got, err = current()
		return err
	}); err != nil || got != id {
		t.Errorf("RunIn ran in %v, %v; want %v", got, err, id)
	}
	boom := errors.New("boom")
	if err := RunIn("t-run", func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("RunIn's error: %v, want boom", err)
	}
	cmd := exec.Command("readlink", "/proc/self/ns/net")
	var out strings.Builder
	cmd.Stdout = &out
	if err := StartIn("t-run", cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || strings.TrimSpace(out.String()) != fmt.Sprintf("net:[%d]", id.Ino) {
		t.Errorf("StartIn: the child is in %q (%v), want inode %d", out.String(), err, id.Ino)
	}
}

// TestEnter enters a namespace for good on a thread that dies afterwards.
func TestEnter(t *testing.T) {
	kerneltest.Root(t)
	id := newNS(t, "t-enter")
	var got NsID
	if err := onDyingThread(func() (err error) {
		if err := Enter(pinPath("t-enter")); err != nil {
			return err
		}
		got, err = current()
		return err
	}); err != nil || got != id {
		t.Errorf("Enter: in %v, %v; want %v", got, err, id)
	}
	if err := onDyingThread(func() error { return Enter(pinPath("t-none")) }); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Enter without a pin: %v, want ErrNotExist", err)
	}
}

func TestStalePin(t *testing.T) {
	kerneltest.Root(t)
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
		if _, err := CreateNamed(name, nil, nil); !errors.Is(err, ErrExists) {
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

// TestThreadCheck proves that kerneltest.Root would see a leaked thread.
func TestThreadCheck(t *testing.T) {
	kerneltest.Root(t)
	newNS(t, "t-leak")
	ns, err := OpenNamed("t-leak")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	home, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	defer home.Close()
	entered, release, left := make(chan error), make(chan struct{}), make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with us
		entered <- unix.Setns(ns.Fd(), unix.CLONE_NEWNET)
		<-release
		// Come home all the same: were this the main thread, it could not exit.
		left <- unix.Setns(home.Fd(), unix.CLONE_NEWNET)
	}()
	if err := <-entered; err != nil {
		t.Fatal(err)
	}
	if len(kerneltest.StrayThreads()) == 0 {
		t.Error("a thread inside the namespace went unnoticed")
	}
	close(release)
	if err := <-left; err != nil {
		t.Fatal(err)
	}
}

// TestDoLeavesNoThread runs many short jobs in a namespace at once, so that
// some land on the main thread if onDyingThread let them; kerneltest.Root
// finds any thread left behind.
func TestDoLeavesNoThread(t *testing.T) {
	kerneltest.Root(t)
	id := newNS(t, "t-threads")
	ns, err := OpenNamed("t-threads")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	errc := make(chan error)
	for range 200 {
		go func() {
			errc <- ns.Do(func() error {
				if got, err := current(); err != nil || got != id {
					return fmt.Errorf("not in the namespace: %v %v", got, err)
				}
				return nil
			})
		}()
	}
	for range 200 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// TestPinDirNotMounted: like iproute2, CreateNamed turns a plain PinDir into
// a shared mount point of its own.
func TestPinDirNotMounted(t *testing.T) {
	kerneltest.Root(t)
	// A fresh /run, in the sandbox's own mount namespace, where PinDir is a
	// plain directory.
	if err := unix.Mount("t-run", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the namespaces' own cleanups
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
	newNS(t, "t-plain")
	pins := mountOf(t, PinDir)
	if pins[4] != PinDir || pins[1] != run[0] || !strings.Contains(strings.Join(pins[6:slices.Index(pins, "-")], " "), "shared:") {
		t.Errorf("PinDir is no shared mount point of its own: %q", pins)
	}
	// Once more: PinDir stays the same mount, not one more on top.
	newNS(t, "t-plain2")
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

// A thread that fn moved elsewhere (into a namespace of its own here)
// comes home all the same before Go may use it again, and Do's threads are
// reused rather than made anew each time.
func TestDoComesHome(t *testing.T) {
	kerneltest.Root(t)
	newNS(t, "t-home")
	ns, err := OpenNamed("t-home")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	for range 20 {
		if err := ns.Do(func() error { return unix.Unshare(unix.CLONE_NEWNET) }); err != nil {
			t.Fatal(err)
		}
	}
	if stray := kerneltest.StrayThreads(); len(stray) != 0 {
		t.Fatalf("threads left elsewhere: %v", stray)
	}
	tids := map[int]bool{}
	for range 20 {
		if err := ns.Do(func() error { tids[unix.Gettid()] = true; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if len(tids) == 20 {
		t.Errorf("20 calls ran on 20 threads: Do made a thread for each")
	}
}
