package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const netnsDir = "/run/netns"

// newPinnedNetns creates a network namespace and pins it at /run/netns/NAME,
// as `ip netns add` does, so that `ip netns exec NAME` works.
func newPinnedNetns(name string) (netns.NsHandle, error) {
	if err := makeSharedMount(netnsDir); err != nil {
		return netns.None(), err
	}
	pin := filepath.Join(netnsDir, name)
	f, err := os.OpenFile(pin, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return netns.None(), fmt.Errorf("creating pin %s: %w", pin, err)
	}
	f.Close()

	err = onDyingThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unsharing network namespace: %w", err)
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, pin, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting %s on %s: %w", src, pin, err)
		}
		return nil
	})
	if err != nil {
		os.Remove(pin)
		return netns.None(), fmt.Errorf("creating namespace %s: %w", name, err)
	}
	ns, err := netns.GetFromPath(pin)
	if err != nil {
		return netns.None(), errors.Join(fmt.Errorf("opening %s: %w", pin, err), removePin(name))
	}
	return ns, nil
}

// removePin unpins a namespace made by newPinnedNetns; it goes away once
// nothing else holds it.
func removePin(name string) error {
	pin := filepath.Join(netnsDir, name)
	if err := unix.Unmount(pin, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting %s: %w", pin, err)
	}
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", pin, err)
	}
	return nil
}

// makeSharedMount makes dir a shared mount, binding it onto itself first if
// it is not a mountpoint, as iproute2 does for /run/netns: pins made later
// then show up in mount namespaces copied earlier.
func makeSharedMount(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) {
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mounting %s on itself: %w", dir, err)
		}
		err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("making %s a shared mount: %w", dir, err)
	}
	return nil
}

// runIn runs fn inside ns on a thread that dies afterwards, so no other
// goroutine can land in ns by accident.
func runIn(ns netns.NsHandle, fn func() error) error {
	return onDyingThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("entering network namespace: %w", err)
		}
		return fn()
	})
}

// handleIn opens a netlink handle whose socket lives in ns. It is made inside
// ns by runIn: netlink.NewHandleAt would switch a pool thread there and back.
func handleIn(ns netns.NsHandle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := runIn(ns, func() (err error) {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	return h, err
}

// onDyingThread runs fn on an OS thread that is never handed back to the Go
// scheduler: Go ends a thread whose goroutine exits while locked to it.
// Except the main thread, which it parks forever instead, in whatever
// namespace fn left it (and /proc/self/ns/net shows the main thread's).
// So fn never runs there: while a goroutine holds the main thread locked,
// a new one cannot be scheduled onto it.
func onDyingThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, unless fn did not run here
		if unix.Gettid() == unix.Getpid() {
			errc <- onDyingThread(fn)
			runtime.UnlockOSThread()
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// writeSysctl sets a sysctl, named by its path under /proc/sys (e.g.
// "net/ipv4/ip_forward"), in the calling thread's network namespace.
func writeSysctl(key, value string) error {
	if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644); err != nil {
		return fmt.Errorf("setting %s=%s: %w", key, value, err)
	}
	return nil
}
