package entry

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// RootOwned fails unless path and every directory above it are owned by
// root and writable by nobody else, and none is a symlink: whoever could
// change one of them could decide who enters a zone. A sticky directory
// above path (/tmp) may be writable by all: no one else can rename or
// remove root's entries there. path itself may not be one: nszone's own
// directories are 0755, and anyone could add entries to a sticky one.
func RootOwned(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%s: not an absolute path", path)
	}
	path = filepath.Clean(path)
	for p := path; ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if err := ownedByRoot(p, fi, p != path); err != nil {
			return err
		}
		if p == "/" {
			return nil
		}
	}
}

// ownedByRoot checks one file: root's, writable by nobody else (a sticky
// directory above the checked path excepted), not a symlink.
func ownedByRoot(p string, fi os.FileInfo, above bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%s is a symlink", p)
	case !ok || st.Uid != 0:
		return fmt.Errorf("%s is not owned by root", p)
	case fi.Mode().Perm()&0o022 != 0 && !(above && fi.IsDir() && fi.Mode()&os.ModeSticky != 0):
		mode := uint32(fi.Mode().Perm())
		if fi.Mode()&os.ModeSticky != 0 {
			mode |= 0o1000
		}
		return fmt.Errorf("%s is writable by group or others (mode %04o)", p, mode)
	}
	return nil
}

// RootOwnedTree is RootOwned for dir and everything below it, where no
// sticky directory is accepted either.
func RootOwnedTree(dir string) error {
	if err := RootOwned(dir); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return ownedByRoot(path, fi, false)
	})
}
