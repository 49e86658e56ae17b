package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// account is a test user, known only inside the sandbox's mount namespace.
type account struct {
	name   string
	uid    int
	groups []int // the primary group first
	home   string
}

// addAccounts makes nszalice, nszbob and nszcarol (in group nszbrowse)
// exist: copies of /etc/passwd and /etc/group with their lines are bound
// over the real ones in the sandbox's private mount namespace.
func addAccounts(t *testing.T) (alice, bob, carol account) {
	t.Helper()
	dir := sharedDir(t)
	alice = account{"nszalice", 64101, []int{64101}, filepath.Join(dir, "alice")}
	bob = account{"nszbob", 64102, []int{64102}, filepath.Join(dir, "bob")}
	carol = account{"nszcarol", 64103, []int{64103, 64110}, filepath.Join(dir, "carol")}
	var passwd, group strings.Builder
	for _, a := range []account{alice, bob, carol} {
		fmt.Fprintf(&passwd, "%s:x:%d:%d::%s:/bin/sh\n", a.name, a.uid, a.uid, a.home)
		fmt.Fprintf(&group, "%s:x:%d:\n", a.name, a.uid)
		if err := os.Mkdir(a.home, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(a.home, a.uid, a.uid); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintf(&group, "nszbrowse:x:64110:%s\n", carol.name)
	for file, extra := range map[string]string{"/etc/passwd": passwd.String(), "/etc/group": group.String()} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		cp := filepath.Join(dir, filepath.Base(file))
		if err := os.WriteFile(cp, append(b, extra...), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(cp, file, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("binding %s over %s: %v", cp, file, err)
		}
		t.Cleanup(func() { unix.Unmount(file, unix.MNT_DETACH) })
	}
	return alice, bob, carol
}

// installEnter lays out what make install ENTER=1 installs: nszone, and
// nszone-enter setuid root beside it. It returns the directory.
func installEnter(t *testing.T) string {
	t.Helper()
	dir := sharedDir(t)
	for _, f := range []struct {
		src  string
		mode os.FileMode
	}{{nszoneBin, 0o755}, {enterBin, 0o755 | os.ModeSetuid}} {
		b, err := os.ReadFile(f.src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(f.src))
		if err := os.WriteFile(dst, b, 0o700); err != nil {
			t.Fatal(err)
		}
		// chmod after chown: chown clears the setuid bit.
		if err := os.Chown(dst, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dst, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// syslogSink listens where nszone-enter logs inside the sandbox (its tmpfs
// over /run/systemd/journal) and collects the lines.
type syslogSink struct {
	conn  *net.UnixConn
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

const journalSocket = "/run/systemd/journal/dev-log"

// listenSyslog makes the sink. Where /dev/log, which nszone-enter tries
// first, is the host's syslog (a socket of rsyslog's, or a link to one),
// the sink is bound over it too, in the sandbox's mount namespace: the
// tests run, and nothing reaches the host's log.
func listenSyslog(t *testing.T) *syslogSink {
	t.Helper()
	os.Remove(journalSocket)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: journalSocket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(journalSocket, 0o666)
	if target, err := filepath.EvalSymlinks("/dev/log"); err == nil && target != journalSocket {
		if err := unix.Mount(journalSocket, target, "", unix.MS_BIND, ""); err != nil {
			conn.Close()
			t.Fatalf("covering the host's syslog socket %s: %v", target, err)
		}
		t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	}
	s := &syslogSink{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		b := make([]byte, 8192)
		for {
			n, err := conn.Read(b)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.lines = append(s.lines, string(b[:n]))
			s.mu.Unlock()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *syslogSink) close() {
	s.conn.Close()
	<-s.done
	os.Remove(journalSocket)
}

// wait returns the first line logged that contains want.
func (s *syslogSink) wait(want string) (string, bool) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s.mu.Lock()
		for _, l := range s.lines {
			if strings.Contains(l, want) {
				s.mu.Unlock()
				return l, true
			}
		}
		s.mu.Unlock()
	}
	return "", false
}

// as runs name as a, with only env (plus PATH) in its environment.
func as(t *testing.T, a account, env []string, name string, args ...string) result {
	t.Helper()
	return asCmd(t, a, env, exec.Command(name, args...))
}

// asCmd runs c as a, with only env (plus PATH) in its environment.
func asCmd(t *testing.T, a account, env []string, c *exec.Cmd) result {
	t.Helper()
	c.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + a.home}, env...)
	c.Dir = a.home
	groups := make([]uint32, len(a.groups))
	for i, g := range a.groups {
		groups[i] = uint32(g)
	}
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.groups[0]), Groups: groups}}
	return runExec(t, c)
}

const enterZones = `version: 1
zones:
  wan:
    allow: [internet]
    users: [nszalice]
    groups: [nszbrowse]
  lan:
    allow: [lan]
    users: [nszalice]
    no_new_privs: true
    confine: none
  offline:
    allow: []
`

// TestEnterWithoutSudo: the users and groups a zone names enter it as
// themselves through the setuid nszone-enter; everyone else is refused in
// one line; nothing of the caller's environment or options widens that.
func TestEnterWithoutSudo(t *testing.T) {
	needSandbox(t)
	alice, bob, carol := addAccounts(t)
	bin := installEnter(t)
	nszone, enter := filepath.Join(bin, "nszone"), filepath.Join(bin, "nszone-enter")
	logs := listenSyslog(t)
	file := writeZones(t, strings.Replace(enterZones, "[nszalice]", "[nszalice, nszghost]", 1))
	if out := mustRun(t, "up", "-c", file); !strings.Contains(out, "warning: zone wan: users: names nszghost, who is not a user of this host") {
		t.Errorf("up with an unknown user in users: did not warn:\n%s", out)
	}
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	var pin syscall.Stat_t
	if err := syscall.Stat("/run/netns/wan", &pin); err != nil {
		t.Fatal(err)
	}

	// A permitted user, named in users:, as themselves with nothing left of
	// root, in the zone's namespace; the caller's tricks do not cross,
	// whether through nszone exec or given to the helper itself.
	const script = `id -u; id -G; grep -E '^(Cap(Inh|Prm|Eff|Amb)|NoNewPrivs):' /proc/self/status; readlink /proc/self/ns/net; echo "HOME=$HOME USER=$USER"; env | grep -E '^(LD_|GODEBUG|NSZONE_|SUDO_|BASH_ENV)' || true`
	tricks := []string{"LD_PRELOAD=/nonexistent/nszone-e2e.so", "NSZONE_CONFIG=/nonexistent.yaml", "SUDO_UID=0", "BASH_ENV=/nonexistent"}
	want := fmt.Sprintf("64101\n64101\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"+
		"CapAmb:\t0000000000000000\nNoNewPrivs:\t0\nnet:[%d]\nHOME=%s USER=nszalice\n", pin.Ino, alice.home)
	for _, argv := range [][]string{{nszone, "exec", "wan", "--"}, {enter, "wan", "--"}} {
		r := as(t, alice, tricks, argv[0], append(argv[1:], "sh", "-c", script)...)
		if r.code != 0 || r.out != want {
			t.Fatalf("alice in wan through %s: exit %d\n%s\nwant\n%s\nstderr: %s", filepath.Base(argv[0]), r.code, r.out, want, r.err)
		}
	}
	// Package initialisers read the environment before main (NLDEBUG makes
	// the netlink library dump every message of the readiness check, the
	// host's rules among them): nszone exec hands over only the cleaned
	// environment, and nszone-enter run with more starts again without it.
	for _, argv := range [][]string{{nszone, "exec", "wan", "--"}, {enter, "wan", "--"}} {
		argv = append(argv, "sh", "-c", "env | grep -E '^(GO|NL)' || true")
		r := as(t, alice, []string{"NLDEBUG=level=2", "GODEBUG=netdns=go"}, argv[0], argv[1:]...)
		if r.code != 0 || r.out != "" || strings.Contains(r.err, "nl: ") {
			t.Errorf("%s with NLDEBUG: exit %d, program saw %q, stderr %q", filepath.Base(argv[0]), r.code, r.out, lastLines(r.err, 3))
		}
	}
	if l, ok := logs.wait(`entered: user="nszalice" uid=64101 zone="wan" program="/usr/bin/sh" args=2`); !ok || !strings.HasPrefix(l, "<85>") {
		t.Errorf("alice's entry not logged as authpriv.notice: %q (all: %q)", l, logs.lines)
	}
	// The zone's policy holds for her: the internet, not the LAN.
	if r := as(t, alice, nil, nszone, append([]string{"exec", "wan", "--"}, curl("http://203.0.113.10/")...)...); r.code != 0 || !strings.Contains(r.out, "lab-internet") {
		t.Errorf("alice in wan, internet: exit %d %q %s", r.code, r.out, r.err)
	}
	if r := as(t, alice, nil, nszone, append([]string{"exec", "wan", "--"}, curl("http://192.168.50.10/")...)...); r.code == 0 {
		t.Errorf("alice in wan reached the LAN: %q", r.out)
	}

	// --profile: a separate instance, its profile made by her in her HOME.
	bindir := filepath.Join(alice.home, "bin")
	os.Mkdir(bindir, 0o755)
	os.WriteFile(filepath.Join(bindir, "firefox"), []byte("#!/bin/sh\necho \"started: $*\"\n"), 0o755)
	profile := filepath.Join(alice.home, ".local/share/nszone/wan/firefox")
	r := as(t, alice, []string{"PATH=" + bindir + ":/usr/bin:/bin"}, nszone, "exec", "--profile", "wan", "--", "firefox", "https://example.com")
	var st syscall.Stat_t
	if r.code != 0 || r.out != "started: --no-remote --profile "+profile+" https://example.com\n" || syscall.Stat(profile, &st) != nil || st.Uid != 64101 {
		t.Errorf("alice: exec --profile wan -- firefox: exit %d %q %s (profile owner %d)", r.code, r.out, r.err, st.Uid)
	}

	// Permitted through groups:, with her supplementary group kept.
	if r := as(t, carol, nil, nszone, "exec", "wan", "--", "id", "-G"); r.code != 0 || r.out != "64103 64110\n" {
		t.Errorf("carol (group nszbrowse) in wan: exit %d %q %s", r.code, r.out, r.err)
	}
	// no_new_privs where the zone asks for it.
	if r := as(t, alice, nil, nszone, "exec", "lan", "--", "grep", "^NoNewPrivs:", "/proc/self/status"); r.code != 0 || r.out != "NoNewPrivs:\t1\n" {
		t.Errorf("alice in lan (no_new_privs: true): exit %d %q %s", r.code, r.out, r.err)
	}

	// Refused in one line, nothing started, logged: a user not named, a zone
	// naming nobody, a file of the caller's that would name them.
	evil := filepath.Join(bob.home, "zones.yaml")
	os.WriteFile(evil, []byte(strings.ReplaceAll(enterZones, "[nszalice]", "[nszalice, nszbob]")), 0o644)
	refusals := []struct {
		who  account
		env  []string
		args []string
		want string
	}{
		{bob, nil, []string{"exec", "wan", "--", "echo", "started"}, "nszone: you (nszbob) may not enter zone wan: neither you nor a group of yours is named in its users: or groups:"},
		{bob, []string{"NSZONE_CONFIG=" + evil}, []string{"exec", "wan", "--", "echo", "started"}, "you (nszbob) may not enter zone wan"},
		{bob, nil, []string{"exec", "-c", evil, "wan", "--", "echo", "started"}, "unknown shorthand flag: 'c'"},
		{carol, nil, []string{"exec", "lan", "--", "echo", "started"}, "you (nszcarol) may not enter zone lan"},
		{alice, nil, []string{"exec", "offline", "--", "echo", "started"}, "nszone: you (nszalice) may not enter zone offline: neither you nor a group of yours is named in its users: or groups:"},
		{alice, nil, []string{"exec", "--user", "root", "wan", "--", "echo", "started"}, "exec --user needs root"},
		{alice, nil, []string{"exec", "nosuch", "--", "echo", "started"}, "zone nosuch: it is not up"},
	}
	for _, tt := range refusals {
		r := as(t, tt.who, tt.env, nszone, tt.args...)
		if r.code == 0 || r.out != "" || !strings.Contains(r.err, tt.want) || strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
			t.Errorf("%s: nszone %s: exit %d, stdout %q, stderr %q; want a refusal %q in one line", tt.who.name, strings.Join(tt.args, " "), r.code, r.out, r.err, tt.want)
		}
		// A refusal says who may not enter, not who may.
		for _, name := range []string{"nszalice", "nszghost", "nszbrowse", "nszcarol"} {
			if name != tt.who.name && strings.Contains(r.err, name) {
				t.Errorf("%s: nszone %s: the refusal names %s: %q", tt.who.name, strings.Join(tt.args, " "), name, r.err)
			}
		}
	}
	if _, ok := logs.wait(`refused: user="nszbob" uid=64102 zone="wan" reason="you (nszbob) may not enter zone wan`); !ok {
		t.Errorf("bob's refusal not logged: %q", logs.lines)
	}
	// A caller who closes stderr: the Go runtime puts /dev/null there before
	// main (Go 1.22 and later), so none of the helper's files (the log
	// socket) becomes its stderr or the program's, and only syslog lines
	// reach the log.
	r = as(t, bob, nil, "sh", "-c", `exec 2>&-; exec "$0" wan -- echo started`, enter)
	if r.code != 1 || r.out != "" {
		t.Errorf("bob with stderr closed: exit %d %q", r.code, r.out)
	}
	r = as(t, alice, nil, "sh", "-c", `exec 2>&-; exec "$0" wan -- readlink /proc/self/fd/2`, enter)
	if r.code != 0 || r.out != "/dev/null\n" {
		t.Errorf("alice with stderr closed: the program's stderr is %q (exit %d), want /dev/null", r.out, r.code)
	}
	logs.wait("zone=\"wan\" reason=\"you (nszbob)")
	logs.mu.Lock()
	for _, l := range logs.lines {
		if !strings.HasPrefix(l, "<") {
			t.Errorf("the log socket got a line that is not syslog's: %q", l)
		}
	}
	logs.mu.Unlock()
	// The helper itself refuses options that would widen the caller's say.
	for args, want := range map[string]string{"--user=root wan -- id": "--user is for root only", "-c " + evil + " wan -- id": "-c: who may enter"} {
		if r := as(t, bob, nil, enter, strings.Fields(args)...); r.code != 2 || !strings.Contains(r.err, want) {
			t.Errorf("bob: nszone-enter %s: exit %d %q, want 2 and %q", args, r.code, r.err, want)
		}
	}

	// What decides who enters, and what is bound over /etc, is root's
	// alone, in the layout nszone makes.
	checkTrust(t, alice, nszone)

	// Who may enter is the zone as up made it: an up without alice shuts
	// her out, and says so.
	narrowed := writeZones(t, strings.Replace(enterZones, "users: [nszalice]\n    groups", "users: [nszghost]\n    groups", 1))
	if out := mustRun(t, "up", "-c", narrowed); !strings.Contains(out, "zone wan: who may enter without sudo: users nszghost; groups nszbrowse") {
		t.Errorf("up that changed who may enter said:\n%s", out)
	}
	if r := as(t, alice, nil, nszone, "exec", "wan", "--", "true"); r.code != 1 || !strings.Contains(r.err, "you (nszalice) may not enter zone wan") {
		t.Errorf("alice after her removal from wan: exit %d %q", r.code, r.err)
	}

	// On a host whose rules are legacy iptables the readiness check runs
	// iptables-save as root: with the fixed PATH, it works the same.
	run(t, nil, "down", "--all")
	if r := run(t, []string{"NSZONE_IPTABLES=legacy"}, "up", "-c", file); r.code != 0 {
		t.Fatalf("up (legacy): exit %d %s", r.code, r.err)
	}
	if r := as(t, alice, nil, nszone, "exec", "wan", "--", "id", "-u"); r.code != 0 || r.out != "64101\n" {
		t.Errorf("alice in wan on iptables-legacy: exit %d %q %s", r.code, r.out, r.err)
	}
	if r := as(t, bob, nil, nszone, "exec", "wan", "--", "id", "-u"); r.code != 1 || r.out != "" {
		t.Errorf("bob in wan on iptables-legacy: exit %d %q %s", r.code, r.out, r.err)
	}

	// No log, no entry.
	logs.close()
	if r := as(t, alice, nil, nszone, "exec", "lan", "--", "echo", "started"); r.code != 1 || r.out != "" || !strings.Contains(r.err, "every entry must be logged") {
		t.Errorf("without a syslog socket: exit %d %q %q, want a refusal", r.code, r.out, r.err)
	}
}

