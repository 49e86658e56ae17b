package entry

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nszone/nszone/config"
)

func TestCleanEnv(t *testing.T) {
	env := []string{
		"PATH=/usr/bin:/bin", "DISPLAY=:0", "LC_ALL=C.UTF-8", "TERM=xterm",
		"LD_PRELOAD=/tmp/evil.so", "LD_LIBRARY_PATH=/tmp", "GODEBUG=inittrace=1", "NSZONE_CONFIG=/tmp/zones.yaml",
		"GCONV_PATH=/tmp", "HOME=/tmp/fake", "SUDO_UID=0", "IFS=x", "BASH_ENV=/tmp/x",
		"DISPLAY=:1", // a second value: getenv(3) sees the first
		"NOEQUALS",
	}
	want := []string{"PATH=/usr/bin:/bin", "DISPLAY=:0", "LC_ALL=C.UTF-8", "TERM=xterm"}
	if got := CleanEnv(env); !slices.Equal(got, want) {
		t.Errorf("CleanEnv = %q, want %q", got, want)
	}
}

func TestIsClean(t *testing.T) {
	for env, want := range map[string]bool{
		"TERM=x": true, "TERM=x\x00DISPLAY=:0": true, "": true, "TERM=x\x00GOTRACEBACK=none": true,
		"GOTRACEBACK=crash":     false,
		"TERM=x\x00GODEBUG=x=1": false, "NLDEBUG=level=1": false, "TERM=x\x00TERM=y": false, "HOME=/x": false,
	} {
		var list []string
		if env != "" {
			list = strings.Split(env, "\x00")
		}
		if got := IsClean(list); got != want {
			t.Errorf("IsClean(%q) = %v, want %v", list, got, want)
		}
	}
}

func TestPermit(t *testing.T) {
	groups := map[string]int{"browsing": 5001, "lab": 5002}
	groupID := func(n string) (int, bool) { id, ok := groups[n]; return id, ok }
	alice := Caller{Name: "alice", UID: 1001, GIDs: []int{1001, 5001}}
	bob := Caller{Name: "bob", UID: 1002, GIDs: []int{1002}}
	tests := []struct {
		access config.Access
		c      Caller
		ok     bool
		msg    string
	}{
		{config.Access{Users: []string{"alice"}}, alice, true, ""},
		{config.Access{Groups: []string{"browsing"}}, alice, true, ""},
		{config.Access{Groups: []string{"nosuch", "browsing"}}, alice, true, ""},
		// A refusal names nobody else, nor says whether the zone names anyone.
		{config.Access{Users: []string{"alice"}, Groups: []string{"browsing"}}, bob, false,
			"you (bob) may not enter zone wan: neither you nor a group of yours is named in its users: or groups:"},
		{config.Access{}, alice, false, "you (alice) may not enter zone wan: neither you nor a group of yours is named in its users: or groups:"},
		// A group name the database does not know lets nobody in, not even
		// a caller whose gid happens to be 0.
		{config.Access{Groups: []string{"nosuch"}}, Caller{Name: "x", UID: 1005, GIDs: []int{0}}, false, ""},
		// Root enters every zone, as with nszone exec.
		{config.Access{}, Caller{Name: "root", UID: 0, GIDs: []int{0}}, true, ""},
		// Names are compared whole.
		{config.Access{Users: []string{"alice2", "ALICE"}}, alice, false, ""},
	}
	for i, tt := range tests {
		err := Permit("wan", tt.access, tt.c, groupID)
		if (err == nil) != tt.ok || (tt.msg != "" && (err == nil || err.Error() != tt.msg)) {
			t.Errorf("%d: Permit(%+v, %+v) = %v, want ok=%v %q", i, tt.access, tt.c, err, tt.ok, tt.msg)
		}
	}
}

func TestRootOwned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make root's files")
	}
	dir := t.TempDir() // root's, 0700, below the sticky /tmp
	file := filepath.Join(dir, "wan.json")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RootOwned(file); err != nil {
		t.Errorf("root's file: %v", err)
	}
	os.Chmod(file, 0o666)
	if err := RootOwned(file); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("world-writable file: %v", err)
	}
	os.Chmod(file, 0o644)
	os.Chown(file, 65534, 65534)
	if err := RootOwned(file); err == nil || !strings.Contains(err.Error(), "not owned by root") {
		t.Errorf("nobody's file: %v", err)
	}
	os.Chown(file, 0, 0)
	os.Chmod(dir, 0o777)
	if err := RootOwned(file); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("world-writable directory: %v", err)
	}
	// Sticky: accepted above the path (anyone may add entries, nobody
	// replace root's), never as the path itself.
	os.Chmod(dir, 0o777|os.ModeSticky)
	if err := RootOwned(file); err != nil {
		t.Errorf("file in a sticky directory: %v", err)
	}
	if err := RootOwned(dir); err == nil || !strings.Contains(err.Error(), "(mode 1777)") {
		t.Errorf("sticky directory itself: %v", err)
	}
	os.Chmod(dir, 0o755)
	link := filepath.Join(dir, "link.json")
	os.Symlink(file, link)
	if err := RootOwned(link); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("symlink: %v", err)
	}
	os.Remove(link)
}

