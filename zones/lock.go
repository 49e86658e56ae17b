package zones

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Lock serialises nszone commands: up and down take it exclusively; exec,
// status and plan shared. The descriptor is close-on-exec, so a program
// started by exec does not hold it.
type Lock struct {
	f         *os.File
	m         *Manager
	exclusive bool
}

func (m *Manager) lockPath() string { return m.path(RunDir, "lock") }

// Lock takes the lock, saying so on stderr when it has to wait. A shared
// lock needs no file: when there is none, no command that changes
// anything is running (it would have made one) and nothing is up.
func (m *Manager) Lock(exclusive bool) (*Lock, error) {
	how, flags := unix.LOCK_SH, os.O_RDONLY
	if exclusive {
		how, flags = unix.LOCK_EX, os.O_RDWR|os.O_CREATE
		if err := os.MkdirAll(m.path(RunDir), 0o755); err != nil {
			return nil, fmt.Errorf("creating %s: %w", m.path(RunDir), err)
		}
	}
	for {
		f, err := os.OpenFile(m.lockPath(), flags|unix.O_CLOEXEC, 0o600)
		if !exclusive && errors.Is(err, fs.ErrNotExist) {
			return &Lock{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("opening the lock %s: %w", m.lockPath(), err)
		}
		if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
			fmt.Fprintln(os.Stderr, "nszone: waiting for another nszone command to finish")
			err = unix.Flock(int(f.Fd()), how)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("waiting for the lock: %w", err)
			}
		} else if err != nil {
			f.Close()
			return nil, fmt.Errorf("taking the lock: %w", err)
		}
		// The holder before us may have removed the file (nothing was left
		// up): a lock on a removed file guards nothing, so start again.
		if sameFile(f, m.lockPath()) {
			return &Lock{f: f, m: m, exclusive: exclusive}, nil
		}
		f.Close()
		if !exclusive {
			return &Lock{}, nil
		}
	}
}

func sameFile(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// Unlock releases the lock. When nothing of nszone's is left, the lock
// file and the run directory go too: down leaves no file behind.
func (l *Lock) Unlock() {
	if l == nil || l.f == nil {
		return
	}
	if l.exclusive && l.m.nothingLeft() {
		os.Remove(l.m.lockPath())
		os.Remove(l.m.path(RunDir, "zones"))
		os.Remove(l.m.path(RunDir)) // fails while anything else is in it, as it should
	}
	l.f.Close()
	l.f = nil // a second Unlock does nothing
}

// nothingLeft reports whether no zone record and no host record remain.
func (m *Manager) nothingLeft() bool {
	if _, err := os.Stat(m.hostRecordPath()); err == nil {
		return false
	}
	entries, _ := os.ReadDir(m.path(RunDir, "zones"))
	return len(entries) == 0
}