// checkTrust: the helper runs on nszone's own layout (the sandbox's is the
// production one), and refuses a caller, however permitted, when any file
// that decides who enters or that is bound over /etc for the program could
// be changed by someone other than root. Each spoiling is undone after it.
func checkTrust(t *testing.T, alice account, nszone string) {
	t.Helper()
	layout := []struct {
		path string
		mode os.FileMode
	}{
		{"/run/nszone", os.ModeDir | 0o755}, {"/run/nszone/zones", os.ModeDir | 0o755},
		{"/run/nszone/zones/wan.json", 0o600}, {"/run/nszone/host.json", 0o600},
		{"/run/netns", os.ModeDir | 0o755}, {"/etc/netns", os.ModeDir | 0o755},
		{"/etc/netns/wan", os.ModeDir | 0o755}, {"/etc/netns/wan/resolv.conf", 0o644},
	}
	for _, l := range layout {
		fi, err := os.Lstat(l.path)
		if err != nil || fi.Mode() != l.mode || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s: %v %v, want root's and %v as nszone makes it: the tests would not try the production layout", l.path, fi.Mode(), err, l.mode)
		}
	}
	chmod := func(path string, mode os.FileMode) func() func() {
		return func() func() {
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			return func() { os.Chmod(path, fi.Mode()) }
		}
	}
	chown := func(path string) func() func() {
		return func() func() {
			if err := os.Lchown(path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return func() { os.Lchown(path, 0, 0) }
		}
	}
	make := func(path string, mk func(string) error) func() func() {
		return func() func() {
			if err := mk(path); err != nil {
				t.Fatal(err)
			}
			return func() { os.Remove(path) }
		}
	}
	sticky := os.ModeSticky | 0o777
	cases := []struct {
		what  string
		spoil func() func()
		want  string
	}{
		{"a world-writable record", chmod("/run/nszone/zones/wan.json", 0o666), "its record must be root's alone: /run/nszone/zones/wan.json is writable"},
		{"a record not owned by root", chown("/run/nszone/zones/wan.json"), "its record must be root's alone: /run/nszone/zones/wan.json is not owned by root"},
		{"another zone's record not owned by root", chown("/run/nszone/zones/lan.json"), "nszone's records must be root's alone: /run/nszone/zones/lan.json is not owned by root"},
		{"a world-writable records directory", chmod("/run/nszone/zones", 0o777), "/run/nszone/zones is writable by group or others (mode 0777)"},
		{"a group-writable records directory", chmod("/run/nszone/zones", 0o775), "/run/nszone/zones is writable by group or others (mode 0775)"},
		{"a sticky records directory", chmod("/run/nszone/zones", sticky), "nszone's records must be root's alone: /run/nszone/zones is writable by group or others (mode 1777)"},
		{"a sticky /run/nszone", chmod("/run/nszone", sticky), "nszone's records must be root's alone: /run/nszone is writable by group or others (mode 1777)"},
		{"a world-writable host record", chmod("/run/nszone/host.json", 0o666), "nszone's host record must be root's alone"},
		{"a world-writable zone file", chmod("/etc/netns/wan/resolv.conf", 0o666), "its files must be root's alone: /etc/netns/wan/resolv.conf is writable"},
		{"a zone file not owned by root", chown("/etc/netns/wan/nsswitch.conf"), "its files must be root's alone: /etc/netns/wan/nsswitch.conf is not owned by root"},
		{"a symlink among the zone's files", make("/etc/netns/wan/hosts", func(p string) error { return os.Symlink("/tmp/nszone-e2e-hosts", p) }),
			"its files must be root's alone: /etc/netns/wan/hosts is a symlink"},
		{"a sticky directory among the zone's files", make("/etc/netns/wan/ssl", func(p string) error { os.Mkdir(p, 0o755); return os.Chmod(p, sticky) }),
			"its files must be root's alone: /etc/netns/wan/ssl is writable by group or others (mode 1777)"},
		{"a world-writable /etc/netns/wan", chmod("/etc/netns/wan", 0o777), "its files must be root's alone: /etc/netns/wan is writable"},
	}
	for _, c := range cases {
		undo := c.spoil()
		r := as(t, alice, nil, nszone, "exec", "wan", "--", "echo", "started")
		undo()
		if r.code == 0 || r.out != "" || !strings.Contains(r.err, c.want) {
			t.Errorf("%s: exit %d %q %q, want a refusal saying %q", c.what, r.code, r.out, r.err, c.want)
		}
	}
	// Undone, the same entry works: the refusals were the spoiling's.
	if r := as(t, alice, nil, nszone, "exec", "wan", "--", "echo", "started"); r.code != 0 || r.out != "started\n" {
		t.Errorf("alice in wan after the trust checks: exit %d %q %q", r.code, r.out, r.err)
	}
}

// TestEnterDesktop: a permitted user starts a real X11 client and Chromium
// in wan without sudo, with their own cookie and HOME.
func TestEnterDesktop(t *testing.T) {
	needSandbox(t)
	display, rootCookie := startXvfb(t)
	alice, _, _ := addAccounts(t)
	bin := installEnter(t)
	listenSyslog(t)
	mustRun(t, "up", "-c", writeZones(t, enterZones), "wan")
	t.Cleanup(func() { run(t, nil, "down", "--all") })

	cookie := filepath.Join(alice.home, ".Xauthority")
	b, err := os.ReadFile(rootCookie)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cookie, b, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(cookie, alice.uid, alice.uid)
	nszone := filepath.Join(bin, "nszone")
	r := as(t, alice, []string{"DISPLAY=" + display}, nszone, "exec", "wan", "--", "xdpyinfo")
	if r.code != 0 || !strings.Contains(r.out, "name of display:") || strings.Contains(r.err, "warning") {
		t.Errorf("xdpyinfo in wan as alice without sudo: exit %d\n%s\n%s", r.code, lastLines(r.out, 3), r.err)
	}

	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (scripts/deps installs it where the distribution has it)")
	}
	load := func(url string) result {
		return as(t, alice, []string{"DISPLAY=" + display}, nszone, "exec", "wan", "--", chromium,
			"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(alice.home, "chromium-"+strconv.Itoa(len(url))),
			"--timeout=15000", "--dump-dom", url)
	}
	if r := load("http://203.0.113.10/"); r.code != 0 || !strings.Contains(r.out, "lab-internet") {
		t.Errorf("chromium in wan as alice, internet server: exit %d, page %q\n%s", r.code, r.out, lastLines(r.err, 10))
	}
	if r := load("http://192.168.50.10/"); strings.Contains(r.out, "lab-lan") {
		t.Errorf("chromium in wan as alice loaded the LAN server's page: %q", r.out)
	}
}

