package entry

import (
	"fmt"
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
		st, ok := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink", p)
		case !ok || st.Uid != 0:
			return fmt.Errorf("%s is not owned by root", p)
		case fi.Mode().Perm()&0o022 != 0 && !(fi.IsDir() && fi.Mode()&os.ModeSticky != 0):
			return fmt.Errorf("%s is writable by group or others (mode %04o)", p, fi.Mode().Perm())
		}
		if p == "/" {
			return nil
		}
	}
}
