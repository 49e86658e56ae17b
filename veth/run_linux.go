package veth

import (
	"fmt"
	"os/exec"
)

// RunIn runs fn inside the network namespace pinned at PinDir/name, on an OS
// thread that dies afterwards. Sockets fn opens stay in that namespace.
func RunIn(name string, fn func() error) error {
	if err := withNamed(name, fn); err != nil {
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
