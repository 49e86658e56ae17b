// Package netns owns nszone's network namespaces as kernel objects: pinning
// them under PinDir (as `ip netns` does), telling them apart, and running
// code inside one.
//
// It is the only package that moves a thread into another network namespace
// (scripts/check-nsswitch holds the rest of nszone to that). What must run
// inside one runs on a locked OS thread that exits afterwards, so no thread
// ever returns to Go's pool in a foreign namespace, and no other goroutine
// lands in one by accident.
package netns

import (
	"errors"
	"fmt"
	"strings"
)

// PinDir holds the files that pin named network namespaces, as for `ip netns`.
const PinDir = "/run/netns"

var (
	// ErrExists: a namespace of that name is already pinned.
	ErrExists = errors.New("exists")
	// ErrStalePin: the pin file exists but no network namespace is mounted on it.
	ErrStalePin = errors.New("stale pin")
)

// NsID identifies a namespace (st_dev/st_ino of its nsfs file).
type NsID struct{ Dev, Ino uint64 }

func (id NsID) String() string { return fmt.Sprintf("%d:%d", id.Dev, id.Ino) }

// CheckName keeps a namespace name to one path element under PinDir.
func CheckName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
		return fmt.Errorf("invalid namespace name %q", name)
	}
	return nil
}