// TestEnterRecheck: what let a caller in is checked again in the zone,
// right before the drop, against the zone as it is then. The helper is held
// between the first checks and the drop (stderr is a full pipe, on which it
// writes the warning of a zone that is degraded but closed), the zone is
// changed under it, and only then let go.
func TestEnterRecheck(t *testing.T) {
	needSandbox(t)
	alice, _, _ := addAccounts(t)
	bin := installEnter(t)
	listenSyslog(t)
	file := writeZones(t, enterZones)
	narrowed := writeZones(t, strings.Replace(enterZones, "users: [nszalice]\n    groups", "users: [nszghost]\n    groups", 1))
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	enter := filepath.Join(bin, "nszone-enter")
	cases := []struct {
		what   string
		change func(t *testing.T)
		want   string // "" : enters
	}{
		// The hold itself lets nobody in or out.
		{"nothing changed", func(*testing.T) {}, ""},
		// up removes her from users:, keeping the namespace.
		{"access narrowed", func(t *testing.T) { mustRun(t, "up", "-c", narrowed) }, "you (nszalice) may not enter zone wan"},
		// down and up: a new namespace, which, unless the first is held,
		// gets the inode number of the first (freed at once), and a record
		// that names it with everything else as before.
		{"zone replaced", func(t *testing.T) { mustRun(t, "down", "wan"); mustRun(t, "up", "-c", file) }, "zone wan changed while you were entering it: try again"},
		// Someone else's namespace pinned in its place, the record untouched:
		// the namespace the thread entered is not the one held.
		{"pin replaced", func(t *testing.T) {
			for _, c := range [][]string{{"umount", "-l", "/run/netns/wan"}, {"rm", "/run/netns/wan"}, {"ip", "netns", "add", "wan"}} {
				if r := runCmd(t, nil, c[0], c[1:]...); r.code != 0 {
					t.Fatalf("%v: %s", c, r.err)
				}
			}
			// Removed again before anything else comes up (up refuses a
			// namespace of a zone's name that is not nszone's).
			t.Cleanup(func() { runCmd(t, nil, "ip", "netns", "del", "wan"); mustRun(t, "down", "--all") })
		}, "zone wan was replaced while you were entering it: try again"},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			mustRun(t, "up", "-c", file)
			// Degraded but closed: a warning, then the entry.
			if r := runCmd(t, nil, "iptables", "-D", "FORWARD", "-m", "comment", "--comment", "nszone", "-j", "NSZ-FORWARD"); r.code != 0 {
				t.Fatalf("deleting the hook: %s", r.err)
			}
			r := enterHeld(t, alice, enter, func() { c.change(t) }, "wan", "--", "echo", "started")
			if !strings.Contains(r.err, "degraded but closed") {
				t.Fatalf("the helper was not held on its warning: exit %d %q %q", r.code, r.out, r.err)
			}
			switch {
			case c.want == "" && (r.code != 0 || r.out != "started\n"):
				t.Errorf("held, nothing changed: exit %d %q %q, want it to enter", r.code, r.out, r.err)
			case c.want != "" && (r.code == 0 || r.out != "" || !strings.Contains(r.err, c.want)):
				t.Errorf("held while %s: exit %d %q %q, want a refusal %q", c.what, r.code, r.out, r.err, c.want)
			}
		})
	}
}

