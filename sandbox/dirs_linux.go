package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// heldDir is a mountpoint directory that a sandbox uses. Every sandbox holds a
// shared flock on it while its child runs. Directories a sandbox created are
// marked with an extended attribute, and the last sandbox out (the one that
// gets an exclusive lock) removes them. Never earlier: an rmdir in the host
// would detach the tmpfs that a concurrent sandbox (go test runs packages in
// parallel) has mounted there, and its writes would land in the real
// directory.
type heldDir struct {
	path    string
	created []string // directories made by this process, parents first
	lock    *os.File
}

// holdDirs creates the missing directories among paths and locks them all.
func holdDirs(paths []string) ([]heldDir, error) {
	var held []heldDir
	for _, p := range paths {
		d, err := holdDir(p)
		if err != nil {
			releaseDirs(held)
			return nil, err
		}
		held = append(held, d)
	}
	return held, nil
}

func holdDir(path string) (heldDir, error) {
	for range 10 {
		created, err := mkdirAll(path)
		if err != nil {
			removeCreated(created)
			return heldDir{}, err
		}
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed by a sandbox that was leaving: create it again
		}
		if err != nil {
			removeCreated(created)
			return heldDir{}, fmt.Errorf("opening %s: %w", path, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
			f.Close()
			removeCreated(created)
			return heldDir{}, fmt.Errorf("locking %s: %w", path, err)
		}
		// Between Open and Flock the directory may have been removed (and
		// made again): the lock only counts if path still names it.
		if sameFile(f, path) {
			return heldDir{path: path, created: created, lock: f}, nil
		}
		f.Close()
	}
	return heldDir{}, fmt.Errorf("locking %s: it keeps disappearing", path)
}

// releaseDirs unlocks the directories and removes those this process created,
// when no other sandbox holds them and they are empty.
func releaseDirs(held []heldDir) {
	for i := len(held) - 1; i >= 0; i-- {
		d := held[i]
		if unix.Flock(int(d.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			removeMade(d.path, d.created)
		}
		d.lock.Close()
	}
}

// removeMade removes path and its parents, as far as they were made by this
// process or marked as made by a sandbox, are empty and are no mountpoints.
func removeMade(path string, created []string) {
	for p := filepath.Clean(path); p != filepath.Dir(p); p = filepath.Dir(p) {
		if !slices.Contains(created, p) && !marked(p) {
			return
		}
		if os.Remove(p) != nil {
			return
		}
	}
}

// sandboxMark marks a directory as made by a sandbox. A trusted.* attribute
// because tmpfs (often /run) only has user.* attributes since Linux 6.6.
const sandboxMark = "trusted.nszone-sandbox"

func marked(path string) bool {
	n, err := unix.Getxattr(path, sandboxMark, nil)
	return err == nil && n >= 0
}

// removeCreated removes directories deepest first, stopping at the first one
// that is not empty (or is a mountpoint).
func removeCreated(created []string) {
	for i := len(created) - 1; i >= 0; i-- {
		if os.Remove(created[i]) != nil {
			return
		}
	}
}

// mkdirAll is os.MkdirAll that reports which directories it made.
func mkdirAll(path string) ([]string, error) {
	var missing []string
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("checking %s: %w", p, err)
		}
		missing = append(missing, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	var created []string
	for i := len(missing) - 1; i >= 0; i-- {
		err := os.Mkdir(missing[i], 0o755)
		if errors.Is(err, fs.ErrExist) {
			continue // another sandbox was quicker: it owns the directory
		}
		if err != nil {
			return created, fmt.Errorf("creating mountpoint %s: %w", missing[i], err)
		}
		created = append(created, missing[i])
		// Best effort: without the mark, only this process removes it.
		_ = unix.Setxattr(missing[i], sandboxMark, []byte("1"), 0)
	}
	return created, nil
}

func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}
