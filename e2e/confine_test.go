package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const confineZones = `version: 1
zones:
  desk:
    allow: [internet]
  work:
    allow: [internet]
    confine: strict
  raw:
    allow: [internet]
    confine: none
`

// nobodyUID is whom the confinement tests run programs as.
const nobodyUID = 65534

// unixService answers "reached" on a unix socket at path, anyone may connect.
func unixService(t testing.TB, path string) {
	t.Helper()
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o777)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "reached") })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close(); os.Remove(path) })
}

// sessionBus starts a session bus of uid's at /run/user/UID/bus and an echo
// service on it for each name, and returns the bus's environment.
func sessionBus(t testing.TB, uid int, names ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("dbus-test-tool"); err != nil {
		t.Skip("dbus-test-tool not installed (scripts/deps installs dbus-tests)")
	}
	rt := fmt.Sprintf("/run/user/%d", uid)
	addr := "unix:path=" + rt + "/bus"
	env := []string{"DBUS_SESSION_BUS_ADDRESS=" + addr, "XDG_RUNTIME_DIR=" + rt}
	as := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(name, args...)
		c.Env = append(os.Environ(), env...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
		return c
	}
	as("dbus-daemon", "--session", "--nofork", "--nopidfile", "--address="+addr)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if fi, err := os.Stat(rt + "/bus"); err == nil && fi.Mode()&os.ModeSocket != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session bus did not start")
		}
	}
	for _, n := range names {
		as("dbus-test-tool", "echo", "--session", "--name="+n)
	}
	time.Sleep(200 * time.Millisecond) // the names are claimed
	return env
}