// enterHeld runs nszone-enter ARGS as a with stderr a pipe that is full
// until the helper blocks writing to it; then runs during and drains the
// pipe. The stderr returned is what the helper wrote.
func enterHeld(t *testing.T, a account, enter string, during func(), args ...string) result {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	size, err := unix.FcntlInt(pw.Fd(), unix.F_GETPIPE_SZ, 0) // Fd: blocking from here on
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	c := exec.Command(enter, args...)
	c.Env = []string{"PATH=/usr/bin:/bin"} // clean: no second start
	c.Dir, c.Stdout, c.Stderr = a.home, &out, pw
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(a.uid), Gid: uint32(a.groups[0])}}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	held := false
	for deadline := time.Now().Add(10 * time.Second); !held && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		held = writingStderr(c.Process.Pid)
	}
	if held {
		during()
	}
	errc := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(pr); errc <- b }()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(20 * time.Second):
		c.Process.Kill()
		werr = <-done
		t.Errorf("nszone-enter %v did not end in 20s", args)
	}
	b := <-errc
	if !held {
		t.Errorf("nszone-enter %v never blocked on stderr", args)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		code = ee.ExitCode()
	}
	return result{out.String(), strings.TrimLeft(string(b), "\x00"), code}
}

// writingStderr reports whether a thread of pid is in write(2) on
// descriptor 2 (x86-64 and arm64 numbers).
func writingStderr(pid int) bool {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		f := strings.Fields(string(b))
		if len(f) > 1 && f[1] == "0x2" && (runtime.GOARCH == "amd64" && f[0] == "1" || runtime.GOARCH == "arm64" && f[0] == "64") {
			return true
		}
	}
	return false
}

