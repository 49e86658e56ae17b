package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runIn runs nszone in this process, as main would, and returns what it
// printed and its exit status.
func runIn(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := newRoot()
	var o, e bytes.Buffer
	root.SetOut(&o)
	root.SetErr(&e)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(&e, "nszone: "+err.Error())
		return o.String(), e.String(), exitCode(err)
	}
	return o.String(), e.String(), 0
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "zones.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const testZones = `version: 1
zones:
  wan:
    allow: [internet]
  web-1:
    allow: [internet, "192.168.50.10:22/tcp", "zone:wan"]
  offline:
    allow: []
`

// repoRoot is the repository's top directory, from this package's.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no go.mod in %s", dir)
	}
	return dir
}

func lines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }
