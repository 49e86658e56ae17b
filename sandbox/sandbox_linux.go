package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Reexec puts the program into a sandbox.
//
// Outside one, it re-executes /proc/self/exe with the same arguments and
// environment plus EnvMarker=1 in a new network and mount namespace, forwards
// SIGINT, SIGTERM, SIGHUP and SIGQUIT to it, waits, removes the mountpoint
// directories it had to create, and exits with the child's status: it returns
// only on an error before the child started. In the child it runs Setup and
// returns its error; in a process that is already sandboxed it returns nil.
func Reexec() error {
	switch os.Getenv(EnvMarker) {
	case "":
	case markerReady:
		if err := checkIsolated(); err != nil {
			return fmt.Errorf("%s=%s is set, but %w", EnvMarker, markerReady, err)
		}
		return nil
	default:
		return Setup()
	}
	if os.Geteuid() != 0 {
		return errors.New("the sandbox needs root")
	}

	// The parent creates missing mountpoints, so that it knows which ones to
	// remove once the child is gone.
	held, err := holdDirs(stateDirs)
	if err != nil {
		return err
	}

	// Pdeathsig fires when the thread that started the child ends, so that
	// thread must live as long as this process: it is never unlocked.
	runtime.LockOSThread()
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), EnvMarker+"="+markerPending) // the last value wins
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL, // a killed parent must not leave the child running
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	if err := cmd.Start(); err != nil {
		signal.Stop(sigs)
		releaseDirs(held)
		return fmt.Errorf("starting %s in a new network namespace: %w", os.Args[0], err)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	releaseDirs(held)

	code := 1
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		} else {
			code = exitErr.ExitCode()
		}
	default:
		fmt.Fprintf(os.Stderr, "sandbox: waiting for %s: %v\n", os.Args[0], err)
	}
	os.Exit(code)
	return nil
}

// Setup builds the sandbox inside a process that already runs in a new network
// and mount namespace: it makes every mount private, mounts a fresh tmpfs on
// each of nszone's state directories and a sysfs of the new namespace on /sys,
// and brings loopback up. It refuses, changing nothing, when either namespace
// is the host's.
func Setup() error {
	if err := checkIsolated(); err != nil {
		return fmt.Errorf("refusing to set up the sandbox: %w", err)
	}
	// Nothing mounted from here on may propagate to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making / private: %w", err)
	}
	for _, dir := range stateDirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating mountpoint %s: %w", dir, err)
		}
		if err := unix.Mount("nszone-sandbox", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("mounting tmpfs on %s: %w", dir, err)
		}
	}
	// The inherited /sys shows the host's interfaces: a write to
	// /sys/class/net/eth0 would change the real eth0.
	if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting sysfs on /sys: %w", err)
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("opening netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("bringing up loopback: %w", err)
	}
	return os.Setenv(EnvMarker, markerReady)
}

// Active reports whether this process runs in a sandbox that Setup built.
func Active() bool {
	return os.Getenv(EnvMarker) == markerReady && checkIsolated() == nil
}

// checkIsolated returns an error unless both the network and the mount
// namespace of this process differ from the host's.
func checkIsolated() error {
	for _, kind := range []string{"net", "mnt"} {
		if err := checkSeparate("/proc/self/ns/"+kind, hostRefs(kind)); err != nil {
			return fmt.Errorf("%s namespace: %w", kind, err)
		}
	}
	return nil
}

// hostRefs lists namespace files known to be the host's: PID 1's, and
// kthreadd's, because some machines hide PID 1 even from root (EACCES) while
// kernel threads always live in the initial namespaces.
func hostRefs(kind string) []string {
	refs := []string{"/proc/1/ns/" + kind}
	if status, err := os.ReadFile("/proc/2/status"); err == nil &&
		strings.Contains(string(status), "Name:\tkthreadd\n") && strings.Contains(string(status), "\nPPid:\t0\n") {
		refs = append(refs, "/proc/2/ns/"+kind)
	}
	return refs
}

// checkSeparate returns an error unless the namespace file self differs from
// every readable file in refs, and at least one of them is readable.
func checkSeparate(self string, refs []string) error {
	var own unix.Stat_t
	if err := unix.Stat(self, &own); err != nil {
		return fmt.Errorf("reading %s: %w", self, err)
	}
	compared := 0
	var errs []error
	for _, ref := range refs {
		var st unix.Stat_t
		if err := unix.Stat(ref, &st); err != nil {
			errs = append(errs, err)
			continue
		}
		compared++
		if st.Dev == own.Dev && st.Ino == own.Ino {
			return fmt.Errorf("%s is the same as %s: not in a sandbox", self, ref)
		}
	}
	if compared == 0 {
		return fmt.Errorf("no host namespace to compare %s with: %w", self, errors.Join(errs...))
	}
	return nil
}
