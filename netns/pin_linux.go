package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

func pinPath(name string) string { return filepath.Join(PinDir, name) }

// CreateNamed makes a new network namespace pinned at PinDir/name, like
// `ip netns add`. setup, if not nil, runs inside the namespace before the pin
// shows it: killed half-way, nszone leaves an empty pin file or a namespace
// set up, never one half set up under the name. An existing pin gives an
// error wrapping ErrExists and is left alone; on any other failure nothing
// remains.
func CreateNamed(name string, setup func() error, log *slog.Logger) (id NsID, err error) {
	log = orDiscard(log)
	if err := CheckName(name); err != nil {
		return NsID{}, err
	}
	if err := ensurePinDir(log); err != nil {
		return NsID{}, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	pin := pinPath(name)
	// O_EXCL claims the name: an existing namespace is never touched.
	f, err := os.OpenFile(pin, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if errors.Is(err, fs.ErrExist) {
		return NsID{}, fmt.Errorf("creating namespace %s: %s: %w", name, pin, ErrExists)
	}
	if err != nil {
		return NsID{}, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	f.Close()

	mounted := false
	defer func() {
		if err == nil {
			return
		}
		if mounted {
			_ = unix.Unmount(pin, unix.MNT_DETACH)
		}
		_ = os.Remove(pin)
	}()
	err = onDyingThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("unsharing the network namespace: %w", err)
		}
		if setup != nil {
			if err := setup(); err != nil {
				return err
			}
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, pin, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting %s on %s: %w", self, pin, err)
		}
		mounted = true
		return nil
	})
	if err == nil {
		id, err = PinID(name)
	}
	if err != nil {
		return NsID{}, fmt.Errorf("creating namespace %s: %w", name, err)
	}
	log.Debug("created network namespace", "name", name, "pin", pin, "id", id)
	return id, nil
}

// ensurePinDir makes PinDir a shared mount point, as iproute2 does, so that a
// pin unmounted here also goes away in mount namespaces that copied it.
func ensurePinDir(log *slog.Logger) error {
	if err := os.MkdirAll(PinDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", PinDir, err)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", PinDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if err != unix.EINVAL || bound {
			return fmt.Errorf("making %s a shared mount: %w", PinDir, err)
		}
		// EINVAL: not a mount point yet.
		if err := unix.Mount(PinDir, PinDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mounting %s on itself: %w", PinDir, err)
		}
		log.Debug("made pin directory a mount point", "dir", PinDir)
	}
}

// DeleteNamed unpins the namespace PinDir/name, like `ip netns delete`; the
// namespace itself lives on while processes, links or handles hold it. No
// pin is success.
func DeleteNamed(name string, log *slog.Logger) error {
	log = orDiscard(log)
	if err := CheckName(name); err != nil {
		return err
	}
	pin := pinPath(name)
	// A pin can be mounted over more than once; take all of them off.
	for range 8 {
		err := unix.Unmount(pin, unix.MNT_DETACH)
		if err == unix.EINVAL || err == unix.ENOENT { // not (or no longer) mounted
			break
		}
		if err != nil {
			return fmt.Errorf("deleting namespace %s: unmounting %s: %w", name, pin, err)
		}
		log.Debug("unmounted namespace pin", "name", name, "pin", pin)
	}
	switch err := os.Remove(pin); {
	case err == nil:
		log.Debug("removed namespace pin", "name", name, "pin", pin)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("deleting namespace %s: %w", name, err)
	}
	return nil
}

// PinID returns the NsID behind PinDir/name: an error wrapping fs.ErrNotExist
// when there is no pin, ErrStalePin when no network namespace is mounted on it.
func PinID(name string) (NsID, error) {
	ns, err := OpenNamed(name)
	if err != nil {
		return NsID{}, err
	}
	defer ns.Close()
	id, err := ns.ID()
	if err != nil {
		return NsID{}, fmt.Errorf("reading namespace %s: %w", name, err)
	}
	return id, nil
}

// orDiscard lets callers pass a nil logger.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
