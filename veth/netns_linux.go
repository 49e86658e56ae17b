package veth

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// onDyingThread runs fn on an OS thread that exits when fn returns, so that fn
// may move it into another namespace: the thread never goes back to Go's pool.
func onDyingThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		if unix.Gettid() == unix.Getpid() {
			// The main thread cannot exit: the runtime would park it forever,
			// in whatever namespace fn left it. Hop to another thread; while
			// this one stays locked here, the hop cannot land on it again.
			errc <- onDyingThread(fn)
			runtime.UnlockOSThread() // untouched: safe to give back
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// inNamespace runs fn inside the network namespace ns, on a dying thread.
func inNamespace(ns netns.NsHandle, fn func() error) error {
	return onDyingThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("entering network namespace: %w", err)
		}
		return fn()
	})
}

// handleIn opens a netlink handle whose socket lives in ns. The socket is made
// on a dying thread: netlink.NewHandleAt would switch a pool thread and give
// it back even when switching back failed.
func handleIn(ns netns.NsHandle) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := inNamespace(ns, func() (err error) {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	return h, err
}

func pinPath(name string) string { return filepath.Join(PinDir, name) }

// CreateNamed makes a new network namespace pinned at PinDir/name, like
// `ip netns add`, with loopback up and router advertisements ignored; without
// ipv6 it also turns IPv6 off in the whole namespace. An existing pin gives an
// error wrapping ErrExists and is left alone; on any other failure nothing
// remains.
func CreateNamed(name string, ipv6 bool, log *slog.Logger) (NsID, error) {
	return CreateNamedWithAlias(name, "", ipv6, log)
}

// CreateNamedWithAlias is CreateNamed that also sets alias on the namespace's
// loopback, so that NamespaceHasAlias recognises it from birth, before any
// veth end is in it.
func CreateNamedWithAlias(name, alias string, ipv6 bool, log *slog.Logger) (id NsID, err error) {
	log = orDiscard(log)
	if err := checkPinName(name); err != nil {
		return NsID{}, err
	}
	if err := ensurePinDir(log); err != nil {
		return NsID{}, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	pin := pinPath(name)
	// O_EXCL claims the name: an existing namespace is never touched.
	f, err := os.OpenFile(pin, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if errors.Is(err, fs.ErrExist) {
		return NsID{}, fmt.Errorf("creating namespace %s: %s: %w", name, pin, ErrExists)
	}
	if err != nil {
		return NsID{}, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	f.Close()

	mounted := false
	defer func() {
		if err == nil {
			return
		}
		if mounted {
			_ = unix.Unmount(pin, unix.MNT_DETACH)
		}
		_ = os.Remove(pin)
	}()
	err = onDyingThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unsharing the network namespace: %w", err)
		}
		// Set up (the alias on loopback included) before the pin shows the
		// namespace: killed half-way, nszone leaves an empty pin file or a
		// marked namespace, never an unmarked one it cannot tell apart from
		// a namespace of someone else.
		if err := setupNew(alias, ipv6); err != nil {
			return err
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, pin, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting %s on %s: %w", self, pin, err)
		}
		mounted = true
		return nil
	})
	if err == nil {
		id, err = PinID(name)
	}
	if err != nil {
		return NsID{}, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	log.Debug("created network namespace", "name", name, "pin", pin, "ipv6", ipv6, "id", id)
	return id, nil
}

// setupNew prepares a fresh namespace from a thread inside it. Sysctls come
// before loopback goes up, so that ::1 never appears in an IPv4-only zone.
func setupNew(alias string, ipv6 bool) error {
	sysctls := [][2]string{{"net.ipv6.conf.all.accept_ra", "0"}, {"net.ipv6.conf.default.accept_ra", "0"}}
	if !ipv6 {
		sysctls = append(sysctls, [2]string{"net.ipv6.conf.all.disable_ipv6", "1"}, [2]string{"net.ipv6.conf.default.disable_ipv6", "1"})
	}
	for _, kv := range sysctls {
		// A kernel without IPv6 has no such files, and nothing to turn off.
		if err := writeSysctl(kv[0], kv[1]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("opening netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil && alias != "" {
		err = h.LinkSetAlias(lo, alias)
	}
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("setting up loopback: %w", err)
	}
	return nil
}

// ensurePinDir makes PinDir a shared mount point, as iproute2 does, so that a
// pin unmounted here also goes away in mount namespaces that copied it.
func ensurePinDir(log *slog.Logger) error {
	if err := os.MkdirAll(PinDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", PinDir, err)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", PinDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if err != unix.EINVAL || bound {
			return fmt.Errorf("making %s a shared mount: %w", PinDir, err)
		}
		// EINVAL: not a mount point yet.
		if err := unix.Mount(PinDir, PinDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mounting %s on itself: %w", PinDir, err)
		}
		log.Debug("made pin directory a mount point", "dir", PinDir)
	}
}

// openNS opens a namespace file and checks that it is a network namespace.
func openNS(path string) (netns.NsHandle, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return netns.None(), &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		unix.Close(fd)
		return netns.None(), &fs.PathError{Op: "statfs", Path: path, Err: err}
	}
	if sfs.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return netns.None(), fmt.Errorf("%s: no namespace mounted: %w", path, ErrStalePin)
	}
	if typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE); err != nil || typ != unix.CLONE_NEWNET {
		unix.Close(fd)
		return netns.None(), fmt.Errorf("%s: not a network namespace: %w", path, ErrStalePin)
	}
	return netns.NsHandle(fd), nil
}

