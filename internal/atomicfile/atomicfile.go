// Package atomicfile writes a file so that a process killed at any moment
// leaves the old file or the new one, never half of one: nszone's records,
// a zone's /etc/netns files, and the zones file nszone init writes.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// TempPattern names the temporary file Write makes beside its target and
// renames over it; a write killed before the rename leaves one behind.
const TempPattern = ".tmp-*"

// Write writes content to path with mode perm, through a temporary file in
// the same directory renamed over it. durable waits for the disk before the
// rename, so that a power cut leaves the old file or the new one too.
func Write(path string, content []byte, perm os.FileMode, durable bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), TempPattern)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(content)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil && durable {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// RemoveTemps removes from dir the temporary files of writes killed before
// their rename: for a directory nothing writes to any more.
func RemoveTemps(dir string) {
	tmps, _ := filepath.Glob(filepath.Join(dir, TempPattern))
	for _, t := range tmps {
		os.Remove(t)
	}
}
