package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Desktop programs in zones: a real X11 client under Xvfb, headless
// Chromium, and the single-instance escape.

// cleanEnv is this process's environment without the variables a test
// sets itself (sudo's above all: exec would otherwise drop to whoever ran
// the tests), plus env.
func cleanEnv(env ...string) []string {
	drop := map[string]bool{"HOME": true, "PATH": true, "DISPLAY": true, "XAUTHORITY": true, "WAYLAND_DISPLAY": true,
		"XDG_RUNTIME_DIR": true, "DBUS_SESSION_BUS_ADDRESS": true}
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if drop[k] || strings.HasPrefix(k, "SUDO_") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, env...)
}

// runEnv runs nszone with exactly env.
func runEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	c := exec.Command(nszoneBin, args...)
	c.Env = env
	return runExec(t, c)
}

// sharedDir is a temporary directory that nobody (uid 65534) may enter.
func sharedDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "nszone-desktop-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// startProcess starts a process of the test in a process group of its own
// and kills that group (its children too), by PID, at the end.
func startProcess(t *testing.T, c *exec.Cmd) {
	t.Helper()
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	c.SysProcAttr.Setpgid = true
	if err := c.Start(); err != nil {
		t.Fatalf("starting %s: %v", c.Path, err)
	}
	pid := c.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(-pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
	})
}

func zonesUp(t *testing.T) {
	t.Helper()
	mustRun(t, "up", "-c", writeZones(t, defaultZones))
	t.Cleanup(func() { run(t, nil, "down", "--all") })
}

var nobody = []string{"SUDO_UID=65534", "SUDO_GID=65534", "SUDO_USER=nobody"}

// startXvfb starts Xvfb on a free display with cookie authentication and
// returns the display and the cookie file (root's, mode 0600).
func startXvfb(t *testing.T) (display, cookie string) {
	t.Helper()
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		t.Skip("Xvfb not installed (scripts/deps installs xvfb)")
	}
	for _, tool := range []string{"xauth", "xdpyinfo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/deps installs x11-utils, xauth)", tool)
		}
	}
	n := -1
	for i := 57; i < 100; i++ {
		_, e1 := os.Lstat(fmt.Sprintf("/tmp/.X%d-lock", i))
		_, e2 := os.Lstat(fmt.Sprintf("/tmp/.X11-unix/X%d", i))
		if os.IsNotExist(e1) && os.IsNotExist(e2) {
			n = i
			break
		}
	}
	if n < 0 {
		t.Fatal("no free X display between :57 and :99")
	}
	display = ":" + strconv.Itoa(n)
	cookie = filepath.Join(t.TempDir(), "xauth")
	key := make([]byte, 16)
	rand.Read(key)
	if out, err := exec.Command("xauth", "-f", cookie, "add", display, "MIT-MAGIC-COOKIE-1", hex.EncodeToString(key)).CombinedOutput(); err != nil {
		t.Fatalf("xauth add: %v: %s", err, out)
	}
	if _, err := os.Lstat("/tmp/.X11-unix"); os.IsNotExist(err) {
		// Xvfb makes it: take it away again once Xvfb is gone (registered
		// first, so it runs after Xvfb's own clean-up). Only when empty.
		t.Cleanup(func() { os.Remove("/tmp/.X11-unix") })
	}
	var stderr bytes.Buffer
	c := exec.Command(xvfb, display, "-auth", cookie, "-nolisten", "tcp", "-screen", "0", "640x480x24")
	c.Stderr = &stderr
	startProcess(t, c)
	sock := fmt.Sprintf("/tmp/.X11-unix/X%d", n)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Xvfb %s did not create %s in 10s: %s", display, sock, stderr.String())
		}
	}
	return display, cookie
}

