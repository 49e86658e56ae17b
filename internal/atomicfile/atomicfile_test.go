package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A write replaces the file whole, with its mode, and leaves no temporary
// file; one that cannot be made says which file and leaves the old one.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for i, content := range []string{"one\n", "two\n"} {
		if err := Write(path, []byte(content), 0o640, i == 1); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("write %d: %q, want %q", i, b, content)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode: %v %v, want 0640", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, TempPattern)); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600, false); err == nil || !strings.Contains(err.Error(), "missing/f") {
		t.Errorf("write into a missing directory: %v, want an error naming the file", err)
	}
	stale := filepath.Join(dir, ".tmp-123")
	os.WriteFile(stale, nil, 0o600)
	RemoveTemps(dir)
	if _, err := os.Stat(stale); err == nil {
		t.Error("RemoveTemps left a temporary file")
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("RemoveTemps took the file itself: %v", err)
	}
}
