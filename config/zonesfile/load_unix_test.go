//go:build unix

package zonesfile

import (
	"path/filepath"
	"syscall"
	"testing"
)

// A FIFO must be refused without opening it: the open would block.
func TestLoadFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo.yaml")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Skip(err)
	}
	_, err := Load(p)
	wantError(t, err, p, "not a regular file (a named pipe)")
}

func TestLoadDevice(t *testing.T) {
	_, err := Load("/dev/zero")
	wantError(t, err, "/dev/zero", "not a regular file (a device)")
}
