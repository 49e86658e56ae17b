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

	"github.com/nszone/nszone/sandbox"
)

// homeNS is the network namespace of the test process: the sandbox's.
var homeNS string

// Main runs the package's tests, as root only inside a sandbox (the
// process starts itself again in one). what names the tests in errors.
func Main(m *testing.M, what string) {
	if os.Geteuid() == 0 && !sandbox.Active() {
		if err := sandbox.Reexec(); err != nil {
			fmt.Fprintln(os.Stderr, what+":", err)
			os.Exit(1)
		}
		if !sandbox.Active() {
			fmt.Fprintln(os.Stderr, what+": not in a sandbox, refusing to run as root")
			os.Exit(1)
		}
	}
	homeNS, _ = os.Readlink("/proc/self/ns/net")
	os.Exit(m.Run())
}

// Root skips without root in the sandbox and, after the test, checks that
// no thread of the process stayed in another network namespace.
func Root(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 || !sandbox.Active() {
		tb.Skip("needs root in the sandbox: run scripts/test")
	}
	tb.Cleanup(func() {
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			stray := StrayThreads()
			if len(stray) == 0 {
				return
			}
			if time.Now().After(deadline) {
				tb.Errorf("threads %v stay in another network namespace", stray)
				return
			}
		}
	})
}

// StrayThreads lists the threads of the process that are not in the
// sandbox's network namespace.
func StrayThreads() []string {
	tasks, _ := os.ReadDir("/proc/self/task")
	var out []string
	for _, task := range tasks {
		ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
		if err == nil && ns != homeNS { // an error: the thread just exited
			out = append(out, task.Name())
		}
	}
	return out
}