// TestEnterLimits: the caller's resource limits, which a setuid program
// inherits, neither hang the helper nor make it fail half way with the
// wrong words. Every attempt is bounded: one that does not end is killed
// and fails the test.
func TestEnterLimits(t *testing.T) {
	needSandbox(t)
	alice, _, _ := addAccounts(t)
	bin := installEnter(t)
	listenSyslog(t)
	mustRun(t, "up", "-c", writeZones(t, enterZones))
	t.Cleanup(func() { run(t, nil, "down", "--all") })
	nszone, enter := filepath.Join(bin, "nszone"), filepath.Join(bin, "nszone-enter")
	limited := func(t *testing.T, ulimit string, argv ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := exec.CommandContext(ctx, "bash", append([]string{"-c", "ulimit " + ulimit + ` && exec "$@"`, "bash"}, argv...)...)
		r := asCmd(t, alice, nil, c)
		if ctx.Err() != nil {
			t.Fatalf("ulimit %s; %s: still running after 20s (killed): stderr %q", ulimit, strings.Join(argv, " "), r.err)
		}
		return r
	}
	// RLIMIT_SIGPENDING: Go changes the user of every thread by signalling
	// each. The program gets the caller's limit back.
	var sigpending unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_SIGPENDING, &sigpending); err != nil {
		t.Fatal(err)
	}
	const show = `echo "$(ulimit -Si) $(ulimit -Hi)"`
	for _, zone := range []string{"wan", "lan"} { // confine: desktop (an init, a second drop), none
		for _, argv := range [][]string{{enter, zone, "--", "bash", "-c", show}, {nszone, "exec", zone, "--", "bash", "-c", show}} {
			name := filepath.Base(argv[0]) + " " + zone
			t.Run("ulimit -Si 0: "+name, func(t *testing.T) {
				// The soft limit alone: root lifts it to the hard one.
				r := limited(t, "-Si 0", argv...)
				if want := fmt.Sprintf("0 %d\n", sigpending.Max); r.code != 0 || r.out != want {
					t.Errorf("exit %d %q %q, want it to enter and the program to see %q", r.code, r.out, r.err, want)
				}
			})
			t.Run("ulimit -i 0: "+name, func(t *testing.T) {
				// Both: root lifts them (CAP_SYS_RESOURCE); where root
				// cannot (some containers, this sandbox perhaps), a refusal
				// that says so.
				r := limited(t, "-i 0", argv...)
				entered := r.code == 0 && r.out == "0 0\n"
				refused := r.code != 0 && r.out == "" && strings.Count(strings.TrimSpace(r.err), "\n") == 0 &&
					strings.Contains(r.err, "RLIMIT_SIGPENDING (ulimit -i) allows 0 queued signals")
				if !entered && !refused {
					t.Errorf("exit %d %q %q, want it to enter (the program seeing \"0 0\") or to refuse in one line", r.code, r.out, r.err)
				}
			})
		}
	}
	// RLIMIT_NOFILE: too few descriptors is said before anything is
	// opened, not found half way (a panic, "no zone is up", "degraded").
	for n := 8; n <= 12; n++ {
		t.Run(fmt.Sprintf("ulimit -n %d", n), func(t *testing.T) {
			r := limited(t, fmt.Sprintf("-n %d", n), enter, "wan", "--", "echo", "started")
			want := fmt.Sprintf("nszone: refusing to enter zone \"wan\": too few open files: your limit (ulimit -n) is %d", n)
			if r.code != 1 || r.out != "" || !strings.HasPrefix(r.err, want) || !strings.HasSuffix(r.err, "raise ulimit -n\n") || strings.Count(r.err, "\n") != 1 {
				t.Errorf("exit %d %q %q, want one line %q...", r.code, r.out, r.err, want)
			}
		})
	}
	t.Run("ulimit -n 64", func(t *testing.T) {
		if r := limited(t, "-n 64", enter, "wan", "--", "echo", "started"); r.code != 0 || r.out != "started\n" {
			t.Errorf("exit %d %q %q, want it to enter", r.code, r.out, r.err)
		}
	})
}