// TestExecX11 runs a real X11 client in the wan zone, as a sudo user, on
// a display whose abstract socket the zone cannot see: it gets through the
// path socket with the user's cookie.
func TestExecX11(t *testing.T) {
	needSandbox(t)
	display, rootCookie := startXvfb(t)
	zonesUp(t)

	// nobody's readable copy of the cookie.
	b, err := os.ReadFile(rootCookie)
	if err != nil {
		t.Fatal(err)
	}
	cookie := filepath.Join(sharedDir(t), "xauth")
	if err := os.WriteFile(cookie, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(cookie, 65534, 65534); err != nil {
		t.Fatal(err)
	}

	env := cleanEnv(append([]string{"DISPLAY=" + display, "XAUTHORITY=" + cookie, "PATH=/usr/bin:/bin"}, nobody...)...)
	r := runEnv(t, env, "exec", "wan", "--", "xdpyinfo")
	if r.code != 0 || !strings.Contains(r.out, "name of display:") {
		t.Fatalf("xdpyinfo in wan as nobody: exit %d\n%s\n%s", r.code, r.out, r.err)
	}
	if strings.Contains(r.err, "warning") {
		t.Errorf("exec warned on a working display: %s", r.err)
	}
	// A strict zone has no display: the same call fails there.
	strict := writeZones(t, "version: 1\nzones:\n  worker:\n    allow: [internet]\n    confine: strict\n")
	mustRun(t, "up", "-c", strict, "worker")
	if r := runEnv(t, env, "exec", "worker", "--", "xdpyinfo"); r.code == 0 {
		t.Errorf("xdpyinfo reached the display from a zone of confine: strict:\n%s", r.out)
	}
	// It really runs as nobody, in the zone.
	r = runEnv(t, env, "exec", "wan", "--", "sh", "-c", "id -u; readlink /proc/self/ns/net")
	self, _ := os.Readlink("/proc/self/ns/net")
	if f := strings.Fields(r.out); r.code != 0 || len(f) != 2 || f[0] != "65534" || f[1] == self {
		t.Errorf("exec as nobody: exit %d, %q (host netns %s)", r.code, r.out, self)
	}

	// Controls: the cookie is what lets it in, and an unreadable one is said.
	r = runEnv(t, cleanEnv(append([]string{"DISPLAY=" + display, "PATH=/usr/bin:/bin"}, nobody...)...), "exec", "wan", "--", "xdpyinfo")
	if r.code == 0 {
		t.Errorf("xdpyinfo without a cookie reached the display: %s", r.out)
	}
	r = runEnv(t, cleanEnv(append([]string{"DISPLAY=" + display, "XAUTHORITY=" + rootCookie, "PATH=/usr/bin:/bin"}, nobody...)...), "exec", "wan", "--", "xdpyinfo")
	if r.code == 0 || !strings.Contains(r.err, "nszone: warning: XAUTHORITY="+rootCookie+" is not readable by uid 65534") {
		t.Errorf("root's cookie given to nobody: exit %d, want a failure and a warning: %s", r.code, r.err)
	}
	// A display without a path socket is said in one line.
	r = runEnv(t, cleanEnv("DISPLAY=:199", "PATH=/usr/bin:/bin"), "exec", "wan", "--", "true")
	if r.code != 0 || !strings.Contains(r.err, "no X11 socket /tmp/.X11-unix/X199") {
		t.Errorf("DISPLAY=:199: exit %d, want a warning: %s", r.code, r.err)
	}
}

// TestExecChromium loads the lab's pages with headless Chromium in wan.
func TestExecChromium(t *testing.T) {
	needSandbox(t)
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (scripts/deps installs it where the distribution has it)")
	}
	zonesUp(t)
	home := sharedDir(t)
	load := func(url string) result {
		data, err := os.MkdirTemp(home, "profile-")
		if err != nil {
			t.Fatal(err)
		}
		return runEnv(t, cleanEnv("HOME="+home, "PATH=/usr/bin:/bin"), "exec", "wan", "--", chromium,
			"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--user-data-dir="+data, "--timeout=15000",
			"--dump-dom", url)
	}
	r := load("http://203.0.113.10/")
	if r.code != 0 || !strings.Contains(r.out, "lab-internet") {
		t.Errorf("chromium in wan, internet server: exit %d, page %q\n%s", r.code, r.out, lastLines(r.err, 10))
	}
	r = load("http://192.168.50.10/")
	if strings.Contains(r.out, "lab-lan") {
		t.Errorf("chromium in wan loaded the LAN server's page: %q", r.out)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestExecSingleInstance: a "firefox" running outside the zone makes exec
// refuse to start another; --profile starts a separate instance.
func TestExecSingleInstance(t *testing.T) {
	needSandbox(t)
	zonesUp(t)
	bin := sharedDir(t)
	script := "#!/bin/sh\nif [ \"$1\" = background ]; then sleep 300; exit; fi\necho \"started: $*\"\n"
	if err := os.WriteFile(filepath.Join(bin, "firefox"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	path := "PATH=" + bin + ":/usr/bin:/bin"

	// Outside the zone, as nobody.
	out := exec.Command(filepath.Join(bin, "firefox"), "background")
	out.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	startProcess(t, out)
	pid := out.Process.Pid
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) == "firefox" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fake firefox did not start")
		}
	}

	// nobody again, in wan: refused, nothing started.
	r := runEnv(t, cleanEnv(append([]string{path}, nobody...)...), "exec", "wan", "--", "firefox", "https://example.com")
	if r.code != 1 || strings.Contains(r.out, "started") {
		t.Fatalf("firefox in wan while one runs outside: exit %d, %q, want exit 1 and nothing started\n%s", r.code, r.out, r.err)
	}
	for _, want := range []string{strconv.Itoa(pid), "outside zone wan", "nszone exec --profile wan -- firefox"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("refusal does not say %q: %s", want, r.err)
		}
	}
	// Asking for a separate instance yourself is fine.
	r = runEnv(t, cleanEnv(append([]string{path}, nobody...)...), "exec", "wan", "--", "firefox", "--no-remote", "-P", "x")
	if r.code != 0 || !strings.Contains(r.out, "started: --no-remote -P x") {
		t.Errorf("firefox --no-remote in wan: exit %d, %q %s", r.code, r.out, r.err)
	}
	// Another user's firefox is no reason to refuse.
	home := sharedDir(t)
	rootEnv := cleanEnv(path, "HOME="+home)
	r = runEnv(t, rootEnv, "exec", "wan", "--", "firefox", "x")
	if r.code != 0 || !strings.Contains(r.out, "started: x") {
		t.Errorf("root's firefox refused over nobody's: exit %d, %q %s", r.code, r.out, r.err)
	}
	// A root one outside now: --profile makes a separate instance.
	rootFF := exec.Command(filepath.Join(bin, "firefox"), "background")
	startProcess(t, rootFF)
	time.Sleep(100 * time.Millisecond)
	if r = runEnv(t, rootEnv, "exec", "wan", "--", "firefox", "x"); r.code != 1 {
		t.Errorf("root's firefox not refused: exit %d %s", r.code, r.err)
	}
	r = runEnv(t, rootEnv, "exec", "--profile", "wan", "--", "firefox", "https://example.com")
	dir := filepath.Join(home, ".local/share/nszone/wan/firefox")
	if want := "started: --no-remote --profile " + dir + " https://example.com"; r.code != 0 || !strings.Contains(r.out, want) {
		t.Errorf("--profile: exit %d, %q, want %q\n%s", r.code, r.out, want, r.err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("profile directory %s: %v %v", dir, fi, err)
	}
	// --profile for a program not in the table is refused.
	if r = runEnv(t, rootEnv, "exec", "--profile", "wan", "--", "true"); r.code != 1 || !strings.Contains(r.err, "--profile") {
		t.Errorf("--profile true: exit %d %s", r.code, r.err)
	}
}
