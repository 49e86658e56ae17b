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

// Do runs fn inside the namespace, on an OS thread that dies afterwards.
// Sockets fn opens stay in the namespace; so do processes it starts.
func (h *Handle) Do(fn func() error) error {
	return onDyingThread(func() error {
		if err := unix.Setns(h.fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("entering network namespace: %w", err)
		}
		return fn()
	})
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
