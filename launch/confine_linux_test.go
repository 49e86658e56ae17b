package launch

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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

// Only a regular file of root's that no one else may write runs as the
// zone's init.
func TestOpenInit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nszone-zoneinit")
	if err := os.WriteFile(path, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o775); err != nil {
		t.Fatal(err)
	}
	if f, err := openInit(path); err == nil || !strings.Contains(err.Error(), "no one else may write") {
		t.Errorf("group-writable init: %v, want a refusal", err)
		f.Close()
	}
	if _, err := openInit(dir); err == nil {
		t.Errorf("a directory as the init: no error")
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := openInit(path)
	switch {
	case os.Geteuid() == 0 && err != nil:
		t.Errorf("root's 0755 init: %v", err)
	case os.Geteuid() != 0 && err == nil:
		t.Errorf("an init of uid %d: accepted", os.Geteuid())
	}
	if f != nil {
		f.Close()
	}
}