// RootOwnedTree: everything below the directory, sticky directories too.
func TestRootOwnedTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make root's files")
	}
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	os.WriteFile(filepath.Join(sub, "resolv.conf"), nil, 0o644)
	if err := RootOwnedTree(dir); err != nil {
		t.Errorf("root's tree: %v", err)
	}
	for name, spoil := range map[string]func() func(){
		"sticky": func() func() {
			os.Chmod(sub, 0o777|os.ModeSticky)
			return func() { os.Chmod(sub, 0o755) }
		},
		"symlink": func() func() {
			l := filepath.Join(sub, "hosts")
			os.Symlink("/tmp/x", l)
			return func() { os.Remove(l) }
		},
		"not owned by root": func() func() {
			f := filepath.Join(sub, "resolv.conf")
			os.Chown(f, 65534, 65534)
			return func() { os.Chown(f, 0, 0) }
		},
	} {
		undo := spoil()
		if err := RootOwnedTree(dir); err == nil || !strings.Contains(err.Error(), sub) {
			t.Errorf("%s below the tree: %v", name, err)
		}
		undo()
	}
}

// EnoughFiles counts what the limit leaves, with the descriptors already open.
func TestEnoughFiles(t *testing.T) {
	var orig unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &orig) })
	if err := EnoughFiles(); err != nil {
		t.Fatalf("with the limit %d: %v", orig.Cur, err)
	}
	// The descriptors open below 64, besides ReadDir's own (go test may
	// leave one far above: it takes no place below the limit).
	entries, _ := os.ReadDir("/proc/self/fd")
	open := uint64(0)
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd < 64 {
			open++
		}
	}
	open--
	if open+MinFreeFiles > 64 {
		t.Skipf("%d descriptors open already", open)
	}
	for _, cur := range []uint64{open + MinFreeFiles, open + MinFreeFiles - 1} {
		unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: cur, Max: orig.Max})
		err := EnoughFiles()
		if ok := cur >= open+MinFreeFiles; (err == nil) != ok {
			t.Errorf("limit %d with %d open: %v, want ok=%v", cur, open, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "too few open files") {
			t.Errorf("limit %d: %v, want it to say too few open files", cur, err)
		}
	}
}

func TestAudit(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "log")
	old := SyslogSockets
	t.Cleanup(func() { SyslogSockets = old })

	SyslogSockets = []string{filepath.Join(dir, "missing")}
	if _, err := OpenAudit(); err == nil || !strings.Contains(err.Error(), "cannot log to syslog") {
		t.Fatalf("no socket: %v, want an error", err)
	}

	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	SyslogSockets = []string{filepath.Join(dir, "missing"), sock}
	a, err := OpenAudit()
	if err != nil {
		t.Fatal(err)
	}
	defer a.w.Close()
	c := Caller{Name: "alice", UID: 1001}
	if err := a.Entered(c, "wan", "/usr/bin/fire\nfox", 2); err != nil {
		t.Fatal(err)
	}
	if err := a.Refused(c, "w\nan", os.ErrPermission); err != nil {
		t.Fatal(err)
	}
	// authpriv (10) * 8 + notice (5), then warning (4).
	if got, want := read(t, l), `entered: user="alice" uid=1001 zone="wan" program="/usr/bin/fire\nfox" args=2`; !strings.HasPrefix(got, "<85>") || !strings.Contains(got, "nszone-enter[") || !strings.Contains(got, want) {
		t.Errorf("entry logged as %q, want authpriv.notice and %q", got, want)
	}
	if got, want := read(t, l), `refused: user="alice" uid=1001 zone="w\nan" reason="permission denied"`; !strings.HasPrefix(got, "<84>") || !strings.Contains(got, want) {
		t.Errorf("refusal logged as %q, want authpriv.warning and %q", got, want)
	}
}

func read(t *testing.T, l *net.UnixConn) string {
	t.Helper()
	l.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := l.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

// Both ways of marking the caller's descriptors close-on-exec leave none
// inheritable above 2.
func TestCloseOnExec(t *testing.T) {
	for name, mark := range map[string]func() error{"close_range": CloseOnExec, "/proc/self/fd": closeOnExecEach} {
		var p [2]int
		if err := unix.Pipe2(p[:], 0); err != nil {
			t.Fatal(err)
		}
		if err := mark(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, fd := range p {
			if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
				t.Errorf("%s: descriptor %d is still inheritable (%v)", name, fd, err)
			}
			unix.Close(fd)
		}
	}
}
