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
// (/tmp) may be writable by all: no one else can replace root's entries.
func RootOwned(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%s: not an absolute path", path)
	}
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if err := ownedByRoot(p, fi); err != nil {
			return err
		}
		if p == "/" {
			return nil
		}
	}
}

// ownedByRoot checks one file: root's, writable by nobody else (sticky
// directories excepted), not a symlink.
func ownedByRoot(p string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%s is a symlink", p)
	case !ok || st.Uid != 0:
		return fmt.Errorf("%s is not owned by root", p)
	case fi.Mode().Perm()&0o022 != 0 && !(fi.IsDir() && fi.Mode()&os.ModeSticky != 0):
		return fmt.Errorf("%s is writable by group or others (mode %04o)", p, fi.Mode().Perm())
	}
	return nil
}

// RootOwnedTree is RootOwned for dir and everything below it.
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
		return ownedByRoot(path, fi)
	})
}
