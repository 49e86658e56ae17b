package netns

import (
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Handle is an open network namespace file, close-on-exec: while it is
// open, the namespace lives. The caller closes it.
type Handle struct{ fd int }

// OpenNamed opens the namespace pinned at PinDir/name. Errors are those of
// PinID.
func OpenNamed(name string) (*Handle, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	return open(pinPath(name))
}

// Current opens the calling thread's network namespace. /proc/thread-self
// is resolved by the one open, so the goroutine may move between threads
// before or after without harm.
func Current() (*Handle, error) { return open("/proc/thread-self/ns/net") }

// open opens a namespace file and checks that it is a network namespace.
func open(path string) (*Handle, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "statfs", Path: path, Err: err}
	}
	if sfs.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: no namespace mounted: %w", path, ErrStalePin)
	}
	if typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE); err != nil || typ != unix.CLONE_NEWNET {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: not a network namespace: %w", path, ErrStalePin)
	}
	return &Handle{fd: fd}, nil
}

// Fd is the handle's file descriptor, for calls that take a namespace by
// one (netlink's IFLA_NET_NS_FD, nftables.WithNetNSFd). It stays the
// handle's: Close closes it.
func (h *Handle) Fd() int { return h.fd }

// Close lets the namespace go. A nil or closed Handle is no error.
func (h *Handle) Close() error {
	if h == nil || h.fd < 0 {
		return nil
	}
	err := unix.Close(h.fd)
	h.fd = -1
	return err
}

// ID returns the namespace's identity.
func (h *Handle) ID() (NsID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(h.fd, &st); err != nil {
		return NsID{}, err
	}
	return NsID{Dev: st.Dev, Ino: st.Ino}, nil
}
