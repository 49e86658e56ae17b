//go:build !linux

package sandbox

import "errors"

var errUnsupported = errors.New("the sandbox needs Linux namespaces")

// Reexec fails: there are no network namespaces outside Linux.
func Reexec() error { return errUnsupported }

// Setup fails: there are no network namespaces outside Linux.
func Setup() error { return errUnsupported }

// Active is always false outside Linux.
func Active() bool { return false }
