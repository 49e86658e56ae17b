package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: the init links launch and what launch runs, nothing of
// nszone's command line, zones, netlink or firewall, and no cgo whatever
// CGO_ENABLED says: it must start fast, and it runs as root.
func TestDependencies(t *testing.T) {
	c := exec.Command("go", "list", "-deps", ".") // go test puts its bin directory first in PATH
	c.Env = append(os.Environ(), "CGO_ENABLED=1", "GOOS=linux")
	out, err := c.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	own := map[string]bool{"github.com/nszone/nszone/launch": true, "github.com/nszone/nszone/netns": true, "github.com/nszone/nszone/cmd/nszone-zoneinit": true}
	for _, p := range strings.Fields(string(out)) {
		switch first, _, _ := strings.Cut(p, "/"); {
		case p == "runtime/cgo" || p == "os/user" || p == "net":
			t.Errorf("nszone-zoneinit links %s: the user look-up belongs to launch/who, in nszone", p)
		case strings.HasPrefix(p, "github.com/nszone/nszone/"):
			if !own[p] {
				t.Errorf("nszone-zoneinit links %s: only launch and netns belong in the zone's init", p)
			}
		case strings.Contains(first, ".") && p != "golang.org/x/sys/unix":
			t.Errorf("nszone-zoneinit links %s: only golang.org/x/sys/unix from outside the standard library", p)
		}
	}
}
