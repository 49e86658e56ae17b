package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFirefoxSingleInstance: with Firefox ESR running outside the zone, a
// Firefox started in a zone through a wrapper (env, sh -c) must not hand its
// URL to the instance outside, which would load it on the host's network.
// The URL points at a server on the host's loopback: only the outside
// instance can reach it. Positive controls: a second Firefox outside, and
// one started in a zone of confine: none, do hand the URL over.
func TestFirefoxSingleInstance(t *testing.T) {
	needSandbox(t)
	if _, err := exec.LookPath("firefox-esr"); err != nil {
		t.Skip("firefox-esr not installed (scripts/deps installs it)")
	}
	if _, err := exec.LookPath("xdg-dbus-proxy"); err != nil {
		t.Skip("xdg-dbus-proxy not installed (scripts/deps installs it)")
	}
	// A desktop user with a HOME of its own: the Firefox in the zone must
	// find the same profile as the one outside.
	alice, _, _ := addAccounts(t)
	uid, home := alice.uid, alice.home
	os.Chown(home, uid, uid)
	rt := runtimeDir(t, uid)
	busEnv := sessionBus(t, uid)
	display, rootCookie := startXvfb(t)
	b, err := os.ReadFile(rootCookie)
	if err != nil {
		t.Fatal(err)
	}
	cookie := filepath.Join(home, ".Xauthority")
	os.WriteFile(cookie, b, 0o600)
	os.Chown(cookie, uid, uid)
	env := append([]string{"HOME=" + home, "DISPLAY=" + display, "XAUTHORITY=" + cookie, "MOZ_ENABLE_WAYLAND=0",
		"XDG_RUNTIME_DIR=" + rt, "PATH=/usr/bin:/bin"}, busEnv...)

	// The host's loopback server: what it sees, only the host's network reached.
	var mu sync.Mutex
	var seen []string
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
		fmt.Fprint(w, "<html>host</html>")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	url := func(token string) string { return fmt.Sprintf("http://%s/%s", l.Addr(), token) }
	saw := func(token string, within time.Duration) bool {
		for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			mu.Lock()
			for _, p := range seen {
				if strings.Contains(p, token) {
					mu.Unlock()
					return true
				}
			}
			mu.Unlock()
		}
		return false
	}
	// start runs argv as nobody with env, killed by its PID after limit.
	start := func(limit time.Duration, argv ...string) *exec.Cmd {
		c := exec.Command(argv[0], argv[1:]...)
		var out syncBuf
		c.Stdout, c.Stderr = &out, &out
		t.Cleanup(func() { t.Logf("%s said:\n%s", strings.Join(argv, " "), lastLines(out.String(), 15)) })
		c.Env = append(cleanEnv(), env...)
		c.Dir = home
		// Its own process group: Firefox's processes go with it.
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if argv[0] != nszoneBin {
			c.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		kill := func() { syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
		timer := time.AfterFunc(limit, kill)
		t.Cleanup(func() { timer.Stop(); kill(); c.Wait() })
		return c
	}

	// Firefox outside the zone, the remote service on the session bus.
	start(5*time.Minute, "firefox-esr", url("first"))
	if !saw("first", 90*time.Second) {
		t.Skip("Firefox ESR did not load its first page in 90 s here: the single-instance check cannot be made")
	}
	time.Sleep(2 * time.Second) // its remote service is registered after the first window
	start(60*time.Second, "firefox-esr", url("outside"))
	if !saw("outside", 30*time.Second) {
		t.Skip("positive control failed: a second Firefox outside did not hand its URL to the first (no remote service here)")
	}

	file := writeZones(t, confineZones)
	mustRun(t, "up", "-c", file)
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	execIn := func(zone string, argv ...string) []string {
		return append([]string{nszoneBin, "exec", "--user", alice.name, zone, "--"}, argv...)
	}
	for _, c := range []struct {
		name string
		argv []string
	}{
		{"env", execIn("desk", "env", "MOZ_ENABLE_WAYLAND=0", "firefox-esr", url("desk-env"))},
		{"sh -c", execIn("desk", "sh", "-c", "firefox-esr "+url("desk-sh"))},
	} {
		start(20*time.Second, c.argv...)
		token := "desk-" + strings.Fields(c.name)[0]
		if saw(token, 20*time.Second) {
			t.Errorf("Firefox started in a desktop zone through %s handed its URL to the instance outside", c.name)
		}
	}
	// confine: none is ip netns exec's: where this Firefox's remote service
	// is on the session bus, it is the escape the desktop confinement
	// closes. (Others listen on an abstract socket, which is per network
	// namespace: no zone reaches it.)
	names := exec.Command("dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus", "/", "org.freedesktop.DBus.ListNames")
	names.Env = append(os.Environ(), busEnv...)
	names.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	out, _ := names.Output()
	onBus := strings.Contains(string(out), "org.mozilla")
	t.Logf("Firefox's remote service on the session bus: %v", onBus)
	start(20*time.Second, execIn("raw", "env", "MOZ_ENABLE_WAYLAND=0", "firefox-esr", url("raw-env"))...)
	if got := saw("raw-env", 20*time.Second); got != onBus {
		t.Errorf("positive control: Firefox in a zone of confine: none handed its URL to the instance outside: %v, want %v (its remote is on the bus: %v)", got, onBus, onBus)
	}
}
