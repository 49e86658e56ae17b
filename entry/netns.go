package entry

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Namespace is a network namespace held open: while it is, the kernel
// gives neither its inode number nor its id to another namespace, so a
// namespace found later with the same ones is this one. (A namespace's
// inode number is free again as soon as it is gone, and is given to the
// next namespace made: compared without holding the first open, a zone
// taken down and brought up again in between would look the same.)
type Namespace struct {
	fd       int
	Dev, Ino uint64
}

// OpenNamespace opens the network namespace pinned at path (in
// /run/netns; a symlink there is refused), close-on-exec, and checks that it
// is one.
func OpenNamespace(path string) (*Namespace, error) {
	return openNamespace(path, unix.O_NOFOLLOW)
}

func openNamespace(path string, flags int) (*Namespace, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|flags, 0)
	if err != nil {
		return nil, err
	}
	n := &Namespace{fd: fd}
	if err := n.check(path); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return n, nil
}

func (n *Namespace) check(path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(n.fd, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(n.fd, &fs); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("%s is not a namespace", path)
	}
	if t, err := unix.IoctlRetInt(n.fd, unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		return fmt.Errorf("%s is not a network namespace", path)
	}
	n.Dev, n.Ino = uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // Dev is a uint32 on linux/mips*
	return nil
}

// Close lets the namespace go.
func (n *Namespace) Close() error { return unix.Close(n.fd) }

// Holds reports whether the network namespace of the calling thread is n:
// the same device and inode number, which no other namespace can have
// while n is held, and, where the kernel gives namespaces an id (the
// NS_GET_ID ioctl, Linux 6.18 and later), the same id.
func (n *Namespace) Holds() (bool, error) {
	self, err := openNamespace("/proc/thread-self/ns/net", 0) // a link of /proc's own
	if err != nil {
		return false, err
	}
	defer self.Close()
	if self.Dev != n.Dev || self.Ino != n.Ino {
		return false, nil
	}
	a, aerr := n.id()
	b, berr := self.id()
	switch {
	case aerr == nil && berr == nil:
		return a == b, nil
	case noIDs(aerr) && noIDs(berr):
		return true, nil // no namespace ids on this kernel: the inode, held, says it
	case aerr != nil:
		return false, aerr
	default:
		return false, berr
	}
}

// id is the namespace's id, unique for the kernel's lifetime (NS_GET_ID).
func (n *Namespace) id() (uint64, error) {
	var id uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(n.fd), unix.NS_GET_ID, uintptr(unsafe.Pointer(&id))); errno != 0 {
		return 0, errno
	}
	return id, nil
}

// noIDs reports whether err says the kernel has no NS_GET_ID.
func noIDs(err error) bool { return errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) }
