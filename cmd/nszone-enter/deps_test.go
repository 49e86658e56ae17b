package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// What nszone-enter links is code a caller of a setuid-root program can
// reach, and every package it links runs its initialisers as root before
// main. It links only what it runs: its own rules (entry), the records and
// the readiness check (zones, config, firewall, netns, veth and their netlink
// and iptables libraries) and the entry path (launch).

// deniedPackages must never be among its dependencies, by package path
// prefix, and why.
var deniedPackages = map[string]string{
	"github.com/spf13/": "nszone's command line (cobra, pflag): the helper parses its own two options",
	"go.yaml.in/":       "a YAML parser: who may enter is read from root's records, never from a zones file",
	"gopkg.in/yaml":     "a YAML parser",
	"github.com/nszone/nszone/config/zonesfile": "the zones-file reader and parser",
	"github.com/nszone/nszone/probe":            "nszone check's prober",
	"github.com/nszone/nszone/check":            "nszone check's plan of probes",
	"github.com/nszone/nszone/graph":            "nszone graph's drawing",
	"github.com/nszone/nszone/survey":           "nszone init's look at the machine",
	"golang.org/x/net/ipv4":                     "the prober's listeners",
	"golang.org/x/net/ipv6":                     "the prober's listeners",
	"golang.org/x/net/dns/":                     "the prober's DNS queries",
	"github.com/nszone/nszone/lab":              "the simulated network",
	"github.com/nszone/nszone/sandbox":          "the test sandbox",
	"github.com/nszone/nszone/follow":           "nszone watch's event follower",
	"github.com/nszone/nszone/sdnotify":         "systemd notification (nszone watch)",
	"net/http":                                  "no network client or server: netlink and the syslog socket only",
	"crypto/tls":                                "no network client or server",
	"crypto/x509":                               "no network client or server",
	"net/rpc":                                   "no network client or server",
	"net/smtp":                                  "no network client or server",
	"text/template":                             "no templates (nor reflection by method name, which keeps every method linked)",
	"html/template":                             "no templates",
	"plugin":                                    "no code loaded at run time",
	"testing":                                   "no test code",
}

// allowedOutside are the packages from outside the standard library and
// nszone it may link, by prefix: the netlink, nftables and iptables
// libraries of the readiness check and the system calls. A new one is a
// decision to make here, not a side effect of an import.
var allowedOutside = []string{
	"golang.org/x/sys/unix",
	"golang.org/x/net/bpf",           // mdlayher/netlink's socket filters
	"golang.org/x/sync/errgroup",     // mdlayher/socket
	"github.com/coreos/go-iptables/", // iptables-save on iptables-legacy hosts
	"github.com/google/nftables",
	"github.com/mdlayher/netlink",
	"github.com/mdlayher/socket",
	"github.com/vishvananda/netlink",
	"github.com/vishvananda/netns",
}

// allowedOwn are nszone's own packages it may link.
var allowedOwn = []string{"entry", "config", "zones", "firewall", "firewall/nft", "netns", "veth", "launch", "launch/who", "internal/atomicfile", "cmd/nszone-enter"}

// TestDependencies: nszone-enter's dependency list stays the small one
// above, as `make install ENTER=1` builds it (static, linux).
func TestDependencies(t *testing.T) {
	deps := goCmd(t, "list", "-deps", ".")
	for _, p := range strings.Fields(deps) {
		for prefix, why := range deniedPackages {
			if p == strings.TrimSuffix(prefix, "/") || strings.HasPrefix(p, prefix) {
				t.Errorf("nszone-enter links %s: %s", p, why)
			}
		}
		first, _, _ := strings.Cut(p, "/")
		if !strings.Contains(first, ".") {
			continue // the standard library
		}
		if own, ok := strings.CutPrefix(p, "github.com/nszone/nszone/"); ok {
			if !slices.Contains(allowedOwn, own) {
				t.Errorf("nszone-enter links nszone's package %s: add it to allowedOwn only if the helper runs it", p)
			}
			continue
		}
		if !slices.ContainsFunc(allowedOutside, func(a string) bool { return p == a || strings.HasPrefix(p, a) }) {
			t.Errorf("nszone-enter links %s, which is not in allowedOutside", p)
		}
	}
}

// TestLinkedCode: of package zones, which it shares with nszone, the helper
// binary holds the records and the readiness check, never the operations
// that change the host or probe it (the linker drops what is never called:
// this holds it to that).
func TestLinkedCode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the helper")
	}
	bin := filepath.Join(t.TempDir(), "nszone-enter")
	goCmd(t, "build", "-trimpath", "-o", bin, ".")
	syms := goCmd(t, "tool", "nm", bin)
	if !strings.Contains(syms, "github.com/nszone/nszone/zones.(*Manager).Ready") {
		t.Fatalf("the symbol table has no zones.(*Manager).Ready: is this still the helper?")
	}
	for _, op := range []string{"Up", "UpZones", "Down", "Status", "PlanDetail", "Lock", "MarkWatching", "Watching"} {
		if strings.Contains(syms, "github.com/nszone/nszone/zones.(*Manager)."+op+"\n") {
			t.Errorf("nszone-enter links zones.(*Manager).%s, which it never runs", op)
		}
	}
}

// goCmd runs the go command of this toolchain in this package's directory,
// building as make install ENTER=1 does.
func goCmd(t *testing.T, args ...string) string {
	t.Helper()
	c := exec.Command("go", args...) // go test puts its bin directory first in PATH
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
