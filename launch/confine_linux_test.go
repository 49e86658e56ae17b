package launch

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestConfinedEnv(t *testing.T) {
	in := []string{"HOME=/home/a", "DISPLAY=:0", "WAYLAND_DISPLAY=wayland-0", "SSH_AUTH_SOCK=/tmp/ssh-x/agent.1",
		"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus", "DBUS_SYSTEM_BUS_ADDRESS=unix:path=/run/dbus/system_bus_socket",
		"GPG_AGENT_INFO=x", "XDG_RUNTIME_DIR=/somewhere"}
	for _, c := range []struct {
		confine string
		proxy   bool
		want    []string
	}{
		{ConfineDesktop, true, []string{"HOME=/home/a", "DISPLAY=:0", "WAYLAND_DISPLAY=wayland-0", "XDG_RUNTIME_DIR=/run/user/1000",
			"MOZ_NO_REMOTE=1", "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus"}},
		{ConfineDesktop, false, []string{"HOME=/home/a", "DISPLAY=:0", "WAYLAND_DISPLAY=wayland-0", "XDG_RUNTIME_DIR=/run/user/1000", "MOZ_NO_REMOTE=1"}},
		{ConfineStrict, true, []string{"HOME=/home/a", "XDG_RUNTIME_DIR=/run/user/1000", "MOZ_NO_REMOTE=1"}},
	} {
		var p *busProxy
		if c.proxy {
			p = &busProxy{}
		}
		got := confinedEnv(slices.Clone(in), c.confine, 1000, p)
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s (proxy %v):\n got %q\nwant %q", c.confine, c.proxy, got, want)
		}
	}
}

// The init refuses state from another nszone: another protocol, or a field
// it does not know (which it would otherwise leave undone).
func TestReadInitState(t *testing.T) {
	for _, c := range []struct{ in, err string }{
		{`{"Protocol":1,"Argv":["true"],"NoNewPrivs":true}`, ""},
		{`{"Protocol":2,"Argv":["true"]}`, "protocol"},
		{`{"Argv":["true"]}`, "protocol"},
		{`{"Protocol":1,"Argv":["true"],"Seccomp":"strict"}`, `unknown field "Seccomp"`},
		{`{"Protocol":1,`, "reading its state"},
	} {
		st, err := readInitState(strings.NewReader(c.in))
		switch {
		case c.err == "" && (err != nil || !st.NoNewPrivs || st.Argv[0] != "true"):
			t.Errorf("%s: %+v, %v; want it read", c.in, st, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one with %q", c.in, err, c.err)
		}
	}
}

// Only a regular file of root's (or of this program's owner's) in a
// directory of theirs, neither writable by others, runs as the zone's init:
// no symbolic link, no FIFO (which must not hang exec either).
func TestOpenInit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nszone-zoneinit")
	if err := os.WriteFile(path, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if f, err := openInit(path); err != nil {
		t.Errorf("a 0755 init of this program's owner: %v", err)
	} else {
		f.Close()
	}
	refused := func(what, p, want string) {
		t.Helper()
		if f, err := openInit(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a refusal with %q", what, err, want)
			if f != nil {
				f.Close()
			}
		}
	}
	if err := os.Chmod(path, 0o775); err != nil {
		t.Fatal(err)
	}
	refused("a group-writable init", path, "no one else may write")
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	refused("a symbolic link", link, "symbolic link")
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o755); err != nil {
		t.Fatal(err)
	}
	refused("a FIFO", fifo, "regular file")
	refused("a directory", dir, "regular file")
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	refused("in a directory anyone may write", path, "its directory")
	if f, err := openInit(""); err != nil {
		t.Errorf("this program as the init: %v", err)
	} else {
		f.Close()
	}
}