// PinID returns the NsID behind PinDir/name: an error wrapping fs.ErrNotExist
// when there is no pin, ErrStalePin when no network namespace is mounted on it.
func PinID(name string) (NsID, error) {
	ns, err := OpenNamed(name)
	if err != nil {
		return NsID{}, err
	}
	defer ns.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(ns), &st); err != nil {
		return NsID{}, fmt.Errorf("reading namespace %s: %w", name, err)
	}
	return NsID{Dev: st.Dev, Ino: st.Ino}, nil
}

// OpenNamed opens the namespace pinned at PinDir/name; the caller closes it.
// Errors are those of PinID.
func OpenNamed(name string) (netns.NsHandle, error) {
	if err := checkPinName(name); err != nil {
		return netns.None(), err
	}
	return openNS(pinPath(name))
}

// DeleteNamed unpins the namespace PinDir/name, like `ip netns delete`; the
// namespace itself lives on while processes or links hold it. No pin is success.
func DeleteNamed(name string, log *slog.Logger) error {
	log = orDiscard(log)
	if err := checkPinName(name); err != nil {
		return err
	}
	pin := pinPath(name)
	// A pin can be mounted over more than once; take all of them off.
	for range 8 {
		err := unix.Unmount(pin, unix.MNT_DETACH)
		if err == unix.EINVAL || err == unix.ENOENT { // not (or no longer) mounted
			break
		}
		if err != nil {
			return fmt.Errorf("deleting namespace %s: unmounting %s: %w", name, pin, err)
		}
		log.Debug("unmounted namespace pin", "name", name, "pin", pin)
	}
	switch err := os.Remove(pin); {
	case err == nil:
		log.Debug("removed namespace pin", "name", name, "pin", pin)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("deleting namespace %s: %w", name, err)
	}
	return nil
}

// readSysctl and writeSysctl act on the namespace of the calling thread.
func readSysctl(key string) (string, error) {
	p, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("reading sysctl %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctl(key, value string) error {
	p, err := sysctlPath(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0) // no O_CREATE: a missing key is an error
	if err == nil {
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("setting sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

// GetSysctl reads a sysctl of the current network namespace, e.g.
// "net.ipv4.ip_forward". A key with a slash is a path under /proc/sys.
func GetSysctl(key string) (string, error) { return readSysctl(key) }

// SetSysctl writes a sysctl of the current network namespace; a key that does
// not exist gives an error wrapping fs.ErrNotExist.
func SetSysctl(key, value string) error { return writeSysctl(key, value) }

// GetSysctlIn reads a sysctl inside the namespace pinned at PinDir/name.
func GetSysctlIn(name, key string) (value string, err error) {
	err = withNamed(name, func() (err error) {
		value, err = readSysctl(key)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("in namespace %s: %w", name, err)
	}
	return value, nil
}

// SetSysctlIn writes a sysctl inside the namespace pinned at PinDir/name.
func SetSysctlIn(name, key, value string) error {
	if err := withNamed(name, func() error { return writeSysctl(key, value) }); err != nil {
		return fmt.Errorf("in namespace %s: %w", name, err)
	}
	return nil
}

// withNamed runs fn inside the namespace pinned at PinDir/name.
func withNamed(name string, fn func() error) error {
	ns, err := OpenNamed(name)
	if err != nil {
		return err
	}
	defer ns.Close()
	return inNamespace(ns, fn)
}
