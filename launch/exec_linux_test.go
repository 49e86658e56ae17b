package launch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/nszone/nszone/internal/kerneltest"
	"github.com/nszone/nszone/netns"
	"github.com/nszone/nszone/sandbox"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Exec replaces the process, so the integration tests run the test binary
// itself as a helper: with LAUNCH_TEST_HELPER=1 it decodes Options from
// LAUNCH_TEST_OPTIONS and calls Exec.
const (
	helperEnv  = "LAUNCH_TEST_HELPER"
	optionsEnv = "LAUNCH_TEST_OPTIONS"
)

// TestMain runs the tests as root in a sandbox (fresh network and mount
// namespaces, tmpfs on /run/netns and /etc/netns), so nothing they do can
// touch the host. The helper, started by a test, is already in it.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		if !sandbox.Active() {
			fmt.Fprintln(os.Stderr, "launch test helper: refusing to run outside the sandbox")
			os.Exit(1)
		}
		helperMain()
	}
	kerneltest.Main(m, "launch tests")
}

func helperMain() {
	var o Options
	if err := json.Unmarshal([]byte(os.Getenv(optionsEnv)), &o); err != nil {
		fmt.Fprintln(os.Stderr, "helper: decoding options:", err)
		os.Exit(3)
	}
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	err := Exec(o)
	var ee *ExitError
	if errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "nszone: %v\n", ee)
		os.Exit(ee.Code)
	}
	fmt.Fprintln(os.Stderr, "helper: Exec returned", err)
	os.Exit(3)
}

// zone is a throwaway zone as nszone makes them: a network namespace pinned
// at /run/netns/ztest with the interface zdummy0, and /etc/netns/ztest. root
// is a scratch tmpfs for the test's other files.
type zone struct {
	root, netns, etc string
}

func newZone(t *testing.T) *zone {
	t.Helper()
	kerneltest.Root(t)
	z := &zone{root: t.TempDir(), netns: netns.PinDir + "/ztest", etc: "/etc/netns/ztest"}
	if err := unix.Mount("zone-test", z.root, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		netns.DeleteNamed("ztest", nil)
		os.RemoveAll(z.etc)
		unix.Unmount(z.root, unix.MNT_DETACH)
	})
	if err := os.MkdirAll(z.etc, 0o755); err != nil {
		t.Fatal(err)
	}
	// Pin a new network namespace as iproute2 does, zdummy0 in it.
	if _, err := netns.CreateNamed("ztest", func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		if err := addLink(h, "zdummy0"); err != nil {
			return fmt.Errorf("adding zdummy0: %w", err)
		}
		return nil
	}, nil); err != nil {
		t.Fatalf("pinning a network namespace: %v", err)
	}
	z.write(t, "resolv.conf", "nameserver 192.0.2.53\n")
	z.write(t, "nsswitch.conf", "hosts: files dns\n")
	z.write(t, "nszone-no-such-etc-file", "skipped\n")
	return z
}

// addLink adds a dummy interface, or a bridge on kernels built without the
// dummy driver: any interface of the namespace will do.
func addLink(h *netlink.Handle, name string) error {
	attrs := netlink.LinkAttrs{Name: name}
	err := h.LinkAdd(&netlink.Dummy{LinkAttrs: attrs})
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = h.LinkAdd(&netlink.Bridge{LinkAttrs: attrs})
	}
	return err
}

func (z *zone) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(z.etc, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (z *zone) options(argv ...string) Options {
	return Options{
		NetnsPath: z.netns,
		EtcDir:    z.etc,
		Hide:      DefaultHide,
		Argv:      argv,
		Env:       []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/root", "USER=root", "LANG=C"},
	}
}

type result struct {
	stdout, stderr string
	code           int            // exit status, -1 when killed
	signal         syscall.Signal // the signal that killed it
}

// runHelper runs Exec(o) in a helper process started in dir ("" for ours).
func runHelper(t *testing.T, o Options, dir string) result {
	t.Helper()
	js, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=1", optionsEnv+"="+string(js))
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
			r.signal = ws.Signal()
		}
	case err != nil:
		t.Fatalf("running the helper: %v", err)
	}
	return r
}

// ok runs o and fails the test unless it exits 0; it returns stdout.
func ok(t *testing.T, o Options) string {
	t.Helper()
	r := runHelper(t, o, "")
	if r.code != 0 {
		t.Fatalf("%q: exit %d (signal %d), stderr:\n%s", o.Argv, r.code, r.signal, r.stderr)
	}
	return r.stdout
}

