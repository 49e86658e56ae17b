// Package kerneltest is what the tests that touch the kernel share: they run
// only inside a sandbox (package sandbox: a network and mount namespace of
// their own), and no thread of theirs may stay in another namespace after
// a test.
package kerneltest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/sandbox"
)

// NS identifies a namespace: the device and inode of its file.
type NS struct{ Dev, Ino uint64 }

// NSOf identifies the namespace whose file is path (/proc/.../ns/net).
func NSOf(path string) (NS, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return NS{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return NS{Dev: st.Dev, Ino: st.Ino}, nil
}

// home is the network namespace of the test process: the sandbox's.
var home NS

// Home is the network namespace the tests run in: the sandbox's.
func Home() NS { return home }

// Option changes what Main does.
type Option func(*options)

type options struct {
	setup func() (teardown func(), err error)
}

// Setup gives Main what a package prepares in the sandbox before its tests
// (binaries built, a lab started). It runs as root only, inside the
// sandbox; when it fails the tests do not run. The teardown it returns, if
// any, runs after them.
func Setup(f func() (teardown func(), err error)) Option {
	return func(o *options) { o.setup = f }
}

// Main runs the package's tests, as root only inside a sandbox (the
// process starts itself again in one). what names the tests in errors.
func Main(m *testing.M, what string, opts ...Option) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	root := os.Geteuid() == 0
	if root && !sandbox.Active() {
		if err := sandbox.Reexec(); err != nil {
			fmt.Fprintln(os.Stderr, what+":", err)
			os.Exit(1)
		}
		if !sandbox.Active() {
			fmt.Fprintln(os.Stderr, what+": not in a sandbox, refusing to run as root")
			os.Exit(1)
		}
	}
	var err error
	if home, err = NSOf("/proc/self/ns/net"); err != nil {
		fmt.Fprintln(os.Stderr, what+":", err)
		os.Exit(1)
	}
	if !root || o.setup == nil {
		os.Exit(m.Run())
	}
	teardown, err := o.setup()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, what+":", err)
	} else {
		code = m.Run()
	}
	if teardown != nil {
		teardown()
	}
	os.Exit(code)
}

// Root skips without root in the sandbox and, after the test, checks that
// no thread of the process stayed in another network namespace.
func Root(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 || !sandbox.Active() {
		tb.Skip("needs root in the sandbox: run scripts/test")
	}
	tb.Cleanup(func() { CheckThreads(tb) })
}

// CheckThreads fails the test when a thread of the process is in another
// network namespace than Home. A thread that ran in one may still be on
// its way out (a locked thread ends with its goroutine): it waits up to 2s
// before failing.
func CheckThreads(tb testing.TB) {
	tb.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		stray := StrayThreads()
		if len(stray) == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("threads %v of process %d stay in another network namespace", stray, os.Getpid())
			return
		}
	}
}

// StrayThreads lists the threads of the process that are not in Home.
func StrayThreads() []string {
	tasks, _ := os.ReadDir("/proc/self/task")
	var out []string
	for _, task := range tasks {
		ns, err := NSOf("/proc/self/task/" + task.Name() + "/ns/net")
		if err == nil && ns != home { // an error: the thread just exited
			out = append(out, task.Name())
		}
	}
	return out
}