// runtimeDir makes uid's runtime directory, /run/user/UID, on a tmpfs of
// the sandbox's over /run/user.
func runtimeDir(t testing.TB, uid int) string {
	t.Helper()
	if err := unix.Mount("nszone-e2e-run-user", "/run/user", "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount("/run/user", unix.MNT_DETACH) })
	rt := fmt.Sprintf("/run/user/%d", uid)
	os.Mkdir(rt, 0o700)
	os.Chown(rt, uid, uid)
	return rt
}

// BenchmarkExecConfine measures what confinement costs exec: nszone exec
// --user nobody ZONE -- /bin/true into a desktop zone (PID namespace and
// init, private /tmp and /run, the bus filter started) and into a zone of
// confine: none, interleaved, with a session bus running as on a desktop.
// It reports both medians and their ratio.
func BenchmarkExecConfine(b *testing.B) {
	needSandbox(b)
	runtimeDir(b, nobodyUID)
	env := sessionBus(b, nobodyUID)
	file := writeZones(b, confineZones)
	mustRun(b, "up", "-c", file)
	b.Cleanup(func() { run(b, nil, "down", "--all") })
	const rounds = 40
	times := map[string][]time.Duration{}
	b.ResetTimer()
	for range b.N {
		for i := range rounds {
			order := []string{"desk", "raw"}
			if i%2 == 1 {
				order = []string{"raw", "desk"}
			}
			for _, zone := range order {
				start := time.Now()
				if r := run(b, env, "exec", "--user", "nobody", zone, "--", "/bin/true"); r.code != 0 {
					b.Fatalf("exec %s: exit %d %s", zone, r.code, r.err)
				}
				times[zone] = append(times[zone], time.Since(start))
			}
		}
	}
	b.StopTimer()
	desk, raw := median(times["desk"]), median(times["raw"])
	b.ReportMetric(float64(desk.Microseconds())/1000, "desktop-ms")
	b.ReportMetric(float64(raw.Microseconds())/1000, "none-ms")
	b.ReportMetric(float64(desk)/float64(raw), "desktop/none")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestConfine: what a program in a zone reaches besides the network. In a
// desktop zone: its own PID namespace and /proc (no process outside, no
// /proc/PID/root of one), a private /tmp and /run (no socket of the host's:
// an agent's, a Docker-like one), the display's and sound's sockets, and
// the session bus only through the filter (notifications yes, the service
// manager and other programs' names no). Strict: none of the desktop
// either. confine: none, and the host itself, reach everything: the
// positive controls.
func TestConfine(t *testing.T) {
	needSandbox(t)
	if _, err := exec.LookPath("xdg-dbus-proxy"); err != nil {
		t.Skip("xdg-dbus-proxy not installed (scripts/deps installs it)")
	}
	rt := runtimeDir(t, nobodyUID)
	os.MkdirAll(rt+"/gnupg", 0o700)
	os.Chown(rt+"/gnupg", nobodyUID, nobodyUID)

	tmpSock := fmt.Sprintf("/tmp/nszone-e2e-%d.sock", os.Getpid())
	socks := map[string]string{
		"a socket in /tmp":             tmpSock,
		"an agent in the runtime dir":  rt + "/gnupg/S.gpg-agent",
		"a Docker-like socket in /run": "/run/user/nszone-e2e-docker.sock",
		"the Wayland socket":           rt + "/wayland-0",
	}
	for _, p := range socks {
		unixService(t, p)
	}
	busEnv := sessionBus(t, nobodyUID, "org.freedesktop.Notifications", "org.freedesktop.systemd1", "org.mozilla.firefox.ZGVmYXVsdA__")

	file := writeZones(t, confineZones)
	mustRun(t, "up", "-c", file)
	t.Cleanup(func() { run(t, nil, "down", "--all") })

	execAs := func(zone string, argv ...string) result {
		t.Helper()
		return run(t, busEnv, append([]string{"exec", "--user", "nobody", zone, "--"}, argv...)...)
	}
	reaches := func(zone, sock string) bool {
		return execAs(zone, "curl", "-s", "--max-time", "2", "--unix-socket", sock, "http://x/").out == "reached"
	}
	want := map[string]map[string]bool{ // zone -> what -> reached
		"desk": {"the Wayland socket": true},
		"work": {},
		"raw":  {"a socket in /tmp": true, "an agent in the runtime dir": true, "a Docker-like socket in /run": true, "the Wayland socket": true},
	}
	for what, sock := range socks {
		if r := runCmd(t, nil, "curl", "-s", "--max-time", "2", "--unix-socket", sock, "http://x/"); r.out != "reached" {
			t.Fatalf("positive control: the host does not reach %s (%s): %s", what, sock, r.err)
		}
		for zone, w := range want {
			if got := reaches(zone, sock); got != w[what] {
				t.Errorf("zone %s reaches %s (%s): %v, want %v", zone, what, sock, got, w[what])
			}
		}
	}

	// Processes: none of the host's in a confined zone, so no
	// /proc/PID/root of one either; the program's parent is the zone's init.
	self := strconv.Itoa(os.Getpid())
	for zone, visible := range map[string]bool{"desk": false, "work": false, "raw": true} {
		r := execAs(zone, "sh", "-c", "test -d /proc/"+self+" && echo visible; cat /proc/$PPID/cmdline | tr '\\0' ' '; ls /proc/$PPID/root/tmp/ 2>&1")
		if got := strings.Contains(r.out, "visible"); got != visible {
			t.Errorf("zone %s: the test's process %s visible in /proc: %v, want %v\n%s%s", zone, self, got, visible, r.out, r.err)
		}
		// (In raw, the parent is this test, root's: nobody may not look in.)
		if !visible && strings.Contains(r.out, filepath.Base(tmpSock)) {
			t.Errorf("zone %s: /proc/$PPID/root/tmp shows the host's /tmp:\n%s", zone, r.out)
		}
	}
	if r := execAs("desk", "sh", "-c", "cat /proc/1/cmdline; echo; ls /proc | grep -c '^[0-9]'"); !strings.HasPrefix(r.out, "nszone-init") {
		t.Errorf("zone desk: PID 1 is not the zone's init: %q %s", r.out, r.err)
	}

	// The session bus: through the filter, notifications answer; the
	// service manager and another program's name (a browser's remote) do
	// not; outside, and in confine: none, all do.
	call := func(zone, dest string) bool {
		argv := []string{"dbus-send", "--session", "--print-reply", "--reply-timeout=2000", "--dest=" + dest, "/", "org.example.Ping"}
		if zone == "" {
			c := exec.Command(argv[0], argv[1:]...)
			c.Env = append(os.Environ(), busEnv...)
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyUID}}
			return c.Run() == nil
		}
		return execAs(zone, argv...).code == 0
	}
	for dest, inDesk := range map[string]bool{"org.freedesktop.Notifications": true, "org.freedesktop.systemd1": false, "org.mozilla.firefox.ZGVmYXVsdA__": false} {
		if !call("", dest) {
			t.Fatalf("positive control: the host cannot call %s on the session bus", dest)
		}
		if got := call("desk", dest); got != inDesk {
			t.Errorf("zone desk calls %s on the session bus: %v, want %v", dest, got, inDesk)
		}
		if call("work", dest) {
			t.Errorf("zone work (strict) calls %s on the session bus", dest)
		}
		if !call("raw", dest) {
			t.Errorf("zone raw (confine: none) cannot call %s on the session bus", dest)
		}
	}
	// strict has no desktop at all.
	if r := execAs("work", "sh", "-c", "echo \"$DISPLAY|$DBUS_SESSION_BUS_ADDRESS|$WAYLAND_DISPLAY\"; ls -A /tmp /run/user/65534"); !strings.HasPrefix(r.out, "||\n") || strings.Contains(r.out, "X11") {
		t.Errorf("zone work (strict) sees a desktop: %q %s", r.out, r.err)
	}
	// The program's exit status comes through the init, signals too.
	if r := execAs("desk", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("exit 7 in a confined zone: exit %d %s", r.code, r.err)
	}
	if r := execAs("desk", "sh", "-c", "kill -TERM $$"); r.code != 128+15 {
		t.Errorf("a program killed by SIGTERM in a confined zone: exit %d, want 143", r.code)
	}
	// No proxy socket is left once the program is gone.
	entries, _ := os.ReadDir(rt)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "nszone-") {
			t.Errorf("left in the runtime directory: %s", e.Name())
		}
	}
}