// TestEnterHostSyslog: on a host whose /dev/log is its syslog's own socket,
// the tests run all the same and log nothing there: their sink covers it.
// The host's syslog is played by a socket at /dev/log in a copy of the
// sandbox's mount namespace, whose /dev is a tmpfs with the sandbox's
// devices bound in.
func TestEnterHostSyslog(t *testing.T) {
	needSandbox(t)
	alice, _, _ := addAccounts(t)
	bin := installEnter(t)
	mustRun(t, "up", "-c", writeZones(t, enterZones), "wan")
	t.Cleanup(func() { run(t, nil, "down", "--all") }) // here, in the sandbox's mount namespace
	ran := false
	t.Run("a socket at /dev/log", func(t *testing.T) {
		// This goroutine's thread gets its own mount namespace and keeps it:
		// never unlocked, the thread ends with the subtest, and what starts
		// from it (the helper) starts in that namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			t.Fatal(err)
		}
		hostLog := hostDevLog(t)
		logs := listenSyslog(t)
		r := as(t, alice, nil, filepath.Join(bin, "nszone-enter"), "wan", "--", "echo", "started")
		if r.code != 0 || r.out != "started\n" {
			t.Fatalf("alice in wan: exit %d %q %q", r.code, r.out, r.err)
		}
		if _, ok := logs.wait(`entered: user="nszalice" uid=64101 zone="wan"`); !ok {
			t.Errorf("the entry did not reach the tests' log: %q", logs.lines)
		}
		hostLog.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		b := make([]byte, 4096)
		if n, err := hostLog.Read(b); err == nil {
			t.Errorf("the host's syslog got %q", b[:n])
		}
		ran = true
	})
	if !ran {
		t.Error("the entry with a host's /dev/log did not run through (skipped?): the enter tests must run on such hosts too")
	}
}

