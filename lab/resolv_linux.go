package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// setupResolver makes the host resolve through the LAN's DNS server, as a
// home router would have it. It only mounts: the sandbox's mount namespace is
// private, so the real files stay untouched.
func (l *Lab) setupResolver() error {
	content := fmt.Sprintf("# nszone lab: the LAN's DNS server, as a home router hands it out\nnameserver %s\n", l.Nameserver)

	// nss-resolve and nscd would answer from the real host's resolver (and
	// send queries to the real network): hide their sockets. systemd-resolved's
	// directory keeps a resolv.conf and stub-resolv.conf with the lab's
	// server, so that an /etc/resolv.conf symlinked into it still resolves and
	// whoever reads the upstream servers from there finds the lab's.
	for _, dir := range []string{"/run/systemd/resolve", "/run/nscd"} {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		if err := unix.Mount("nszone-lab", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return fmt.Errorf("hiding %s: %w", dir, err)
		}
		l.onClose(func() error { return unmount(dir) })
		l.log.Debug("hid directory", "path", dir)
		if dir == "/run/systemd/resolve" {
			for _, name := range []string{"resolv.conf", "stub-resolv.conf"} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					return fmt.Errorf("writing the lab's %s: %w", name, err)
				}
			}
		}
	}

	// mount(2) follows a symlink at the target, so bind over where
	// /etc/resolv.conf really is.
	target, err := filepath.EvalSymlinks("/etc/resolv.conf")
	if err != nil {
		return fmt.Errorf("finding /etc/resolv.conf to bind over: %w", err)
	}
	// The file lives on a tmpfs of the sandbox's own: a bind mount of a
	// deleted file would refuse the binds of `ip netns exec` and `nszone
	// exec` over /etc/resolv.conf, and nothing may be left on the disk.
	dir, err := os.MkdirTemp("", "nszone-lab-resolv-")
	if err != nil {
		return fmt.Errorf("writing the lab's resolv.conf: %w", err)
	}
	if err := unix.Mount("nszone-lab", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755,size=64k"); err != nil {
		os.Remove(dir)
		return fmt.Errorf("mounting a tmpfs for the lab's resolv.conf: %w", err)
	}
	l.onClose(func() error {
		err := unmount(dir)
		return errors.Join(err, os.Remove(dir))
	})
	f, err := os.Create(filepath.Join(dir, "resolv.conf"))
	if err != nil {
		return fmt.Errorf("writing the lab's resolv.conf: %w", err)
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Chmod(0o644) // programs run as a user must read it too
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the lab's resolv.conf: %w", err)
	}
	if err := unix.Mount(f.Name(), target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting the lab's resolv.conf on %s: %w", target, err)
	}
	l.onClose(func() error { return unmount(target) })
	l.log.Debug("bound resolv.conf", "path", target, "nameserver", l.Nameserver)
	return nil
}

func unmount(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmounting %s: %w", path, err)
	}
	return nil
}
