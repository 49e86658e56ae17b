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
	return offMainThread(fn, func() bool { return false })
}

// offMainThread runs fn on an OS thread locked to it that is not the main
// thread, which cannot exit and so must never risk being left in another
// namespace. The thread goes back to Go's pool only if back() says it is as
// it was; otherwise it dies with its goroutine.
func offMainThread(fn func() error, back func() bool) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// Hop to another thread; while this one stays locked here,
			// the hop cannot land on it again.
			errc <- offMainThread(fn, back)
			runtime.UnlockOSThread() // untouched: safe to give back
			return
		}
		err := fn()
		if back() {
			runtime.UnlockOSThread()
		}
		errc <- err
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
	var home *Handle
	entered := false
	return offMainThread(func() (err error) {
		if home, err = Current(); err != nil {
			return fmt.Errorf("entering network namespace: %w", err)
		}
		if err := unix.Setns(h.fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("entering network namespace: %w", err)
		}
		entered = true
		return fn()
	}, func() bool {
		if home == nil {
			return true // never left home
		}
		defer home.Close()
		return !entered || home.restore()
	})
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
