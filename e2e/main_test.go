// Package e2e proves nszone end to end on the real kernel: real namespaces,
// real iptables, real clients (curl, getent, ip), in a simulated network
// inside a sandbox that never touches this machine's own network.
package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nszone/nszone/internal/kerneltest"
	"github.com/nszone/nszone/lab"
	"github.com/nszone/nszone/sandbox"
)

var (
	nszoneBin string   // built once per run
	enterBin  string   // nszone-enter, static, not yet setuid (see installEnter)
	theLab    *lab.Lab // the simulated network, shared by the tests
)

// The tests run as root only in the sandbox, after setUp; without root
// they skip.
func TestMain(m *testing.M) { kerneltest.Main(m, "e2e", kerneltest.Setup(setUp)) }

// setUp builds nszone and starts the lab. Each step puts what undoes it in
// cleanups; the teardown it returns runs them, last first.
func setUp() (func(), error) {
	teardown := func() {
		for _, c := range slices.Backward(cleanups) {
			c()
		}
	}
	// A zone's /tmp and /var/tmp are its own (confine: desktop and strict):
	// what the tests run inside zones (nszone's build, this test binary as
	// a sender, scripts) lives on a tmpfs of the sandbox's elsewhere.
	if err := privateTmp(); err != nil {
		return teardown, err
	}
	dir, err := os.MkdirTemp("", "nszone-e2e-")
	if err != nil {
		return teardown, err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	nszoneBin = filepath.Join(dir, "nszone")
	gobin := "go" // this toolchain's: go test puts its bin directory first in PATH
	enterBin = filepath.Join(dir, "nszone-enter")
	build := exec.Command(gobin, "build", "-o", nszoneBin, "../cmd/nszone")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return teardown, fmt.Errorf("building nszone: %w", err)
	}
	// The confined zones' init, beside nszone, where nszone exec finds it.
	build = exec.Command(gobin, "build", "-o", filepath.Join(dir, "nszone-zoneinit"), "../cmd/nszone-zoneinit")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return teardown, fmt.Errorf("building nszone-zoneinit: %w", err)
	}
	// As make install builds it: static, so no dynamic loader runs setuid.
	build = exec.Command(gobin, "build", "-trimpath", "-o", enterBin, "../cmd/nszone-enter")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return teardown, fmt.Errorf("building nszone-enter: %w", err)
	}
	if theLab, err = lab.Start(nil); err != nil {
		return teardown, fmt.Errorf("starting the lab: %w", err)
	}
	cleanups = append(cleanups, func() { theLab.Close() })
	return teardown, settle()
}

func needSandbox(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: run scripts/test (the end-to-end tests sandbox themselves)")
	}
	if !sandbox.Active() {
		t.Fatal("not in the sandbox: refusing to touch this machine's network")
	}
}

// result is what one command did.
type result struct {
	out, err string
	code     int
}

// run runs nszone with args and extra environment.
func run(t testing.TB, env []string, args ...string) result {
	t.Helper()
	return runCmd(t, env, nszoneBin, args...)
}

func runCmd(t testing.TB, env []string, name string, args ...string) result {
	t.Helper()
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), env...)
	return runExec(t, c)
}

// runExec runs c and returns its output and exit status (128+N when
// signal N killed it); a command that cannot be started fails the test.
func runExec(t testing.TB, c *exec.Cmd) result {
	t.Helper()
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err := c.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("running %s: %v", c, err)
		}
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	}
	return result{o.String(), e.String(), code}
}