// hostDevLog covers /dev, in the calling thread's mount namespace, with a
// tmpfs holding the devices of the real one and a listening socket at
// /dev/log, which it returns.
func hostDevLog(t *testing.T) *net.UnixConn {
	t.Helper()
	dir, err := os.MkdirTemp("", "nszone-dev-")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("nszone-e2e-dev", dir, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Unmount("/dev", unix.MNT_DETACH)
		unix.Unmount(dir, unix.MNT_DETACH)
		os.Remove(dir)
	})
	entries, err := os.ReadDir("/dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src, dst := filepath.Join("/dev", e.Name()), filepath.Join(dir, e.Name())
		switch {
		case e.Name() == "log":
			continue
		case e.Type()&os.ModeSymlink != 0:
			target, _ := os.Readlink(src)
			err = os.Symlink(target, dst)
		case e.IsDir():
			if err = os.Mkdir(dst, 0o755); err == nil {
				err = unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, "")
			}
		default:
			if err = os.WriteFile(dst, nil, 0o600); err == nil {
				err = unix.Mount(src, dst, "", unix.MS_BIND, "")
			}
		}
		if err != nil {
			t.Fatalf("copying %s: %v", src, err)
		}
	}
	sock := filepath.Join(dir, "log")
	host, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	os.Chmod(sock, 0o666)
	if err := unix.Mount(dir, "/dev", "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat("/dev/log"); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("/dev/log is not the host's socket: %v %v", fi, err)
	}
	return host
}
