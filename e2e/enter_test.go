package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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

func listenSyslog(t *testing.T) *syslogSink {
	t.Helper()
	if fi, err := os.Lstat("/dev/log"); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		t.Skip("/dev/log is a socket of the host's syslog: entries would be logged there, not here")
	}
	os.Remove(journalSocket)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: journalSocket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(journalSocket, 0o666)
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
	c := exec.Command(name, args...)
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
		{bob, nil, []string{"exec", "wan", "--", "echo", "started"}, "nszone: you (nszbob) may not enter zone wan: you are not in its users: (nszalice, nszghost) nor in its groups: (nszbrowse)"},
		{bob, []string{"NSZONE_CONFIG=" + evil}, []string{"exec", "wan", "--", "echo", "started"}, "you (nszbob) may not enter zone wan"},
		{bob, nil, []string{"exec", "-c", evil, "wan", "--", "echo", "started"}, "unknown shorthand flag: 'c'"},
		{carol, nil, []string{"exec", "lan", "--", "echo", "started"}, "you (nszcarol) may not enter zone lan"},
		{alice, nil, []string{"exec", "offline", "--", "echo", "started"}, "you (nszalice) may not enter zone offline: it names no users: or groups:, so only root enters"},
		{alice, nil, []string{"exec", "--user", "root", "wan", "--", "echo", "started"}, "exec --user needs root"},
		{alice, nil, []string{"exec", "nosuch", "--", "echo", "started"}, "zone nosuch: it is not up"},
	}
	for _, tt := range refusals {
		r := as(t, tt.who, tt.env, nszone, tt.args...)
		if r.code == 0 || r.out != "" || !strings.Contains(r.err, tt.want) || strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
			t.Errorf("%s: nszone %s: exit %d, stdout %q, stderr %q; want a refusal %q in one line", tt.who.name, strings.Join(tt.args, " "), r.code, r.out, r.err, tt.want)
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

	// A record others could write is not trusted.
	rec := "/run/nszone/zones/wan.json"
	os.Chmod(rec, 0o666)
	r = as(t, alice, nil, nszone, "exec", "wan", "--", "echo", "started")
	os.Chmod(rec, 0o644)
	if r.code == 0 || !strings.Contains(r.err, "its record must be root's alone") {
		t.Errorf("world-writable record: exit %d %q %q, want a refusal", r.code, r.out, r.err)
	}

	// So are zone files others could write: they are bound over /etc.
	os.Chmod("/etc/netns/wan/resolv.conf", 0o666)
	r = as(t, alice, nil, nszone, "exec", "wan", "--", "echo", "started")
	os.Chmod("/etc/netns/wan/resolv.conf", 0o644)
	if r.code == 0 || !strings.Contains(r.err, "its files must be root's alone") {
		t.Errorf("world-writable resolv.conf: exit %d %q %q, want a refusal", r.code, r.out, r.err)
	}

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