// mustRun fails the test unless nszone exits 0.
func mustRun(t testing.TB, args ...string) string {
	t.Helper()
	r := run(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("nszone %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// writeZones writes a zones file for a test.
func writeZones(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "zones.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// snapshot captures everything of the host that nszone may change, in a
// form that compares equal when the host is the same.
func snapshot(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	section := func(title, name string, args ...string) {
		// Standard output only: iptables-nft's warnings about legacy tables
		// land on stderr at random points of the output.
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			out = append(out, []byte(fmt.Sprintf(" (%v)", err))...)
		}
		fmt.Fprintf(&b, "== %s\n", title)
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "#") {
				continue
			}
			b.WriteString(counters.ReplaceAllString(l, "[]") + "\n")
		}
	}
	section("links", "ip", "-o", "link", "show")
	section("addresses", "ip", "-o", "addr", "show")
	section("routes4", "ip", "route", "show", "table", "all")
	section("routes6", "ip", "-6", "route", "show", "table", "all")
	section("rules4", "iptables-nft-save")
	section("rules6", "ip6tables-nft-save")
	section("sysctls", "sysctl", "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv6.conf.eth0.accept_ra")
	section("netns", "ip", "netns", "list")
	section("rules", "ip", "rule", "show")
	section("rules6", "ip", "-6", "rule", "show")
	for _, d := range []string{"/run/netns", "/etc/netns", "/run/nszone", "/var/lib/nszone"} {
		var files []string
		filepath.Walk(d, func(p string, info os.FileInfo, err error) error {
			// The vouches are a cache of what a check found (zones/vouch.go):
			// a no-change up may write one. One left over by down keeps
			// /run/nszone, which shows.
			if err == nil && !strings.HasPrefix(p, "/run/nszone/vouch") {
				files = append(files, p)
			}
			return nil
		})
		sort.Strings(files)
		fmt.Fprintf(&b, "== files %s\n%s\n", d, strings.Join(files, "\n"))
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	fmt.Fprintln(&b, "== mounts")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, "netns") || strings.Contains(l, "nszone") {
			f := strings.Fields(l)
			fmt.Fprintln(&b, f[1], f[2])
		}
	}
	return b.String()
}

// diffLines shows the lines that differ between two snapshots.
func diffLines(a, b string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	in := func(l string, list []string) bool {
		for _, x := range list {
			if x == l {
				return true
			}
		}
		return false
	}
	var out []string
	for _, l := range as {
		if !in(l, bs) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bs {
		if !in(l, as) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// settle waits for the lab's uplink to have carrier and its addresses to be
// final, and makes the built-in tables of both iptables variants exist (as
// on any real host), so that snapshots compare what nszone did, not what
// the kernel or iptables was still finishing.
func settle() error {
	for _, bin := range []string{"iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy"} {
		for _, table := range []string{"filter", "nat"} {
			for _, op := range []string{"-N", "-X"} { // creating a chain creates the table
				if out, err := exec.Command(bin, "-t", table, op, "E2E-INIT").CombinedOutput(); err != nil {
					return fmt.Errorf("%s -t %s %s: %v: %s", bin, table, op, err, out)
				}
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		link, _ := exec.Command("ip", "-o", "link", "show", "eth0").Output()
		addrs, _ := exec.Command("ip", "-o", "addr", "show").Output()
		if strings.Contains(string(link), "LOWER_UP") && !strings.Contains(string(link), "NO-CARRIER") &&
			!strings.Contains(string(addrs), "tentative") && strings.Contains(string(addrs), "eth0    inet6 fe80") {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the lab's uplink did not settle in 10s")
}

// testTmp is TMPDIR for the tests: visible inside confined zones.
const testTmp = "/var/cache/nszone-e2e"

// privateTmp mounts a tmpfs on testTmp (in the sandbox's own mount
// namespace), points TMPDIR at it and copies this test binary there, which
// runs inside zones as a sender.
func privateTmp() error {
	made := false
	if err := os.Mkdir(testTmp, 0o1777); err == nil {
		made = true
	} else if !os.IsExist(err) {
		return err
	}
	if err := syscall.Mount("nszone-e2e", testTmp, "tmpfs", 0, "mode=1777"); err != nil {
		return fmt.Errorf("mounting a tmpfs on %s: %w", testTmp, err)
	}
	if made {
		// The directory goes when the sandbox ends: the mount is the
		// sandbox's, the directory the host's.
		cleanups = append(cleanups, func() { syscall.Unmount(testTmp, syscall.MNT_DETACH); os.Remove(testTmp) })
	}
	os.Setenv("TMPDIR", testTmp)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(self)
	if err != nil {
		return err
	}
	senderExe = filepath.Join(testTmp, filepath.Base(self))
	return os.WriteFile(senderExe, b, 0o755)
}

// cleanups run when the sandboxed tests end, last first.
var cleanups []func()

// exec2 starts a command and returns it running.
func exec2(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	c := exec.Command(name, args...)
	if err := c.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	return c
}

// firstLine is the first line of s, for messages.
func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