func TestExecNetworkAndFiles(t *testing.T) {
	z := newZone(t)
	// An interface of the sandbox's own namespace, which the zone must not see.
	h, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := addLink(h, "zsandbox0"); err != nil && !errors.Is(err, unix.EEXIST) {
		t.Fatalf("adding zsandbox0 to the sandbox: %v", err)
	}

	if got := ok(t, z.options("cat", "/etc/resolv.conf")); got != "nameserver 192.0.2.53\n" {
		t.Errorf("/etc/resolv.conf in the zone = %q", got)
	}
	if got := ok(t, z.options("cat", "/etc/nsswitch.conf")); got != "hosts: files dns\n" {
		t.Errorf("/etc/nsswitch.conf in the zone = %q", got)
	}

	got := strings.Fields(ok(t, z.options("ls", "/sys/class/net")))
	if !slices.Contains(got, "zdummy0") || slices.Contains(got, "zsandbox0") {
		t.Errorf("/sys/class/net in the zone = %q, want zdummy0 and not zsandbox0", got)
	}

	var st unix.Stat_t
	if err := unix.Stat(z.netns, &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("net:[%d]\n", st.Ino)
	if got := ok(t, z.options("readlink", "/proc/self/ns/net")); got != want {
		t.Errorf("network namespace in the zone = %q, want %q", got, want)
	}

	// Nothing leaked into the sandbox's own mount namespace.
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil && string(b) == "nameserver 192.0.2.53\n" {
		t.Error("the zone's resolv.conf shows outside the zone")
	}
}

func TestExecHides(t *testing.T) {
	z := newZone(t)
	dir := filepath.Join(z.root, "nscd")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "socket"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	o := z.options("sh", "-c", `ls -A "$1"; touch "$1/x" 2>/dev/null && echo writable || echo read-only`, "sh", dir)
	o.Hide = []string{dir, filepath.Join(z.root, "missing"), dir + "/../nscd"}
	if got := ok(t, o); got != "read-only\n" {
		t.Errorf("hidden directory in the zone: %q, want it empty and read-only", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "socket")); err != nil {
		t.Errorf("the hidden directory changed outside the zone: %v", err)
	}
}

func TestExecDropsPrivileges(t *testing.T) {
	z := newZone(t)
	const script = `id -u; id -g; grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status; echo "$HOME $USER $LOGNAME"; env | grep ^SUDO_; cat /etc/resolv.conf`
	wantCaps := "CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapAmb:\t0000000000000000\n"

	// Run through sudo: the SUDO_* variables go with root.
	o := z.options("sh", "-c", script)
	o.Env = append(o.Env, "SUDO_UID=65534", "SUDO_GID=65534", "SUDO_USER=nobody")
	o.As = nobody
	got := ok(t, o)
	want := "65534\n65534\n" + wantCaps + "/nonexistent nobody nobody\nnameserver 192.0.2.53\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// nobody is the unprivileged user of these tests, as launch/who finds it on
// Debian.
var nobody = &Identity{UID: 65534, GID: 65534, Groups: []int{65534}, Name: "nobody", Home: "/nonexistent"}

func TestExecWorkingDirectory(t *testing.T) {
	z := newZone(t)
	private := filepath.Join(z.root, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	// Root keeps its directory; nobody cannot enter it, nor its HOME
	// (/nonexistent), and lands in /.
	if r := runHelper(t, z.options("pwd"), private); r.code != 0 || r.stdout != private+"\n" {
		t.Errorf("root: pwd = %q (exit %d), want %s", r.stdout, r.code, private)
	}
	o := z.options("pwd")
	o.As = nobody
	if r := runHelper(t, o, private); r.code != 0 || r.stdout != "/\n" {
		t.Errorf("nobody: pwd = %q (exit %d), want /", r.stdout, r.code)
	}
	o.Argv = []string{"printenv", "PWD"}
	o.Env = append(o.Env, "PWD="+private)
	if r := runHelper(t, o, private); r.code != 0 || r.stdout != "/\n" {
		t.Errorf("nobody: PWD = %q (exit %d), want /", r.stdout, r.code)
	}
	o.Argv = []string{"pwd"}
	o.Dir = "/tmp"
	if r := runHelper(t, o, private); r.code != 0 || r.stdout != "/tmp\n" {
		t.Errorf("nobody with Dir=/tmp: pwd = %q (exit %d)", r.stdout, r.code)
	}
}

func TestExecExitStatus(t *testing.T) {
	z := newZone(t)
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(z.root, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	noexec := write("noexec", "#!/bin/sh\necho ran\n", 0o644)
	garbage := write("garbage", "\x00\x01\x02 not a program\n", 0o755)
	badInterp := write("bad-interpreter", "#!/nonexistent/interpreter\n", 0o755)

	inPath := z.options("noexec")
	inPath.Env = []string{"PATH=" + z.root}

	for _, tc := range []struct {
		name string
		o    Options
		code int
		sig  syscall.Signal
		msg  string
	}{
		{"exit 7", z.options("sh", "-c", "exit 7"), 7, 0, ""},
		{"killed", z.options("sh", "-c", "kill -TERM $$"), -1, syscall.SIGTERM, ""},
		{"not found", z.options("nszone-no-such-program"), 127, 0, `exec "nszone-no-such-program": executable file not found in $PATH`},
		{"path not found", z.options("/nonexistent/prog"), 127, 0, "no such file or directory"},
		{"not executable", z.options(noexec), 126, 0, fmt.Sprintf("exec %q: permission denied", noexec)},
		{"not executable in PATH", inPath, 126, 0, `exec "noexec": permission denied`},
		{"directory", z.options("/tmp"), 126, 0, "permission denied"},
		{"not a program", z.options(garbage), 126, 0, "exec format error"},
		{"missing interpreter", z.options(badInterp), 126, 0, "missing interpreter"},
	} {
		r := runHelper(t, tc.o, "")
		if r.code != tc.code || r.signal != tc.sig || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%s: exit %d signal %d, stderr:\n%s\nwant exit %d signal %d and %q", tc.name, r.code, r.signal, r.stderr, tc.code, tc.sig, tc.msg)
		}
	}
}

func TestExecSetupFailures(t *testing.T) {
	z := newZone(t)
	marker := filepath.Join(z.root, "ran")

	noNetns := z.options("touch", marker)
	noNetns.NetnsPath = "/run/netns/zmissing"
	notNetns := z.options("touch", marker)
	notNetns.NetnsPath = filepath.Join(z.etc, "resolv.conf")
	noEtc := z.options("touch", marker)
	noEtc.EtcDir = "/etc/netns/zmissing"

	for _, tc := range []struct {
		name string
		o    Options
		msg  string
	}{
		{"missing netns", noNetns, "opening network namespace"},
		{"not a netns", notNetns, "entering network namespace"},
		{"missing etc dir", noEtc, "reading the zone's files"},
		{"no program", z.options(), "no program to run"},
	} {
		r := runHelper(t, tc.o, "")
		if r.code != 1 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 1 and %q", tc.name, r.code, r.stderr, tc.msg)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%s: the program ran", tc.name)
		}
	}
}

// A symlinked /etc entry (systemd-resolved's resolv.conf) is covered itself,
// whether its target exists or not, and the target is left alone.
func TestBindOverSymlink(t *testing.T) {
	z := newZone(t)
	src := filepath.Join(z.etc, "resolv.conf")
	target := filepath.Join(z.root, "stub-resolv.conf")
	if err := os.WriteFile(target, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{target, filepath.Join(z.root, "nowhere/stub-resolv.conf")} {
		link := filepath.Join(z.root, "link-"+filepath.Base(filepath.Dir(to)))
		if err := os.Symlink(to, link); err != nil {
			t.Fatal(err)
		}
		if err := bindOver(src, link); err != nil {
			t.Fatalf("binding over a symlink to %s: %v", to, err)
		}
		if err := sameFile(src, link); err != nil {
			t.Error(err)
		}
		if err := unix.Unmount(link, unix.UMOUNT_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "nameserver 127.0.0.53\n" {
		t.Errorf("the symlink's target changed: %q", b)
	}
}

// The same, end to end: /etc/resolv.conf as systemd-resolved leaves it, a
// symlink into a directory that Hide covers, or a dangling one.
func TestExecSymlinkedResolvConf(t *testing.T) {
	z := newZone(t)
	resolve := filepath.Join(z.root, "resolve")
	if err := os.Mkdir(resolve, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(resolve, "stub-resolv.conf"), []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, to := range map[string]string{
		"into a hidden directory": filepath.Join(resolve, "stub-resolv.conf"),
		"dangling":                filepath.Join(z.root, "nowhere/resolv.conf"),
	} {
		link := filepath.Join(z.root, strings.ReplaceAll(name, " ", "-"))
		if err := os.Symlink(to, link); err != nil {
			t.Fatal(err)
		}
		// The link becomes /etc/resolv.conf in this sandbox's (private)
		// mount namespace only.
		fd, err := unix.OpenTree(unix.AT_FDCWD, link, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_SYMLINK_NOFOLLOW)
		if err != nil {
			t.Fatal(err)
		}
		err = unix.MoveMount(fd, "", unix.AT_FDCWD, "/etc/resolv.conf", unix.MOVE_MOUNT_F_EMPTY_PATH)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("%s: mounting the link on /etc/resolv.conf: %v", name, err)
		}
		if got, err := os.Readlink("/etc/resolv.conf"); got != to {
			t.Fatalf("%s: /etc/resolv.conf -> %q, %v; want -> %s", name, got, err, to)
		}
		o := z.options("cat", "/etc/resolv.conf")
		o.Hide = append(o.Hide, resolve)
		if got := ok(t, o); got != "nameserver 192.0.2.53\n" {
			t.Errorf("%s: /etc/resolv.conf in the zone = %q", name, got)
		}
		if err := unix.Unmount("/etc/resolv.conf", unix.UMOUNT_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mk("a/prog", 0o644)
	good := mk("b/prog", 0o755)
	if err := os.MkdirAll(filepath.Join(dir, "c/prog"), 0o755); err != nil {
		t.Fatal(err)
	}
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")

	for _, tc := range []struct {
		path string
		want string
		code int
	}{
		{a + ":" + b, good, 0}, // a non-executable file earlier in PATH is passed over
		{c + ":" + b, good, 0}, // so is a directory
		{a, "", ExitCannotRun}, // found only non-executable
		{c, "", ExitCannotRun}, // found only a directory
		{"/nonexistent", "", ExitNotFound},
		{a + "/prog:" + b, good, 0}, // a PATH entry that is not a directory
	} {
		got, err := lookPath("prog", tc.path)
		code := 0
		if err != nil {
			code = exitCode(err)
		}
		if got != tc.want || code != tc.code {
			t.Errorf("lookPath(prog, %s) = %q, %v (code %d); want %q, code %d", tc.path, got, err, code, tc.want, tc.code)
		}
	}
	if got, err := lookPath("./x/y", ""); got != "./x/y" || err != nil {
		t.Errorf("lookPath(./x/y) = %q, %v; want it unchanged", got, err)
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{exec.ErrNotFound, ExitNotFound},
		{unix.ENOENT, ExitNotFound},
		{fmt.Errorf("exec %q: %w", "x", unix.ENOENT), ExitNotFound},
		{unix.ENOTDIR, ExitNotFound},
		{unix.EACCES, ExitCannotRun},
		{unix.ENOEXEC, ExitCannotRun},
		{unix.EISDIR, ExitCannotRun},
		{unix.ETXTBSY, ExitCannotRun},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestCheckCaps(t *testing.T) {
	const zero = "Name:\tsh\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n"
	if err := checkCaps(strings.NewReader(zero)); err != nil {
		t.Errorf("all-zero sets: %v", err)
	}
	for _, bad := range []string{
		strings.Replace(zero, "CapEff:\t0000000000000000", "CapEff:\t0000000000200000", 1),
		strings.Replace(zero, "CapAmb:\t0000000000000000", "CapAmb:\t0000000000001000", 1),
		strings.Replace(zero, "CapPrm:\t0000000000000000\n", "", 1),
		strings.Replace(zero, "CapInh:\t0000000000000000", "CapInh:\tzz", 1),
	} {
		if err := checkCaps(strings.NewReader(bad)); err == nil {
			t.Errorf("checkCaps accepted\n%s", bad)
		}
	}
}

// no_new_privs reaches the program only when asked for.
func TestExecNoNewPrivs(t *testing.T) {
	z := newZone(t)
	o := z.options("grep", "^NoNewPrivs:", "/proc/self/status")
	o.As = nobody
	if got := ok(t, o); got != "NoNewPrivs:\t0\n" {
		t.Errorf("default: %q, want NoNewPrivs 0", got)
	}
	o.NoNewPrivs = true
	if got := ok(t, o); got != "NoNewPrivs:\t1\n" {
		t.Errorf("NoNewPrivs: %q, want 1", got)
	}
}

// withSignalsQueued lifts RLIMIT_SIGPENDING for the change of user (as
// far as this process may) and puts the caller's limit back after it.
func TestSignalsQueued(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_SIGPENDING, &orig); err != nil {
		t.Fatal(err)
	}
	if orig.Max == 0 {
		t.Skip("RLIMIT_SIGPENDING's hard limit is 0 here")
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_SIGPENDING, &orig) })
	// Soft limit 0, as `ulimit -Si 0` leaves it (the hard one is kept: a
	// test without CAP_SYS_RESOURCE could not raise it again).
	low := unix.Rlimit{Cur: 0, Max: orig.Max}
	if err := unix.Setrlimit(unix.RLIMIT_SIGPENDING, &low); err != nil {
		t.Fatal(err)
	}
	var during unix.Rlimit
	err := withSignalsQueued(func() error { return unix.Getrlimit(unix.RLIMIT_SIGPENDING, &during) })
	if err != nil {
		t.Fatal(err)
	}
	if during.Cur < orig.Max {
		t.Errorf("during the change the limit was %d, want at least %d", during.Cur, orig.Max)
	}
	var after unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_SIGPENDING, &after)
	if after != low {
		t.Errorf("after the change the limit is %+v, want the caller's %+v", after, low)
	}
	// A limit that leaves a signal for fewer than every thread is refused
	// in words, not waited on for ever.
	if err := signalsQueueable(); err == nil || !strings.Contains(err.Error(), "raise ulimit -i") {
		t.Errorf("with RLIMIT_SIGPENDING 0: %v, want a refusal", err)
	}
}
