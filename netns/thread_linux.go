package netns

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"

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

// Do runs fn inside the namespace, on an OS thread locked to it, and then
// moves the thread back. Sockets fn opens stay in the namespace; so do
// processes it starts. fn must change nothing else of the thread's.
//
// Only a thread proven back home (its namespace the very one it left, by
// device and inode) returns to Go's pool; any other dies with its
// goroutine. A thread made and ended for each call cost three times as much,
// and up and watch call this for every zone.
func (h *Handle) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread cannot exit, so it must never risk being
			// left elsewhere: hop to another thread (see onDyingThread).
			errc <- h.Do(fn)
			runtime.UnlockOSThread() // untouched: safe to give back
			return
		}
		home, err := Current()
		if err != nil {
			errc <- fmt.Errorf("entering network namespace: %w", err)
			return // dies: nothing to prove
		}
		defer home.Close()
		if err := unix.Setns(h.fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering network namespace: %w", err)
			return
		}
		err = fn()
		if home.restore() {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// restore moves the calling thread into h again and reports whether it is
// there now.
func (h *Handle) restore() bool {
	if unix.Setns(h.fd, unix.CLONE_NEWNET) != nil {
		return false
	}
	want, err := h.ID()
	if err != nil {
		return false
	}
	var st unix.Stat_t
	return unix.Stat("/proc/thread-self/ns/net", &st) == nil && (NsID{Dev: st.Dev, Ino: st.Ino}) == want
}

// RunIn runs fn inside the network namespace pinned at PinDir/name, as Do.
func RunIn(name string, fn func() error) error {
	ns, err := OpenNamed(name)
	if err == nil {
		defer ns.Close()
		err = ns.Do(fn)
	}
	if err != nil {
		return fmt.Errorf("in namespace %s: %w", name, err)
	}
	return nil
}

// StartIn starts cmd inside the network namespace pinned at PinDir/name: the
// child is forked from a thread that has entered the namespace. The caller
// waits for it as usual.
func StartIn(name string, cmd *exec.Cmd) error {
	return RunIn(name, cmd.Start)
}

// Enter moves the calling thread into the network namespace at path, for
// good. Only for a goroutine locked to its thread and never unlocked, whose
// thread then execs or exits (launch.Exec): any other thread would go back
// to Go's pool inside the namespace.
func Enter(path string) error {
	if path == "" {
		return errors.New("entering network namespace: no namespace given")
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering network namespace %s: %w", path, err)
	}
	return nil
}