// nszone exec starts a confined zone's init from the nszone-zoneinit beside
// it (a small binary), through the descriptor it checked: one that others
// may write is refused with nothing run, and without one nszone starts
// itself as the init.
func TestZoneInit(t *testing.T) {
	needSandbox(t)
	file := writeZones(t, "version: 1\nuplink: auto\nzones:\n  box:\n    allow: []\n")
	mustRun(t, "up", "-c", file)
	t.Cleanup(func() { run(t, nil, "down", "--all") })

	// Each layout in a directory of its own: nszone, and what is beside it.
	layout := func(init os.FileMode) string {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, nszoneBin, filepath.Join(dir, "nszone"), 0o755)
		if init != 0 {
			copyFile(t, filepath.Join(filepath.Dir(nszoneBin), "nszone-zoneinit"), filepath.Join(dir, "nszone-zoneinit"), init)
		}
		return filepath.Join(dir, "nszone")
	}
	marker := filepath.Join(t.TempDir(), "ran")
	// Its name (its threads' too), its argv, and the file it runs (as its
	// mappings name it).
	const probe = `cat /proc/1/task/*/comm | sort -u; tr '\0' ' ' </proc/1/cmdline; echo; grep -o '/[^ ]*$' /proc/1/maps | grep nszone | sort -u`
	itself := layout(0)
	for _, c := range []struct {
		name, bin, runs string
	}{
		{"beside nszone", nszoneBin, filepath.Join(filepath.Dir(nszoneBin), "nszone-zoneinit")},
		{"none: nszone itself", itself, itself},
	} {
		r := runCmd(t, nil, c.bin, "exec", "box", "--", "sh", "-c", probe)
		if want := "nszone-init\nnszone-init \n" + c.runs + "\n"; r.code != 0 || r.out != want {
			t.Errorf("%s: exit %d, PID 1:\n%s\nwant\n%s%s", c.name, r.code, r.out, want, r.err)
		}
	}
	writable := layout(0o775)
	r := runCmd(t, nil, writable, "exec", "box", "--", "touch", marker)
	if r.code != 1 || !strings.Contains(r.err, "refusing "+filepath.Join(filepath.Dir(writable), "nszone-zoneinit")) {
		t.Errorf("a group-writable nszone-zoneinit: exit %d, stderr %q; want 1 and a refusal naming it", r.code, r.err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the program ran with a group-writable init")
	}
}

// copyFile copies src to dst with mode.
func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}
