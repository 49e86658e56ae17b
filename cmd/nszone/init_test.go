package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nszone/nszone/internal/atomicfile"
)

// TestInitWriteNew: init never replaces a file without --force, replaces
// one whole with it, and never writes through a symlink. (The whole command,
// which reads the machine, runs in the sandbox: e2e TestEcosystemInit.)
func TestInitWriteNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "etc", "nszone", "zones.yaml")
	if err := writeNew(path, []byte("one\n"), false); err != nil {
		t.Fatalf("first write: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("written file: %v %v", fi, err)
	}
	err := writeNew(path, []byte("two\n"), false)
	if err == nil || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("second write without --force: %v, want a refusal naming --force", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one\n" {
		t.Fatalf("refused write changed the file: %q", b)
	}
	if err := writeNew(path, []byte("two\n"), true); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two\n" {
		t.Fatalf("--force left %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), atomicfile.TempPattern)); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	target := filepath.Join(dir, "elsewhere")
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		if err := writeNew(link, []byte("x\n"), force); err == nil {
			t.Errorf("force=%v: wrote through a symlink", force)
		}
	}
	if _, err := os.Stat(target); err == nil {
		t.Error("the symlink's target was created")
	}
}

func TestInitUsage(t *testing.T) {
	if _, _, code := runIn(t, "init", "extra"); code != exitUsage {
		t.Errorf("init extra: exit %d, want %d", code, exitUsage)
	}
	if _, _, code := runIn(t, "init", "--bogus"); code != exitUsage {
		t.Errorf("init --bogus: exit %d, want %d", code, exitUsage)
	}
}
